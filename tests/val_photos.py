"""Real photos for tests: centre crops of the validation photos, area-downscaled 4x (an LR
input whose 4x ground truth is the crop)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bimacosr_app.training.data import default_data_dir


def photo_lr(name: str, width: int, height: int) -> np.ndarray:
    """A val photo's centre crop, box-downscaled 4x to (height, width, 3) float32 in [0, 1];
    the test is skipped when the photo is not there."""
    path = default_data_dir("val") / name
    if not path.exists():
        pytest.skip(f"validation photo {path} not available")
    im = Image.open(path).convert("RGB")
    w, h = im.size
    left, top = (w - 4 * width) // 2, (h - 4 * height) // 2
    im = im.crop((left, top, left + 4 * width, top + 4 * height))
    im = im.resize((width, height), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.float32) / 255
