"""Training throughput on one GPU: the data pipeline alone, and one optimizer step of the
denoiser (FP and binarized) by batch size, memory format and ``torch.compile``.

    python -m benchmarks.train_step [--json] [--batches 32,128] [--compile]

Every figure is the median of 20 timed iterations after warm-up, with CUDA synchronisation
around each. ``crops/s`` is HR 256² crops (LR 64²) per second; compare rows of one run only.
With ``--json`` the last line is ``{"data": [...], "steps": [...], "device": ..}``.
"""

from __future__ import annotations

import argparse
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
)
from bimacosr_app.training.data import (
    DegradationConfig,
    PhotoSet,
    TrainBatches,
    default_data_dir,
)


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


def _make_step(kind: str, batch: int, channels_last: bool, compiled: bool):
    """One teacher-style optimizer step on fixed random latents."""
    model = Denoiser(ModelConfig())
    if kind == "binary":
        binarize(model)
    model = model.cuda()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    forward = torch.compile(model) if compiled else model
    schedule = ResShiftSchedule(DiffusionConfig(steps=4))
    x0 = torch.randn(batch, LATENT_CHANNELS, 64, 64, device="cuda")
    y = x0 + 0.1 * torch.randn_like(x0)
    lr = torch.rand(batch, 3, 64, 64, device="cuda") * 2 - 1
    if channels_last:
        x0, y, lr = (t.contiguous(memory_format=torch.channels_last) for t in (x0, y, lr))

    def step():
        t = torch.randint(0, schedule.steps, (batch,), device="cuda")
        x_t = schedule.q_sample(x0, y, t, torch.randn_like(x0))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.mse_loss(forward(schedule.scale_input(x_t, t), lr, t, y).float(), x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def step_row(kind: str, batch: int, channels_last: bool, compiled: bool) -> dict:
    torch.cuda.reset_peak_memory_stats()
    step = _make_step(kind, batch, channels_last, compiled)
    start = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first_s = time.perf_counter() - start
    ms = _median_ms(step)
    return {"model": kind, "batch": batch, "channels_last": channels_last, "compile": compiled,
            "ms": round(ms, 2), "crops_per_s": round(batch / ms * 1000),
            "first_step_s": round(first_s, 1),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)}


def profile_fp_step(batch: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    step = _make_step("fp", batch, True, False)
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
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--profile", action="store_true",
                        help="print the top CUDA kernels of one FP step at the largest batch")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    batches = [int(b) for b in args.batches.split(",")]
    data = data_rows(max(batches))
    print(f"{'data (realistic fraction)':28} {'batch':>6} {'ms':>8} {'crops/s':>9}")
    for r in data:
        print(f"{r['realistic_fraction']:<28} {r['batch']:>6} {r['ms']:>8} {r['crops_per_s']:>9}")
    steps = []
    for kind in ("fp", "binary"):
        for batch in batches:
            for channels_last in (False, True):
                steps.append(step_row(kind, batch, channels_last, False))
        if args.compile:
            steps.append(step_row(kind, max(batches), True, True))
    print(f"\n{'model':7} {'batch':>6} {'NHWC':>5} {'compile':>8} {'ms':>8} {'crops/s':>8}"
          f" {'first s':>8} {'GiB':>5}")
    for r in steps:
        print(f"{r['model']:7} {r['batch']:>6} {r['channels_last']!s:>5} {r['compile']!s:>8}"
              f" {r['ms']:>8} {r['crops_per_s']:>8} {r['first_step_s']:>8} {r['peak_gib']:>5}")
    if args.profile:
        profile_fp_step(max(batches))
    if args.json:
        print(json.dumps({"data": data, "steps": steps,
                          "device": torch.cuda.get_device_name()}))


if __name__ == "__main__":
    main()
