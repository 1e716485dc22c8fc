"""The main window: queue on the left with the details panel, compare view on the right.

Everything slow happens elsewhere: upscaling in the engine thread (:mod:`.worker`, driven by
:mod:`.runner`), folder scans, thumbnails and result loading on a small thread pool
(:mod:`.loaders`). The queue is saved after every change (:mod:`.persistence`) and offered
for resumption on the next start when it still had work to do.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, QUrl
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QDesktopServices,
    QGuiApplication,
    QIcon,
    QKeySequence,
    QPainter,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStyle,
    QSystemTrayIcon,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..jobs import (
    JOB_OPTIONS,
    BackendFactory,
    BatchSummary,
    Job,
    ModelInfo,
    QualityReport,
    QueueItem,
    QueueStore,
    ScanResult,
    Status,
    UpscaleRequest,
    estimate_memory_mb,
    estimate_seconds,
    format_duration,
    option,
    readable_formats,
)
from ..logs import log_file_path
from .compare_view import CompareMode, CompareView
from .dialogs import AboutDialog, ShortcutsDialog
from .loaders import CompareImages, Loaders
from .quality_panel import QualityPanel
from .queue_model import QueueModel
from .queue_view import QueueTable
from .runner import QueueRunner
from .settings import Preferences, Settings
from .settings_dialog import SettingsDialog
from .taskbar import TaskbarProgress
from .theme import apply_theme
from .worker import Engine

__all__ = ["MainWindow"]

SAVE_DELAY_MS = 250

_COMPARE_HINTS = {
    Status.QUEUED: "Waiting in the queue. Press Start (Ctrl+Enter) to upscale.",
    Status.RUNNING: "Upscaling… the comparison appears when it is done.",
    Status.DONE: "The result file is not known.",
    Status.FAILED: "This photo could not be upscaled.",
    Status.SKIPPED: "Skipped: the output file already existed.",
    Status.CANCELLED: "Cancelled.",
}


class _DropOverlay(QWidget):
    """Shown over the window while files are dragged over it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        highlight = self.palette().color(QPalette.ColorRole.Highlight)
        fill = self.palette().color(QPalette.ColorRole.Window)
        fill.setAlpha(235)
        painter.fillRect(self.rect(), fill)
        tint = QColor(highlight)
        tint.setAlpha(40)
        painter.fillRect(self.rect(), tint)
        pen = QPen(highlight, 3, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawRoundedRect(self.rect().adjusted(12, 12, -12, -12), 14, 14)
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(highlight)
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                         "Drop photos or folders to add them to the queue")


class _ResumeBar(QFrame):
    """Offers to resume the queue the last session left unfinished."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("resumeBar")
        self.setStyleSheet("#resumeBar { background: palette(alternate-base); "
                           "border: 1px solid palette(highlight); border-radius: 6px; }")
        self.label = QLabel()
        self.resume = QPushButton("Resume")
        self.resume.setDefault(True)
        self.discard = QPushButton("Discard")
        self.resume.setAccessibleName("Resume the previous queue")
        self.discard.setAccessibleName("Discard the previous queue")
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 6, 6)
        row.addWidget(self.label, 1)
        row.addWidget(self.resume)
        row.addWidget(self.discard)
        self.hide()


def _icon(widget: QWidget, theme: QIcon.ThemeIcon, fallback: QStyle.StandardPixmap) -> QIcon:
    icon = QIcon.fromTheme(theme)
    return icon if not icon.isNull() else widget.style().standardIcon(fallback)


class MainWindow(QMainWindow):
    """``settings`` / ``store`` default to the user's config and data dirs;
    ``backend_factory`` replaces the engine's ``select_backend`` (tests)."""

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
        self.taskbar = TaskbarProgress()
        self.model_info: ModelInfo | None = None
        self._auto_backend: str | None = None
        self._auto_budget = 0.0  # MB, the tile budget "Automatic" means on the CPU
        self._available: list[str] = []
        self._calibrating = False
        self._reports: dict[str, QualityReport] = {}
        self._compare_id: str | None = None  # item whose result is shown or loading
        self._shown: tuple | None = None  # (id, status, output) the compare view was set for
        self._pending: list[QueueItem] = []
        self._last_output = ""
        self._tray: QSystemTrayIcon | None = None
        self._about: AboutDialog | None = None
        self._closed = False
        self._save_timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self._save_now)

        self.setWindowTitle("BiMaCoSR Upscaler")
        self.setAcceptDrops(True)
        self.setMinimumSize(900, 560)
        self._build_ui()
        self._build_actions()
        self._connect()
        self._restore_view()
        self._offer_resume()
        self._update_actions()
        self.engine.start()

    # -- construction ------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.table = QueueTable(self.model)
        self.details = QualityPanel()
        self.compare = CompareView()
        self.table.installEventFilter(self.compare)  # hold Space in flicker mode from the queue

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(6)
        left_layout.addWidget(self.table, 3)
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
        self.resume_bar = _ResumeBar(central)
        layout.addWidget(self.resume_bar)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.overlay = _DropOverlay(self)

        bar = self.statusBar()
        self.engine_label = QLabel("Starting engine…")
        self.engine_label.setAccessibleName("Engine state")
        self.total_bar = QProgressBar()
        self.total_bar.setRange(0, 1000)
        self.total_bar.setMaximumWidth(220)
        self.total_bar.setTextVisible(True)
        self.total_bar.setFormat("%p%")
        self.total_bar.setAccessibleName("Total progress")
        self.total_bar.hide()
        self.eta_label = QLabel()
        self.eta_label.setAccessibleName("Time left")
        self.open_output_button = QToolButton()
        self.open_output_button.hide()
        bar.addPermanentWidget(self.open_output_button)
        bar.addPermanentWidget(self.eta_label)
        bar.addPermanentWidget(self.total_bar)
        bar.addPermanentWidget(self.engine_label)

    def _action(self, text: str, slot, shortcuts=(), tip: str = "", icon: QIcon | None = None,
                checkable: bool = False) -> QAction:
        action = QAction(text, self)
        keys: list[QKeySequence] = []
        for shortcut in shortcuts:  # standard keys are empty or repeat on some platforms
            key = QKeySequence(shortcut)
            if not key.isEmpty() and key not in keys:
                keys.append(key)
        action.setShortcuts(keys)
        if icon is not None:
            action.setIcon(icon)
        action.setCheckable(checkable)
        hint = tip or text.rstrip("…")
        if keys:
            hint += f" ({keys[0].toString(QKeySequence.SequenceFormat.NativeText)})"
        action.setToolTip(hint)
        action.setStatusTip(tip or text.rstrip("…"))
        (action.toggled if checkable else action.triggered).connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        TI, SP = QIcon.ThemeIcon, QStyle.StandardPixmap
        icon = lambda t, f: _icon(self, t, f)  # noqa: E731
        a = self._action
        self.act_add_files = a("Add files…", self.open_files, [QKeySequence.StandardKey.Open],
                               "Add photos to the queue", icon(TI.DocumentOpen,
                                                               SP.SP_DialogOpenButton))
        self.act_add_folder = a("Add folder…", self.open_folder, ["Ctrl+Shift+O"],
                                "Add every photo of a folder", icon(TI.FolderOpen,
                                                                    SP.SP_DirOpenIcon))
        self.act_paste = a("Paste", self.paste, [QKeySequence.StandardKey.Paste],
                           "Add an image or files from the clipboard",
                           icon(TI.EditPaste, SP.SP_FileIcon))
        self.act_open_output = a("Open output folder", self.open_output_folder, ["Ctrl+E"],
                                 "Show the upscaled files", icon(TI.FolderVisiting,
                                                                 SP.SP_DirLinkIcon))
        self.act_settings = a("Settings…", self.show_settings,
                              [QKeySequence.StandardKey.Preferences, "Ctrl+,"],
                              "Output, engine and appearance",
                              icon(TI.DocumentProperties, SP.SP_FileDialogDetailedView))
        self.act_quit = a("Quit", self.close, [QKeySequence.StandardKey.Quit, "Ctrl+Q"])
        self.act_start = a("Start", self.start, ["Ctrl+Return", "Ctrl+Enter"],
                           "Upscale the queued photos", icon(TI.MediaPlaybackStart,
                                                            SP.SP_MediaPlay))
        self.act_pause = a("Pause after current", self.runner.set_pause_after_current,
                           ["Ctrl+P"], "Stop once the running photo is finished",
                           icon(TI.MediaPlaybackPause, SP.SP_MediaPause), checkable=True)
        self.act_cancel = a("Cancel current", self.runner.cancel_current, ["Ctrl+."],
                            "Stop the running photo", icon(TI.MediaPlaybackStop,
                                                            SP.SP_MediaStop))
        self.act_cancel_all = a("Cancel all", self.runner.cancel_all, ["Ctrl+Shift+."],
                                "Stop the running photo and cancel the queued ones",
                                icon(TI.ProcessStop, SP.SP_BrowserStop))
        self.act_retry = a("Retry failed", self.retry_failed, ["Ctrl+R"],
                           "Queue failed and cancelled photos again",
                           icon(TI.ViewRefresh, SP.SP_BrowserReload))
        self.act_remove = a("Remove", self.remove_selected, [QKeySequence.StandardKey.Delete],
                            "Remove the selected photos from the queue",
                            icon(TI.ListRemove, SP.SP_TrashIcon))
        self.act_clear = a("Remove finished", self.remove_finished, ["Ctrl+Shift+Del"],
                           "Remove every finished photo from the queue")
        self.act_up = a("Move up", lambda: self.move_selected(-1), ["Alt+Up"])
        self.act_down = a("Move down", lambda: self.move_selected(1), ["Alt+Down"])
        self.act_modes = [a(m.label, lambda _=False, m=m: self.compare.set_mode(m), [str(i + 1)],
                            f"{m.label} comparison") for i, m in enumerate(CompareMode)]
        self.act_interp = a("Toggle nearest / bicubic original", self.toggle_interpolation,
                            ["B"], "How the original is enlarged for comparison")
        self.act_zoom_in = a("Zoom in", self.compare.zoom_in,
                             [QKeySequence.StandardKey.ZoomIn, "Ctrl+="])
        self.act_zoom_out = a("Zoom out", self.compare.zoom_out,
                              [QKeySequence.StandardKey.ZoomOut])
        self.act_fit = a("Fit", self.compare.fit, ["Ctrl+0", "F"], "Fit the image in the view")
        self.act_zooms = [a(f"Zoom {z}%", lambda _=False, z=z: self.compare.set_zoom(z / 100),
                            [f"Ctrl+{z // 100}"]) for z in (100, 200, 400, 800)]
        self.act_shortcuts = a("Keyboard shortcuts", self.show_shortcuts,
                               [QKeySequence.StandardKey.HelpContents, "Ctrl+/"])
        self.act_show_log = a("Show log", self.show_log, [],
                              "Open the log file: every failure with its details")
        self.act_about = a("About BiMaCoSR Upscaler", self.show_about)
        self.act_about.setMenuRole(QAction.MenuRole.AboutRole)
        self.act_settings.setMenuRole(QAction.MenuRole.PreferencesRole)

        menus = {
            "&File": [self.act_add_files, self.act_add_folder, self.act_paste, None,
                      self.act_open_output, None, self.act_settings, None, self.act_quit],
            "&Queue": [self.act_start, self.act_pause, self.act_cancel, self.act_cancel_all,
                       None, self.act_retry, self.act_remove, self.act_clear, None,
                       self.act_up, self.act_down],
            "&View": [*self.act_modes, None, self.act_interp, None, self.act_zoom_in,
                      self.act_zoom_out, self.act_fit, *self.act_zooms],
            "&Help": [self.act_shortcuts, self.act_show_log, None, self.act_about],
        }
        self._menus: list[tuple[str, list[QAction]]] = []
        for title, actions in menus.items():
            menu: QMenu = self.menuBar().addMenu(title)
            for action in actions:
                if action is None:
                    menu.addSeparator()
                else:
                    menu.addAction(action)
            self._menus.append((title, [x for x in actions if x is not None]))

        tools = QToolBar("Main")
        tools.setObjectName("main-toolbar")
        tools.setMovable(False)
        tools.setIconSize(QSize(20, 20))
        tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.act_add_files, self.act_add_folder, None, self.act_start,
                       self.act_pause, self.act_cancel, self.act_cancel_all, self.act_retry,
                       self.act_remove, None):
            if action is None:
                tools.addSeparator()
            else:
                tools.addAction(action)
        self.scale_box = QComboBox()
        self.scale_box.setAccessibleName("Scale")
        self.scale_box.setToolTip("Upscaling factor for the queued photos")
        for scale, label in option("scale").choices.items():
            self.scale_box.addItem(label, scale)
        self.scale_box.setCurrentIndex(self.scale_box.findData(self.prefs.scale))
        self.scale_box.currentIndexChanged.connect(
            lambda: self._apply_preferences(replace(self.prefs,
                                                    scale=self.scale_box.currentData())))
        scale_label = QLabel(" Scale ")
        scale_label.setBuddy(self.scale_box)
        tools.addWidget(scale_label)
        tools.addWidget(self.scale_box)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tools.addWidget(spacer)
        tools.addAction(self.act_open_output)
        tools.addAction(self.act_settings)
        self.addToolBar(tools)
        self.open_output_button.setDefaultAction(self.act_open_output)
        self.open_output_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.open_output_button.setAutoRaise(True)

    def _connect(self) -> None:
        self.model.saveNeeded.connect(self._save_timer.start)
        self.model.rowsInserted.connect(self._update_actions)
        self.model.rowsRemoved.connect(self._update_actions)
        self.model.modelReset.connect(self._update_actions)
        self.model.dataChanged.connect(self._data_changed)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.runner.stateChanged.connect(self._runner_state)
        self.runner.totalProgress.connect(self._total_progress)
        self.runner.batchFinished.connect(self._batch_finished)
        self.engine.initialized.connect(self._engine_initialized)
        self.engine.loading.connect(self._engine_loading)
        self.engine.modelReady.connect(self._model_ready)
        self.engine.calibrated.connect(self._calibrated)
        self.engine.engineError.connect(self._engine_error)
        self.engine.jobDone.connect(self._job_done)
        self.loaders.thumbnailReady.connect(self._thumbnail_ready)
        self.loaders.thumbnailFailed.connect(
            lambda item_id, message: self.model.update_item(item_id, unreadable=message))
        self.loaders.compareReady.connect(self._compare_ready)
        self.loaders.compareFailed.connect(self._compare_failed)
        self.loaders.scanned.connect(self._scanned)
        self.resume_bar.resume.clicked.connect(self.resume_previous)
        self.resume_bar.discard.clicked.connect(self.discard_previous)

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
        if paths:
            self.statusBar().showMessage("Looking for photos…")
            self.loaders.scan([Path(p) for p in paths],
                              self.prefs.recursive if recursive is None else recursive,
                              self.prefs.naming)

    def _scanned(self, result: ScanResult) -> None:
        new = self.model.add_items([QueueItem(input=f.file, scale=self.prefs.scale,
                                              subfolder=f.subfolder) for f in result.found])
        for item in new:
            self.loaders.thumbnail(item.id, item.input)
        message = (f"Added {len(new)} photo{'s' * (len(new) != 1)} to the queue" if new
                   else "No new photos to add")
        if result.problems:
            message += ": " + "; ".join(result.problems)
        self.statusBar().showMessage(message, 8000)
        if new and self.table.selectionModel().selectedRows() == []:
            self.table.selectRow(self.model.row_of(new[0].id))

    def _file_filter(self) -> str:
        patterns = " ".join(f"*{ext}" for exts in readable_formats().values() for ext in exts)
        return f"Images ({patterns});;All files (*)"

    def open_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add photos", "", self._file_filter())
        self.add_paths(files)

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of photos")
        if folder:
            self.add_paths([folder])

    def paste(self) -> None:
        """Files copied in a file manager, or image data (saved as PNG in the data dir)."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            return
        if mime.hasUrls():
            self.add_paths([u.toLocalFile() for u in mime.urls() if u.isLocalFile()])
        elif mime.hasImage():
            image = QGuiApplication.clipboard().image()
            folder = self.store.folder / "Pasted"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"pasted-{datetime.now():%Y%m%d-%H%M%S-%f}.png"
            if image.isNull() or not image.save(str(path), "PNG"):
                self.statusBar().showMessage("The clipboard image could not be saved", 5000)
                return
            self.add_paths([path])
        else:
            self.statusBar().showMessage("The clipboard holds no image or files", 5000)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
            self.overlay.setGeometry(self.rect())
            self.overlay.raise_()
            self.overlay.show()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragLeaveEvent(self, event) -> None:
        self.overlay.hide()

    def dropEvent(self, event) -> None:
        self.overlay.hide()
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.add_paths([u.toLocalFile() for u in urls])

    # -- queue commands ----------------------------------------------------------------------

    def start(self) -> None:
        self.act_pause.setChecked(False)
        self.runner.start()

    def retry_failed(self) -> None:
        n = self.model.set_statuses((Status.FAILED, Status.CANCELLED), Status.QUEUED)
        self._refresh_estimates()
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
        item = self._selected_item()
        if item is not None and item.output is not None:
            folder = str(item.output.parent)
        else:
            folder = self._last_output or self.prefs.output_folder
        if folder:
            QDesktopServices.openUrl(QUrl.fromLocalFile(folder))

    def _job_for(self, item: QueueItem) -> Job:
        """The item's job with the current preferences (ValueError where no job takes them)."""
        p = self.prefs
        request = UpscaleRequest(
            input=item.input,
            output=Path(p.output_folder) / item.subfolder if p.output_folder else None,
            scale=item.scale, **{o.name: getattr(p, o.name) for o in JOB_OPTIONS
                                  if o.name != "scale"})
        return Job(request, p.backend, p.device)

    # -- resume ------------------------------------------------------------------------------

    def _offer_resume(self) -> None:
        self._pending = self.store.unfinished()
        if self._pending:
            n = sum(it.status is Status.QUEUED for it in self._pending)
            self.resume_bar.label.setText(
                f"The last session ended with {n} photo{'s' * (n != 1)} still to upscale.")
            self.resume_bar.show()

    def resume_previous(self) -> None:
        """Put the saved queue back (before anything added since) and start it."""
        pending, self._pending = self._pending, []
        self.resume_bar.hide()
        self.model.reset_items(pending + self.model.items())
        for item in pending:
            item.scale = item.scale or self.prefs.scale
            self.loaders.thumbnail(item.id, item.input)
        self._refresh_estimates()
        self.start()

    def discard_previous(self) -> None:
        self._pending = []
        self.resume_bar.hide()
        self._save_now()

    def _save_now(self) -> None:
        self._save_timer.stop()
        try:
            self.store.save(self._pending + self.model.items())
        except OSError as exc:
            self.statusBar().showMessage(f"Could not save the queue: {exc}", 8000)

    # -- engine and runner events ------------------------------------------------------------

    def _resolved_backend(self) -> str | None:
        return self._auto_backend if self.prefs.backend == "auto" else self.prefs.backend

    def _engine_initialized(self, available: list[str], auto: str, budget_mb: float) -> None:
        self._available, self._auto_backend, self._auto_budget = available, auto, budget_mb
        if self.model_info is None:
            self.engine_label.setText("Model loads on first use")
        self._calibrate_if_needed()
        self._refresh_estimates()

    def _calibrate_if_needed(self) -> None:
        name = self._resolved_backend()
        if name is None or self._calibrating or self.settings.calibration(name) is not None:
            return
        self._calibrating = True
        self.statusBar().showMessage("Measuring the speed of this computer…", 0)
        self.engine.calibrate(self.prefs.backend, self.prefs.device)

    def _calibrated(self, backend: str, seconds_per_mp: float) -> None:
        self._calibrating = False
        self.settings.set_calibration(backend, seconds_per_mp)
        self.statusBar().showMessage(
            f"Speed measured: about {seconds_per_mp:.1f} s per output megapixel", 5000)
        self._refresh_estimates()

    def _engine_error(self, message: str) -> None:
        self._calibrating = False
        self.statusBar().showMessage(message, 10000)
        if self._about is not None:
            self._about.set_model("unavailable", message)

    def _engine_loading(self, _backend: str) -> None:
        self.engine_label.setText("Loading model…")

    def _model_ready(self, info: ModelInfo) -> None:
        self.model_info = info
        self.engine_label.setText(f"Model ready · {info.backend} on {info.device}")
        self.engine_label.setToolTip(f"Model {info.sha256}\nloaded in {info.load_seconds:.1f} s")
        if self._about is not None:
            self._about.set_model(info.sha256, f"{info.backend} on {info.device}")

    def _job_done(self, item_id: str, _outcome) -> None:
        item = self.model.item_by_id(item_id)
        if item is not None and item.output is not None and item.status is Status.DONE:
            self._last_output = str(item.output.parent)
            if not self.table.selectionModel().hasSelection():
                self.table.selectRow(self.model.row_of(item_id))
        self._update_actions()

    def _runner_state(self) -> None:
        if not self.runner.pausing and self.act_pause.isChecked():
            self.act_pause.blockSignals(True)
            self.act_pause.setChecked(False)
            self.act_pause.blockSignals(False)
        if not self.runner.running:
            self.total_bar.hide()
            self.eta_label.clear()
            self.setWindowTitle("BiMaCoSR Upscaler")
        self._update_actions()

    def _total_progress(self, fraction: float, eta) -> None:
        if fraction < 0:
            self.total_bar.hide()
            self.eta_label.clear()
            self.taskbar.update(None, 0)
            return
        self.total_bar.show()
        self.total_bar.setValue(round(fraction * 1000))
        left = self.model.count(Status.QUEUED, Status.RUNNING)
        eta_text = f"about {format_duration(eta)} left" if eta is not None else ""
        self.eta_label.setText(f"{left} to go" + (f" · {eta_text}" if eta_text else ""))
        self.setWindowTitle(f"{fraction:.0%} — BiMaCoSR Upscaler")
        self.taskbar.update(fraction, left)

    def _batch_finished(self, summary: BatchSummary) -> None:
        parts = [f"{summary.done} done"]
        parts += [f"{n} {word}" for n, word in ((summary.failed, "failed"),
                                                (summary.skipped, "skipped"),
                                                (summary.cancelled, "cancelled")) if n]
        text = ", ".join(parts)
        if summary.last_output:
            self._last_output = summary.last_output
            self.open_output_button.show()
        self.statusBar().showMessage(f"Batch finished: {text}", 0)
        QApplication.alert(self)
        if QSystemTrayIcon.isSystemTrayAvailable():
            if self._tray is None:
                self._tray = QSystemTrayIcon(QApplication.windowIcon(), self)
                self._tray.setToolTip("BiMaCoSR Upscaler")
                self._tray.messageClicked.connect(self.open_output_folder)
            self._tray.show()
            self._tray.showMessage("Upscaling finished", text,
                                   QSystemTrayIcon.MessageIcon.Information, 8000)
        self._update_actions()

    # -- selection, details, compare ---------------------------------------------------------

    def _selected_item(self) -> QueueItem | None:
        rows = self.table.selected_rows()
        return self.model.item(rows[0]) if rows else None

    def _data_changed(self, top, bottom) -> None:
        item = self._selected_item()
        if item is not None and top.row() <= self.model.row_of(item.id) <= bottom.row():
            self._selection_changed()
        self._update_actions()

    def _selection_changed(self) -> None:
        item = self._selected_item()
        self._show_details(item)
        self._update_actions()
        shown = None if item is None else (item.id, item.status, item.output)
        if shown == self._shown:  # progress ticks of the selected item: nothing new to show
            return
        self._shown = shown
        if item is not None and item.status is Status.DONE and item.output is not None:
            self._compare_id = item.id
            self.compare.set_images(None, "Loading the result…")
            self.loaders.compare(item.id, item.input, item.output, item.seam_period)
            return
        self._compare_id = None
        self.compare.set_images(None, "" if item is None else _COMPARE_HINTS[item.status])

    def _show_details(self, item: QueueItem | None) -> None:
        estimate = ""
        if item is not None and item.status is Status.QUEUED:
            if item.estimate is not None:
                memory = estimate_memory_mb(item, self.prefs.tile_budget_mb or self._auto_budget)
                estimate = f"≈ {format_duration(item.estimate)}, ≈ {memory:,.0f} MB of memory"
            elif self._calibrating:
                estimate = "Measuring the speed of this computer…"
        report = self._reports.get(item.id) if item is not None else None
        self.details.show_item(item, report, estimate,
                               analysing=item is not None and item.id == self._compare_id)

    def _compare_ready(self, images: CompareImages) -> None:
        self._reports[images.item_id] = images.report
        if images.item_id == self._compare_id:
            self.compare.set_images(images)
            self._show_details(self._selected_item())
            self._update_actions()

    def _compare_failed(self, item_id: str, message: str) -> None:
        if item_id == self._compare_id:
            self.compare.set_images(None, f"The result cannot be shown:\n{message}")
            self._update_actions()

    def _thumbnail_ready(self, item_id: str, image, size) -> None:
        item = self.model.item_by_id(item_id)
        if item is not None:
            self.model.set_thumbnail(item_id, image)
            self.model.update_item(item_id, in_size=tuple(size))
            self._refresh_estimates()

    def _refresh_estimates(self) -> None:
        name = self._resolved_backend()
        rate = self.settings.calibration(name) if name else None
        for item in self.model.items():
            if item.status is Status.QUEUED:
                estimate = estimate_seconds(item, rate)
                if estimate != item.estimate:
                    self.model.update_item(item.id, estimate=estimate)

    def _update_actions(self, *_args) -> None:
        running, current = self.runner.running, self.runner.current
        queued = self.model.count(Status.QUEUED)
        selected = self.table.selected_rows() if self.table.selectionModel() else []
        self.act_start.setEnabled(queued > 0 and (not running or self.runner.pausing))
        self.act_pause.setEnabled(running)
        self.act_cancel.setEnabled(current is not None)
        self.act_cancel_all.setEnabled(current is not None or queued > 0)
        self.act_retry.setEnabled(self.model.count(Status.FAILED, Status.CANCELLED) > 0)
        self.act_remove.setEnabled(any(self.model.item(r).id != current for r in selected))
        self.act_clear.setEnabled(any(it.status.finished for it in self.model.items()))
        self.act_up.setEnabled(len(selected) == 1)
        self.act_down.setEnabled(len(selected) == 1)
        self.act_open_output.setEnabled(bool(self._last_output or self.prefs.output_folder or (
            selected and self.model.item(selected[0]).output is not None)))
        has_images = self.compare.images is not None
        for action in (*self.act_modes, self.act_interp, self.act_zoom_in, self.act_zoom_out,
                       self.act_fit, *self.act_zooms):
            action.setEnabled(has_images)

    # -- dialogs -----------------------------------------------------------------------------

    def show_settings(self) -> None:
        dialog = SettingsDialog(self.prefs, self._available, self.settings.path, self)
        if dialog.exec():
            self._apply_preferences(dialog.preferences())

    def _apply_preferences(self, prefs: Preferences) -> None:
        old, self.prefs = self.prefs, prefs
        self.settings.set_preferences(prefs)
        if prefs.theme != old.theme:
            apply_theme(QApplication.instance(), prefs.theme)
        if self.scale_box.currentData() != prefs.scale:
            self.scale_box.blockSignals(True)
            self.scale_box.setCurrentIndex(self.scale_box.findData(prefs.scale))
            self.scale_box.blockSignals(False)
        for item in self.model.items():
            if item.status is Status.QUEUED and item.scale != prefs.scale:
                self.model.update_item(item.id, scale=prefs.scale)
        if (prefs.backend, prefs.device) != (old.backend, old.device):
            self._calibrate_if_needed()
        self._refresh_estimates()
        self._selection_changed()

    def show_shortcuts(self) -> None:
        ShortcutsDialog(self._menus, self).exec()

    def show_log(self) -> None:
        """Open the log file, or its folder while nothing has been logged yet."""
        path = log_file_path()
        if not path.is_file():
            path = path.parent
            with contextlib.suppress(OSError):
                path.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def show_about(self) -> None:
        self._about = AboutDialog(QApplication.windowIcon(), self)
        if self.model_info is not None:
            info = self.model_info
            self._about.set_model(info.sha256, f"{info.backend} on {info.device}")
        else:
            self._about.set_model("loading…", "loading…")
            self.engine.load(self.prefs.backend, self.prefs.device)
        self._about.exec()
        self._about = None

    # -- closing -----------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        """Save the queue (a running item is saved as still to do), stop the engine thread and
        the loaders and wait for both."""
        if not self._closed:
            self._closed = True
            self._save_now()
            self.settings.set_window_state(self.saveGeometry(), self.saveState())
            self.settings.set_ui_value("splitter",
                                       ",".join(str(s) for s in self.splitter.sizes()))
            self.settings.set_ui_value("compare_mode", self.compare.mode().value)
            self.settings.set_ui_value("interpolation", self.compare.interpolation_name())
            self.settings.sync()
            self.hide()  # gone at once, even while a model load finishes below
            self.engine.shutdown()
            self.loaders.shutdown()
            self.taskbar.update(None, 0)
            if self._tray is not None:
                self._tray.hide()
        super().closeEvent(event)

    def resizeEvent(self, event) -> None:
        self.overlay.setGeometry(self.rect())
        super().resizeEvent(event)
