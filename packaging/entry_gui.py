"""Frozen entry point of ``bimacosr-gui`` (windowed): the desktop window."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from bimacosr_app.gui import main

    sys.exit(main())
