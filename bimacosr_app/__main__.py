"""``python -m bimacosr_app``: the window without arguments, the CLI with arguments."""

import sys


def _run() -> int:
    if len(sys.argv) > 1:
        from .cli import main as cli_main

        return cli_main(sys.argv[1:])
    from .gui import main as gui_main

    return gui_main([])


if __name__ == "__main__":
    sys.exit(_run())
