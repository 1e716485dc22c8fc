"""The CUDA backend's network: binary layers as dense fp16 cuDNN convolutions.

At load, every binarized layer is turned into a frozen dense layer (DESIGN.md 4):

* the sign bits are unpacked once into the fp16 weight ``beta_o * sign(W_b)``, which is
  exactly what the 1-bit layer multiplies by;
* activations are still binarized per pixel (``alpha_p * sign(x - s)``, sign(0) = +1, s the
  layer's activation threshold or 0), so the layer computes the same function as the CPU
  kernels; a conv with two activation bases adds the second base (the sign of the first's
  residual, scaled by its mean magnitude) before its one dense convolution;
* SMB + LRMB are folded into one dense 1x1 conv (Cout x Cin) on the full-precision input.

The network then runs in fp16, channels_last, on cuDNN. fp16 rounding makes its output differ
from the float32 ``reference`` backend by a few 1/255 at most (tests/test_engine_cuda.py).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..model.binary import BinaryConv2d, BinaryLinear, binarize_activation
from ..model.pipeline import upscale_tile
from .backends import Backend, register_backend
from .probe import cuda_status

__all__ = ["CudaBackend", "DenseBinaryConv2d", "DenseBinaryLinear", "densify"]


def _binary_activation(x: torch.Tensor, shift: torch.Tensor | None, channel_dim: int,
                       bases: int = 1) -> torch.Tensor:
    """alpha_p * sign(x - s), alpha_p = mean |x - s| over ``channel_dim`` (with ``bases`` 2
    plus the same of the residual: ``binarize_activation``)."""
    return binarize_activation(x if shift is None else x - shift, channel_dim, bases)


def _shift(layer: BinaryConv2d | BinaryLinear, shape: tuple[int, ...]) -> torch.Tensor | None:
    """The layer's activation threshold viewed as ``shape`` (a copy), or None."""
    return None if layer.act_shift is None else layer.act_shift.detach().reshape(shape).clone()


class DenseBinaryConv2d(nn.Module):
    def __init__(self, layer: BinaryConv2d):
        super().__init__()
        self.stride, self.padding = layer.stride, layer.padding
        self.act_bases = layer.act_bases
        with torch.no_grad():
            self.register_buffer("act_shift", _shift(layer, (1, -1, 1, 1)))
            self.register_buffer("weight", layer.scaled_binary_weight().clone())
            self.register_buffer("bias", None if layer.bias is None else layer.bias.clone())
            branch = layer.branch_matrix()
            if branch is not None:
                branch = branch[:, :, None, None].clone()
            self.register_buffer("branch", branch)
        self.rprelu = layer.rprelu

    def forward(self, x):  # (B,Cin,H,W) -> (B,Cout,H/s,W/s)
        xb = _binary_activation(x, self.act_shift, 1, self.act_bases)
        y = self.rprelu(F.conv2d(xb, self.weight, self.bias, self.stride, self.padding))
        if self.branch is not None:
            y = y + F.conv2d(x, self.branch, stride=self.stride)
        return y


class DenseBinaryLinear(nn.Module):
    def __init__(self, layer: BinaryLinear):
        super().__init__()
        with torch.no_grad():
            self.register_buffer("act_shift", _shift(layer, (-1,)))
            self.register_buffer("weight", layer.scaled_binary_weight().clone())
            self.register_buffer("bias", None if layer.bias is None else layer.bias.clone())
            branch = layer.branch_matrix()
            self.register_buffer("branch", None if branch is None else branch.clone())

    def forward(self, x):  # (..., Cin) -> (..., Cout)
        xb = _binary_activation(x, self.act_shift, -1)
        y = F.linear(xb, self.weight, self.bias)
        return y if self.branch is None else y + F.linear(x, self.branch)


def densify(model: nn.Module) -> nn.Module:
    """Replace every BinaryConv2d / BinaryLinear of ``model`` in place; returns ``model``."""
    for name, module in list(model.named_modules()):
        if isinstance(module, (BinaryConv2d, BinaryLinear)):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            dense = (DenseBinaryConv2d if isinstance(module, BinaryConv2d)
                     else DenseBinaryLinear)(module)
            setattr(parent, child, dense)
    return model


@register_backend
class CudaBackend(Backend):
    """fp16 cuDNN, channels_last, binary layers densified once at load (see module doc)."""

    name = "cuda"

    @classmethod
    def unavailable_reason(cls) -> str:
        if torch.cuda.is_available():
            return ""
        cuda_status.cache_clear()
        return cuda_status().reason or (
            f"a GPU that PyTorch {torch.__version__} (CUDA {torch.version.cuda}) can use, and "
            "it finds none")

    @classmethod
    def default_device(cls) -> torch.device:
        return torch.device("cuda", 0)

    def __init__(self, checkpoint, device):
        super().__init__(checkpoint, torch.device(device))
        model = densify(checkpoint.to_model(torch.device("cpu")))
        self.model = model.to(device=device, dtype=torch.float16,
                              memory_format=torch.channels_last).eval()
        self.schedule = checkpoint.schedule()

    def _upscale(self, lr01, top, left, seed):
        lr = torch.from_numpy(lr01).to(self.device, torch.float16)
        lr = lr.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            hr = upscale_tile(self.model, self.schedule, lr, seed=seed, top=top, left=left)
        return hr.float().cpu().numpy()
