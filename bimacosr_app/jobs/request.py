"""What to upscale and how (:class:`UpscaleRequest`), what came of it (:class:`UpscaleResult`),
and where the output goes (naming template, ``on_exists`` policy: :func:`plan_output`).

Nothing is ever written over an input, nor over a file this app did not write unless it is
the very file the request names as its output: "overwrite" replaces only such files and
otherwise keeps the existing file and writes the first ``name (n).ext`` that is free or is
itself this app's output, saying so in a note. A file is known to be written by this app when
it carries the app's provenance record (:func:`written_by_this_app`; outputs written with
``strip_metadata`` carry none) or when the caller knows it (a batch's journal).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import APP_NAME
from ..image_io import (
    WRITABLE_FORMATS,
    ImageIOError,
    ImageWriteError,
    extension_for,
    format_for_output,
    read_provenance,
)
from ..image_io.formats import canonical_format
from .options import JOB_OPTIONS, option

__all__ = [
    "DEFAULT_NAMING",
    "ON_EXISTS",
    "OutputPlan",
    "Progress",
    "UpscaleRequest",
    "UpscaleResult",
    "free_name",
    "output_format",
    "output_path",
    "plan_output",
    "real_path",
    "written_by_this_app",
]

#: Default output file name: ``photo.jpg`` -> ``photo_x4.jpg``.
DEFAULT_NAMING: str = option("naming").default
#: What to do when the output file exists: keep it and skip the input, replace it (only a file
#: of this app's or the one named as the output), or write ``name (1).ext`` (the first free
#: number).
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
    #: what the user should know about a result that is still "done": a damaged input that
    #: decoded completely, an existing file kept instead of overwritten
    warnings: list[str] = field(default_factory=list)

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
            "warnings": list(self.warnings),
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


def free_name(path: Path, taken: Collection[Path] = frozenset()) -> Path:
    """``path`` if neither on disk (not even as a broken link) nor in ``taken``, else
    ``stem (1).ext``, ``stem (2).ext``, …"""
    return next(c for c in _numbered(path) if not os.path.lexists(c) and c not in taken)


def _numbered(path: Path) -> Iterator[Path]:
    """``path``, then ``stem (1).ext``, ``stem (2).ext``, …"""
    yield path
    n = 0
    while True:
        n += 1
        yield path.with_name(f"{path.stem} ({n}){path.suffix}")


def real_path(path: Path) -> Path:
    """``path`` with links resolved, to compare files; absolute as given when a link loops."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symbolic link loop
        return path.absolute()


def written_by_this_app(path: Path) -> bool:
    """Whether ``path`` carries this app's provenance record (see ``run_request``)."""
    try:
        provenance = read_provenance(path)
    except ImageIOError:
        return False
    return isinstance(provenance, dict) and provenance.get("app") == APP_NAME


@dataclass(frozen=True)
class OutputPlan:
    """Where one output goes: ``file`` (``None``: the input is skipped), whether it replaces a
    file that exists, and a note for the user (why it is skipped, or which file was kept)."""

    file: Path | None
    replaces: bool = False
    note: str = ""


def plan_output(
    request: UpscaleRequest,
    target: Path,
    *,
    inputs: Collection[Path] = frozenset(),
    taken: Collection[Path] = frozenset(),
    written_here: Callable[[Path], bool] = lambda path: False,
) -> OutputPlan:
    """Apply ``request.on_exists`` to ``target`` (from :func:`output_path`).

    Args:
        inputs: :func:`real_path` of every input of the batch (the request's own counts
            always): never written over.
        taken: outputs already planned for other inputs: never shared.
        written_here: whether the caller knows an existing file as one of this app's outputs
            (besides :func:`written_by_this_app`).

    Raises:
        ImageWriteError: "overwrite" of an input named as the output file itself.
    """
    if target in taken:
        return OutputPlan(free_name(target, taken))
    if not os.path.lexists(target):
        return OutputPlan(target)
    if request.on_exists == "skip":
        return OutputPlan(None, note="the output file already exists")
    if request.on_exists == "rename":
        return OutputPlan(free_name(target, taken))
    protected = {*inputs, real_path(request.input)}
    named = request.output_is_file and target == request.output
    if named and real_path(target) in protected:
        raise ImageWriteError(target, "it is an input image, which is never overwritten")
    if named:
        return OutputPlan(target, replaces=True)

    def ours(path: Path) -> bool:
        return real_path(path) not in protected and (written_here(path)
                                                     or written_by_this_app(path))

    file = next(c for c in _numbered(target)
                if c not in taken and (not os.path.lexists(c) or ours(c)))
    if file == target:
        return OutputPlan(file, replaces=True)
    kept = "an input image" if real_path(target) in protected else "a file this app did not write"
    return OutputPlan(file, replaces=os.path.lexists(file),
                      note=f"kept '{target.name}', {kept}, and wrote '{file.name}' instead "
                           "(only this app's own outputs, or the file named as the output, "
                           "are overwritten)")
