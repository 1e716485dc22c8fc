"""The three training stages of the BiMaCoSR chain, as (build_model, loss, predict) triples.

Images enter in [0, 1]; the model works on ``x0 = PU(2 HR - 1)`` and
``z_y = PU(bicubic(2 LR - 1))``.

* teacher: FP ResShift denoiser, x0-prediction MSE at t ~ U{0..T-1}.
* onestep: SinSR-style distillation, initialised from the teacher's EMA: at t = T-1, MSE to
  the teacher's deterministic T-step output from the same noise (computed online).
* binarize: ``binarize()`` of the FP one-step model's EMA (SMB, LRMB, then 1-bit), trained with
  latent MSE to the frozen FP one-step model's output from the same noise.
``gt_weight`` adds an MSE to the ground-truth latent in the last two stages.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model import (
    LATENT_CHANNELS,
    Denoiser,
    ResShiftSchedule,
    bicubic_upscale,
    binarize,
    from_latent,
    one_step_latent,
    to_latent,
)
from .trainer import StageConfig, load_ema_model
from .weights import load_weights

__all__ = ["binarize_stage", "onestep_stage", "teacher_stage"]


def _latents(lr01: torch.Tensor, hr01: torch.Tensor):
    lr = lr01 * 2 - 1
    return lr, to_latent(hr01 * 2 - 1), to_latent(bicubic_upscale(lr))


def _to_image(x0: torch.Tensor) -> torch.Tensor:
    return ((from_latent(x0.float()) + 1) * 0.5).clamp(0, 1)


def _validation_noise(lr: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    b, _, h, w = lr.shape
    return torch.randn(b, LATENT_CHANNELS, h, w, generator=g).to(lr.device)


def _init_from_ema(model: torch.nn.Module, run: str | None) -> None:
    if run:
        state, _ = load_weights(run, "ema")
        model.load_state_dict(state)


def teacher_stage(cfg: StageConfig):
    schedule = cfg.schedule()

    def build(cfg, device):
        model = Denoiser(cfg.model_config())
        _init_from_ema(model, cfg.init)
        return model

    def loss(model, lr01, hr01):
        lr, x0, y = _latents(lr01, hr01)
        t = torch.randint(0, schedule.steps, (lr.shape[0],), device=lr.device)
        noise = torch.randn_like(x0)
        x_t = schedule.q_sample(x0, y, t, noise)
        return F.mse_loss(model(schedule.scale_input(x_t, t), lr, t).float(), x0)

    def predict(model, lr01):
        lr = lr01 * 2 - 1
        y = to_latent(bicubic_upscale(lr))
        x0 = schedule.sample(lambda x, t: model(x, lr, t), y, _validation_noise(lr))
        return _to_image(x0)

    return build, loss, predict


def _one_step_predict(schedule: ResShiftSchedule):
    def predict(model, lr01):
        lr = lr01 * 2 - 1
        return _to_image(one_step_latent(model, schedule, lr, _validation_noise(lr)))
    return predict


def _distill_loss(schedule, target_fn, gt_weight):
    def loss(model, lr01, hr01):
        lr, x0, y = _latents(lr01, hr01)
        noise = torch.randn_like(x0)
        with torch.no_grad():
            target = target_fn(lr, y, noise).float()
        pred = one_step_latent(model, schedule, lr, noise).float()
        value = F.mse_loss(pred, target)
        if gt_weight:
            value = value + gt_weight * F.mse_loss(pred, x0)
        return value
    return loss


def onestep_stage(cfg: StageConfig):
    if not cfg.target_run:
        raise SystemExit("onestep needs --set target_run='\"runs/teacher\"' (the teacher run)")
    schedule = cfg.schedule()
    holder = {}

    def build(cfg, device):
        teacher, _ = load_ema_model(cfg.target_run, device)
        holder["teacher"] = teacher
        model = Denoiser(cfg.model_config())
        _init_from_ema(model, cfg.init or cfg.target_run)
        return model

    def target(lr, y, noise):
        teacher = holder["teacher"]
        return schedule.sample(lambda x, t: teacher(x, lr, t), y, noise)

    return build, _distill_loss(schedule, target, cfg.gt_weight), _one_step_predict(schedule)


def binarize_stage(cfg: StageConfig):
    if not cfg.target_run:
        raise SystemExit("binarize needs --set target_run='\"runs/onestep\"' (the FP one-step run)")
    schedule = cfg.schedule()
    holder = {}

    def build(cfg, device):
        fp, _ = load_ema_model(cfg.target_run, device)
        holder["fp"] = fp
        model = Denoiser(cfg.model_config())
        model.load_state_dict(fp.state_dict())
        return binarize(model, **cfg.binarize)

    def target(lr, y, noise):
        return one_step_latent(holder["fp"], schedule, lr, noise)

    return build, _distill_loss(schedule, target, cfg.gt_weight), _one_step_predict(schedule)
