"""Training throughput on one GPU: the data pipeline alone, one optimizer step of the FP
denoiser by batch size and memory format, and the binarize stage's step (the frozen FP
parent's target, then the 1-bit student's forward, backward and AdamW) in two recipes:

* ``1-bit, shipped``: the recipe shipped before shortcuts (``be4db9c2…``, ``configs/
  binarize_shift.json``: thresholds, RPReLU slope 1, kappa 2, NCHW, eager), the baseline of
  the training-speed target;
* ``1-bit, shortcuts``: the recipe to train (``configs/binarize_parent.json``: a plain parent
  binarized with a full-precision shortcut around every layer, thresholds, gain, kappa 0),
  eager, under ``torch.compile`` and with each 1-bit layer compiled (``compile: "layers"``,
  ``trainer.compile_for_training``), whose first step compiles in a fraction of the time.

    python -m benchmarks.train_step [--json] [--batches 32,128] [--parts data,fp,binarize]
                                    [--compile false,true,layers] [--profile]

Every figure is the median of 20 timed iterations after warm-up, with CUDA synchronisation
around each. ``crops/s`` is HR 256² crops (LR 64²) per second; ``vs shipped`` is the
speed over the shipped recipe's 1-bit step at the same batch, measured in the same run.
``--compile`` picks the shortcut recipe's compile scopes (``false``: eager, ``true``: whole
model, ``layers``), e.g. ``false,layers`` to skip the whole model's minutes of compiling. Rows
print as they are measured. With ``--json`` the last line is ``{"data": [...], "steps": [...],
"device": ..}``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
import torch.nn.functional as F

from benchmarks.cuda_timing import cuda_median_ms
from bimacosr_app.model import (
    LATENT_CHANNELS,
    Denoiser,
    DiffusionConfig,
    ModelConfig,
    ResShiftSchedule,
    binarize,
    one_step_latent,
)
from bimacosr_app.training.data import (
    DegradationConfig,
    PhotoSet,
    TrainBatches,
    default_data_dir,
)
from bimacosr_app.training.trainer import COMPILE_SCOPES, compile_for_training


def _median_ms(fn) -> float:
    return cuda_median_ms(fn, repeats=20, warmup=5)


def data_rows(batch: int) -> list[dict]:
    photos = PhotoSet(default_data_dir("train"), device=torch.device("cuda"))
    rows = []
    for fraction in (0.0, 0.5, 1.0):
        batches = TrainBatches(photos, batch, 256, DegradationConfig(realistic_fraction=fraction))
        ms = _median_ms(lambda b=batches: next(b))
        rows.append({"realistic_fraction": fraction, "batch": batch, "ms": round(ms, 2),
                     "crops_per_s": round(batch / ms * 1000)})
    return rows


# The binarize recipes timed: (architecture, binarize() options, kappa).
RECIPES = {
    "1-bit, shipped": (ModelConfig(), {"rprelu_slope": 1.0, "act_shift": True}, 2.0),
    "1-bit, shortcuts": (ModelConfig(), {"rprelu_slope": 1.0, "act_shift": True, "gain": True,
                                         "shortcut": True}, 0.0),
}


def _batch(batch: int, channels_last: bool):
    """Fixed random (LR in [-1,1], x0 latent) of LR 64²."""
    x0 = torch.randn(batch, LATENT_CHANNELS, 64, 64, device="cuda")
    lr = torch.rand(batch, 3, 64, 64, device="cuda") * 2 - 1
    if channels_last:
        x0, lr = (t.contiguous(memory_format=torch.channels_last) for t in (x0, lr))
    return lr, x0


def _fp_step(batch: int, channels_last: bool):
    """One teacher-style optimizer step of the FP denoiser on fixed random latents."""
    model = Denoiser(ModelConfig()).cuda()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    schedule = ResShiftSchedule(DiffusionConfig(steps=4))
    lr, x0 = _batch(batch, channels_last)
    y = x0 + 0.1 * torch.randn_like(x0)

    def step():
        t = torch.randint(0, schedule.steps, (batch,), device="cuda")
        x_t = schedule.q_sample(x0, y, t, torch.randn_like(x0))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.mse_loss(model(schedule.scale_input(x_t, t), lr, t, y).float(), x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _binarize_step(recipe: str, batch: int, channels_last: bool, compile_scope: bool | str):
    """One binarize-stage optimizer step: the frozen FP parent's one-step output as target,
    plus the ground-truth term, as ``stages.binarize_stage`` computes it."""
    architecture, options, kappa = RECIPES[recipe]
    fp = Denoiser(architecture).cuda().eval().requires_grad_(False)
    student = binarize(copy.deepcopy(fp), **options).cuda()
    if channels_last:
        fp, student = (m.to(memory_format=torch.channels_last) for m in (fp, student))
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4, fused=True)
    forward = compile_for_training(student, compile_scope)
    schedule = ResShiftSchedule(DiffusionConfig(steps=4, kappa=kappa))
    lr, x0 = _batch(batch, channels_last)

    def step():
        noise = torch.randn_like(x0)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            with torch.no_grad():
                target = one_step_latent(fp, schedule, lr, noise).float()
            pred = one_step_latent(forward, schedule, lr, noise).float()
            loss = F.mse_loss(pred, target) + F.mse_loss(pred, x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _timed_row(make_step, **row) -> dict:
    torch.cuda.reset_peak_memory_stats()
    step = make_step()
    start = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first_s = time.perf_counter() - start
    ms = _median_ms(step)
    return {**row, "ms": round(ms, 2), "crops_per_s": round(row["batch"] / ms * 1000),
            "first_step_s": round(first_s, 1),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)}


#: Compile scopes of the shortcut recipe's timed steps, by their command-line name.
COMPILE_NAMES = {str(scope).lower(): scope for scope in COMPILE_SCOPES}


def binarize_variants(scopes: list[bool | str]) -> list[tuple[str, bool, bool | str]]:
    """(recipe, channels_last, compile scope) of the timed 1-bit steps: the shipped recipe
    eager, the baseline, then the shortcut recipe under each scope."""
    return [("1-bit, shipped", False, False)] + [("1-bit, shortcuts", False, scope)
                                                 for scope in scopes]

STEP_HEADER = (f"{'step':18} {'batch':>6} {'NHWC':>5} {'compile':>8} {'ms':>8} {'crops/s':>8}"
               f" {'vs shipped':>13} {'first s':>8} {'GiB':>5}")


def step_rows(batches: list[int], parts: set[str], scopes=COMPILE_SCOPES):
    """The step rows, each yielded as soon as it is measured."""
    for batch in batches:
        if "fp" in parts:
            for channels_last in (False, True):
                yield _timed_row(lambda b=batch, c=channels_last: _fp_step(b, c), model="FP",
                                 batch=batch, channels_last=channels_last, compile=False)
        if "binarize" not in parts:
            continue
        base_ms = None
        for recipe, channels_last, scope in binarize_variants(list(scopes)):
            row = _timed_row(
                lambda r=recipe, b=batch, c=channels_last, k=scope: _binarize_step(r, b, c, k),
                model=recipe, batch=batch, channels_last=channels_last, compile=scope)
            base_ms = base_ms or row["ms"]
            row["vs_shipped"] = round(base_ms / row["ms"], 2)
            yield row


def profile_fp_step(batch: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    step = _fp_step(batch, True)
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--batches", default="32,128")
    parser.add_argument("--parts", default="data,fp,binarize",
                        help="what to time, comma-separated: data, fp, binarize")
    parser.add_argument("--compile", default=",".join(COMPILE_NAMES),
                        help="compile scopes of the shortcut recipe's 1-bit step, "
                             f"comma-separated: {', '.join(COMPILE_NAMES)}")
    parser.add_argument("--profile", action="store_true",
                        help="print the top CUDA kernels of one FP step at the largest batch")
    args = parser.parse_args()
    unknown = set(args.compile.split(",")) - set(COMPILE_NAMES)
    if unknown:
        parser.error(f"unknown compile scopes {sorted(unknown)}: use {', '.join(COMPILE_NAMES)}")
    scopes = [COMPILE_NAMES[name] for name in args.compile.split(",")]
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    batches = [int(b) for b in args.batches.split(",")]
    parts = set(args.parts.split(","))
    data = data_rows(max(batches)) if "data" in parts else []
    if data:
        print(f"{'data (realistic fraction)':28} {'batch':>6} {'ms':>8} {'crops/s':>9}")
    for r in data:
        print(f"{r['realistic_fraction']:<28} {r['batch']:>6} {r['ms']:>8} {r['crops_per_s']:>9}")
    print(f"\n{STEP_HEADER}", flush=True)
    steps = []
    for r in step_rows(batches, parts, scopes):
        steps.append(r)
        print(f"{r['model']:18} {r['batch']:>6} {r['channels_last']!s:>5} {r['compile']!s:>8}"
              f" {r['ms']:>8} {r['crops_per_s']:>8} {r.get('vs_shipped', ''):>13}"
              f" {r['first_step_s']:>8} {r['peak_gib']:>5}", flush=True)
    if args.profile:
        profile_fp_step(max(batches))
    if args.json:
        print(json.dumps({"data": data, "steps": steps,
                          "device": torch.cuda.get_device_name()}))


if __name__ == "__main__":
    main()
