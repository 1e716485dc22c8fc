"""``python -m bimacosr_app``: the window without arguments, the CLI with arguments."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
