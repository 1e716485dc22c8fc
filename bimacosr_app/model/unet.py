"""The denoiser: a ResShift-style UNet at LR resolution (DESIGN.md 1 and 2.7).

Input ``concat(x_t / sqrt(kappa^2 eta_t + 1), LR)`` = (B, 48 + 3, h, w), output the predicted
clean latent ``x0_hat`` (B, 48, h, w).

* Levels of widths ``widths`` (default 64/128/128/160 at 1, 1/2, 1/4, 1/8 of the LR size),
  ``res_blocks`` residual blocks per level on the way down and on the way up; between them a
  middle stage. The decoder merges each level's skip once, by a 1x1 conv on
  ``concat(upsampled, skip)``; this keeps the default under 8 M parameters (a bf16 copy fits
  one 16 MiB file), where per-block concatenation as in ResShift would need about 19 M.
* Shifted-window self-attention (window 8, alternating plain/shifted) after every residual
  block of ``attn_levels`` (the two lowest resolutions).
* FiLM time conditioning in every block; per-pixel normalization (LayerNorm over channels),
  never GroupNorm, so a tile computes what the whole image computes (DESIGN.md 2.2).
* With ``residual`` (default) the output is ``z_y + f(...)``, where ``z_y = PU(bicubic(LR))``
  is recomputed from the LR input: the network still predicts x0, but only its difference
  from bicubic has to be learnt, which short training budgets need.
* ``conv_in`` and ``conv_out`` stay full precision; ``time_embed`` and every block's ``film``
  are constants of the one-step model (t = T-1) and are folded at export. Every other Conv2d
  and Linear is what ``binarize()`` converts.
* With ``shortcuts`` a full-precision identity path crosses every layer the 1-bit model
  binarizes (DESIGN.md 2.8), and the 1-bit model converted from this parent keeps it exactly:
  each ResBlock conv is a residual unit on the block's stream (``ResBlock``), and every other
  binarizable layer (down/upsampling, the decoder's fuse, attention and MLP linears) is a
  ShortcutConv2d / ShortcutLinear (``model.shortcut``), whose output adds a fixed,
  parameter-free map of its input (identity, channel mean or repeat, stride-2 subsampling).

Any input size works: the model pads (replicate) to ``required_multiple`` and crops back.
Tiles whose origins are multiples of ``required_multiple`` see the same windows as the whole
image.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .latent import bicubic_upscale, to_latent
from .shortcut import ShortcutConv2d, ShortcutLinear, apply_shortcut

__all__ = ["FULL_PRECISION_NAMES", "Denoiser", "ModelConfig"]

# Module names kept full precision by binarize() (first/last conv, time conditioning).
FULL_PRECISION_NAMES = ("conv_in", "conv_out", "time_embed", "film")


def _conv(shortcuts: bool, cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    """A binarizable conv with 'same' padding; with ``shortcuts`` a ShortcutConv2d."""
    return (ShortcutConv2d if shortcuts else nn.Conv2d)(cin, cout, k, stride=stride,
                                                        padding=k // 2)


def _linear(shortcuts: bool, cin: int, cout: int) -> nn.Linear:
    """A binarizable linear; with ``shortcuts`` a ShortcutLinear."""
    return (ShortcutLinear if shortcuts else nn.Linear)(cin, cout)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels at every pixel of a (B,C,H,W) tensor."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer steps t (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """LN -> SiLU -> conv3x3 -> LN * (1 + scale) + shift -> SiLU -> conv3x3, plus skip.

    With ``shortcuts`` each conv is a residual unit of its own on the block's stream (BBCU's
    ``x + f(binconv(x))``), and the skip is the parameter-free shortcut map S (``model.shortcut``)
    instead of a 1x1 conv:

        u = S(x) + conv1(SiLU(LN(x)))                      S: Cin -> Cout (identity if equal)
        out = u + conv2(SiLU(LN(u) * (1 + scale) + shift))
    """

    def __init__(self, cin: int, cout: int, time_dim: int, shortcuts: bool = False):
        super().__init__()
        self.units = shortcuts
        self.norm1 = LayerNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(time_dim, 2 * cout)
        self.norm2 = LayerNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout and not shortcuts else nn.Identity()

    def film_terms(self, temb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift), each (B, Cout, 1, 1)."""
        scale, shift = self.film(F.silu(temb))[:, :, None, None].chunk(2, dim=1)
        return scale, shift

    def forward(self, x, temb):  # (B,Cin,H,W), (B,time_dim) or None -> (B,Cout,H,W)
        h = self.conv1(F.silu(self.norm1(x)))
        if self.units:
            h = self.stream_shortcut(x) + h  # u
        u = h
        h = self.norm2(h)
        if self.film is not None:  # None once fold_time() moved FiLM into norm2
            scale, shift = self.film_terms(temb)
            h = h * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return (u if self.units else self.skip(x)) + h

    def stream_shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """S(x): the block input mapped to Cout channels (residual units only)."""
        return apply_shortcut(x, self.norm2.normalized_shape[0], 1)  # Cout


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, with relative position bias."""

    def __init__(self, dim: int, heads: int, window: int, shortcuts: bool = False):
        super().__init__()
        self.heads = heads
        self.window = window
        self.qkv = _linear(shortcuts, dim, 3 * dim)
        self.proj = _linear(shortcuts, dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.rel_bias, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                            indexing="ij")).flatten(1)  # (2, w*w)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("rel_index", rel[..., 0] * (2 * window - 1) + rel[..., 1],
                             persistent=False)  # (w*w, w*w)

    def forward(self, x, mask=None):  # (B*nW, N, C), mask (nW, N, N) or None
        bw, n, c = x.shape
        qkv = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B*nW, heads, N, d)
        bias = self.rel_bias[self.rel_index.flatten()].view(n, n, -1).permute(2, 0, 1)
        bias = bias.unsqueeze(0).to(q.dtype)  # (1, heads, N, N)
        if mask is not None:
            nw = mask.shape[0]
            bias = (bias.unsqueeze(0) + mask[None, :, None].to(q.dtype))  # (1,nW,heads,N,N)
            bias = bias.expand(bw // nw, -1, -1, -1, -1).reshape(bw, self.heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window attention and MLP on a (B,C,H,W) map; H, W multiples of window."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float,
                 shortcuts: bool = False):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window, shortcuts)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.fc1 = _linear(shortcuts, dim, hidden)
        self.fc2 = _linear(shortcuts, hidden, dim)

    def _shift_mask(self, h: int, w: int, device) -> torch.Tensor | None:
        """-inf between tokens that the cyclic shift brought together; (nW, N, N)."""
        if self.shift == 0:
            return None
        ws, s = self.window, self.shift
        region = torch.zeros(h, w, device=device)
        cuts = (slice(0, -ws), slice(-ws, -s), slice(-s, None))
        for i, hs in enumerate(cuts):
            for j, wsl in enumerate(cuts):
                region[hs, wsl] = 3 * i + j
        windows = region.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
        diff = windows[:, None, :] - windows[:, :, None]
        return torch.zeros_like(diff).masked_fill(diff != 0, float("-inf"))

    def forward(self, x):  # (B,C,H,W) -> (B,C,H,W)
        b, c, h, w = x.shape
        ws = self.window
        t = x.permute(0, 2, 3, 1)  # (B,H,W,C)
        y = self.norm1(t)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
        y = y.reshape(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
        y = y.reshape(-1, ws * ws, c)  # (B*nW, N, C)
        y = self.attn(y, self._shift_mask(h, w, x.device))
        y = y.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        t = t + y
        t = t + self.fc2(F.gelu(self.fc1(self.norm2(t))))
        return t.permute(0, 3, 1, 2)


class Downsample(nn.Module):
    def __init__(self, ch: int, shortcuts: bool = False):
        super().__init__()
        self.conv = _conv(shortcuts, ch, ch, 3, stride=2)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, cin: int, cout: int, shortcuts: bool = False):
        super().__init__()
        self.conv = _conv(shortcuts, cin, cout, 3)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Stage(nn.Module):
    """A ResBlock, then (at attention levels) one Swin block; ``shifted`` picks the window
    offset so that consecutive stages alternate plain and shifted windows."""

    def __init__(self, cin: int, cout: int, cfg: ModelConfig, attention: bool, shifted: bool):
        super().__init__()
        self.res = ResBlock(cin, cout, cfg.time_dim, cfg.shortcuts)
        shift = cfg.window // 2 if shifted else 0
        self.attn = SwinBlock(cout, cfg.heads(cout), cfg.window, shift,
                              cfg.mlp_ratio, cfg.shortcuts) if attention else None

    def forward(self, x, temb):
        x = self.res(x, temb)
        return x if self.attn is None else self.attn(x)


class Denoiser(nn.Module):
    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        cfg = self.config = config or ModelConfig()
        widths = cfg.widths
        self.time_embed = nn.Sequential(
            nn.Linear(widths[0], cfg.time_dim), nn.SiLU(), nn.Linear(cfg.time_dim, cfg.time_dim)
        )
        self.conv_in = nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)

        n_levels = len(widths)
        deepest = n_levels - 1
        # Encoder: per level `res_blocks` stages; the level's output is its skip.
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        ch = widths[0]
        for level, width in enumerate(widths):
            self.down.append(nn.ModuleList(
                Stage(ch if i == 0 else width, width, cfg, level in cfg.attn_levels, i % 2 == 1)
                for i in range(cfg.res_blocks)))
            ch = width
            if level < deepest:
                self.downsample.append(Downsample(width, cfg.shortcuts))
                ch = width
        self.mid = Stage(ch, ch, cfg, deepest in cfg.attn_levels, True)
        # Decoder: per level (deepest first) upsample from the level below, a 1x1 fuse of
        # concat(x, skip), then `res_blocks` stages.
        self.upsample = nn.ModuleList(Upsample(widths[level + 1], widths[level], cfg.shortcuts)
                                      for level in range(deepest))
        self.fuse = nn.ModuleList(_conv(cfg.shortcuts, 2 * w, w, 1) for w in widths)
        self.up = nn.ModuleList(
            nn.ModuleList(Stage(widths[level], widths[level], cfg, level in cfg.attn_levels,
                                i % 2 == 0) for i in range(cfg.res_blocks))
            for level in range(n_levels))
        ch = widths[0]

        self.norm_out = LayerNorm2d(ch)
        self.conv_out = nn.Conv2d(ch, cfg.out_channels, 3, padding=1)
        # Set by model.fold.fold_time(): the only t accepted once the time path is folded.
        self.folded_t: int | None = None

    @property
    def required_multiple(self) -> int:
        return self.config.required_multiple

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t, self.config.widths[0])
        return self.time_embed(emb.to(self.conv_in.weight.dtype))

    def fuse_skip(self, level: int, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The decoder's 1x1 fuse of concat(x, skip) at ``level`` (a method of its own so that the
        packed CPU network can fuse without materializing the concatenation)."""
        return self.fuse[level](torch.cat([x, skip], dim=1))

    def forward(self, x_t: torch.Tensor, lr: torch.Tensor, t,
                z_y: torch.Tensor | None = None) -> torch.Tensor:
        """x_t (B,48,h,w) already scaled, lr (B,3,h,w) in [-1,1], t int or (B,) -> (B,48,h,w).

        ``z_y`` = PU(bicubic(lr)), when the caller has it, saves recomputing it for the
        residual."""
        b, _, h, w = x_t.shape
        if self.folded_t is None:
            t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(b)
            temb = self.time_embedding(t)  # (B, time_dim)
        elif bool((torch.as_tensor(t) != self.folded_t).any()):
            raise ValueError(f"the time path is folded at t={self.folded_t}; got t={t}")
        else:
            temb = None
        m = self.required_multiple
        ph, pw = -h % m, -w % m
        x = torch.cat([x_t, lr], dim=1)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        x = self.conv_in(x)
        skips = []
        for level, stages in enumerate(self.down):
            for stage in stages:
                x = stage(x, temb)
            skips.append(x)
            if level < len(self.downsample):
                x = self.downsample[level](x)
        x = self.mid(x, temb)
        for level in reversed(range(len(self.up))):
            if level < len(self.upsample):
                x = self.upsample[level](x)
            x = self.fuse_skip(level, x, skips[level])
            for stage in self.up[level]:
                x = stage(x, temb)
        x = self.conv_out(F.silu(self.norm_out(x)))[:, :, :h, :w]
        if self.config.residual:
            x = x + (to_latent(bicubic_upscale(lr)) if z_y is None else z_y)
        return x
