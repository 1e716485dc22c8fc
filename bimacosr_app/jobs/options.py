"""The one option schema: every option a job takes (and the few the window adds), with its
name, type, default, allowed values, label and help. The command line's flags, the settings
file, the settings dialog and :class:`~.request.UpscaleRequest` all read it, so an option is
defined, checked and explained in one place.

Each :class:`Option` checks a value (:meth:`Option.problem`: why it is not allowed, "" when
it is) and reads one from text (:meth:`Option.parse`: a command-line argument or a settings
file value). ``None`` is the value of "automatic" where an option has one (``tile_budget_mb``).
"""

from __future__ import annotations

import math
import os
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BATCH_OPTIONS",
    "JOB_OPTIONS",
    "OPTIONS",
    "WINDOW_OPTIONS",
    "Option",
    "naming_problem",
    "option",
]

_NAMING_FIELDS = {"stem", "scale", "ext"}


def naming_problem(template: str) -> str:
    """Why ``template`` cannot name output files ("" when it can): it uses {stem}, may use
    {scale}, ends with ``.{ext}`` and gives a plain, visible file name."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        sample = template.format(stem="IMG_0042", scale=4, ext="png")
    except (ValueError, IndexError, KeyError) as exc:
        return f"unknown or malformed field ({exc})"
    if not names <= _NAMING_FIELDS:
        return f"unknown fields {sorted(names - _NAMING_FIELDS)}: use {{stem}}, {{scale}}, {{ext}}"
    if "stem" not in names:
        return "it must contain {stem}"
    if not template.endswith(".{ext}"):
        return "it must end with .{ext}"
    if "/" in sample or os.sep in sample or sample.startswith("."):
        return "it must give a plain, visible file name"
    return ""


@dataclass(frozen=True)
class Option:
    """One option. ``kind`` is int, float, str or bool; ``choices`` (labels by value) or
    ``minimum``/``maximum`` (inclusive) or ``check`` (a reason, "" when fine) restrict it;
    ``automatic`` allows ``None`` ("chosen for you"); ``flag`` is its command-line flag (None:
    not on the command line) and ``metavar`` what its value is called there."""

    name: str
    kind: type
    default: Any
    label: str
    help: str
    choices: dict[Any, str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str] | None = None
    automatic: bool = False
    flag: str | None = None
    metavar: str = "VALUE"

    def problem(self, value: Any) -> str:
        """Why ``value`` is not allowed ("" when it is)."""
        if value is None:
            return "" if self.automatic else "a value is needed"
        if self.kind is bool:
            ok_type = isinstance(value, bool)
        elif self.kind is float:
            ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok_type = isinstance(value, self.kind) and not (
                self.kind is int and isinstance(value, bool))
        if not ok_type:
            return f"expected {self.kind.__name__}, got {value!r}"
        if self.kind is float and not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}; got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}, got {value!r}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}, got {value!r}"
        return self.check(value) if self.check is not None else ""

    def validate(self, value: Any) -> Any:
        """``value`` itself, or ValueError naming the option and the reason."""
        reason = self.problem(value)
        if reason:
            raise ValueError(f"{self.name}: {reason}")
        return value

    def parse(self, text: str) -> Any:
        """The value ``text`` stands for (an empty text or "auto" is None where allowed);
        ValueError when it stands for none that is allowed."""
        text = str(text).strip()
        if self.automatic and text.lower() in ("", "auto", "none"):
            return None
        if self.kind is bool:
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{self.name}: expected true or false, got {text!r}")
            value: Any = lowered in ("true", "1", "yes")
        elif self.kind in (int, float):
            try:
                value = self.kind(text)
            except ValueError:
                raise ValueError(f"{self.name}: expected a number, got {text!r}") from None
        else:
            value = text
        return self.validate(value)

    def format(self, value: Any) -> str:
        """``value`` as text that :meth:`parse` reads back."""
        if value is None:
            return "auto"
        return str(value).lower() if self.kind is bool else str(value)


#: Options of one upscale job (UpscaleRequest fields of the same names).
JOB_OPTIONS: tuple[Option, ...] = (
    Option("scale", int, 4, "Scale", "enlargement factor: 2, 3 or 4 (2 and 3 run the 4x model "
           "and downscale)", choices={2: "2×", 3: "3×", 4: "4×"}, flag="--scale"),
    Option("format", str, "same", "Format",
           "output format; 'same' keeps the original's where it can be written",
           choices={"same": "Same as the original", "png": "PNG (lossless)", "jpg": "JPEG",
                    "webp": "WebP", "tiff": "TIFF (lossless)"}, flag="--format"),
    Option("quality", int, 95, "Quality", "JPEG and lossy WebP quality, 1-100", minimum=1,
           maximum=100, flag="--quality", metavar="N"),
    Option("naming", str, "{stem}_x{scale}.{ext}", "File name",
           "output file name: {stem} (the original's name), {scale}, and .{ext} at the end",
           check=naming_problem, flag="--naming", metavar="TEMPLATE"),
    Option("on_exists", str, "rename", "If the output exists",
           "when the output file exists: keep both (rename to 'name (1).ext'), skip the photo, "
           "or overwrite it",
           choices={"rename": "Keep both (add a number)", "skip": "Skip the photo",
                    "overwrite": "Overwrite it"}, flag="--on-exists"),
    Option("strip_metadata", bool, False, "Strip metadata",
           "write no EXIF, ICC profile or provenance", flag="--strip-metadata"),
    Option("backend", str, "auto", "Backend", "how the model runs",
           choices={"auto": "Automatic", "cpu-packed": "CPU — packed 1-bit kernels",
                    "reference": "CPU/GPU — reference (PyTorch)", "cuda": "CUDA GPU"},
           flag="--backend"),
    Option("device", str, "auto", "Device", "where the model runs",
           choices={"auto": "Automatic", "cpu": "CPU", "cuda": "CUDA GPU"}, flag="--device"),
    Option("tile_budget_mb", float, None, "Memory per tile (MB)",
           "memory for a tile, in MB: larger tiles are faster up to a point and change the "
           "output slightly; 'auto' is the fixed default tile (384 LR pixels, about 1024 MB), "
           "the same on every machine", minimum=1, maximum=1 << 20,
           automatic=True, flag="--tile-budget", metavar="MB"),
)

#: Options of a batch as a whole (``plan_batch`` arguments of the same names).
BATCH_OPTIONS: tuple[Option, ...] = (
    Option("recursive", bool, False, "Include subfolders",
           "include subfolders when adding (scanning) a folder", flag="--recursive"),
)

#: Options of the window only (settings file and dialog).
WINDOW_OPTIONS: tuple[Option, ...] = (
    Option("output_folder", str, "", "Output folder",
           "where outputs go; empty: next to each original"),
    Option("theme", str, "system", "Theme", "the window's colours",
           choices={"system": "Follow the system", "light": "Light", "dark": "Dark"}),
)

OPTIONS: tuple[Option, ...] = JOB_OPTIONS + BATCH_OPTIONS + WINDOW_OPTIONS
_BY_NAME = {o.name: o for o in OPTIONS}


def option(name: str) -> Option:
    """The option called ``name`` (KeyError for none)."""
    return _BY_NAME[name]
