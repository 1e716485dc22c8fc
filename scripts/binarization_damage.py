"""Where binarization hurts: a binarize config's student as the binarize stage converts it
(SMB, LRMB, shortcuts, calibrated thresholds and gains; no training), scored on validation
crops with parts of it in full precision.

    python scripts/binarization_damage.py [--config binarize_parent] [--photos 6]
                                          [--calibration-batch 32] [--levels-only]
                                          [--trained RUN] [--json]

Every 1-bit layer computes its full-precision layer at ``binary_mix`` 0 (exactly: the same
latent weights, branches and shortcut) and its 1-bit form at 1, so one converted network gives
every mix of the two. Rows: all layers 1-bit; all full precision; each resolution level in
full precision with the rest 1-bit; then (unless ``--levels-only``) each layer alone 1-bit with
the rest full precision, worst first (its damage: the PSNR-Y it costs the full-precision
network). Validation: the first ``--photos`` val photos' 256-pixel centre crops, bicubic
track, as the trainer validates. Needs torch; runs on the CPU in a few minutes (about one
with ``--levels-only``).

``--trained RUN`` compares a trained student of the config (its EMA weights) with the
conversion instead, per resolution level: how far training moved each 1-bit layer's effective
weight scale (``beta()``, mean |W_b| times the gain; the median over output channels, as a
ratio to the converted one) and the share of its binary weights whose sign flipped. A ratio
well below 1 is a layer that training turned down in favour of its full-precision paths.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bimacosr_app.metrics import psnr_y  # noqa: E402
from bimacosr_app.model import BinaryConv2d, BinaryLinear, resolution_level  # noqa: E402
from bimacosr_app.training.data import (  # noqa: E402
    DegradationConfig,
    PhotoSet,
    default_data_dir,
    validation_pairs,
)
from bimacosr_app.training.stages import binarize_stage  # noqa: E402
from bimacosr_app.training.trainer import StageConfig, calibration_batch  # noqa: E402
from bimacosr_app.training.weights import load_weights  # noqa: E402


def convert(config: Path, crops: int):
    """(student, predict, cfg): the config's student as its binarize stage builds it (the
    stage's calibration batch, ``crops`` crops of it), on the CPU, the stage's one-step
    prediction and the stage config."""
    cfg = StageConfig.from_dict({**json.loads(config.read_text()), "stage": "binarize",
                                 "batch_size": crops})
    photos = PhotoSet(cfg.train_dir or default_data_dir("train"))
    degradation = DegradationConfig(realistic_fraction=cfg.realistic_fraction)

    def sample():
        return calibration_batch(cfg, photos, degradation)

    build, _, predict = binarize_stage(cfg)
    student = build(cfg, torch.device("cpu"), sample).eval()
    return student, predict, cfg


def drift(converted: torch.nn.Module, trained: dict[str, torch.Tensor], deepest: int) -> list:
    """Per resolution level of ``converted`` (a student as converted), how the 1-bit layers of
    the state dict ``trained`` of the same student differ from it: rows with ``level``,
    ``layers``, the median / min / max over layers of the per-layer scale ratio (median over
    output channels of trained ``beta()`` / converted ``beta()``) and the mean share of
    flipped weight signs."""
    moved = copy.deepcopy(converted)
    moved.load_state_dict(trained)
    modules = dict(moved.named_modules())
    per_level: dict[int, list[tuple[float, float]]] = {}
    with torch.no_grad():
        for name, layer in converted.named_modules():
            if not isinstance(layer, (BinaryConv2d, BinaryLinear)):
                continue
            after = modules[name]
            ratio = (after.beta() / layer.beta()).median()
            flipped = (torch.sign(after.weight) != torch.sign(layer.weight)).float().mean()
            per_level.setdefault(resolution_level(name, deepest), []).append(
                (float(ratio), float(flipped)))
    rows = []
    for lv, pairs in sorted(per_level.items()):
        ratios = sorted(r for r, _ in pairs)
        rows.append({"level": lv, "layers": len(pairs),
                     "scale_ratio_median": ratios[len(ratios) // 2],
                     "scale_ratio_min": ratios[0], "scale_ratio_max": ratios[-1],
                     "sign_flips": sum(f for _, f in pairs) / len(pairs)})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="binarize_parent",
                   help="a binarize config of bimacosr_app/training/configs/, without .json")
    p.add_argument("--photos", type=int, default=6, help="validation photos used")
    p.add_argument("--calibration-batch", type=int, default=32)
    p.add_argument("--levels-only", action="store_true",
                   help="leave out the rows of each layer alone 1-bit")
    p.add_argument("--trained", type=Path, metavar="RUN",
                   help="a trained student of the config: report its drift from the conversion")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    config = ROOT / "bimacosr_app" / "training" / "configs" / f"{args.config}.json"
    if not config.is_file():
        p.error(f"no config {config.name} in {config.parent}")
    if args.trained is not None:
        try:
            state, trained_cfg = load_weights(args.trained, "ema")
        except FileNotFoundError as e:
            p.error(f"--trained: {e}")
        expected = json.loads(config.read_text())
        if (trained_cfg.get("model"), trained_cfg.get("binarize")) != (expected.get("model"),
                                                                       expected.get("binarize")):
            p.error(f"{args.trained} is not a student of {config.name}")
    torch.manual_seed(0)
    student, predict, cfg = convert(config, args.calibration_batch)
    deepest = len(cfg.model_config().widths) - 1
    if args.trained is not None:
        rows = drift(student, state, deepest)
        for row in rows:
            print(f"level {row['level']} ({row['layers']} layers): scale ratio median "
                  f"{row['scale_ratio_median']:.2f} (min {row['scale_ratio_min']:.2f}, max "
                  f"{row['scale_ratio_max']:.2f}), sign flips {100 * row['sign_flips']:.1f} %")
        if args.json:
            print(json.dumps({"config": args.config, "trained": str(args.trained),
                              "levels": rows}))
        return 0
    val = validation_pairs(None, "bicubic", max_side=256)[: args.photos]
    layers = {n: m for n, m in student.named_modules()
              if isinstance(m, (BinaryConv2d, BinaryLinear))}

    @torch.no_grad()
    def score(binary: set[str]) -> float:
        for name, module in layers.items():
            module.binary_mix = 1.0 if name in binary else 0.0
        return sum(psnr_y(predict(student, lr[None]), hr[None]) for _, lr, hr in val) / len(val)

    bicubic = sum(psnr_y(F.interpolate(lr[None], scale_factor=4, mode="bicubic").clamp(0, 1),
                         hr[None]) for _, lr, hr in val) / len(val)  # as the trainer scores it
    every = set(layers)
    fp = score(set())
    rows = [{"what": "bicubic", "psnr_y": bicubic},
            {"what": "all 1-bit", "psnr_y": score(every)},
            {"what": "all full precision", "psnr_y": fp}]
    for lv in range(deepest + 1):
        at_level = {n for n in layers if resolution_level(n, deepest) == lv}
        rows.append({"what": f"level {lv} full precision ({len(at_level)} layers)",
                     "psnr_y": score(every - at_level)})
    singles = [] if args.levels_only else sorted(
        ({"what": f"only {n} 1-bit", "psnr_y": score({n})} for n in layers),
        key=lambda r: r["psnr_y"])
    for row in rows + singles:
        row["damage_db"] = fp - row["psnr_y"]
        print(f"{row['what']:55s} {row['psnr_y']:8.3f} dB  {row['damage_db']:+7.3f}", flush=True)
    if args.json:
        print(json.dumps({"config": args.config, "photos": [name for name, _, _ in val],
                          "rows": rows + singles}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
