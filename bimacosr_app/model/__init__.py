"""The BiMaCoSR network: ResShift schedule, pixel-unshuffle latent, UNet denoiser, and its
binarized (SMB + LRMB + 1-bit) training form."""

from .binarize import binarizable_layers, binarize, calibrate_act_shift, calibrate_gain
from .binary import BinaryConv2d, BinaryLinear, RPReLU, set_binary_mix, sign
from .cost import ModelCost, model_cost
from .diffusion import DiffusionConfig, ResShiftSchedule
from .fold import fold_time
from .latent import LATENT_CHANNELS, SCALE, bicubic_upscale, from_latent, to_latent
from .noise import position_noise
from .pipeline import one_step_latent, upscale_tile
from .unet import Denoiser, ModelConfig

__all__ = [
    "LATENT_CHANNELS",
    "SCALE",
    "BinaryConv2d",
    "BinaryLinear",
    "Denoiser",
    "DiffusionConfig",
    "ModelConfig",
    "ModelCost",
    "RPReLU",
    "ResShiftSchedule",
    "bicubic_upscale",
    "binarizable_layers",
    "binarize",
    "calibrate_act_shift",
    "calibrate_gain",
    "fold_time",
    "from_latent",
    "model_cost",
    "one_step_latent",
    "position_noise",
    "set_binary_mix",
    "sign",
    "to_latent",
    "upscale_tile",
]
