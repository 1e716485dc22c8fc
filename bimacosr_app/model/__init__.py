"""The BiMaCoSR network: ResShift schedule, pixel-unshuffle latent, UNet denoiser, and its
binarized (SMB + LRMB + 1-bit) training form.

Names load on first use: ``model.config`` and ``model.layout`` (the settings and the layer
table, which the torch-free CPU runtime and the checkpoint reader use) import without torch;
everything else imports it.
"""

from importlib import import_module

# name -> submodule that defines it
_EXPORTS = {
    **dict.fromkeys(("binarizable_layers", "binarize", "calibrate_act_shift", "calibrate_gain"),
                    ".convert"),
    "resolution_level": ".layout",
    **dict.fromkeys(("BinaryConv2d", "BinaryLinear", "RPReLU", "set_binary_mix",
                     "set_scale_gradient", "sign"), ".binary"),
    **dict.fromkeys(("LATENT_CHANNELS", "SCALE", "DiffusionConfig", "ModelConfig"), ".config"),
    **dict.fromkeys(("ModelCost", "model_cost"), ".cost"),
    "ResShiftSchedule": ".diffusion",
    "fold_time": ".fold",
    **dict.fromkeys(("bicubic_upscale", "from_latent", "to_latent"), ".latent"),
    "position_noise": ".noise",
    **dict.fromkeys(("one_step_latent", "upscale_tile"), ".pipeline"),
    "Denoiser": ".unet",
}

__all__ = sorted(_EXPORTS)


# No submodule bears an exported name: importing a submodule sets it as an attribute of the
# package, which would then shadow the name (and skip ``__getattr__``).
def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
