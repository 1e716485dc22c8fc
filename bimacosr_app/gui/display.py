"""Whether the window can open here, checked before Qt starts: when Qt finds no display, or its
X11 platform plugin (xcb) cannot load, it aborts the whole process (exit 134) with a message
few users can act on. No Qt here.

On Linux the window needs a display (``DISPLAY`` or ``WAYLAND_DISPLAY``), and on an X11
session the xcb plugin loads libraries that a stock desktop may lack (``libxcb-cursor0``,
``libxcb-icccm4``, ``libxcb-keysyms1``). :func:`display_problem` says which, and which packages
provide them; the command line needs none of them.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping

__all__ = ["XCB_LIBRARIES", "display_problem"]

#: The libraries Qt's xcb platform plugin loads beyond Qt's own, with the Debian/Ubuntu
#: package of each.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
}

_CLI_HINT = ("The command line works without a display: bimacosr upscale PHOTOS... -o FOLDER "
             "(or python -m bimacosr_app upscale ...; --help lists the options).")


def _loads(library: str) -> bool:
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def _uses_xcb(environ: Mapping[str, str]) -> bool:
    """Whether Qt will use its xcb plugin: named first in ``QT_QPA_PLATFORM``, or, that being
    unset, anywhere but on a Wayland display."""
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(";")[0].split(":")[0] == "xcb"
    wayland = bool(environ.get("WAYLAND_DISPLAY")) and (
        environ.get("XDG_SESSION_TYPE") == "wayland" or not environ.get("DISPLAY"))
    return not wayland


def display_problem(environ: Mapping[str, str] = os.environ, platform: str = sys.platform,
                    loads: Callable[[str], bool] = _loads) -> str:
    """Why the window cannot open here, as a message for the terminal ("" when it can).

    ``loads(library)``: whether a shared library loads (default: ``ctypes.CDLL``)."""
    if not platform.startswith("linux") or not _uses_xcb(environ):
        return ""
    if not environ.get("DISPLAY"):
        return ("The window cannot open: there is no display (neither DISPLAY nor "
                f"WAYLAND_DISPLAY is set).\n{_CLI_HINT}")
    missing = [library for library in XCB_LIBRARIES if not loads(library)]
    if not missing:
        return ""
    packages = " ".join(XCB_LIBRARIES[library] for library in missing)
    return ("The window cannot open: Qt's X11 platform plugin (xcb) needs libraries that are "
            f"not installed: {', '.join(missing)}.\n"
            "Install them, then start the window again:\n"
            f"    sudo apt install {packages}\n"
            "(Debian, Ubuntu; on other distributions, the packages that provide these "
            f"libraries.)\n{_CLI_HINT}")
