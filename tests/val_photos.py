"""The validation photos, found in one way for every test that reads them.

They live beside the checkout in ``../shared/data/val`` (``default_data_dir("val")``, which
falls back to ``shared/data/val`` inside the checkout on the training machine). A test that
needs them calls one of the helpers below: when they are missing it fails with a message that
names the expected folder if the environment variable ``CI`` is set (CI must run every test),
and is skipped with that message otherwise (a checkout without the data).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bimacosr_app.training.data import default_data_dir, list_photos


def in_ci() -> bool:
    """Whether the ``CI`` environment variable is set (to anything but "", "0" or "false")."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def missing(detail: str) -> None:
    """Fail (in CI) or skip (elsewhere) the current test, naming the expected folder."""
    message = (f"validation photos missing ({detail}): expected in {default_data_dir('val')} "
               "(../shared/data/val beside the checkout)")
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def val_dir() -> Path:
    """The validation photo folder (it holds at least one photo)."""
    folder = default_data_dir("val")
    if not folder.is_dir() or not list_photos(folder):
        missing("no such folder" if not folder.is_dir() else "no photo in the folder")
    return folder


def val_photos() -> list[Path]:
    """The validation photos, sorted by name (at least one)."""
    return list_photos(val_dir())


def val_photo(name: str) -> Path:
    """One validation photo by file name."""
    path = val_dir() / name
    if not path.is_file():
        missing(f"{name} is not there")
    return path


def photo_lr(name: str, width: int, height: int) -> np.ndarray:
    """A val photo's centre crop, box-downscaled 4x to (height, width, 3) float32 in [0, 1]
    (an LR input whose 4x ground truth is the crop)."""
    with Image.open(val_photo(name)) as im:
        im = im.convert("RGB")
    w, h = im.size
    left, top = (w - 4 * width) // 2, (h - 4 * height) // 2
    im = im.crop((left, top, left + 4 * width, top + 4 * height))
    im = im.resize((width, height), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.float32) / 255
