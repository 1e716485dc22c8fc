"""Shared test setup: Qt runs headless (offscreen platform) unless told otherwise."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
