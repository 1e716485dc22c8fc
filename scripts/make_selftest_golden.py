#!/usr/bin/env python3
"""Regenerate the self-test golden (resources/selftest/) from the shipped model.

Run after replacing resources/models/bimacosr-x4.safetensors, then commit
resources/selftest/golden.json and output.npz (input.png stays):

    .venv/bin/python scripts/make_selftest_golden.py [--checkpoint PATH]

The golden records the model's content SHA-256; `bimacosr --self-test` refuses to compare
against a golden made for another model. See bimacosr_app/selftest.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bimacosr_app.selftest import main

if __name__ == "__main__":
    sys.exit(main(["--regenerate", *sys.argv[1:]]))
