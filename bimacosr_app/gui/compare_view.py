"""The compare view: before/after slider, side-by-side, flicker and difference modes.

All canvases share one :class:`~.canvas.ViewState`, so switching modes keeps the zoom and
position, and the two side-by-side views always show the same region. The "before" image is
the original at output size, upsampled with nearest-neighbour or bicubic (switchable). The
difference map is ``gain x |output area-downscaled to the input size - input|``, shown at
output size.
"""

from __future__ import annotations

import enum

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .canvas import Canvas, Layer, ViewState
from .imaging import difference_map, qimage_from_rgb
from .loaders import CompareImages

__all__ = ["CompareMode", "CompareView"]

ZOOM_PRESETS = (1.0, 2.0, 4.0, 8.0)
ZOOM_STEP = 2 ** 0.5
DIFF_GAINS = (4, 8, 16, 32)


class CompareMode(str, enum.Enum):
    SLIDER = "slider"
    SIDE_BY_SIDE = "side-by-side"
    FLICKER = "flicker"
    DIFFERENCE = "difference"

    @property
    def label(self) -> str:
        return {"slider": "Slider", "side-by-side": "Side by side", "flicker": "Flicker",
                "difference": "Difference"}[self.value]


class CompareView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = ViewState(self)
        self.state.changed.connect(self._state_changed)
        self.images: CompareImages | None = None
        self._mode = CompareMode.SLIDER
        self._bicubic = False
        self._gain = 8
        self._showing_original = False
        self._before: Layer | None = None
        self._after: Layer | None = None
        self._diff: Layer | None = None

        self.canvas = Canvas(self.state)
        self.left = Canvas(self.state)
        self.right = Canvas(self.state)
        for canvas, name in ((self.canvas, "Comparison"), (self.left, "Original"),
                             (self.right, "Upscaled result")):
            canvas.setAccessibleName(name)
            canvas.installEventFilter(self)
        side = QWidget()
        side_layout = QHBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.setSpacing(2)
        side_layout.addWidget(self.left, 1)
        side_layout.addWidget(self.right, 1)
        self._stack = QStackedWidget()
        self._stack.addWidget(self.canvas)
        self._stack.addWidget(side)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self._build_toolbar())
        layout.addWidget(self._stack, 1)
        self.setFocusProxy(self.canvas)
        self.set_images(None)

    # -- toolbar -----------------------------------------------------------------------------

    def _build_toolbar(self) -> QWidget:
        bar = QWidget()
        row = QHBoxLayout(bar)
        row.setContentsMargins(6, 4, 6, 0)
        row.setSpacing(4)
        self._mode_buttons = QButtonGroup(self)
        for i, mode in enumerate(CompareMode):
            button = QToolButton(text=mode.label, checkable=True, autoRaise=True)
            button.setToolTip(f"{mode.label} comparison ({i + 1})")
            button.setAccessibleName(f"{mode.label} mode")
            button.setChecked(mode is self._mode)
            self._mode_buttons.addButton(button, i)
            row.addWidget(button)
        self._mode_buttons.idClicked.connect(lambda i: self.set_mode(list(CompareMode)[i]))

        row.addSpacing(12)
        self._interp_label = QLabel("Original:")
        self.interpolation = QComboBox()
        self.interpolation.addItems(["Nearest", "Bicubic"])
        self.interpolation.setToolTip("How the original is enlarged to the output size (B)")
        self.interpolation.setAccessibleName("Original upsampling")
        self.interpolation.currentIndexChanged.connect(
            lambda i: self.set_interpolation("bicubic" if i else "nearest"))
        self._interp_label.setBuddy(self.interpolation)
        self._gain_label = QLabel("Gain:")
        self.gain = QComboBox()
        self.gain.addItems([f"×{g}" for g in DIFF_GAINS])
        self.gain.setCurrentIndex(DIFF_GAINS.index(self._gain))
        self.gain.setToolTip("Amplification of the difference map")
        self.gain.setAccessibleName("Difference gain")
        self.gain.currentIndexChanged.connect(lambda i: self.set_gain(DIFF_GAINS[i]))
        self._gain_label.setBuddy(self.gain)
        self._hold = QToolButton(text="Hold for original", autoRaise=False)
        self._hold.setToolTip("Press and hold (or hold Space) to show the original")
        self._hold.setAccessibleName("Show original while pressed")
        self._hold.pressed.connect(lambda: self.show_original(True))
        self._hold.released.connect(lambda: self.show_original(False))
        for w in (self._interp_label, self.interpolation, self._gain_label, self.gain,
                  self._hold):
            row.addWidget(w)
        row.addStretch(1)

        out = QToolButton(text="−", autoRaise=True)
        out.setToolTip(f"Zoom out ({QKeySequence(QKeySequence.StandardKey.ZoomOut).toString()})")
        out.setAccessibleName("Zoom out")
        out.clicked.connect(self.zoom_out)
        self.zoom_button = QToolButton(autoRaise=True)
        self.zoom_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.zoom_button.setToolTip("Zoom level")
        self.zoom_button.setAccessibleName("Zoom level")
        self.zoom_button.setMinimumWidth(64)
        menu = QMenu(self.zoom_button)
        menu.addAction("Fit", self.fit)
        for z in ZOOM_PRESETS:
            menu.addAction(f"{z:.0%}", lambda z=z: self.set_zoom(z))
        self.zoom_button.setMenu(menu)
        zin = QToolButton(text="+", autoRaise=True)
        zin.setToolTip(f"Zoom in ({QKeySequence(QKeySequence.StandardKey.ZoomIn).toString()})")
        zin.setAccessibleName("Zoom in")
        zin.clicked.connect(self.zoom_in)
        fit = QToolButton(text="Fit", autoRaise=True)
        fit.setToolTip("Fit the image in the view (Ctrl+0)")
        fit.setAccessibleName("Fit to view")
        fit.clicked.connect(self.fit)
        for w in (out, self.zoom_button, zin, fit):
            row.addWidget(w)
        self._zoom_widgets = (out, self.zoom_button, zin, fit)
        bar.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        return bar

    def _update_toolbar(self) -> None:
        has = self.images is not None
        mode = self._mode
        shows_original = mode is not CompareMode.DIFFERENCE
        self._interp_label.setVisible(shows_original)
        self.interpolation.setVisible(shows_original)
        self._gain_label.setVisible(mode is CompareMode.DIFFERENCE)
        self.gain.setVisible(mode is CompareMode.DIFFERENCE)
        self._hold.setVisible(mode is CompareMode.FLICKER)
        for w in (*self._mode_buttons.buttons(), self._interp_label, self.interpolation,
                  self._gain_label, self.gain, self._hold):
            w.setEnabled(has)
        for w in self._zoom_widgets:
            w.setVisible(has)
        self.zoom_button.setText(f"{self.state.zoom:.0%}")

    # -- content -----------------------------------------------------------------------------

    def set_images(self, images: CompareImages | None, message: str = "") -> None:
        """Show ``images``, or ``message`` when None ("Loading…", an error, the empty hint)."""
        self.images = images
        self._showing_original = False
        if images is None:
            self._before = self._after = self._diff = None
            for canvas in (self.canvas, self.left, self.right):
                canvas.set_layers(None)
                canvas.set_message(message or "Select a finished item to compare the original "
                                              "with the upscaled result.")
        else:
            out = images.after_levels[0]
            factor = out.width() / images.before.shape[1]
            self._after = Layer(images.after_levels, 1.0, "Upscaled")
            self._before = Layer(images.before_levels, factor, "", pixels=images.before)
            self._diff = None
            self.state.set_image_size(out.size())
        self._apply()

    def _diff_layer(self) -> Layer:
        label = f"Difference ×{self._gain}"
        if self._diff is None or self._diff.label != label:  # the label names the gain
            diff = difference_map(self.images.down, self.images.before, self._gain)
            self._diff = Layer([qimage_from_rgb(diff)], self._before.factor, label)
        return self._diff

    def _viewport(self) -> Canvas:
        """The canvas whose size fitting uses (the left one in side-by-side)."""
        return self.left if self._mode is CompareMode.SIDE_BY_SIDE else self.canvas

    def _apply(self) -> None:
        """Give the canvases the layers of the current mode."""
        self._stack.setCurrentIndex(1 if self._mode is CompareMode.SIDE_BY_SIDE else 0)
        self.state.fit_into(self._viewport().size())
        if self.images is not None:
            before = self._before
            before.bicubic = self._bicubic
            before.label = f"Original · {'bicubic' if self._bicubic else 'nearest'}"
            if self._mode is CompareMode.SLIDER:
                self.canvas.set_layers(self._after, before)
            elif self._mode is CompareMode.SIDE_BY_SIDE:
                self.left.set_layers(before)
                self.right.set_layers(self._after)
            elif self._mode is CompareMode.FLICKER:
                self.canvas.set_layers(before if self._showing_original else self._after)
            else:
                self.canvas.set_layers(self._diff_layer())
        self._update_toolbar()

    # -- public controls ---------------------------------------------------------------------

    def mode(self) -> CompareMode:
        return self._mode

    def set_mode(self, mode: CompareMode | str) -> None:
        mode = CompareMode(mode)
        self._showing_original = False
        if mode is not self._mode:
            self._mode = mode
            self._mode_buttons.button(list(CompareMode).index(mode)).setChecked(True)
            self._apply()

    def interpolation_name(self) -> str:
        return "bicubic" if self._bicubic else "nearest"

    def set_interpolation(self, name: str) -> None:
        self._bicubic = name == "bicubic"
        self.interpolation.setCurrentIndex(int(self._bicubic))
        self._apply()

    def set_gain(self, gain: int) -> None:
        self._gain = gain
        self.gain.setCurrentIndex(DIFF_GAINS.index(gain))
        self._apply()

    def show_original(self, on: bool) -> None:
        """Flicker mode: show the original while ``on``."""
        if self._mode is CompareMode.FLICKER and on != self._showing_original:
            self._showing_original = on
            self._apply()

    def zoom(self) -> float:
        return self.state.zoom

    def set_zoom(self, zoom: float) -> None:
        if self.images is not None:
            self.state.zoom_to(zoom)

    def zoom_in(self) -> None:
        self.set_zoom(self.state.zoom * ZOOM_STEP)

    def zoom_out(self) -> None:
        self.set_zoom(self.state.zoom / ZOOM_STEP)

    def fit(self) -> None:
        if self.images is not None:
            self.state.set_fit()
            self.state.fit_into(self._viewport().size())

    # -- events ------------------------------------------------------------------------------

    def _state_changed(self) -> None:
        self._update_toolbar()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if (kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease)
                and event.key() == Qt.Key.Key_Space and self._mode is CompareMode.FLICKER):
            if not event.isAutoRepeat():
                self.show_original(kind == QEvent.Type.KeyPress)
            return True
        return super().eventFilter(watched, event)
