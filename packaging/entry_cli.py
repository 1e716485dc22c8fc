"""Frozen entry point of ``bimacosr`` (console): the command line interface."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from bimacosr_app.cli import main

    sys.exit(main())
