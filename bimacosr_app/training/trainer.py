"""What every training stage shares: configuration, data-parallel setup, the training loop
with bf16 autocast, EMA, warmup + cosine learning rate, a wall-clock budget, JSONL logs,
validation with a PNG grid, and resumable checkpoints (bf16 safetensors, see ``weights``).

A stage supplies ``build_model``, ``loss`` and ``predict``; run it with torchrun for several
GPUs (``torchrun --nproc_per_node=N -m bimacosr_app.training.<stage> ...``): each rank draws
its own batches, gradients are averaged by DistributedDataParallel, rank 0 logs and saves.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from PIL import Image

from ..atomic import atomic_write_bytes
from ..metrics import psnr_y
from ..model import (
    BinaryConv2d,
    BinaryLinear,
    Denoiser,
    DiffusionConfig,
    ModelConfig,
    ResShiftSchedule,
    binarize,
    set_binary_mix,
)
from .data import DegradationConfig, PhotoSet, TrainBatches, default_data_dir, validation_pairs
from .weights import load_weights, save_weights, weight_files

__all__ = ["COMPILE_SCOPES", "OUTPUT_DISTANCES", "StageConfig", "Trainer", "calibration_batch",
           "compile_for_training", "parse_stage_args"]

BUDGET_CHECK_EVERY = 20  # steps between wall-clock budget checks
CALIBRATION_STREAM = 2000  # TrainBatches rank of the calibration batch (no training rank's)
# StageConfig.loss: the distance of the output terms (mean over elements).
OUTPUT_DISTANCES = {"mse": nn.functional.mse_loss, "l1": nn.functional.l1_loss}
# StageConfig.compile: eager, the whole model, or each 1-bit layer (compile_for_training).
COMPILE_SCOPES = (False, True, "layers")


def compile_for_training(model: nn.Module, scope: bool | str) -> nn.Module:
    """The module a training step calls, by ``scope`` (one of COMPILE_SCOPES): ``model``
    itself (False), ``torch.compile(model)`` (True), or ``model`` with the forward of each
    of its 1-bit layers compiled in place ("layers"). The 1-bit layers' fake quantisation is
    most of what compiling speeds up; their few distinct shapes compile in a fraction of the
    whole model's time, and the state dict keeps its keys. "layers" allows a recompilation
    per 1-bit layer (they share one forward; each distinct shape compiles once)."""
    if scope not in COMPILE_SCOPES:
        raise ValueError(f"compile scope must be one of {COMPILE_SCOPES}, got {scope!r}")
    if scope != "layers":
        return torch.compile(model) if scope else model
    layers = [m for m in model.modules() if isinstance(m, (BinaryConv2d, BinaryLinear))]
    dynamo = torch._dynamo.config  # cache_size_limit: known to every torch >= 2.4 (later an alias)
    dynamo.cache_size_limit = max(dynamo.cache_size_limit, len(layers))
    for layer in layers:
        layer.compile()
    return model


@dataclass
class StageConfig:
    stage: str = "teacher"
    model: dict = field(default_factory=lambda: ModelConfig().to_dict())
    diffusion: dict = field(default_factory=lambda: DiffusionConfig(steps=4).to_dict())
    train_dir: str | None = None  # default: shared/data/train
    val_dir: str | None = None  # default: shared/data/val
    realistic_fraction: float = 0.5
    batch_size: int = 32  # per GPU
    crop_size: int = 256  # HR crop; LR is crop_size / 4
    hr_scale_range: tuple[float, float] = (0.5, 1.0)  # photos rescaled by s ~ U(range) first
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    steps: int = 20000  # length of the cosine schedule; training stops there
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 50
    val_every: int = 1000
    save_every: int = 1000
    init: str | None = None  # run directory whose EMA weights initialise the model
    target_run: str | None = None  # run directory of the frozen model that gives targets
    gt_weight: float = 0.0  # weight of an extra term to the ground truth latent
    loss: str = "mse"  # distance of the output terms: "mse" or "l1"
    feature_weight: float = 0.0  # binarize: weight of the layer-wise distillation term
    binary_lr_scale: float = 1.0  # learning-rate multiplier of the 1-bit layers' latent weights
    binary_ramp_steps: int = 0  # binarize: steps over which binary_mix rises from 0 to 1
    binary_scale_grad: bool = True  # binarize: beta = mean|W_b| passes gradient to W_b
    binarize: dict = field(default_factory=lambda: {"rank": 8, "smb": True, "lrmb": True,
                                                    "svd_init": True, "rprelu_slope": 0.25})
    compile: bool | str = False  # torch.compile on CUDA: true, "layers" (compile_for_training)
    channels_last: bool = True  # NHWC weights and activations on CUDA (cuDNN's fast layout)
    bf16_autocast: bool | None = None  # training and validation forwards; None: on CUDA only

    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.model)

    def diffusion_config(self) -> DiffusionConfig:
        return DiffusionConfig(**self.diffusion)

    def schedule(self) -> ResShiftSchedule:
        return ResShiftSchedule(self.diffusion_config())

    def binary_mix_at(self, step: int) -> float:
        """Gradual binarization: binary_mix rises linearly from 0 at step 0 to 1 at
        ``binary_ramp_steps`` (a function of the step, so a resumed run continues the ramp)."""
        ramp = self.binary_ramp_steps
        return 1.0 if ramp <= 0 else min(1.0, step / ramp)

    @classmethod
    def from_dict(cls, d: dict) -> StageConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        for key in ("feature_weight", "binary_ramp_steps"):
            if d.get(key) and d.get("stage", cls.stage) != "binarize":
                raise ValueError(f"{key} applies to the binarize stage (its 1-bit layers)")
        if d.get("binary_scale_grad", True) is not True and d.get("stage", cls.stage) != "binarize":
            raise ValueError("binary_scale_grad applies to the binarize stage (its 1-bit layers)")
        if d.get("bf16_autocast") not in (None, True, False):
            raise ValueError("bf16_autocast must be true, false or null, "
                             f"got {d['bf16_autocast']!r}")
        if d.get("compile", cls.compile) not in COMPILE_SCOPES:
            raise ValueError(f"compile must be one of {COMPILE_SCOPES}, got {d['compile']!r}")
        if d.get("compile") == "layers" and d.get("stage", cls.stage) != "binarize":
            raise ValueError('compile "layers" applies to the binarize stage (its 1-bit layers)')
        low, high = d.get("hr_scale_range", cls.hr_scale_range)
        if not 0 < low <= high <= 1:
            raise ValueError(f"hr_scale_range must hold 0 < low <= high <= 1, got {[low, high]}")
        if d.get("loss", cls.loss) not in OUTPUT_DISTANCES:
            raise ValueError(f"loss must be one of {sorted(OUTPUT_DISTANCES)}, got {d['loss']!r}")
        return cls(**d)


def parse_stage_args(stage: str, argv=None) -> tuple[StageConfig, Path, float | None]:
    p = argparse.ArgumentParser(prog=f"python -m bimacosr_app.training.{stage}")
    p.add_argument("--config", type=Path, help="JSON file of StageConfig fields")
    p.add_argument("--out", type=Path, required=True, help="run directory (resumed if present)")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="stop cleanly and checkpoint after this much wall time")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override one config field, e.g. --set steps=500 --set init=runs/t; "
                        "a dotted key sets a field of a nested one: --set binarize.smb=false")
    args = p.parse_args(argv)
    d = {"stage": stage}
    if args.config:
        d.update(json.loads(args.config.read_text()))
    for item in args.set:
        key, _, value = item.partition("=")
        with contextlib.suppress(json.JSONDecodeError):  # else a string: init=runs/teacher
            value = json.loads(value)
        *parents, field = key.split(".")
        node = d
        for name in parents:  # model.res_blocks, binarize.smb: into the nested object
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                p.error(f"--set {key}: {name} is not an object")
        node[field] = value
    d["stage"] = stage
    try:
        cfg = StageConfig.from_dict(d)
    except (TypeError, ValueError) as e:  # unknown or misplaced keys: a usage error
        p.error(str(e))
    return cfg, args.out, args.budget_minutes


def _init_distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def load_run_model(run_dir: str | Path, device,
                   weights: str = "ema") -> tuple[Denoiser, StageConfig]:
    """A run's EMA weights (or, with ``weights="model"``, its live weights) as a frozen
    Denoiser, binarized when the run is a binarize run."""
    state, cfg = load_weights(Path(run_dir), weights)
    config = StageConfig.from_dict(cfg)
    model = Denoiser(config.model_config())
    if config.stage == "binarize":
        binarize(model, **config.binarize)
    model.load_state_dict(state)
    model = model.to(device).eval().requires_grad_(False)
    if config.channels_last and torch.device(device).type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model, config


def _param_groups(model: nn.Module, cfg: StageConfig) -> list[dict]:
    """AdamW groups: weight decay on full-precision weight matrices only (not on vectors,
    relative position biases or the latent weights of 1-bit layers, whose signs are all that
    the packed model keeps); the latent weights get ``binary_lr_scale`` times the learning
    rate. Each group's ``lr_scale`` multiplies the scheduled learning rate."""
    latent = {id(m.weight) for m in model.modules() if isinstance(m, (BinaryConv2d, BinaryLinear))}
    decay, no_decay, binary = [], [], []
    for name, p in model.named_parameters():
        if id(p) in latent:
            binary.append(p)
        elif p.dim() <= 1 or "rel_bias" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay, "lr_scale": 1.0},
              {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
              {"params": binary, "weight_decay": 0.0, "lr_scale": cfg.binary_lr_scale}]
    return [g for g in groups if g["params"]]


def calibration_batch(cfg: StageConfig, photos: PhotoSet, degradation: DegradationConfig):
    """The batch ``(lr, hr)`` a stage calibrates its model on (the binarize stage: thresholds
    and gains): a fixed batch of the training data, the same on every rank and for every tool
    that converts a student the way the stage does."""
    return next(TrainBatches(photos, cfg.batch_size, cfg.crop_size, degradation,
                             seed=cfg.seed, rank=CALIBRATION_STREAM,
                             scale_range=cfg.hr_scale_range))


def _structure_mismatch(out: Path, saved: dict, current: dict, error: Exception) -> str:
    """What to say when the run in ``out`` holds a network that the config (``current``,
    ``asdict(StageConfig)``) does not build: the ``model`` and ``binarize`` options it was
    saved with (``saved``, its weights' config) where they differ, as the ``--set``
    overrides that resume it."""
    differing = [f"{block}.{key}={json.dumps(value)}" for block in ("model", "binarize")
                 for key, value in (saved.get(block) or {}).items()
                 if (current.get(block) or {}).get(key) != value]
    if not differing:
        return f"{out} holds a network that this config does not build: {error}"
    return (f"{out} holds a network that this config does not build; it was saved with "
            f"{', '.join(differing)}: resume it with "
            + " ".join(f"--set {item}" for item in differing))


class Trainer:
    """The training loop; a stage passes ``build_model(cfg, device, sample) -> nn.Module``
    (``sample()`` draws one training batch ``(lr, hr)``, for calibration),
    ``loss(model, lr, hr) -> tensor`` ([0,1] images) and ``predict(model, lr) -> hr``."""

    def __init__(self, cfg: StageConfig, out: Path, budget_minutes: float | None,
                 build_model, loss, predict):
        self.cfg, self.out, self.budget = cfg, Path(out), budget_minutes
        self.loss_fn, self.predict_fn = loss, predict
        self.rank, self.world, self.device = _init_distributed()
        self.is_main = self.rank == 0
        torch.manual_seed(cfg.seed + self.rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

        train_dir = cfg.train_dir or default_data_dir("train")
        photos = PhotoSet(train_dir, device=self.device)
        degradation = DegradationConfig(realistic_fraction=cfg.realistic_fraction)

        def sample():
            return calibration_batch(cfg, photos, degradation)

        self.model = build_model(cfg, self.device, sample).to(self.device)
        if cfg.channels_last and self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.step = self.start_step = 0  # start_step: where this process began (resumed)
        self._resume()
        self.module = self.model
        if self.device.type == "cuda":
            self.model = compile_for_training(self.model, cfg.compile)
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = torch.optim.AdamW(
            _param_groups(self.module, cfg), lr=cfg.lr, betas=(0.9, 0.99),
            fused=self.device.type == "cuda")
        self.batches = TrainBatches(photos, cfg.batch_size, cfg.crop_size, degradation,
                                    seed=cfg.seed + 7919 * self.step, rank=self.rank,
                                    scale_range=cfg.hr_scale_range)
        self.val = validation_pairs(cfg.val_dir, "bicubic", max_side=256) if self.is_main else []
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
            self._log({"event": "start", "step": self.step, "world": self.world,
                       "device": str(self.device), "train_photos": len(photos),
                       "train_megapixels": round(photos.megapixels, 1),
                       "params": sum(p.numel() for p in self.module.parameters()),
                       "data_batches_per_s": round(self._data_rate(), 1)})

    # -- state ---------------------------------------------------------------------------
    def _resume(self):
        """Continue the run in ``out``: its live and EMA weights and step. A run kept with its
        EMA weights only (what is committed to outlive a session) continues from the EMA."""
        state_file = self.out / "state.json"
        if not state_file.exists() or not weight_files(self.out, "ema"):
            return
        ema_state, saved = load_weights(self.out, "ema", self.device)
        has_live = bool(weight_files(self.out, "model"))
        model_state = load_weights(self.out, "model", self.device)[0] if has_live else ema_state
        try:
            self.model.load_state_dict(model_state)
            self.ema.load_state_dict(ema_state)
        except RuntimeError as e:  # missing, unexpected or resized tensors
            raise SystemExit(_structure_mismatch(self.out, saved, asdict(self.cfg), e)) from None
        self.step = json.loads(state_file.read_text())["step"]
        self.start_step = self.step

    def save(self):
        if not self.is_main:
            return
        cfg = asdict(self.cfg)
        save_weights(self.module.state_dict(), self.out, "model", cfg)
        save_weights(self.ema.state_dict(), self.out, "ema", cfg)
        atomic_write_bytes(self.out / "state.json", json.dumps({"step": self.step}).encode())

    def _log(self, record: dict):
        if self.is_main:
            record["time"] = round(time.time(), 1)
            with open(self.out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)

    # -- loop ----------------------------------------------------------------------------
    def lr_at(self, step: int, time_fraction: float = 0.0) -> float:
        """Cosine from ``lr`` to ``min_lr_ratio``, progress the larger of the step fraction
        and ``time_fraction``, the fraction of the wall-clock budget used after this process's
        first step (so a budget-limited run still anneals, and a compiling one anneals over
        the time it trains; a resumed run restarts it: a warm restart), times a linear warmup over
        the first ``warmup_steps`` of this process: a resumed run's optimizer moments start
        from zero, so it warms up again."""
        cfg = self.cfg
        progress = max(0, step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        progress = min(1.0, max(progress, time_fraction))
        floor = cfg.min_lr_ratio
        cosine = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        warmup = min(1.0, (step - self.start_step + 1) / cfg.warmup_steps)
        return cfg.lr * cosine * warmup

    @torch.no_grad()
    def _update_ema(self):
        # Warm-up: the average forgets the initial weights within a short run too.
        d = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        ema = [p for p in self.ema.parameters()]
        live = [p.detach() for p in self.module.parameters()]
        torch._foreach_lerp_(ema, live, 1 - d)

    def _data_rate(self, batches: int = 10) -> float:
        """Batches per second the data pipeline alone delivers (to compare with steps/s)."""
        probe = TrainBatches(self.batches.photos, self.cfg.batch_size, self.cfg.crop_size,
                             self.batches.config, seed=self.cfg.seed, rank=1000 + self.rank,
                             scale_range=self.batches.scale_range)
        next(probe)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(batches):
            next(probe)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return batches / (time.perf_counter() - start)

    def _shared_elapsed(self, start: float) -> float:
        """Seconds since ``start`` as rank 0 sees them, so that every rank takes the same
        learning rate and stops at the same step."""
        elapsed = torch.tensor([time.monotonic() - start], dtype=torch.float64,
                               device=self.device)
        if self.world > 1:
            dist.broadcast(elapsed, src=0)
        return float(elapsed)

    def train(self):
        cfg = self.cfg
        start = time.monotonic()  # the budget's clock; log records also carry the wall time
        losses = []
        stop_reason = "steps"
        self.model.train()
        budget_s = None if self.budget is None else self.budget * 60
        # The learning-rate schedule spends the budget left after the first step (under
        # torch.compile that step compiles, minutes of a short run); the stop spends it all.
        first_step_s = None
        time_fraction = 0.0
        while self.step < cfg.steps:
            # The budget check syncs host and GPU, so it runs every BUDGET_CHECK_EVERY steps
            # (and once after the first step, to time it).
            first_done = first_step_s is None and self.step == self.start_step + 1
            if budget_s is not None and (self.step % BUDGET_CHECK_EVERY == 0 or first_done):
                elapsed = self._shared_elapsed(start)
                if first_done:
                    first_step_s = elapsed
                    self._log({"event": "first_step", "step": self.step,
                               "elapsed_s": round(elapsed, 1)})
                if elapsed >= budget_s:
                    stop_reason = "budget"
                    break
                warm_s = first_step_s or 0.0
                time_fraction = (elapsed - warm_s) / max(1e-9, budget_s - warm_s)
            lr = self.lr_at(self.step, time_fraction)
            for g in self.optimizer.param_groups:
                g["lr"] = lr * g["lr_scale"]
            if cfg.binary_ramp_steps:
                # Live model only: the EMA, which is validated and exported, stays fully binary.
                set_binary_mix(self.module, cfg.binary_mix_at(self.step))
            lr_img, hr_img = next(self.batches)
            with self._autocast():
                loss = self.loss_fn(self.model, lr_img, hr_img)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(self.module.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self._update_ema()
            self.step += 1
            losses.append(loss.detach())
            if self.step % cfg.log_every == 0:
                mean = float(torch.stack(losses).mean())
                losses.clear()
                self._log({"step": self.step, "loss": mean, "lr": lr,
                           "grad_norm": float(grad_norm),
                           "elapsed_s": round(time.monotonic() - start, 1)})
            if self.step % cfg.val_every == 0:
                self.validate()
            if self.step % cfg.save_every == 0:
                self.save()
        self.save()
        self.validate()
        self._log({"event": "stop", "reason": stop_reason, "step": self.step,
                   "elapsed_s": round(time.monotonic() - start, 1)})
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()

    def _autocast(self):
        """bf16 autocast of the forward passes: ``cfg.bf16_autocast``, by default on CUDA only."""
        enabled = self.cfg.bf16_autocast
        if enabled is None:
            enabled = self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    @torch.no_grad()
    def validate(self):
        if not self.is_main or not self.val:
            return
        self.ema.eval()
        scores, bicubic, tiles = [], [], []
        for i, (_, lr, hr) in enumerate(self.val):
            with self._autocast():
                sr = self.predict_fn(self.ema, lr[None].to(self.device)).float().cpu()
            up = torch.nn.functional.interpolate(lr[None], scale_factor=4, mode="bicubic",
                                                 align_corners=False).clamp(0, 1)
            scores.append(psnr_y(sr, hr[None]))
            bicubic.append(psnr_y(up, hr[None]))
            if i < 4:
                tiles.append(torch.stack([up[0], sr[0], hr])[:, :, :128, :128])
        self._log({"event": "val", "step": self.step, "psnr_y": float(np.mean(scores)),
                   "bicubic_psnr_y": float(np.mean(bicubic))})
        # rows: validation crops; columns: bicubic, model, ground truth
        grid = torch.cat([torch.cat(list(row), dim=2) for row in tiles], dim=1)
        grid = grid.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0)
        Image.fromarray(grid.numpy()).save(self.out / "val_grid.png")
