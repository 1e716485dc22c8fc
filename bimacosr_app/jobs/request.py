"""What to upscale and how (:class:`UpscaleRequest`), what came of it (:class:`UpscaleResult`),
and where the output goes (naming template, ``on_exists`` policy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..image_io import WRITABLE_FORMATS, extension_for, format_for_output
from ..image_io.formats import canonical_format
from .options import JOB_OPTIONS, option

__all__ = [
    "DEFAULT_NAMING",
    "ON_EXISTS",
    "Progress",
    "UpscaleRequest",
    "UpscaleResult",
    "free_name",
    "output_format",
    "output_path",
]

#: Default output file name: ``photo.jpg`` -> ``photo_x4.jpg``.
DEFAULT_NAMING: str = option("naming").default
#: What to do when the output file exists: keep it and skip the input, replace it, or write
#: ``name (1).ext`` (the first free number).
ON_EXISTS: tuple[str, ...] = tuple(option("on_exists").choices)
_FORMAT_ALIASES = {"jpeg": "jpg", "tif": "tiff"}


@dataclass(frozen=True)
class UpscaleRequest:
    """One image to upscale. Validated on construction against the option schema
    (:mod:`.options`; ``ValueError`` naming the option and the reason); ``format`` may be
    given in any case and as ``jpeg`` / ``tif``.

    ``output`` is the file itself when it has a writable image suffix and is not an existing
    folder; otherwise a folder (created when missing) where ``naming`` names the file;
    ``None`` puts the output next to the input. ``format="same"`` keeps the input's format
    where it can be written (else PNG); for an output file its suffix decides (and must match
    ``format``).
    Scales 2 and 3 run the x4 model and then downscale with area averaging (antialiased).
    """

    input: Path
    output: Path | None = None
    scale: int = option("scale").default
    format: str = option("format").default
    quality: int = option("quality").default
    strip_metadata: bool = option("strip_metadata").default
    backend: str = option("backend").default  #: used when run_request gets no backend
    device: str = option("device").default
    tile_budget_mb: float | None = option("tile_budget_mb").default
    on_exists: str = option("on_exists").default
    naming: str = option("naming").default
    seed: int = 0  #: diffusion noise seed

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", Path(self.input))
        if self.output is not None:
            object.__setattr__(self, "output", Path(self.output))
        if isinstance(self.format, str):
            fmt = self.format.lower()
            object.__setattr__(self, "format", _FORMAT_ALIASES.get(fmt, fmt))
        for opt in JOB_OPTIONS:
            opt.validate(getattr(self, opt.name))
        if self.output_is_file and self.format != "same":
            suffix_format = canonical_format(self.output.suffix)  # type: ignore[union-attr]
            if suffix_format != format_for_output(self.format, None):
                raise ValueError(f"output '{self.output}' does not end like a {self.format} file")

    @property
    def output_is_file(self) -> bool:
        """Whether ``output`` names the file itself (a writable image suffix, not a folder)."""
        out = self.output
        return (out is not None and canonical_format(out.suffix) in WRITABLE_FORMATS
                and not out.is_dir())


@dataclass(frozen=True)
class Progress:
    """Progress of one image: ``fraction`` of its tiles' LR area done (0..1), tiles done and
    planned (the plan grows when a tile is split after running out of memory), and the
    estimated seconds left (``None`` before the first tile finishes)."""

    fraction: float
    tiles_done: int
    tiles_total: int
    eta_s: float | None


@dataclass
class UpscaleResult:
    """What became of one request. ``status``: ``"done"``, ``"skipped"`` (``error`` says
    why), ``"failed"`` (``error`` is the message for the user) or ``"cancelled"``."""

    input: Path
    output: Path | None
    status: str
    error: str | None = None
    seconds: float = 0.0
    input_size: tuple[int, int] | None = None  #: (width, height)
    output_size: tuple[int, int] | None = None  #: (width, height)
    backend: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  #: tile settings used, …

    @property
    def ok(self) -> bool:
        """Done or skipped: nothing for the user to fix."""
        return self.status in ("done", "skipped")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (the CLI's ``--json`` line)."""
        win, hin = self.input_size or (None, None)
        wout, hout = self.output_size or (None, None)
        return {
            "input": str(self.input),
            "output": None if self.output is None else str(self.output),
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "width_in": win,
            "height_in": hin,
            "width_out": wout,
            "height_out": hout,
            "backend": self.backend,
        }


def output_format(request: UpscaleRequest, input_format: str | None) -> str:
    """The format name (``"PNG"``, …) the request writes, for an input of ``input_format``."""
    if request.format == "same" and request.output_is_file:
        return canonical_format(request.output.suffix) or "PNG"  # type: ignore[union-attr]
    return format_for_output(request.format, input_format)


def output_path(request: UpscaleRequest, fmt: str) -> Path:
    """The output file before the ``on_exists`` policy: the request's file, or the naming
    template in the output folder (the input's folder by default)."""
    if request.output_is_file:
        return request.output  # type: ignore[return-value]
    folder = request.output if request.output is not None else request.input.parent
    name = request.naming.format(stem=request.input.stem, scale=request.scale,
                                 ext=extension_for(fmt))
    return folder / name


def free_name(path: Path, taken: set[Path] | frozenset[Path] = frozenset()) -> Path:
    """``path`` if neither on disk nor in ``taken``, else ``stem (1).ext``, ``stem (2).ext``, …"""
    candidate, n = path, 0
    while candidate.exists() or candidate in taken:
        n += 1
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
    return candidate
