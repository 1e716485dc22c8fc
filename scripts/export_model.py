"""Export a finished binarize run as the packed model file the app ships.

    python scripts/export_model.py --run runs/session1/binarize \\
        --out resources/models/bimacosr-x4.safetensors

``--run`` holds the EMA weights (``ema-*.safetensors``; ``--weights model`` packs the live
weights ``model-*`` instead). The run's ``state.json`` and
``log.jsonl`` are read from ``--logs`` (default: ``--run`` itself when it has them, else
``<run>/../runs/<run name>``, the layout of a copied-back training session). Provenance: the
source commit (``git rev-parse HEAD``), the training photos, the step count, the last
validation record (of the EMA weights) and, with ``--eval``, the means of an ``evaluate
--json`` report of the same weights on the validation photos (both tracks). Prints the
content hash and file size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bimacosr_app.checkpoint import export_packed  # noqa: E402
from bimacosr_app.model import DiffusionConfig  # noqa: E402
from bimacosr_app.training.data import default_data_dir, list_photos  # noqa: E402
from bimacosr_app.training.trainer import load_run_model  # noqa: E402


def _logs_dir(run: Path) -> Path:
    return run if (run / "state.json").is_file() else run.parent / "runs" / run.name


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def _evaluation(report: dict) -> dict:
    """Mean PSNR-Y / SSIM-Y per track of an ``evaluate --json`` report, with bicubic's."""
    return {track: {k: round(v, 4) for k, v in report[track]["mean"].items()}
            for track in ("bicubic", "realistic") if track in report}


def provenance(run: Path, logs: Path, cfg, weights: str, report: dict | None) -> dict:
    state = json.loads((logs / "state.json").read_text())
    records = [json.loads(line) for line in (logs / "log.jsonl").read_text().splitlines()
               if line.strip()]
    val = next((r for r in reversed(records) if r.get("event") == "val"), None)
    train_dir = Path(cfg.train_dir) if cfg.train_dir else default_data_dir("train")
    return {
        "source_commit": _commit(),
        "run": str(run),
        "stage": cfg.stage,
        "training_data": f"shared/data/{train_dir.name} ({len(list_photos(train_dir))} photos)",
        "steps": state["step"],
        "weights": weights,
        # The training log validates the EMA weights only.
        "validation": None if val is None or weights != "ema" else {
            k: v for k, v in val.items() if k not in ("event", "time")},
        **({"evaluation": _evaluation(report)} if report else {}),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="binarize run folder")
    p.add_argument("--logs", type=Path, help="folder with state.json and log.jsonl")
    p.add_argument("--out", type=Path, required=True, help="packed .safetensors to write")
    p.add_argument("--weights", choices=("ema", "model"), default="ema",
                   help="pack the EMA (default) or the live weights")
    p.add_argument("--eval", type=Path, help="evaluate --json report of these weights")
    args = p.parse_args(argv)
    if args.eval and not args.eval.is_file():
        p.error(f"no evaluation report at {args.eval}")
    model, cfg = load_run_model(args.run, "cpu", args.weights)
    if cfg.stage != "binarize":
        p.error(f"{args.run} is a {cfg.stage} run; only binarize runs can be packed")
    report = json.loads(args.eval.read_text()) if args.eval else None
    prov = provenance(args.run, args.logs or _logs_dir(args.run), cfg, args.weights, report)
    digest = export_packed(model, DiffusionConfig(**cfg.diffusion), args.out, prov)
    print(f"{args.out}: {args.out.stat().st_size} bytes, content_sha256 {digest}")
    print(json.dumps(prov, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
