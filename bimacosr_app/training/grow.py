"""Raise the rank of a 1-bit run's low-rank branches (LRMB) without changing what it computes.

    python -m bimacosr_app.training.grow --run runs/bS --rank 16 --out runs/bS16

Every 1-bit layer's LRMB is ``lrmb_up (Cout, r) @ lrmb_down (r, Cin)`` with ``r = min(rank,
Cin, Cout)`` (model/binary.py). The grown run gives each layer ``min(RANK, Cin, Cout) - r`` more
rows of ``lrmb_down``, drawn from a normal distribution with the standard deviation of the
layer's existing rows, and as many zero columns of ``lrmb_up``: the product, so the network,
is unchanged, while the new columns' gradient (the new rows' output) is not zero, so training
moves them from the first step (LoRA's initialisation). The run's EMA weights (and its live
weights, where kept) go to ``--out`` with the stage config's ``binarize.rank`` raised, beside
copies of ``state.json`` and ``log.jsonl``; the binarize stage then resumes the grown run at
its step when given the same rank (``--set binarize.rank=RANK``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from .weights import load_weights, save_weights, weight_files

__all__ = ["grow_lrmb", "grow_run", "main"]

_DOWN, _UP = "lrmb_down", "lrmb_up"


def grow_lrmb(state: dict[str, torch.Tensor], rank: int,
              generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A copy of ``state`` whose LRMB factors have rank ``min(rank, Cin, Cout)`` per layer.
    The state's own rank is its widest layer's (every layer has ``min(rank, Cin, Cout)``)."""
    downs = [k for k in state if k.endswith(f".{_DOWN}")]
    if not downs:
        raise ValueError("the run has no low-rank branches (LRMB) to grow")
    current = max(state[k].shape[0] for k in downs)
    if rank <= current:
        raise ValueError(f"the run's LRMB has rank {current} already")
    grown = dict(state)
    for down_key in downs:
        up_key = down_key[: -len(_DOWN)] + _UP
        down, up = state[down_key], state[up_key]  # (r, Cin), (Cout, r)
        r, cin, cout = down.shape[0], down.shape[1], up.shape[0]
        target = min(rank, cin, cout)  # >= r, as rank > current
        new_rows = torch.randn(target - r, cin, generator=generator) * down.std()
        grown[down_key] = torch.cat([down, new_rows.to(down)])
        grown[up_key] = torch.cat([up, up.new_zeros(cout, target - r)], dim=1)
    return grown


def grow_run(run: Path, out: Path, rank: int, seed: int = 0) -> None:
    """Write ``run`` with its LRMB grown to ``rank`` as the run ``out`` (module docstring)."""
    run, out = Path(run), Path(out)
    if weight_files(out, "ema"):
        raise FileExistsError(f"{out} already holds a run")
    stems = [stem for stem in ("ema", "model") if weight_files(run, stem)]
    if "ema" not in stems:
        raise FileNotFoundError(f"no EMA weights in {run}")
    for stem in stems:
        state, config = load_weights(run, stem)
        if config.get("stage") != "binarize":
            raise ValueError(f"{run} is a {config.get('stage')!r} run, not a binarize run")
        # the same draws for the EMA and live weights, so the two start as one network
        grown = grow_lrmb(state, rank, torch.Generator().manual_seed(seed))
        config["binarize"] = {**config["binarize"], "rank": rank}
        save_weights(grown, out, stem, config)
    for name in ("state.json", "log.jsonl"):
        if (run / name).exists():
            shutil.copyfile(run / name, out / name)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="binarize run directory")
    p.add_argument("--rank", type=int, required=True, help="the LRMB rank to grow to")
    p.add_argument("--out", type=Path, required=True, help="new run directory")
    p.add_argument("--seed", type=int, default=0, help="seed of the new rows' draws")
    args = p.parse_args(argv)
    try:
        grow_run(args.run, args.out, args.rank, args.seed)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{args.out}: {args.run} with LRMB rank {args.rank}; resume it with --set "
          f"binarize.rank={args.rank}")


if __name__ == "__main__":
    main()
