"""Rewrite a packed checkpoint of format version 1 as version 2: the same tensors (the data
section byte for byte) and metadata values, with ``format_version`` "2" and the version 2
content hash (metadata and tensors, bimacosr_app/checkpoint/format.py).

    python scripts/upgrade_checkpoint.py resources/models/bimacosr-x4.safetensors

The file is validated as version 1 first and written by the packed writer, deterministically
and atomically (in place unless ``--out`` names another file); the new file is validated
again. Prints the old and new content hashes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safetensors import safe_open  # noqa: E402

from bimacosr_app.checkpoint import load_packed  # noqa: E402
from bimacosr_app.checkpoint.export import _safetensors_bytes, _write_safetensors  # noqa: E402
from bimacosr_app.checkpoint.format import FORMAT_VERSION, content_sha256  # noqa: E402


def upgrade(src: Path, dst: Path) -> tuple[str, str]:
    """(old hash, new hash); ValueError when ``src`` is not a valid version 1 file."""
    old = load_packed(src)
    if old.format_version != "1":
        raise ValueError(f"{src} is format_version {old.format_version}, not 1")
    with safe_open(str(src), framework="np") as f:
        metadata = dict(f.metadata())
    tensors = old.tensors
    if _safetensors_bytes(tensors, metadata) != src.read_bytes():
        raise ValueError(f"{src} was not written by the packed writer: its bytes cannot be "
                         "kept, re-export it instead")
    metadata["format_version"] = FORMAT_VERSION
    metadata["content_sha256"] = content_sha256(tensors, metadata)
    _write_safetensors(dst, tensors, metadata)
    new = load_packed(dst)
    return old.content_sha256, new.content_sha256


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, help="a version 1 packed checkpoint")
    p.add_argument("--out", type=Path, help="where to write (default: in place)")
    args = p.parse_args(argv)
    try:
        before, after = upgrade(args.checkpoint, args.out or args.checkpoint)
    except ValueError as exc:  # CheckpointError too
        print(f"upgrade_checkpoint: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out or args.checkpoint}: format_version {FORMAT_VERSION}, content_sha256 "
          f"{after} (version 1: {before})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
