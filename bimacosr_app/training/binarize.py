"""`python -m bimacosr_app.training.binarize --config ... --out runs/<name>`: the binarize stage
(see :mod:`bimacosr_app.training.stages`). Resumes from --out when it holds a checkpoint."""

from .stages import binarize_stage
from .trainer import Trainer, parse_stage_args


def main(argv=None) -> None:
    cfg, out, budget = parse_stage_args("binarize", argv)
    Trainer(cfg, out, budget, *binarize_stage(cfg)).train()


if __name__ == "__main__":
    main()
