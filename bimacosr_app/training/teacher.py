"""`python -m bimacosr_app.training.teacher --config ... --out runs/<name>`: the teacher stage
(see :mod:`bimacosr_app.training.stages`). Resumes from --out when it holds a checkpoint."""

from .stages import teacher_stage
from .trainer import Trainer, parse_stage_args


def main(argv=None) -> None:
    cfg, out, budget = parse_stage_args("teacher", argv)
    Trainer(cfg, out, budget, *teacher_stage(cfg)).train()


if __name__ == "__main__":
    main()
