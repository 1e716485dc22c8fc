"""Plot training curves from run logs: the loss per logged step (left) and the validation
PSNR-Y with bicubic's (right), one line per run.

    python scripts/plot_training.py --out docs/training/curves.png \\
        teacher=runs/teacher/log.jsonl onestep=runs/onestep/log.jsonl ...

Each positional argument is LABEL=LOG (a ``log.jsonl`` written by the trainer). Needs
matplotlib (``pip install -e .[docs]``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read_log(path: Path) -> tuple[list[dict], list[dict]]:
    """(training records, validation records) of a trainer log."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train = [r for r in records if "loss" in r]
    val = [r for r in records if r.get("event") == "val"]
    return train, val


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="LABEL=LOG")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    rows = -(-(len(args.runs) + 1) // 4)  # one legend below both panels, 4 entries a row
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4 + 0.25 * rows), dpi=110,
                                          layout="constrained")
    if len(args.runs) > 10:  # past the default cycle's ten colours
        ax_loss.set_prop_cycle(color=plt.cm.tab20.colors)
    bicubic = None
    for item in args.runs:
        label, _, log = item.rpartition("=")
        train, val = read_log(Path(log))
        line, = ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label=label)
        if val:
            ax_val.plot([r["step"] for r in val], [r["psnr_y"] for r in val], "o-",
                        color=line.get_color())
            bicubic = val[-1]["bicubic_psnr_y"]
    if bicubic is not None:
        ax_loss.plot([], [], color="grey", linestyle="--", label="bicubic (validation)")
        ax_val.axhline(bicubic, color="grey", linestyle="--")
    ax_loss.set(xlabel="step", ylabel="training loss (each run's own: MSE or L1, latent)",
                yscale="log", title="loss")
    ax_val.set(xlabel="step", ylabel="PSNR-Y (dB)",
               title="validation (13 val photos, bicubic track, 256² centre crops)")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
    fig.legend(*ax_loss.get_legend_handles_labels(), loc="outside lower center", ncol=4,
               fontsize=8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
