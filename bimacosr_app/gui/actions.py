"""The window's commands as actions (``QAction``): their shortcuts, tooltips and icons, the menu
bar and the toolbar that show them (with the scale box), and which of them the state enables.
The menus list every command, greyed out where it does not apply; the toolbar shows the queue
commands only where they apply (an empty window shows what to do first, not a row of greyed
buttons), and Upscale lives in the start bar under the queue.

The actions belong to the window (their shortcuts work anywhere in it) and call its public
methods; the window reaches them as ``act_*``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QSizePolicy,
    QStyle,
    QToolBar,
    QToolButton,
    QWidget,
)

from ..jobs import Status, option
from .compare_view import CompareMode

if TYPE_CHECKING:
    from .main_window import MainWindow

__all__ = ["WindowActions"]


def _icon(widget: QWidget, theme: QIcon.ThemeIcon, fallback: QStyle.StandardPixmap) -> QIcon:
    icon = QIcon.fromTheme(theme)
    return icon if not icon.isNull() else widget.style().standardIcon(fallback)


def _action(window: QWidget, text: str, slot, shortcuts=(), tip: str = "",
            icon: QIcon | None = None, checkable: bool = False) -> QAction:
    action = QAction(text, window)
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
    window.addAction(action)
    return action


class WindowActions:
    """Builds every action of ``window``, its menus (:attr:`menus`, as the shortcuts dialog
    lists them) and its toolbar; :meth:`update` enables the actions that apply now."""

    def __init__(self, window: MainWindow) -> None:
        self._window = window
        w, compare, runner = window, window.compare, window.runner
        TI, SP = QIcon.ThemeIcon, QStyle.StandardPixmap
        icon = lambda t, f: _icon(w, t, f)  # noqa: E731
        a = partial(_action, w)
        self.add_files = a("Add files…", w.open_files, [QKeySequence.StandardKey.Open],
                           "Add photos to the queue", icon(TI.DocumentOpen,
                                                           SP.SP_DialogOpenButton))
        self.add_folder = a("Add folder…", w.open_folder, ["Ctrl+Shift+O"],
                            "Add every photo of a folder", icon(TI.FolderOpen,
                                                                SP.SP_DirOpenIcon))
        self.paste = a("Paste", w.paste, [QKeySequence.StandardKey.Paste],
                       "Add an image or files from the clipboard",
                       icon(TI.EditPaste, SP.SP_FileIcon))
        self.open_output = a("Open output folder", w.open_output_folder, ["Ctrl+E"],
                             "Show the upscaled files", icon(TI.FolderVisiting,
                                                             SP.SP_DirLinkIcon))
        self.settings = a("Settings…", w.show_settings,
                          [QKeySequence.StandardKey.Preferences, "Ctrl+,"],
                          "Output, engine and appearance",
                          icon(TI.DocumentProperties, SP.SP_FileDialogDetailedView))
        self.quit = a("Quit", w.close, [QKeySequence.StandardKey.Quit, "Ctrl+Q"])
        self.start = a("Upscale", w.start, ["Ctrl+Return", "Ctrl+Enter"],
                       "Upscale the queued photos", icon(TI.MediaPlaybackStart,
                                                        SP.SP_MediaPlay))
        self.pause = a("Pause after current", runner.set_pause_after_current,
                       ["Ctrl+P"], "Stop once the running photo is finished",
                       icon(TI.MediaPlaybackPause, SP.SP_MediaPause), checkable=True)
        self.cancel = a("Cancel current", runner.cancel_current, ["Ctrl+."],
                        "Stop the running photo", icon(TI.MediaPlaybackStop,
                                                        SP.SP_MediaStop))
        self.cancel_all = a("Cancel all", runner.cancel_all, ["Ctrl+Shift+."],
                            "Stop the running photo and cancel the queued ones",
                            icon(TI.ProcessStop, SP.SP_BrowserStop))
        self.retry = a("Retry failed", w.retry_failed, ["Ctrl+R"],
                       "Queue failed and cancelled photos again",
                       icon(TI.ViewRefresh, SP.SP_BrowserReload))
        self.remove = a("Remove", w.remove_selected, [QKeySequence.StandardKey.Delete],
                        "Remove the selected photos from the queue",
                        icon(TI.ListRemove, SP.SP_TrashIcon))
        self.clear = a("Remove finished", w.remove_finished, ["Ctrl+Shift+Del"],
                       "Remove every finished photo from the queue")
        self.up = a("Move up", lambda: w.move_selected(-1), ["Alt+Up"])
        self.down = a("Move down", lambda: w.move_selected(1), ["Alt+Down"])
        self.modes = [a(m.label, lambda _=False, m=m: compare.set_mode(m), [str(i + 1)],
                        f"{m.label} comparison") for i, m in enumerate(CompareMode)]
        self.interp = a("Toggle nearest / bicubic original", w.toggle_interpolation,
                        ["B"], "How the original is enlarged for comparison")
        self.zoom_in = a("Zoom in", compare.zoom_in,
                         [QKeySequence.StandardKey.ZoomIn, "Ctrl+="])
        self.zoom_out = a("Zoom out", compare.zoom_out,
                          [QKeySequence.StandardKey.ZoomOut])
        self.fit = a("Fit", compare.fit, ["Ctrl+0", "F"], "Fit the image in the view")
        self.zooms = [a(f"Zoom {z}%", lambda _=False, z=z: compare.set_zoom(z / 100),
                        [f"Ctrl+{z // 100}"]) for z in (100, 200, 400, 800)]
        self.shortcuts = a("Keyboard shortcuts", w.show_shortcuts,
                           [QKeySequence.StandardKey.HelpContents, "Ctrl+/"])
        self.show_log = a("Show log", w.show_log, [],
                          "Open the log file: every failure with its details")
        self.about = a("About BiMaCoSR Upscaler", w.show_about)
        self.about.setMenuRole(QAction.MenuRole.AboutRole)
        self.settings.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.menus = self._build_menus()
        self._toolbar_entries: dict[QAction, QAction] = {}  # action -> its toolbar entry
        self.scale_box = self._build_toolbar()
        runner.stateChanged.connect(self._runner_state)
        for signal in (w.model.rowsInserted, w.model.rowsRemoved, w.model.modelReset):
            signal.connect(self.update)

    def _build_menus(self) -> list[tuple[str, list[QAction]]]:
        menus = {
            "&File": [self.add_files, self.add_folder, self.paste, None,
                      self.open_output, None, self.settings, None, self.quit],
            "&Queue": [self.start, self.pause, self.cancel, self.cancel_all,
                       None, self.retry, self.remove, self.clear, None,
                       self.up, self.down],
            "&View": [*self.modes, None, self.interp, None, self.zoom_in,
                      self.zoom_out, self.fit, *self.zooms],
            "&Help": [self.shortcuts, self.show_log, None, self.about],
        }
        listed = []
        for title, actions in menus.items():
            menu = self._window.menuBar().addMenu(title)
            for action in actions:
                if action is None:
                    menu.addSeparator()
                else:
                    menu.addAction(action)
            listed.append((title, [x for x in actions if x is not None]))
        return listed

    def _build_toolbar(self) -> QComboBox:
        """The toolbar; returns its scale box (the window applies what is chosen there)."""
        tools = QToolBar("Main")
        tools.setObjectName("main-toolbar")
        tools.setMovable(False)
        tools.setIconSize(QSize(20, 20))
        tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tools.addAction(self.add_files)
        tools.addAction(self.add_folder)
        tools.addSeparator()
        for action in (self.pause, self.cancel, self.cancel_all, self.retry, self.remove):
            self._toolbar_entries[action] = tools.addWidget(self._tool_button(action, tools))
        tools.addSeparator()
        scale_box = QComboBox()
        scale_box.setAccessibleName("Scale")
        scale_box.setToolTip("Upscaling factor for the queued photos")
        for scale, label in option("scale").choices.items():
            scale_box.addItem(label, scale)
        scale_box.setCurrentIndex(scale_box.findData(self._window.prefs.scale))
        scale_label = QLabel(" Scale ")
        scale_label.setBuddy(scale_box)
        tools.addWidget(scale_label)
        tools.addWidget(scale_box)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tools.addWidget(spacer)
        self._toolbar_entries[self.open_output] = tools.addWidget(
            self._tool_button(self.open_output, tools))
        tools.addAction(self.settings)
        self._window.addToolBar(tools)
        return scale_box

    @staticmethod
    def _tool_button(action: QAction, tools: QToolBar) -> QToolButton:
        """A toolbar button for ``action`` that the toolbar can hide without hiding the action
        (its menu entry and shortcut stay)."""
        button = QToolButton(tools)
        button.setDefaultAction(action)
        button.setAutoRaise(True)
        button.setIconSize(tools.iconSize())
        button.setToolButtonStyle(tools.toolButtonStyle())
        return button

    def show_scale(self, scale: int) -> None:
        """Show ``scale`` in the scale box without reporting it as a new choice."""
        if self.scale_box.currentData() != scale:
            self.scale_box.blockSignals(True)
            self.scale_box.setCurrentIndex(self.scale_box.findData(scale))
            self.scale_box.blockSignals(False)

    def _runner_state(self) -> None:
        if not self._window.runner.pausing and self.pause.isChecked():
            self.pause.blockSignals(True)
            self.pause.setChecked(False)
            self.pause.blockSignals(False)
        self.update()

    def update(self, *_args) -> None:
        """Enable the actions that apply to the queue, the selection and the compare view now;
        show the queue commands in the toolbar while they apply."""
        w = self._window
        running, current = w.runner.running, w.runner.current
        queued = w.model.count(Status.QUEUED)
        selected = w.table.selected_rows() if w.table.selectionModel() else []
        self.start.setEnabled(queued > 0 and (not running or w.runner.pausing))
        self.pause.setEnabled(running)
        self.cancel.setEnabled(current is not None)
        self.cancel_all.setEnabled(current is not None or queued > 0)
        self.retry.setEnabled(w.model.count(Status.FAILED, Status.CANCELLED) > 0)
        self.remove.setEnabled(any(w.model.item(r).id != current for r in selected))
        self.clear.setEnabled(any(it.status.finished for it in w.model.items()))
        self.up.setEnabled(len(selected) == 1)
        self.down.setEnabled(len(selected) == 1)
        self.open_output.setEnabled(bool(w.progress.last_output or w.prefs.output_folder or (
            selected and w.model.item(selected[0]).output is not None)))
        shown = {self.pause: running, self.cancel: running, self.cancel_all: running,
                 self.retry: self.retry.isEnabled(), self.remove: w.model.rowCount() > 0,
                 self.open_output: self.open_output.isEnabled()}
        for action, visible in shown.items():
            self._toolbar_entries[action].setVisible(visible)
        has_images = w.compare.images is not None
        for action in (*self.modes, self.interp, self.zoom_in, self.zoom_out, self.fit,
                       *self.zooms):
            action.setEnabled(has_images)
