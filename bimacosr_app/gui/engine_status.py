"""The engine thread as the window shows it: the model's state in the status bar and the About
dialog, the backends it offers, this computer's speed and the time and memory estimates of the
queued photos that follow from it. The speed is measured once per backend in the background
(calibration), then refined by every finished job, per backend and tile size (kept in the
settings file).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QApplication, QLabel

from ..jobs import (
    JobOutcome,
    ModelInfo,
    QueueItem,
    Status,
    estimate_memory_mb,
    estimate_seconds,
    format_duration,
)
from .dialogs import AboutDialog

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["EngineStatus"]


def _runs_on(info: ModelInfo) -> str:
    return f"{info.backend} on {info.device}"


class EngineStatus:
    """Follows ``window``'s engine; :attr:`label` is the status bar's engine state, for the
    window to place. :attr:`model_info` is the loaded model (None until one is), and
    :attr:`available` the backends the engine offers."""

    def __init__(self, window: MainWindow) -> None:
        self._window = window
        self.label = QLabel("Starting engine…")
        self.label.setAccessibleName("Engine state")
        self.model_info: ModelInfo | None = None
        self.available: list[str] = []
        self._auto_backend: str | None = None
        self._auto_budget = 0.0  # MB, the tile budget "Automatic" means on the CPU
        self._calibrating = False
        self._about: AboutDialog | None = None
        self._speeds = window.settings.speeds()
        engine = window.engine
        engine.initialized.connect(self._initialized)
        engine.loading.connect(lambda _backend: self.label.setText("Loading model…"))
        engine.modelReady.connect(self._model_ready)
        engine.calibrated.connect(self._calibrated)
        engine.engineError.connect(self._error)
        engine.jobDone.connect(self._job_done)

    def _resolved_backend(self) -> str | None:
        prefs = self._window.prefs
        return self._auto_backend if prefs.backend == "auto" else prefs.backend

    def calibrate_if_needed(self) -> None:
        """Measure the speed of the chosen backend unless it is known or being measured."""
        window = self._window
        name = self._resolved_backend()
        if name is None or self._calibrating or window.settings.calibration(name) is not None:
            return
        self._calibrating = True
        window.statusBar().showMessage("Measuring the speed of this computer…", 0)
        window.engine.calibrate(window.prefs.backend, window.prefs.device)

    def _seconds_per_mp(self) -> float | None:
        """The chosen backend's speed with the chosen tile budget: as finished jobs measured
        it, else as calibrated."""
        name = self._resolved_backend()
        if name is None:
            return None
        measured = self._speeds.rate(name, self._window.prefs.tile_budget_mb)
        return measured if measured is not None else self._window.settings.calibration(name)

    def refresh_estimates(self) -> None:
        """Recompute the time estimate of every queued item."""
        model = self._window.model
        rate = self._seconds_per_mp()
        for item in model.items():
            if item.status is Status.QUEUED:
                estimate = estimate_seconds(item, rate)
                if estimate != item.estimate:
                    model.update_item(item.id, estimate=estimate)

    def estimate_text(self, item: QueueItem) -> str:
        """A queued item's estimate for the details panel: time and memory, or that the speed
        is being measured (empty while neither is known)."""
        if item.estimate is not None:
            budget = self._window.prefs.tile_budget_mb or self._auto_budget
            memory = estimate_memory_mb(item, budget)
            return f"≈ {format_duration(item.estimate)}, ≈ {memory:,.0f} MB of memory"
        return "Measuring the speed of this computer…" if self._calibrating else ""

    def show_about(self) -> None:
        """The About dialog; it loads the model to show its hash when none is loaded yet."""
        window = self._window
        self._about = AboutDialog(QApplication.windowIcon(), window)
        if self.model_info is not None:
            self._about.set_model(self.model_info.sha256, _runs_on(self.model_info))
        else:
            self._about.set_model("loading…", "loading…")
            window.engine.load(window.prefs.backend, window.prefs.device)
        self._about.exec()
        self._about = None

    def _initialized(self, available: list[str], auto: str, budget_mb: float) -> None:
        self.available, self._auto_backend, self._auto_budget = available, auto, budget_mb
        if self.model_info is None:
            self.label.setText("Model loads on first use")
        self.calibrate_if_needed()
        self.refresh_estimates()

    def _calibrated(self, backend: str, seconds_per_mp: float) -> None:
        self._calibrating = False
        self._window.settings.set_calibration(backend, seconds_per_mp)
        self._window.statusBar().showMessage(
            f"Speed measured: about {seconds_per_mp:.1f} s per output megapixel", 5000)
        self.refresh_estimates()

    def _error(self, message: str) -> None:
        self._calibrating = False
        self._window.statusBar().showMessage(message, 10000)
        if self._about is not None:
            self._about.set_model("unavailable", message)

    def _job_done(self, _item_id: str, outcome: JobOutcome) -> None:
        if outcome.speed is not None:
            self._speeds.add(outcome.speed)
            self._window.settings.set_speeds(self._speeds)
            self.refresh_estimates()

    def _model_ready(self, info: ModelInfo) -> None:
        self.model_info = info
        self.label.setText(f"Model ready · {_runs_on(info)}")
        self.label.setToolTip(f"Model {info.sha256}\nloaded in {info.load_seconds:.1f} s")
        if self._about is not None:
            self._about.set_model(info.sha256, _runs_on(info))
