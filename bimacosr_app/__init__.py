"""BiMaCoSR Upscaler: offline 4x photo upscaling with a 1-bit one-step diffusion model.

Packages follow the data flow (see docs/ARCHITECTURE.md):
``image_io`` -> ``tiling`` -> ``engine`` (runs ``model``) -> ``tiling`` -> ``image_io``,
chained by ``jobs`` and driven by ``cli`` or ``gui``. ``checkpoint`` specifies the packed
model file; ``training`` produces it. Only ``gui`` imports Qt.
"""

__version__ = "0.1.0"
APP_NAME = "BiMaCoSR Upscaler"  # the user folders' name (platformdirs) and the window title

__all__ = ["APP_NAME", "__version__"]
