"""Persistent settings: an INI file (``QSettings`` in ``IniFormat``) in the user config dir.

The file is ``<platformdirs user_config_dir>/settings.ini`` (for example
``~/.config/BiMaCoSR Upscaler/settings.ini`` on Linux), or ``$BIMACOSR_CONFIG_DIR/settings.ini``
when that variable is set; tests pass a path. :class:`Preferences` holds what the settings
dialog edits; values that are missing or invalid in the file read as their defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from platformdirs import user_config_dir
from PySide6.QtCore import QByteArray, QSettings

from .. import APP_NAME

__all__ = [
    "APP_NAME",
    "ORG_NAME",
    "Preferences",
    "Settings",
    "default_config_dir",
    "template_problem",
]

ORG_NAME = "BiMaCoSR"

SCALES = (2, 3, 4)
FORMATS = ("same", "png", "jpg", "webp", "tiff")
ON_EXISTS = ("rename", "skip", "overwrite")
BACKENDS = ("auto", "cpu-packed", "reference", "cuda")
DEVICES = ("auto", "cpu", "cuda")
THEMES = ("system", "light", "dark")


def default_config_dir() -> Path:
    override = os.environ.get("BIMACOSR_CONFIG_DIR")
    return Path(override) if override else Path(user_config_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class Preferences:
    """Everything the settings dialog edits."""

    scale: int = 4
    output_folder: str = ""  #: "" writes next to the originals
    naming_template: str = "{stem}_x{scale}.{ext}"
    format: str = "same"  #: "same" keeps the input's format (when writable)
    quality: int = 95  #: JPEG / WebP quality, 1..100
    strip_metadata: bool = False
    on_exists: str = "rename"  #: "rename" | "skip" | "overwrite"
    backend: str = "auto"
    device: str = "auto"
    memory_mb: int = 0  #: tile memory budget in MB; 0: chosen from the device
    theme: str = "system"
    recursive: bool = False  #: include subfolders when adding a folder

    def validated(self) -> Preferences:
        """A copy with every out-of-range value replaced by its default."""
        d = Preferences()
        choices = {"scale": SCALES, "format": FORMATS, "on_exists": ON_EXISTS,
                   "backend": BACKENDS, "device": DEVICES, "theme": THEMES}
        fixes = {k: getattr(d, k) for k, allowed in choices.items()
                 if getattr(self, k) not in allowed}
        if not 1 <= self.quality <= 100:
            fixes["quality"] = d.quality
        if self.memory_mb != 0 and not 64 <= self.memory_mb <= 1 << 20:
            fixes["memory_mb"] = d.memory_mb
        if template_problem(self.naming_template):
            fixes["naming_template"] = d.naming_template
        return replace(self, **fixes)


def template_problem(template: str) -> str:
    """Why ``template`` cannot name output files ("" when it can): it must use {stem}, may
    use {scale} and {ext}, and must give a plain file name."""
    try:
        name = template.format(stem="IMG_0042", scale=4, ext="png")
    except (KeyError, IndexError, ValueError) as exc:
        return f"unknown or malformed field {exc}"
    if "{stem}" not in template:
        return "it must contain {stem}"
    if "/" in name or os.sep in name or name in ("", ".", ".."):
        return "it must give a plain file name"
    return ""


def _coerce(value, default):
    """QSettings' INI values come back as strings; convert to the default's type."""
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
    if isinstance(default, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            return default
    return str(value)


class Settings:
    """The settings file. ``path``: the INI file (default: see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_config_dir() / "settings.ini"
        self._qs = QSettings(str(self.path), QSettings.Format.IniFormat)

    def preferences(self) -> Preferences:
        defaults = Preferences()
        values = {}
        for f in fields(Preferences):
            default = getattr(defaults, f.name)
            values[f.name] = _coerce(self._qs.value(f"preferences/{f.name}", default), default)
        return Preferences(**values).validated()

    def set_preferences(self, prefs: Preferences) -> None:
        for f in fields(Preferences):
            self._qs.setValue(f"preferences/{f.name}", getattr(prefs, f.name))
        self._qs.sync()

    def calibration(self, backend: str) -> float | None:
        """Seconds per output megapixel measured for ``backend``, or None."""
        value = self._qs.value(f"calibration/{backend}")
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            return None
        return seconds if seconds > 0 else None

    def set_calibration(self, backend: str, seconds_per_mp: float) -> None:
        self._qs.setValue(f"calibration/{backend}", float(seconds_per_mp))
        self._qs.sync()

    def ui_value(self, key: str, default: str = "") -> str:
        """A view choice remembered between sessions (compare mode, interpolation, ...)."""
        return str(self._qs.value(f"ui/{key}", default))

    def set_ui_value(self, key: str, value: str) -> None:
        self._qs.setValue(f"ui/{key}", value)

    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        """(geometry, state) saved by :meth:`set_window_state`, if any."""
        geometry, state = self._qs.value("window/geometry"), self._qs.value("window/state")
        return (geometry if isinstance(geometry, QByteArray) else None,
                state if isinstance(state, QByteArray) else None)

    def set_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self._qs.setValue("window/geometry", geometry)
        self._qs.setValue("window/state", state)

    def sync(self) -> None:
        self._qs.sync()
