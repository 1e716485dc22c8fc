"""ST-LPIPS: a learned perceptual distance that runs offline (shift-tolerant LPIPS, Ghildyal
and Liu, ECCV 2022, AlexNet trunk), from the ``stlpips-pytorch`` package, which ships its
weights (install with ``pip install -e .[train]``).

Lower is closer. Its values compare only with each other, not with published LPIPS figures.
The package loads its weights with ``strict=False``; here they are loaded explicitly (as plain
tensors, ``weights_only``) and any key other than the ``lins.*`` aliases of its ``lin0..4``
layers that fails to load is an error, so a changed package cannot silently score with
random weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["STLPIPS"]

_WEIGHTS = "weights/vST0.0/alex_shift_tolerant.pth"


class STLPIPS:
    """``STLPIPS(device)(sr, hr)`` -> float: the distance of two (1,3,H,W) images in [0, 1]."""

    def __init__(self, device: str | torch.device = "cpu"):
        try:
            import stlpips_pytorch
            from stlpips_pytorch import stlpips
        except ImportError as e:
            raise ImportError(f"ST-LPIPS needs the training extras ({e}): "
                              "pip install -e .[train]") from e
        net = stlpips.LPIPS(net="alex", variant="shift_tolerant", pretrained=False,
                            verbose=False)
        path = Path(stlpips_pytorch.__file__).parent / _WEIGHTS
        state = torch.load(path, map_location="cpu", weights_only=True)
        result = net.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("lins.")]
        if missing or result.unexpected_keys:
            raise RuntimeError(f"ST-LPIPS weights do not match the network: missing {missing}, "
                               f"unexpected {result.unexpected_keys}")
        self.device = torch.device(device)
        self.net = net.to(self.device).eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> float:
        a = sr.to(self.device, torch.float32) * 2 - 1
        b = hr.to(self.device, torch.float32) * 2 - 1
        return float(self.net(a, b).mean())
