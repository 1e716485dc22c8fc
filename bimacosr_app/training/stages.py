"""The three training stages of the BiMaCoSR chain, as (build_model, loss, predict) triples.

Images enter in [0, 1]; the model works on ``x0 = PU(2 HR - 1)`` and
``z_y = PU(bicubic(2 LR - 1))``.

* teacher: FP ResShift denoiser, x0-prediction MSE at t ~ U{0..T-1}.
* onestep: SinSR-style distillation, initialised from the teacher's EMA: at t = T-1, MSE to
  the teacher's deterministic T-step output from the same noise (computed online). Without
  ``target_run`` it is plain regression instead: the one-step model, from ``init`` or from
  scratch, learns the ground-truth latent alone (the FP parent of the 1-bit model).
* binarize: ``binarize()`` of the FP one-step model's EMA (SMB, LRMB, then 1-bit; with
  ``act_shift`` the activation thresholds are calibrated on one training batch), trained with
  latent MSE to the frozen FP one-step model's output from the same noise.
``gt_weight`` adds a term to the ground-truth latent in the last two stages; ``loss`` picks
the distance of the output terms (``"mse"`` or ``"l1"``). In the binarize stage
``feature_weight`` adds layer-wise distillation: for every 1-bit layer, the MSE between its
output and the output of the FP layer it replaced (same name in the frozen model, same input
image and noise), over the FP output's mean square, averaged over the layers.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..model import (
    LATENT_CHANNELS,
    BinaryConv2d,
    BinaryLinear,
    Denoiser,
    ResShiftSchedule,
    bicubic_upscale,
    binarize,
    calibrate_act_shift,
    calibrate_gain,
    from_latent,
    one_step_latent,
    set_scale_gradient,
    to_latent,
)
from .trainer import OUTPUT_DISTANCES, StageConfig, load_run_model
from .weights import load_weights

__all__ = ["binarize_stage", "onestep_stage", "teacher_stage"]


def _latents(lr01: torch.Tensor, hr01: torch.Tensor):
    lr = lr01 * 2 - 1
    return lr, to_latent(hr01 * 2 - 1), to_latent(bicubic_upscale(lr))


def _to_image(x0: torch.Tensor) -> torch.Tensor:
    return ((from_latent(x0.float()) + 1) * 0.5).clamp(0, 1)


def _validation_noise(lr: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    b, _, h, w = lr.shape
    return torch.randn(b, LATENT_CHANNELS, h, w, generator=g).to(lr.device)


def _init_from_ema(model: torch.nn.Module, run: str | None) -> None:
    if run:
        state, _ = load_weights(run, "ema")
        model.load_state_dict(state)


def teacher_stage(cfg: StageConfig):
    schedule = cfg.schedule()

    def build(cfg, device, sample):
        model = Denoiser(cfg.model_config())
        _init_from_ema(model, cfg.init)
        return model

    def loss(model, lr01, hr01):
        lr, x0, y = _latents(lr01, hr01)
        t = torch.randint(0, schedule.steps, (lr.shape[0],), device=lr.device)
        noise = torch.randn_like(x0)
        x_t = schedule.q_sample(x0, y, t, noise)
        return F.mse_loss(model(schedule.scale_input(x_t, t), lr, t, y).float(), x0)

    def predict(model, lr01):
        lr = lr01 * 2 - 1
        y = to_latent(bicubic_upscale(lr))
        x0 = schedule.sample(lambda x, t: model(x, lr, t, y), y, _validation_noise(lr))
        return _to_image(x0)

    return build, loss, predict


def _one_step_predict(schedule: ResShiftSchedule):
    def predict(model, lr01):
        lr = lr01 * 2 - 1
        return _to_image(one_step_latent(model, schedule, lr, _validation_noise(lr)))
    return predict


@contextmanager
def _layer_outputs(layers: dict[str, nn.Module]):
    """Collect each named module's forward output while the block runs (hooks removed after)."""
    outputs: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(
        lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
        for name, m in layers.items()]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


def _layer_distance(student: dict, frozen: dict) -> torch.Tensor:
    """Mean over layers of MSE(student, frozen) / mean(frozen^2)."""
    terms = []
    for name, f in frozen.items():
        f = f.float()
        terms.append(F.mse_loss(student[name].float(), f) / f.pow(2).mean().clamp_min(1e-8))
    return torch.stack(terms).mean()


def _distill_loss(schedule, target_fn, gt_weight, feature_weight=0.0, layer_pairs=None,
                  distance=F.mse_loss):
    """Output ``distance`` to the frozen target (+ ``gt_weight`` x the distance to the ground
    truth); with ``feature_weight``, ``layer_pairs() -> (student layers, frozen layers)``
    (dicts by name, built once) adds the layer-wise term."""
    def loss(model, lr01, hr01):
        lr, x0, y = _latents(lr01, hr01)
        noise = torch.randn_like(x0)
        student_layers, frozen_layers = layer_pairs() if feature_weight else ({}, {})
        with torch.no_grad(), _layer_outputs(frozen_layers) as frozen_out:
            target = target_fn(lr, y, noise).float()
        with _layer_outputs(student_layers) as student_out:
            pred = one_step_latent(model, schedule, lr, noise).float()
        value = distance(pred, target)
        if gt_weight:
            value = value + gt_weight * distance(pred, x0)
        if feature_weight:
            value = value + feature_weight * _layer_distance(student_out, frozen_out)
        return value
    return loss


def _distillation_stage(cfg: StageConfig, frozen_run: str, make_student, frozen_target):
    """(build, loss, predict) of a stage that trains a one-step student against a frozen model
    loaded once from ``cfg.target_run``: ``make_student(cfg, frozen, calibrate) -> model``,
    where ``calibrate(model)`` runs a model one step on a training batch, and
    ``frozen_target(schedule, frozen, lr, y, noise) -> latent``."""
    if not cfg.target_run:
        raise SystemExit(f"{cfg.stage} needs --set target_run='\"{frozen_run}\"'")
    schedule = cfg.schedule()
    built = {}

    def build(cfg, device, sample):
        built["frozen"], frozen_cfg = load_run_model(cfg.target_run, device)
        # The student has the frozen model's architecture and schedule.
        for what, get in (("model", StageConfig.model_config),
                          ("diffusion", StageConfig.diffusion_config)):
            if get(frozen_cfg) != get(cfg):
                raise SystemExit(f"{cfg.stage}: the config's {what} differs from the target "
                                 f"run's ({cfg.target_run}): {get(frozen_cfg)}")

        def calibrate(model):
            lr01, _ = sample()
            lr = lr01 * 2 - 1
            noise = torch.randn(lr.shape[0], LATENT_CHANNELS, *lr.shape[2:],
                                generator=torch.Generator().manual_seed(cfg.seed)).to(lr)
            return one_step_latent(model, schedule, lr, noise)

        student = make_student(cfg, built["frozen"], calibrate)
        # The student's 1-bit layers and the frozen model's layers of the same names.
        layers = {name: m for name, m in student.named_modules()
                  if isinstance(m, (BinaryConv2d, BinaryLinear))}
        frozen_modules = dict(built["frozen"].named_modules())
        built["layers"] = layers, {name: frozen_modules[name] for name in layers}
        return student

    def target(lr, y, noise):
        return frozen_target(schedule, built["frozen"], lr, y, noise)

    loss = _distill_loss(schedule, target, cfg.gt_weight, cfg.feature_weight,
                         lambda: built["layers"], OUTPUT_DISTANCES[cfg.loss])
    return build, loss, _one_step_predict(schedule)


def _regression_stage(cfg: StageConfig):
    """(build, loss, predict) of the one-step model trained on the ground truth alone."""
    schedule = cfg.schedule()
    distance = OUTPUT_DISTANCES[cfg.loss]

    def build(cfg, device, sample):
        model = Denoiser(cfg.model_config())
        if cfg.init:
            _init_from_ema(model, cfg.init)
        else:  # from scratch: start at the bicubic output (the residual over it is zero)
            nn.init.zeros_(model.conv_out.weight)
            nn.init.zeros_(model.conv_out.bias)
        return model

    def loss(model, lr01, hr01):
        lr, x0, _ = _latents(lr01, hr01)
        noise = None if schedule.kappa == 0 else torch.randn_like(x0)
        return distance(one_step_latent(model, schedule, lr, noise).float(), x0)

    return build, loss, _one_step_predict(schedule)


def _student_from(cfg: StageConfig, frozen: torch.nn.Module) -> Denoiser:
    model = Denoiser(cfg.model_config())
    if cfg.init:
        _init_from_ema(model, cfg.init)
    else:
        model.load_state_dict(frozen.state_dict())
    return model


def onestep_stage(cfg: StageConfig):
    """Student initialised from the teacher (or ``init``); target: the teacher's T steps.
    Without ``target_run``: regression to the ground truth (module docstring)."""
    if not cfg.target_run:
        return _regression_stage(cfg)

    def teacher_target(schedule, teacher, lr, y, noise):
        return schedule.sample(lambda x, t: teacher(x, lr, t, y), y, noise)

    return _distillation_stage(cfg, "runs/teacher",
                               lambda cfg, frozen, _calibrate: _student_from(cfg, frozen),
                               teacher_target)


def binarize_stage(cfg: StageConfig):
    """binarize() of the FP one-step model (activation thresholds, when on, calibrated on a
    training batch); target: that model's one-step output."""
    def make_student(cfg, fp, calibrate):
        # on the frozen model's device: calibration runs the two side by side
        student = binarize(_student_from(cfg, fp), **cfg.binarize).to(
            next(fp.parameters()).device)
        if cfg.binarize.get("act_shift"):
            calibrate_act_shift(student, fp, calibrate)
        if cfg.binarize.get("gain"):
            calibrate_gain(student, fp, calibrate)
        set_scale_gradient(student, cfg.binary_scale_grad)
        return student

    def fp_target(schedule, fp, lr, y, noise):
        return one_step_latent(fp, schedule, lr, noise)

    return _distillation_stage(cfg, "runs/onestep", make_student, fp_target)
