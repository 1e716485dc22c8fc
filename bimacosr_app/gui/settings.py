"""Persistent settings: an INI file (``QSettings`` in ``IniFormat``) in the user config dir.

The file is ``<platformdirs user_config_dir>/settings.ini`` (for example
``~/.config/BiMaCoSR Upscaler/settings.ini`` on Linux), or ``$BIMACOSR_CONFIG_DIR/settings.ini``
when that variable is set; tests pass a path. :class:`Preferences` holds what the settings
dialog edits; values that are missing or invalid in the file read as their defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from platformdirs import user_config_dir
from PySide6.QtCore import QByteArray, QSettings

from .. import APP_NAME
from ..jobs import OPTIONS, SpeedTable, option

__all__ = ["APP_NAME", "ORG_NAME", "Preferences", "Settings", "default_config_dir"]

ORG_NAME = "BiMaCoSR"


def default_config_dir() -> Path:
    override = os.environ.get("BIMACOSR_CONFIG_DIR")
    return Path(override) if override else Path(user_config_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class Preferences:
    """Everything the settings dialog edits: the options of the one schema
    (:data:`bimacosr_app.jobs.OPTIONS`), under their names, with their defaults."""

    scale: int = option("scale").default
    format: str = option("format").default
    quality: int = option("quality").default
    naming: str = option("naming").default
    on_exists: str = option("on_exists").default
    strip_metadata: bool = option("strip_metadata").default
    backend: str = option("backend").default
    device: str = option("device").default
    tile_budget_mb: float | None = option("tile_budget_mb").default  #: None: automatic
    recursive: bool = option("recursive").default
    output_folder: str = option("output_folder").default  #: "" writes next to the originals
    theme: str = option("theme").default

    def validated(self) -> Preferences:
        """A copy with every value the schema does not allow replaced by its default."""
        return replace(self, **{o.name: o.default for o in OPTIONS
                                if o.problem(getattr(self, o.name))})


# Keys of settings files written before the schema, read when the new key is missing.
_LEGACY_KEYS = {"naming": "naming_template", "tile_budget_mb": "memory_mb"}


class Settings:
    """The settings file. ``path``: the INI file (default: see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_config_dir() / "settings.ini"
        self._qs = QSettings(str(self.path), QSettings.Format.IniFormat)

    def preferences(self) -> Preferences:
        """The saved preferences; a missing or unreadable value reads as its default."""
        values = {}
        for opt in OPTIONS:
            raw = self._qs.value(f"preferences/{opt.name}")
            if raw is None and opt.name in _LEGACY_KEYS:
                raw = self._qs.value(f"preferences/{_LEGACY_KEYS[opt.name]}")
                if opt.name == "tile_budget_mb" and str(raw) == "0":
                    raw = "auto"  # the old "0 MB: chosen from the device"
            try:
                values[opt.name] = opt.default if raw is None else opt.parse(str(raw))
            except ValueError:
                values[opt.name] = opt.default
        return Preferences(**values)

    def set_preferences(self, prefs: Preferences) -> None:
        for opt in OPTIONS:
            self._qs.setValue(f"preferences/{opt.name}", opt.format(getattr(prefs, opt.name)))
        for legacy in _LEGACY_KEYS.values():
            self._qs.remove(f"preferences/{legacy}")
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

    def speeds(self) -> SpeedTable:
        """The speeds measured by finished jobs (empty before the first)."""
        return SpeedTable.from_json(str(self._qs.value("speed/table", "")))

    def set_speeds(self, speeds: SpeedTable) -> None:
        self._qs.setValue("speed/table", speeds.to_json())
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
