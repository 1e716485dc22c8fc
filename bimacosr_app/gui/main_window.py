"""The main window: queue on the left with the details panel, compare view on the right.

The window lays out the widgets and composes the parts that drive them, one concern each:
:mod:`.actions` (commands, menus, toolbar), :mod:`.inputs` (adding photos, drops, the hint
about subfolders left out), :mod:`.resume` (saving the queue, resuming the last one),
:mod:`.engine_status` (the model, speed and estimates), :mod:`.start_bar` (where results go,
the Upscale button), :mod:`.progress` (the running batch) and :mod:`.selection` (the selected
photo's details and comparison). It keeps the queue commands, the preferences, the dialogs
and the view state.

Everything slow happens elsewhere: upscaling in the engine thread (:mod:`.worker`, driven by
:mod:`.runner`), folder scans, thumbnails and result loading on a small thread pool
(:mod:`.loaders`).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from operator import attrgetter
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QCloseEvent, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QApplication, QMainWindow, QSplitter, QVBoxLayout, QWidget

from .. import APP_NAME
from ..jobs import (
    JOB_OPTIONS,
    BackendFactory,
    Job,
    QueueItem,
    QueueStore,
    Status,
    UpscaleRequest,
)
from ..logs import log_file_path
from .actions import WindowActions
from .compare_view import CompareMode, CompareView
from .dialogs import ShortcutsDialog
from .engine_status import EngineStatus
from .inputs import PhotoInputs
from .loaders import Loaders
from .progress import BatchProgress
from .quality_panel import QualityPanel
from .queue_model import QueueModel
from .queue_view import QueueTable
from .resume import SavedQueue
from .runner import QueueRunner
from .selection import SelectionDetails
from .settings import Preferences, Settings
from .settings_dialog import SettingsDialog
from .start_bar import StartBar
from .theme import apply_theme
from .worker import Engine

__all__ = ["MainWindow"]


def _part(path: str) -> property:
    """A read-only attribute of the window that is an attribute of one of its parts."""
    return property(attrgetter(path))


class MainWindow(QMainWindow):
    """``settings`` / ``store`` default to the user's config and data dirs;
    ``backend_factory`` replaces the engine's ``select_backend`` (tests)."""

    # What the parts build, under the names the window has always offered.
    act_add_files = _part("commands.add_files")
    act_add_folder = _part("commands.add_folder")
    act_paste = _part("commands.paste")
    act_open_output = _part("commands.open_output")
    act_settings = _part("commands.settings")
    act_quit = _part("commands.quit")
    act_start = _part("commands.start")
    act_pause = _part("commands.pause")
    act_cancel = _part("commands.cancel")
    act_cancel_all = _part("commands.cancel_all")
    act_retry = _part("commands.retry")
    act_remove = _part("commands.remove")
    act_clear = _part("commands.clear")
    act_up = _part("commands.up")
    act_down = _part("commands.down")
    act_modes = _part("commands.modes")
    act_interp = _part("commands.interp")
    act_zoom_in = _part("commands.zoom_in")
    act_zoom_out = _part("commands.zoom_out")
    act_fit = _part("commands.fit")
    act_zooms = _part("commands.zooms")
    act_shortcuts = _part("commands.shortcuts")
    act_show_log = _part("commands.show_log")
    act_about = _part("commands.about")
    _menus = _part("commands.menus")
    overlay = _part("inputs.overlay")
    resume_bar = _part("saved_queue.bar")
    subfolder_bar = _part("inputs.subfolder_bar")
    engine_label = _part("engine_status.label")
    model_info = _part("engine_status.model_info")
    total_bar = _part("progress.total_bar")
    open_output_button = _part("progress.open_output_button")

    def __init__(self, settings: Settings | None = None, store: QueueStore | None = None,
                 backend_factory: BackendFactory | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else Settings()
        self.store = store if store is not None else QueueStore()
        self.prefs = self.settings.preferences()
        self.model = QueueModel(self)
        self.engine = Engine(backend_factory, self)
        self.runner = QueueRunner(self.model, self.engine, self._job_for, self)
        self.loaders = Loaders(self)
        self._closed = False

        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.setMinimumSize(900, 560)
        self.table = QueueTable(self.model)
        self.details = QualityPanel()
        self.compare = CompareView()
        self.table.installEventFilter(self.compare)  # hold Space in flicker mode from the queue
        self.engine_status = EngineStatus(self)
        self.progress = BatchProgress(self)
        self.saved_queue = SavedQueue(self)
        self.inputs = PhotoInputs(self)
        self.commands = WindowActions(self)
        self.start_bar = StartBar(self)
        self._lay_out()
        self.selection = SelectionDetails(self)
        self.commands.scale_box.currentIndexChanged.connect(
            lambda: self.apply_preferences(replace(self.prefs,
                                                   scale=self.commands.scale_box.currentData())))
        self.progress.open_output_button.setDefaultAction(self.commands.open_output)
        self._restore_view()
        # Keys go to the queue at start (arrows, Home, Delete act on photos), not to the
        # first toolbar widget, where Home or an arrow would change the scale unnoticed.
        self.table.setFocus()
        self.saved_queue.offer()
        self.commands.update()
        self.engine.start()

    # -- construction ------------------------------------------------------------------------

    def _lay_out(self) -> None:
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(6)
        left_layout.addWidget(self.table, 3)
        left_layout.addWidget(self.start_bar, 0)
        left_layout.addWidget(self.details, 0)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.compare)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setChildrenCollapsible(False)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 6, 8, 4)
        layout.setSpacing(6)
        layout.addWidget(self.saved_queue.bar)
        layout.addWidget(self.inputs.subfolder_bar)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        bar = self.statusBar()
        for widget in (self.progress.open_output_button, self.progress.eta_label,
                       self.progress.total_bar, self.engine_status.label):
            bar.addPermanentWidget(widget)

    def _restore_view(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        if state is not None:
            self.restoreState(state)
        mode = self.settings.ui_value("compare_mode", CompareMode.SLIDER.value)
        if mode in {m.value for m in CompareMode}:
            self.compare.set_mode(mode)
        self.compare.set_interpolation(self.settings.ui_value("interpolation", "nearest"))
        sizes = self.settings.ui_value("splitter", "")
        if sizes:
            self.splitter.setSizes([int(s) for s in sizes.split(",") if s.isdigit()])
        else:
            self.splitter.setSizes([600, 680])

    # -- adding photos -----------------------------------------------------------------------

    def add_paths(self, paths: list[str | Path], recursive: bool | None = None) -> None:
        """Queue the images among ``paths`` (folders are scanned in the background)."""
        self.inputs.add_paths(paths, recursive)

    def open_files(self) -> None:
        self.inputs.open_files()

    def open_folder(self) -> None:
        self.inputs.open_folder()

    def paste(self) -> None:
        """Files copied in a file manager, or image data (saved as PNG in the data dir)."""
        self.inputs.paste()

    # -- queue commands ----------------------------------------------------------------------

    def start(self) -> None:
        self.commands.pause.setChecked(False)
        self.runner.start()

    def retry_failed(self) -> None:
        """Queue failed and cancelled photos again; those that could not be read are read again
        (and fail again at once if they still cannot)."""
        unread = [it for it in self.model.items()
                  if it.status is Status.FAILED and it.in_size is None]
        n = self.model.set_statuses((Status.FAILED, Status.CANCELLED), Status.QUEUED)
        self.inputs.load_thumbnails(unread)
        self.engine_status.refresh_estimates()
        if n and self.runner.running:
            self.runner.start()

    def remove_selected(self) -> None:
        rows = [r for r in self.table.selected_rows()
                if self.model.item(r).id != self.runner.current]
        self.model.remove_rows(rows)

    def remove_finished(self) -> None:
        self.model.remove_rows([r for r, it in enumerate(self.model.items())
                                if it.status.finished])

    def move_selected(self, delta: int) -> None:
        rows = self.table.selected_rows()
        if len(rows) == 1 and self.model.move_row(rows[0], rows[0] + delta):
            self.table.selectRow(rows[0] + delta)

    def toggle_interpolation(self) -> None:
        self.compare.set_interpolation(
            "nearest" if self.compare.interpolation_name() == "bicubic" else "bicubic")

    def open_output_folder(self) -> None:
        item = self.selection.selected_item()
        if item is not None and item.output is not None:
            folder = str(item.output.parent)
        else:
            folder = self.progress.last_output or self.prefs.output_folder
        if folder:
            self._open_in_file_manager(folder)

    def _open_in_file_manager(self, path: str) -> None:
        """Open ``path`` with the desktop's program for it; where none can be launched, say so
        and put the path on the clipboard."""
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(path)):
            QGuiApplication.clipboard().setText(path)
            self.statusBar().showMessage(
                f"No file manager could be opened. The path is copied to the clipboard: {path}",
                0)

    def output_folder_of(self, item: QueueItem) -> Path:
        """Where ``item``'s result goes with the current preferences."""
        folder = self.prefs.output_folder
        return Path(folder) / item.subfolder if folder else item.input.parent

    def set_output_folder(self, folder: str) -> None:
        """Save the results in ``folder`` from now on ("" : next to the originals)."""
        self.apply_preferences(replace(self.prefs, output_folder=folder))

    def _job_for(self, item: QueueItem) -> Job:
        """The item's job with the current preferences (ValueError where no job takes them)."""
        p = self.prefs
        request = UpscaleRequest(
            input=item.input, output=self.output_folder_of(item) if p.output_folder else None,
            scale=item.scale, **{o.name: getattr(p, o.name) for o in JOB_OPTIONS
                                  if o.name != "scale"})
        return Job(request, p.backend, p.device)

    # -- resume ------------------------------------------------------------------------------

    def resume_previous(self) -> None:
        """Put the saved queue back (before anything added since) and start it."""
        self.saved_queue.resume()

    def discard_previous(self) -> None:
        self.saved_queue.discard()

    # -- dialogs -----------------------------------------------------------------------------

    def show_settings(self) -> None:
        dialog = SettingsDialog(self.prefs, self.engine_status.available, self.settings.path,
                                self)
        if dialog.exec():
            self.apply_preferences(dialog.preferences())

    def apply_preferences(self, prefs: Preferences) -> None:
        """Use and save ``prefs``: queued photos take the scale, estimates and the start bar
        follow."""
        old, self.prefs = self.prefs, prefs
        self.settings.set_preferences(prefs)
        if prefs.theme != old.theme:
            apply_theme(QApplication.instance(), prefs.theme)
        self.commands.show_scale(prefs.scale)
        for item in self.model.items():
            if item.status is Status.QUEUED and item.scale != prefs.scale:
                self.model.update_item(item.id, scale=prefs.scale)
        if (prefs.backend, prefs.device) != (old.backend, old.device):
            self.engine_status.calibrate_if_needed()
        self.engine_status.refresh_estimates()
        self.start_bar.show_output_folder()
        self.selection.refresh()

    def show_shortcuts(self) -> None:
        ShortcutsDialog(self.commands.menus, self).exec()

    def show_log(self) -> None:
        """Open the log file, or its folder while nothing has been logged yet."""
        path = log_file_path()
        if not path.is_file():
            path = path.parent
            with contextlib.suppress(OSError):
                path.mkdir(parents=True, exist_ok=True)
        self._open_in_file_manager(str(path))

    def show_about(self) -> None:
        self.engine_status.show_about()

    # -- closing -----------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        """Save the queue (a running item is saved as still to do), stop the engine thread and
        the loaders and wait for both."""
        if not self._closed:
            self._closed = True
            self.saved_queue.save_now()
            self.settings.set_window_state(self.saveGeometry(), self.saveState())
            self.settings.set_ui_value("splitter",
                                       ",".join(str(s) for s in self.splitter.sizes()))
            self.settings.set_ui_value("compare_mode", self.compare.mode().value)
            self.settings.set_ui_value("interpolation", self.compare.interpolation_name())
            self.settings.sync()
            self.hide()  # gone at once, even while a model load finishes below
            self.engine.shutdown()
            self.loaders.shutdown()
            self.progress.shutdown()
        super().closeEvent(event)
