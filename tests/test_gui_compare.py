"""Compare view: repaint regions, zoom and nearest-neighbour, shared view state, modes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QRect, QRectF, Qt

from bimacosr_app.gui.canvas import build_pyramid
from bimacosr_app.gui.compare_view import CompareMode, CompareView
from bimacosr_app.gui.imaging import qimage_from_rgb, upsample_region
from bimacosr_app.gui.loaders import CompareImages
from bimacosr_app.jobs import QualityReport


class PaintSpy(QObject):
    """Records the bounding rect of every paint event of a widget."""

    def __init__(self, widget) -> None:
        super().__init__()
        self.rects: list[QRect] = []
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.rects.append(event.region().boundingRect())
        return False


def make_images(w: int = 40, h: int = 30, scale: int = 4, seed: int = 0) -> CompareImages:
    rng = np.random.default_rng(seed)
    before = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    after = cv2.resize(before, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    down = before.copy()
    down[: h // 2, : w // 2] = np.clip(before[: h // 2, : w // 2].astype(int) + 5, 0, 255)
    report = QualityReport(psnr=40.0, ssim=0.99, colour_shift=(0.0, 0.0, 0.0),
                           seam_score=1.0, cropped=False, warnings=())
    after_image = qimage_from_rgb(after)
    return CompareImages(item_id="x", before=before, before_levels=build_pyramid(before),
                         after_levels=build_pyramid(after, after_image), down=down,
                         report=report)


@pytest.fixture
def view(qtbot):
    v = CompareView()
    qtbot.addWidget(v)
    v.resize(700, 500)
    v.show()
    qtbot.waitExposed(v)
    v.set_images(make_images())
    qtbot.wait(20)
    return v


def test_divider_drag_repaints_only_the_swept_strip(qtbot, view):
    canvas = view.canvas
    canvas.repaint()  # flush pending full repaints
    spy = PaintSpy(canvas)
    old_x = canvas.divider_x()
    y = canvas.height() // 2
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(old_x, y))
    new_x = old_x - 120
    qtbot.mouseMove(canvas, QPoint(new_x, y))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(new_x, y))
    qtbot.waitUntil(lambda: bool(spy.rects))
    assert canvas.divider == pytest.approx(new_x / canvas.width(), abs=0.01)
    dirty = spy.rects[0]
    for r in spy.rects[1:]:
        dirty = dirty.united(r)
    # The strip between the old and the new divider, plus the handle, not the whole canvas.
    assert dirty.left() >= new_x - 20 and dirty.right() <= old_x + 20
    assert dirty.width() < canvas.width() / 2


def test_zoom_repaints_everything_and_goes_nearest(qtbot, view):
    canvas = view.canvas
    canvas.repaint()
    spy = PaintSpy(canvas)
    view.set_zoom(8.0)
    qtbot.waitUntil(lambda: bool(spy.rects))
    assert spy.rects[-1] == canvas.rect()
    assert view.zoom_button.text() == "800%"
    # Zoomed in: nearest-neighbour, so one output pixel is an 8x8 block of equal pixels.
    plan = canvas.draw_plan(canvas.base, QRectF(canvas.rect()))
    assert plan is not None and plan[3] is False
    canvas.set_divider(0.0)  # all "after"
    image = canvas.grab().toImage()
    cx, cy = canvas.width() // 2, canvas.height() // 2
    target = canvas.to_widget(QPointF(int(canvas.to_image(QPointF(cx, cy)).x()),
                                      int(canvas.to_image(QPointF(cx, cy)).y())))
    x0, y0 = round(target.x()) + 1, round(target.y()) + 1
    block = {image.pixel(x0 + dx, y0 + dy) for dx in range(6) for dy in range(6)}
    assert len(block) == 1


def test_large_image_draws_only_the_visible_part(qtbot, view):
    rgb = np.zeros((3000, 4000, 3), np.uint8)
    images = make_images(1000, 750)
    images.after_levels = build_pyramid(rgb)
    view.set_images(images)
    canvas = view.canvas
    # Fit: a coarser pyramid level, smooth filtering.
    image, source, _target, smooth = canvas.draw_plan(canvas.base, QRectF(canvas.rect()))
    assert image.width() < 4000 and smooth
    view.set_zoom(4.0)
    image, source, _target, smooth = canvas.draw_plan(canvas.base, QRectF(canvas.rect()))
    assert image.width() == 4000 and not smooth
    assert source.width() <= canvas.width() / 4 + 2 and source.height() <= canvas.height() / 4 + 2
    # A partial repaint (the divider strip) draws even less.
    strip = QRectF(100, 0, 30, canvas.height())
    _image, source, _t, _s = canvas.draw_plan(canvas.base, strip)
    assert source.width() <= 30 / 4 + 2


def test_side_by_side_views_share_zoom_and_pan(qtbot, view):
    view.set_mode(CompareMode.SIDE_BY_SIDE)
    qtbot.wait(20)
    left, right = view.left, view.right
    assert left.size() == right.size()
    # Zoom with the wheel over the left view, pan by dragging the right one.
    pos = QPointF(left.width() * 0.3, left.height() * 0.6)
    qtbot.wait(1)
    view.state.zoom_to(3.0, left.to_image(pos), pos - QPointF(left.width() / 2,
                                                               left.height() / 2))
    qtbot.mousePress(right, Qt.MouseButton.LeftButton, pos=QPoint(200, 200))
    qtbot.mouseMove(right, QPoint(150, 170))
    qtbot.mouseRelease(right, Qt.MouseButton.LeftButton, pos=QPoint(150, 170))
    assert view.zoom() == pytest.approx(3.0)
    for p in (QPointF(0, 0), QPointF(123, 45), QPointF(left.width(), left.height())):
        a, b = left.to_image(p), right.to_image(p)
        assert (a.x(), a.y()) == pytest.approx((b.x(), b.y()))
    assert left.base.label.startswith("Original") and right.base.label == "Upscaled"


def test_wheel_zooms_about_the_pointer(qtbot, view):
    canvas = view.canvas
    view.set_zoom(2.0)
    pos = QPointF(150, 120)
    before = canvas.to_image(pos)
    canvas.zoom_at(5.0, pos)
    after = canvas.to_image(pos)
    assert (after.x(), after.y()) == pytest.approx((before.x(), before.y()))


def test_flicker_shows_the_original_while_space_is_held(qtbot, view):
    view.set_mode(CompareMode.FLICKER)
    canvas = view.canvas
    assert canvas.base.label == "Upscaled"
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    assert canvas.base.label.startswith("Original")
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.base.label == "Upscaled"


def test_difference_map_is_amplified_downscaled_difference(qtbot, view):
    view.set_mode(CompareMode.DIFFERENCE)
    view.set_gain(16)
    layer = view.canvas.base
    assert layer.label == "Difference ×16"
    image = layer.levels[0]
    assert (image.width(), image.height()) == (40, 30)
    changed, unchanged = image.pixelColor(2, 2), image.pixelColor(30, 25)
    assert changed.red() == pytest.approx(80, abs=1)  # |5| / 255 * 16 -> 80 levels
    assert unchanged.red() == 0


def test_interpolation_switch_and_bicubic_region(qtbot, view):
    view.set_interpolation("bicubic")
    assert view.canvas.overlay.label == "Original · bicubic"
    view.set_zoom(4.0)
    plan = view.canvas.draw_plan(view.canvas.overlay, QRectF(view.canvas.rect()))
    assert plan is not None and plan[3] is False
    rng = np.random.default_rng(1)
    src = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    full = cv2.resize(src, (240, 200), interpolation=cv2.INTER_CUBIC)
    part = upsample_region(src, 10, 7, 33, 29, 4)
    assert np.array_equal(part, full[28:116, 40:132])


def test_empty_view_shows_a_hint(qtbot):
    v = CompareView()
    qtbot.addWidget(v)
    assert v.canvas.base is None and "Select a finished item" in v.canvas.message
    assert not v.zoom_button.isVisibleTo(v)
