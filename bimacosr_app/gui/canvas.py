"""The zoomable image canvas of the compare view, and the view state canvases share.

Coordinates: *image* coordinates are output pixels; a canvas maps them to its own pixels by
``widget = (image - state.center) * state.zoom + widget_centre``. Canvases given the same
:class:`ViewState` (the two halves of side-by-side) therefore show exactly the same region.

Painting never rescales a whole image: each :class:`Layer` is a pyramid of halvings, and a
paint event draws, from the level nearest above the zoom, only the source rectangle behind
the exposed region (``QPainter.drawImage(target, image, sourceRect)``), with smooth filtering
only when zoomed out and nearest-neighbour otherwise. A "bicubic" layer (the original shown
at output size) upsamples just the visible part, once per view change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QCursor,
    QFont,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import QGestureEvent, QPinchGesture, QWidget

from .imaging import downscale_to, qimage_from_rgb, upsample_region

__all__ = ["Canvas", "Layer", "ViewState", "build_pyramid"]

ZOOM_MIN = 1 / 64
ZOOM_MAX = 32.0
WHEEL_STEP = 1.25  # zoom factor per wheel notch
DIVIDER_GRAB = 10  # pixels either side of the divider that grab it
HANDLE_RADIUS = 14
PYRAMID_MIN_SIDE = 512  # stop halving below this size
BACKGROUND = QColor(48, 49, 52)
#: (image, source rect in it, target rect in the widget, smooth filtering)
DrawPlan = tuple[QImage, QRectF, QRectF, bool]
MESSAGE_COLOR = QColor(190, 192, 197)


@dataclass
class Layer:
    """One image shown over the whole output area.

    ``levels[k]`` is the image halved ``k`` times; ``factor`` is output pixels per pixel of
    ``levels[0]`` (1 for the result, the scale for the original). ``pixels`` (uint8 of level 0)
    is needed when ``bicubic`` is set: then, zoomed in, the visible part is upsampled bicubically
    instead of drawn with nearest-neighbour.
    """

    levels: list[QImage]
    factor: float
    label: str
    bicubic: bool = False
    pixels: np.ndarray | None = None
    _cache: tuple[tuple[int, int, int, int], QImage] | None = field(default=None, repr=False)

    def bicubic_region(self, x0: int, y0: int, x1: int, y1: int) -> QImage:
        key = (x0, y0, x1, y1)
        if self._cache is None or self._cache[0] != key:
            up = upsample_region(self.pixels, x0, y0, x1, y1, self.factor)
            self._cache = (key, qimage_from_rgb(up))
        return self._cache[1]


def build_pyramid(rgb: np.ndarray, image: QImage | None = None) -> list[QImage]:
    """``[full, 1/2, 1/4, ...]`` down to about :data:`PYRAMID_MIN_SIDE` (area-averaged)."""
    levels = [image if image is not None else qimage_from_rgb(rgb)]
    current = rgb
    while max(current.shape[:2]) > 2 * PYRAMID_MIN_SIDE:
        h, w = current.shape[:2]
        current = downscale_to(current, max(1, w // 2), max(1, h // 2))
        levels.append(qimage_from_rgb(current))
    return levels


class ViewState(QObject):
    """Zoom (screen pixels per output pixel) and centre (output coordinates) of a view.

    In *fit* mode the zoom follows the viewport size (:meth:`fit_into`).
    """

    changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.zoom = 1.0
        self.center = QPointF(0.0, 0.0)
        self.fit = True
        self.image_size = QSize()

    def set_image_size(self, size: QSize) -> None:
        """A new image: keep the view if the size is unchanged, else fit it."""
        if size != self.image_size:
            self.image_size = QSize(size)
            self.fit = True
            self.center = QPointF(size.width() / 2, size.height() / 2)
            self.changed.emit()

    def fit_into(self, viewport: QSize) -> None:
        """In fit mode, set the zoom that shows the whole image in ``viewport``."""
        if not self.fit or self.image_size.isEmpty() or viewport.isEmpty():
            return
        zoom = min(viewport.width() / self.image_size.width(),
                   viewport.height() / self.image_size.height())
        center = QPointF(self.image_size.width() / 2, self.image_size.height() / 2)
        if not math.isclose(zoom, self.zoom) or center != self.center:
            self.zoom, self.center = zoom, center
            self.changed.emit()

    def set_fit(self) -> None:
        self.fit = True
        self.changed.emit()

    def zoom_to(self, zoom: float, anchor: QPointF | None = None,
                offset: QPointF | None = None) -> None:
        """Zoom so that image point ``anchor`` stays ``offset`` screen pixels from the view
        centre (default: zoom about the centre)."""
        zoom = min(ZOOM_MAX, max(ZOOM_MIN, zoom))
        if anchor is not None and offset is not None:
            self.center = QPointF(anchor.x() - offset.x() / zoom, anchor.y() - offset.y() / zoom)
        self.zoom, self.fit = zoom, False
        self._clamp()
        self.changed.emit()

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the image by (dx, dy) screen pixels."""
        self.center = QPointF(self.center.x() - dx / self.zoom, self.center.y() - dy / self.zoom)
        self.fit = False
        self._clamp()
        self.changed.emit()

    def _clamp(self) -> None:
        w, h = self.image_size.width(), self.image_size.height()
        self.center = QPointF(min(max(self.center.x(), 0.0), float(w)),
                              min(max(self.center.y(), 0.0), float(h)))



class Canvas(QWidget):
    """Shows a base layer, optionally with an overlay left of a draggable divider.

    Wheel, pinch and trackpad zoom about the pointer; dragging pans (or moves the divider when
    grabbed near it); arrow keys pan.
    """

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.base: Layer | None = None
        self.overlay: Layer | None = None
        self.message = ""
        self.divider = 0.5
        self._drag: str | None = None  # "pan" | "divider"
        self._last = QPoint()
        state.changed.connect(self._state_changed)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(160, 120)
        self.grabGesture(Qt.GestureType.PinchGesture)

    # -- content ---------------------------------------------------------------------------

    def set_layers(self, base: Layer | None, overlay: Layer | None = None) -> None:
        self.base, self.overlay = base, overlay
        self.update()

    def set_message(self, message: str) -> None:
        """Text shown when there is no image (empty, loading, error)."""
        self.message = message
        self.update()

    def set_divider(self, fraction: float) -> None:
        """Move the divider, repainting only the strip it swept."""
        fraction = min(1.0, max(0.0, fraction))
        if fraction == self.divider:
            return
        old_x, self.divider = self.divider_x(), fraction
        new_x = self.divider_x()
        pad = HANDLE_RADIUS + 3
        self.update(QRect(min(old_x, new_x) - pad, 0, abs(new_x - old_x) + 2 * pad,
                          self.height()))

    def divider_x(self) -> int:
        return round(self.divider * self.width())

    # -- coordinates -----------------------------------------------------------------------

    def _widget_center(self) -> QPointF:
        return QPointF(self.width() / 2, self.height() / 2)

    def to_image(self, p: QPointF) -> QPointF:
        c, z = self._widget_center(), self.state.zoom
        return QPointF((p.x() - c.x()) / z + self.state.center.x(),
                       (p.y() - c.y()) / z + self.state.center.y())

    def to_widget(self, q: QPointF) -> QPointF:
        c, z = self._widget_center(), self.state.zoom
        return QPointF((q.x() - self.state.center.x()) * z + c.x(),
                       (q.y() - self.state.center.y()) * z + c.y())

    def zoom_at(self, zoom: float, pos: QPointF) -> None:
        """Zoom keeping the image point under widget position ``pos`` in place."""
        self.state.zoom_to(zoom, self.to_image(pos), pos - self._widget_center())

    # -- events ----------------------------------------------------------------------------

    def _state_changed(self) -> None:
        self.update()

    def resizeEvent(self, event) -> None:
        if self.isVisible():  # hidden canvases (other modes) must not set the shared zoom
            self.state.fit_into(self.size())
        super().resizeEvent(event)

    def focusInEvent(self, event) -> None:  # no focus decoration: no full repaint
        event.accept()

    def focusOutEvent(self, event) -> None:
        event.accept()

    def _near_divider(self, x: float) -> bool:
        return self.overlay is not None and abs(x - self.divider_x()) <= DIVIDER_GRAB

    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self.base is None:
            return super().mousePressEvent(event)
        self._drag = "divider" if self._near_divider(event.position().x()) else "pan"
        self._last = event.position().toPoint()
        if self._drag == "pan":
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        pos = event.position().toPoint()
        if self._drag == "divider":
            self.set_divider(pos.x() / max(1, self.width()))
        elif self._drag == "pan":
            delta = pos - self._last
            self.state.pan_by(delta.x(), delta.y())
        elif self.base is None:
            self.unsetCursor()
        else:
            near = self._near_divider(pos.x())
            self.setCursor(QCursor(Qt.CursorShape.SplitHCursor if near
                                   else Qt.CursorShape.OpenHandCursor))
        self._last = pos

    def mouseReleaseEvent(self, event) -> None:
        self._drag = None
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        super().mouseReleaseEvent(event)

    def wheelEvent(self, event) -> None:
        if self.base is None:
            return
        notches = event.angleDelta().y() / 120
        if notches:
            self.zoom_at(self.state.zoom * WHEEL_STEP ** notches, event.position())
        event.accept()

    def event(self, event) -> bool:
        if (event.type() == QEvent.Type.NativeGesture and self.base is not None
                and event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture):
            self.zoom_at(self.state.zoom * (1.0 + event.value()), event.position())
            return True
        if event.type() == QEvent.Type.Gesture and self.base is not None:
            pinch = event.gesture(Qt.GestureType.PinchGesture)
            if isinstance(event, QGestureEvent) and isinstance(pinch, QPinchGesture):
                center = self.mapFromGlobal(pinch.centerPoint().toPoint())
                self.zoom_at(self.state.zoom * pinch.scaleFactor(), QPointF(center))
                return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        step = 0.1 * min(self.width(), self.height())
        moves = {Qt.Key.Key_Left: (step, 0), Qt.Key.Key_Right: (-step, 0),
                 Qt.Key.Key_Up: (0, step), Qt.Key.Key_Down: (0, -step)}
        if self.base is not None and event.key() in moves:
            self.state.pan_by(*moves[event.key()])
            return
        super().keyPressEvent(event)

    # -- painting --------------------------------------------------------------------------

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        exposed = event.rect()
        painter.fillRect(exposed, self._background())
        if self.base is None:
            self._paint_message(painter)
            return
        self._paint_layer(painter, self.base, QRectF(exposed))
        if self.overlay is not None:
            left = QRectF(exposed).intersected(QRectF(0, 0, self.divider_x(), self.height()))
            if not left.isEmpty():
                painter.save()
                painter.setClipRect(left)
                painter.fillRect(left, self._background())
                self._paint_layer(painter, self.overlay, left)
                painter.restore()
            self._paint_divider(painter)
            self._paint_label(painter, self.overlay.label, left_side=True)
        self._paint_label(painter, self.base.label, left_side=self.overlay is None)

    def _background(self) -> QColor:
        """A neutral dark surround in every theme, as photo tools use: colours are judged
        against grey, not against the window's palette."""
        return BACKGROUND

    def draw_plan(self, layer: Layer, exposed: QRectF) -> DrawPlan | None:
        """What painting ``layer`` over the widget region ``exposed`` draws: (image,
        source rect in it, target rect in the widget, smooth filtering), or None if nothing
        of the layer is visible there. Only the visible source rectangle is ever drawn."""
        size, zoom = self.state.image_size, self.state.zoom
        visible = QRectF(self.to_image(exposed.topLeft()), self.to_image(exposed.bottomRight()))
        visible = visible.intersected(QRectF(0, 0, size.width(), size.height()))
        if visible.isEmpty():
            return None
        if layer.bicubic and layer.pixels is not None and zoom * layer.factor > 1 and zoom >= 1:
            # Zoomed in on the original: bicubic upsampling of what the whole widget shows
            # (cached, so divider moves and partial repaints reuse it), drawn unfiltered.
            visible = QRectF(self.to_image(QPointF(0, 0)),
                             self.to_image(QPointF(self.width(), self.height())))
            visible = visible.intersected(QRectF(0, 0, size.width(), size.height()))
            f = layer.factor
            h, w = layer.pixels.shape[:2]
            x0, y0, x1, y1 = self._texels(visible, f, w, h)
            if x1 <= x0 or y1 <= y0:
                return None
            image = layer.bicubic_region(x0, y0, x1, y1)
            return (image, QRectF(image.rect()), self._target(x0, y0, x1, y1, f), False)
        # Pyramid level k has 2**k level-0 pixels per texel: take the coarsest level that
        # still has at least one texel per screen pixel.
        level = 0
        while (level + 1 < len(layer.levels)
               and zoom * layer.factor * 2 ** (level + 1) <= 1.0):
            level += 1
        image = layer.levels[level]
        f = layer.factor * layer.levels[0].width() / image.width()  # output px per texel
        x0, y0, x1, y1 = self._texels(visible, f, image.width(), image.height())
        if x1 <= x0 or y1 <= y0:
            return None
        return (image, QRectF(x0, y0, x1 - x0, y1 - y0), self._target(x0, y0, x1, y1, f),
                zoom * f < 1.0)

    @staticmethod
    def _texels(visible: QRectF, f: float, w: int, h: int) -> tuple[int, int, int, int]:
        """Whole texels (of an image with ``f`` output pixels per texel) covering
        ``visible`` (output coordinates), clipped to the image."""
        return (max(0, math.floor(visible.left() / f)), max(0, math.floor(visible.top() / f)),
                min(w, math.ceil(visible.right() / f)), min(h, math.ceil(visible.bottom() / f)))

    def _target(self, x0: int, y0: int, x1: int, y1: int, f: float) -> QRectF:
        return QRectF(self.to_widget(QPointF(x0 * f, y0 * f)),
                      self.to_widget(QPointF(x1 * f, y1 * f)))

    def _paint_layer(self, painter: QPainter, layer: Layer, exposed: QRectF) -> None:
        plan = self.draw_plan(layer, exposed)
        if plan is not None:
            image, source, target, smooth = plan
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
            painter.drawImage(target, image, source)

    def _paint_divider(self, painter: QPainter) -> None:
        x, cy = self.divider_x(), self.height() / 2
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(0, 0, 0, 110), 4))
        painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        painter.setPen(QPen(QColor("white"), 2))
        painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        painter.setPen(QPen(QColor(0, 0, 0, 140), 1.5))
        painter.setBrush(QColor(255, 255, 255, 235))
        painter.drawEllipse(QPointF(x, cy), HANDLE_RADIUS, HANDLE_RADIUS)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(40, 40, 40))
        for sign in (-1, 1):
            tip = x + sign * 9
            painter.drawPolygon(QPolygonF([QPointF(tip, cy), QPointF(tip - sign * 5, cy - 5),
                                           QPointF(tip - sign * 5, cy + 5)]))

    def _paint_label(self, painter: QPainter, text: str, left_side: bool) -> None:
        if not text:
            return
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 0.95)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        w, h = metrics.horizontalAdvance(text) + 16, metrics.height() + 8
        x = 10 if left_side else self.width() - w - 10
        rect = QRectF(x, 10, w, h)
        path = QPainterPath()
        path.addRoundedRect(rect, h / 2, h / 2)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.fillPath(path, QColor(0, 0, 0, 150))
        painter.setPen(QColor("white"))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_message(self, painter: QPainter) -> None:
        if not self.message:
            return
        painter.setPen(MESSAGE_COLOR)
        rect = self.rect().adjusted(24, 24, -24, -24)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                         self.message)
