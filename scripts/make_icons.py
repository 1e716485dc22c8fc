"""Render resources/icons/bimacosr.svg into the PNG, ICO and ICNS files the app and the
installers use. Run after editing the SVG: ``python scripts/make_icons.py``.

Qt's SVG renderer (PySide6.QtSvg) rasterises each size from the vector source, so small
sizes stay crisp; Pillow writes the multi-size .ico and .icns containers.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QBuffer, QIODevice, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SVG = ICONS / "bimacosr.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512)


def render(renderer: QSvgRenderer, size: int) -> Image.Image:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGBA")


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (Qt needs it)
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        print(f"cannot read {SVG}", file=sys.stderr)
        return 1
    images = {size: render(renderer, size) for size in PNG_SIZES}
    for size, image in images.items():
        image.save(ICONS / f"bimacosr-{size}.png")
    images[256].save(ICONS / "bimacosr.ico", sizes=[(s, s) for s in ICO_SIZES])
    images[512].save(ICONS / "bimacosr.icns", sizes=[(s, s) for s in ICNS_SIZES])
    print(f"wrote {len(images)} PNGs, bimacosr.ico and bimacosr.icns to {ICONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
