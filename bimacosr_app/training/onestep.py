"""`python -m bimacosr_app.training.onestep --config ... --out runs/<name>`: the onestep stage
(see :mod:`bimacosr_app.training.stages`). Resumes from --out when it holds a checkpoint."""

from .stages import onestep_stage
from .trainer import Trainer, parse_stage_args


def main(argv=None) -> None:
    cfg, out, budget = parse_stage_args("onestep", argv)
    Trainer(cfg, out, budget, *onestep_stage(cfg)).train()


if __name__ == "__main__":
    main()
