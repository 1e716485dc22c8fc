"""The training chain end to end on a tiny network: every stage runs two steps, resumes,
and hands its EMA weights to the next; evaluate's metrics match a hand computation."""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from bimacosr_app.metrics import psnr_y, rgb_to_y
from bimacosr_app.model import (
    BinaryConv2d,
    BinaryLinear,
    Denoiser,
    ModelConfig,
    binarizable_layers,
    binarize,
    resolution_level,
)
from bimacosr_app.training import binarize as binarize_stage
from bimacosr_app.training import grow, onestep, stages, teacher
from bimacosr_app.training import trainer as trainer_module
from bimacosr_app.training.data import DegradationConfig, PhotoSet, default_data_dir, list_photos
from bimacosr_app.training.evaluate import evaluate_pairs, load_upscaler
from bimacosr_app.training.perceptual import STLPIPS
from bimacosr_app.training.stages import _layer_distance, _layer_outputs, onestep_stage
from bimacosr_app.training.trainer import (
    StageConfig,
    Trainer,
    _param_groups,
    calibration_batch,
    compile_for_training,
    load_run_model,
)
from bimacosr_app.training.weights import load_weights

VAL_PHOTO = default_data_dir("val") / "gc_erase_spoonbills.webp"

TINY = {
    "model": {"widths": [8, 16, 16, 16], "res_blocks": 1, "attn_levels": [2, 3], "window": 8,
              "head_dim": 8, "mlp_ratio": 2.0, "time_dim": 16, "in_channels": 51,
              "out_channels": 48, "residual": True, "extra": {}},
    "batch_size": 2, "crop_size": 64, "steps": 2, "warmup_steps": 1, "log_every": 1,
    "val_every": 100, "save_every": 100,
}


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for split, count in (("train", 3), ("val", 2)):
        (root / split).mkdir()
        for photo in list_photos(default_data_dir(split))[:count]:
            (root / split / photo.name).symlink_to(photo)
    return root / "train", root / "val"


def _run(stage_main, tmp_path, data_dirs, name, **overrides):
    config = dict(TINY, train_dir=str(data_dirs[0]), val_dir=str(data_dirs[1]), **overrides)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    out = tmp_path / name
    stage_main(["--config", str(path), "--out", str(out)])
    return out


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_chain_runs_and_resumes(tmp_path, data_dirs):
    t = _run(teacher.main, tmp_path, data_dirs, "teacher")
    assert json.loads((t / "state.json").read_text())["step"] == 2
    first_ema, config = load_weights(t, "ema")
    assert config["stage"] == "teacher" and config["steps"] == 2

    # resume: same directory, more steps -> continues from step 2, not from scratch
    _run(teacher.main, tmp_path, data_dirs, "teacher", steps=4)
    log = _log(t)
    assert [r["step"] for r in log if r.get("event") == "start"] == [0, 2]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4]
    resumed_ema, _ = load_weights(t, "ema")
    assert any(not torch.equal(first_ema[k], resumed_ema[k]) for k in first_ema)

    o = _run(onestep.main, tmp_path, data_dirs, "onestep", target_run=str(t))
    b = _run(binarize_stage.main, tmp_path, data_dirs, "binarize", target_run=str(o),
             feature_weight=0.5, binary_lr_scale=4.0, binary_ramp_steps=4,
             binary_scale_grad=False,
             binarize={"rank": 8, "smb": True, "lrmb": True, "svd_init": True,
                       "rprelu_slope": 1.0, "act_shift": True})
    for out in (o, b):
        records = _log(out)
        assert records[-1]["event"] == "stop" and records[-1]["step"] == 2
        val = [r for r in records if r.get("event") == "val"]
        assert val and math.isfinite(val[-1]["psnr_y"])
        assert (out / "val_grid.png").stat().st_size > 0
    state, _ = load_weights(b, "ema")
    assert any(k.endswith("smb_index") for k in state)
    assert any(k.endswith("lrmb_up") for k in state)
    shifts = [v for k, v in state.items() if k.endswith("act_shift")]
    assert shifts and all(v.abs().sum() > 0 for v in shifts)  # calibrated, not left at zero
    # the stage builds its student with the configured scale gradient
    cfg = StageConfig.from_dict(json.loads((b / "config.json").read_text()))
    build, _, _ = stages.binarize_stage(cfg)
    photos = PhotoSet(data_dirs[0])
    student = build(cfg, torch.device("cpu"), lambda: calibration_batch(
        cfg, photos, DegradationConfig(realistic_fraction=cfg.realistic_fraction)))
    layers = [m for m in student.modules() if isinstance(m, (BinaryConv2d, BinaryLinear))]
    assert layers and not any(m.scale_gradient for m in layers)

    # a run directory evaluates as a model: 4x output in [0,1]
    upscale, what = load_upscaler(b, torch.device("cpu"))
    assert "binarize" in what
    sr = upscale(torch.rand(1, 3, 20, 24))
    assert sr.shape == (1, 3, 80, 96) and sr.min() >= 0 and sr.max() <= 1


def test_parent_chain_regresses_resumes_from_its_ema_and_binarizes_with_gains(tmp_path,
                                                                            data_dirs):
    shortcut_model = dict(TINY["model"], shortcuts=True)
    no_noise = {"steps": 4, "power": 0.3, "kappa": 0.0, "sqrt_eta_start": 0.02,
                "sqrt_eta_end": 0.99}
    parent = _run(onestep.main, tmp_path, data_dirs, "parent", model=shortcut_model,
                  diffusion=no_noise, loss="l1")
    state, config = load_weights(parent, "ema")
    assert config["target_run"] is None and config["loss"] == "l1"
    assert state["conv_out.weight"].abs().sum() > 0  # trained away from its zero init

    # a run kept with its EMA weights only (as committed) resumes from them at its step
    for live in parent.glob("model-*.safetensors"):
        live.unlink()
    _run(onestep.main, tmp_path, data_dirs, "parent", model=shortcut_model,
         diffusion=no_noise, loss="l1", steps=3)
    assert [r["step"] for r in _log(parent) if r.get("event") == "start"] == [0, 2]

    student = _run(binarize_stage.main, tmp_path, data_dirs, "student", target_run=str(parent),
                   model=shortcut_model, diffusion=no_noise,
                   binarize={"rank": 8, "smb": True, "lrmb": True, "svd_init": True,
                             "rprelu_slope": 1.0, "act_shift": True, "gain": True})
    state, _ = load_weights(student, "ema")
    gains = [v for k, v in state.items() if k.endswith(".gain")]
    assert gains and any((v != 1).any() for v in gains)  # calibrated at conversion
    model, cfg = load_run_model(student, "cpu")
    assert model.binarization["shortcut"] is True and cfg.model_config().shortcuts

    with pytest.raises(SystemExit, match="differs from the target run"):  # a noisy schedule
        _run(binarize_stage.main, tmp_path, data_dirs, "mismatch", target_run=str(parent),
             model=shortcut_model)


def test_grown_lrmb_computes_the_same_network_and_resumes_at_its_step(tmp_path, data_dirs):
    no_noise = {"steps": 4, "power": 0.3, "kappa": 0.0, "sqrt_eta_start": 0.02,
                "sqrt_eta_end": 0.99}
    parent = _run(onestep.main, tmp_path, data_dirs, "parent", diffusion=no_noise, loss="l1")
    recipe = {"smb": True, "lrmb": True, "svd_init": True, "rprelu_slope": 1.0,
              "act_shift": True, "gain": True, "shortcut": True}
    student = _run(binarize_stage.main, tmp_path, data_dirs, "student", target_run=str(parent),
                   diffusion=no_noise, binarize={**recipe, "rank": 2})
    grown_dir = tmp_path / "grown"
    grow.main(["--run", str(student), "--rank", "4", "--out", str(grown_dir)])

    before, _ = load_weights(student, "ema")
    after, config = load_weights(grown_dir, "ema")
    assert config["binarize"]["rank"] == 4
    for key in (k for k in before if k.endswith(".lrmb_down")):
        up_key = key.replace("lrmb_down", "lrmb_up")
        r, cin = before[key].shape
        assert r == 2 and after[key].shape == (4, cin)  # every tiny layer has >= 8 channels
        assert torch.equal(after[key][:2], before[key]) and after[key][2:].abs().sum() > 0
        assert torch.equal(after[up_key][:, :2], before[up_key])
        assert not after[up_key][:, 2:].any()
    old_model, _ = load_run_model(student, "cpu")
    new_model, _ = load_run_model(grown_dir, "cpu")
    x, lr, t = torch.randn(1, 48, 64, 64), torch.rand(1, 3, 64, 64) * 2 - 1, 3
    with torch.no_grad():
        assert torch.equal(new_model(x, lr, t), old_model(x, lr, t))  # the same function

    # resumed at the old rank, the stage names the rank the run was saved with
    with pytest.raises(SystemExit, match=r"saved with binarize\.rank=4: resume it with "
                                         r"--set binarize\.rank=4$"):
        _run(binarize_stage.main, tmp_path, data_dirs, "grown", target_run=str(parent),
             diffusion=no_noise, binarize={**recipe, "rank": 2}, steps=3)
    # the binarize stage resumes the grown run at its step, at the new rank, and trains the
    # new columns
    _run(binarize_stage.main, tmp_path, data_dirs, "grown", target_run=str(parent),
         diffusion=no_noise, binarize={**recipe, "rank": 4}, steps=3)
    assert [r["step"] for r in _log(grown_dir) if r.get("event") == "start"] == [0, 2]
    trained, _ = load_weights(grown_dir, "model")
    assert any(v[:, 2:].any() for k, v in trained.items() if k.endswith(".lrmb_up"))
    with pytest.raises(SystemExit, match="already holds a run"):
        grow.main(["--run", str(student), "--rank", "4", "--out", str(grown_dir)])
    with pytest.raises(SystemExit, match="has rank 4 already"):
        grow.main(["--run", str(grown_dir), "--rank", "4", "--out", str(tmp_path / "again")])


def test_psnr_matches_hand_computation():
    rng = np.random.default_rng(0)
    ref = rng.random((3, 24, 20))
    img = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1)
    # by hand: BT.601 luma on 0..255, shave 4 pixels, PSNR with peak 255
    def luma(x):
        return 16 + 65.481 * x[0] + 128.553 * x[1] + 24.966 * x[2]
    diff = (luma(img) - luma(ref))[4:-4, 4:-4]
    expected = 10 * math.log10(255**2 / np.mean(diff**2))
    got = psnr_y(torch.from_numpy(img), torch.from_numpy(ref))
    assert got == pytest.approx(expected, abs=1e-9)
    assert rgb_to_y(torch.ones(3, 2, 2)).flatten()[0].item() == pytest.approx(235.0)


def test_evaluate_reports_model_bicubic_and_against_per_image(tmp_path):
    hr = torch.rand(3, 32, 40)
    lr = torch.nn.functional.avg_pool2d(hr[None], 4)[0]

    def nearest(x):
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")

    def mean_abs(sr, ref):  # a stand-in for ST-LPIPS
        return float((sr - ref).abs().mean())

    result = evaluate_pairs(nearest, [("a.png", lr, hr)], mean_abs, tmp_path,
                            against=lambda x: nearest(x) * 0.5)
    row = result["images"][0]
    assert set(row) == {"image"} | {f"{prefix}{metric}" for prefix in ("", "bicubic_", "against_")
                                    for metric in ("psnr_y", "ssim_y", "st_lpips")}
    assert row["st_lpips"] == pytest.approx(mean_abs(nearest(lr[None]), hr[None]))
    assert row["against_st_lpips"] == pytest.approx(mean_abs(nearest(lr[None]) * 0.5, hr[None]))
    assert row["against_psnr_y"] < row["psnr_y"]
    assert result["mean"]["psnr_y"] == row["psnr_y"]
    assert (tmp_path / "a.png").exists()


def test_evaluate_takes_photos_or_lr_and_gt_folders_not_both(capsys, tmp_path):
    from bimacosr_app.training.evaluate import main

    for argv, message in ((["--lr-dir", str(tmp_path)], "go together"),
                          (["--photos", str(tmp_path), "--lr-dir", str(tmp_path),
                            "--gt-dir", str(tmp_path)], "exclude each other"),
                          (["--photos", str(tmp_path / "none")], "no folder")):
        with pytest.raises(SystemExit) as exit_info:
            main(["--checkpoint", str(tmp_path), *argv])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_st_lpips_loads_every_weight_and_ranks_distortions():
    pytest.importorskip("stlpips_pytorch.stlpips", reason="ST-LPIPS needs the [train] extra "
                        "(pip install -e .[train], with the torchvision of the installed torch)")
    perceptual = STLPIPS("cpu")
    hr = torch.from_numpy(np.asarray(Image.open(VAL_PHOTO).convert("RGB"))).permute(2, 0, 1)
    hr = hr[None, :, :192, :192].float() / 255
    blurred = torch.nn.functional.avg_pool2d(hr, 5, stride=1, padding=2)
    assert perceptual(hr, hr) == pytest.approx(0.0, abs=1e-6)
    assert 0 < perceptual(blurred, hr) < perceptual(torch.rand_like(hr), hr)


def test_layer_outputs_are_collected_by_name_and_hooks_removed():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    x = torch.randn(1, 3, 5, 5)
    with _layer_outputs({"first": model[0], "last": model[2]}) as out:
        y = model(x)
    assert set(out) == {"first", "last"}
    assert torch.equal(out["first"], model[0](x)) and torch.equal(out["last"], y)
    assert all(not m._forward_hooks for m in model)


def test_layer_distance_is_relative_mse_averaged_over_layers():
    a, b = torch.randn(2, 8), torch.randn(3, 4)
    assert _layer_distance({"a": a, "b": b}, {"a": a, "b": b}).item() == 0
    # 2a against a: MSE = mean(a^2), relative 1; b exact: 0 -> mean 0.5
    assert _layer_distance({"a": 2 * a, "b": b}, {"a": a, "b": b}).item() == pytest.approx(0.5)


def test_latent_binary_weights_get_their_own_learning_rate_scale():
    model = binarize(Denoiser(ModelConfig.from_dict(TINY["model"])))
    groups = _param_groups(model, StageConfig(binary_lr_scale=3.0, weight_decay=0.1))
    latent = {id(m.weight) for m in model.modules() if isinstance(m, (BinaryConv2d, BinaryLinear))}
    scaled = [g for g in groups if g["lr_scale"] == 3.0]
    assert len(scaled) == 1 and {id(p) for p in scaled[0]["params"]} == latent
    assert scaled[0]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    decay = next(g for g in groups if g["weight_decay"] == 0.1)["params"]
    assert decay and all(p.dim() > 1 and id(p) not in latent for p in decay)


def test_binary_mix_ramps_linearly_to_one_and_stays():
    cfg = StageConfig(stage="binarize", binary_ramp_steps=200)
    assert [cfg.binary_mix_at(s) for s in (0, 50, 200, 5000)] == [0.0, 0.25, 1.0, 1.0]
    assert StageConfig(stage="binarize").binary_mix_at(0) == 1.0


@pytest.mark.parametrize("key, value", [("feature_weight", 0.1), ("binary_ramp_steps", 100)])
def test_binarize_options_outside_the_binarize_stage_are_refused(key, value):
    with pytest.raises(ValueError, match=f"{key} applies to the binarize stage"):
        StageConfig.from_dict({"stage": "onestep", key: value})
    assert getattr(StageConfig.from_dict({"stage": "binarize", key: value}), key) == value


# inductor's imports touch torch.jit.script_method (deprecated in torch itself)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_layer_compiled_student_computes_the_eager_student_with_its_state_dict_unchanged():
    """compile "layers" compiles each 1-bit layer in place (inductor, here on the CPU): the
    loss and every gradient equal the eager student's, the state dict keeps its keys, and
    the recompile limit lets every layer shape compile."""
    torch.manual_seed(0)
    student = binarize(Denoiser(ModelConfig.from_dict(
        {**TINY["model"], "widths": [8, 16], "attn_levels": []})),
                       shortcut=True, act_shift=True, gain=True)
    eager = copy.deepcopy(student)
    keys = list(student.state_dict())
    compiled = compile_for_training(student, "layers")
    layers = [m for m in compiled.modules() if isinstance(m, BinaryConv2d)]
    assert compiled is student and list(compiled.state_dict()) == keys
    assert all(m._compiled_call_impl is not None for m in layers)
    assert torch._dynamo.config.cache_size_limit >= len(layers)
    x, lr = torch.randn(2, 48, 16, 16), torch.randn(2, 3, 16, 16)
    t = torch.tensor([3, 3])
    for model in (eager, compiled):
        model(x, lr, t).square().mean().backward()
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), name
    assert compile_for_training(eager, False) is eager
    with pytest.raises(ValueError, match="compile scope"):
        compile_for_training(eager, "blocks")


def test_compile_takes_a_scope_of_the_list_and_layers_only_where_there_are_1_bit_layers():
    assert StageConfig.from_dict({"stage": "binarize", "compile": "layers"}).compile == "layers"
    with pytest.raises(ValueError, match="compile must be one of"):
        StageConfig.from_dict({"stage": "binarize", "compile": "model"})
    with pytest.raises(ValueError, match="applies to the binarize stage"):
        StageConfig.from_dict({"stage": "onestep", "compile": "layers"})


def test_binary_scale_grad_is_an_option_of_the_binarize_stage_only():
    assert StageConfig.from_dict({"stage": "binarize", "binary_scale_grad": False}) \
        .binary_scale_grad is False
    assert StageConfig().binary_scale_grad is True
    StageConfig.from_dict({"stage": "onestep", "binary_scale_grad": True})  # the default
    with pytest.raises(ValueError, match="binary_scale_grad applies to the binarize stage"):
        StageConfig.from_dict({"stage": "onestep", "binary_scale_grad": False})


def test_hr_scale_range_reaches_the_training_batches_and_must_lie_in_0_1():
    cfg = StageConfig.from_dict({"stage": "onestep", "hr_scale_range": [1.0, 1.0],
                                 "batch_size": 2, "crop_size": 64})
    assert tuple(cfg.hr_scale_range) == (1.0, 1.0)
    assert StageConfig().hr_scale_range == (0.5, 1.0)
    photos = PhotoSet(default_data_dir("val"), max_side=256)
    _, hr = calibration_batch(cfg, photos, DegradationConfig(realistic_fraction=0.0))
    assert ((hr * 255 - torch.round(hr * 255)).abs() < 1e-3).all()  # no resampling at s = 1
    for bad in ([0.0, 1.0], [0.8, 0.5], [0.5, 1.5]):
        with pytest.raises(ValueError, match="hr_scale_range"):
            StageConfig.from_dict({"stage": "onestep", "hr_scale_range": bad})


def test_stage_command_line_refuses_a_misplaced_option_with_a_usage_error(capsys, tmp_path):
    from bimacosr_app.training.trainer import parse_stage_args

    with pytest.raises(SystemExit) as exit_info:
        parse_stage_args("onestep", ["--out", str(tmp_path), "--set", "feature_weight=0.1"])
    assert exit_info.value.code == 2
    assert "feature_weight applies to the binarize stage" in capsys.readouterr().err


def test_dotted_set_overrides_one_field_of_a_nested_option(capsys, tmp_path):
    """``--set binarize.smb=false`` changes that field alone (an ablation lane of a recipe);
    a dotted key into a field that is not an object is a usage error."""
    from bimacosr_app.training.trainer import parse_stage_args

    config = Path(binarize_stage.__file__).parent / "configs" / "binarize_flat.json"
    base, _, _ = parse_stage_args("binarize", ["--config", str(config), "--out", str(tmp_path)])
    cfg, _, _ = parse_stage_args("binarize", [
        "--config", str(config), "--out", str(tmp_path), "--set", "binarize.smb=false",
        "--set", "binarize.shortcut=false", "--set", "model.res_blocks=4"])
    assert cfg.binarize == {**base.binarize, "smb": False, "shortcut": False}
    assert base.binarize["smb"] is True and base.binarize["shortcut"] is True
    assert cfg.model_config().res_blocks == 4 and base.model_config().res_blocks == 5
    assert cfg.model_config().widths == base.model_config().widths
    with pytest.raises(SystemExit) as exit_info:
        parse_stage_args("binarize", ["--config", str(config), "--out", str(tmp_path),
                                      "--set", "lr.scale=2"])
    assert exit_info.value.code == 2
    assert "--set lr.scale: lr is not an object" in capsys.readouterr().err


def test_a_resumed_run_warms_up_again(tmp_path, data_dirs):
    """Its optimizer moments restart from zero, so its learning rate ramps up again."""
    t = _run(teacher.main, tmp_path, data_dirs, "teacher", warmup_steps=4, lr=1e-3)
    _run(teacher.main, tmp_path, data_dirs, "teacher", warmup_steps=4, lr=1e-3, steps=4)
    lrs = [r["lr"] for r in _log(t) if "loss" in r]
    assert lrs == pytest.approx([2.5e-4, 5e-4, 2.5e-4, 5e-4])


def test_a_budget_run_anneals_over_the_time_after_its_first_step(tmp_path, data_dirs,
                                                                 monkeypatch):
    """The first step (which compiles under torch.compile) takes half of a 6 s budget here;
    the cosine spends the other half: at every budget check its progress is the time since
    the first step over the time left after it, not the time since the start. The trainer's
    budget clock is a fake that only the training steps advance (3 s the first, 0.05 s each
    other), so the run is the same on a busy machine."""
    cfg = StageConfig.from_dict(dict(TINY, stage="onestep", train_dir=str(data_dirs[0]),
                                     val_dir=str(data_dirs[1]), steps=100_000, lr=1e-3,
                                     warmup_steps=1, min_lr_ratio=0.0,
                                     val_every=10**6, save_every=10**6))
    build, loss, predict = onestep_stage(cfg)
    clock = [1000.0]
    monkeypatch.setattr(trainer_module, "time", SimpleNamespace(
        monotonic=lambda: clock[0], time=time.time, perf_counter=time.perf_counter))
    calls = []

    def timed_loss(model, lr, hr):
        calls.append(None)
        clock[0] += 3.0 if len(calls) == 1 else 0.05
        return loss(model, lr, hr)

    budget_s = 6.0
    Trainer(cfg, tmp_path / "run", budget_s / 60, build, timed_loss, predict).train()
    log = _log(tmp_path / "run")
    first = next(r for r in log if r.get("event") == "first_step")
    assert first["step"] == 1 and first["elapsed_s"] == 3.0
    stop = next(r for r in log if r.get("event") == "stop")
    # the budget check at step 60 sees 3.0 + 59 x 0.05 = 5.95 s, the one at step 80 6.95 s
    assert stop["reason"] == "budget" and stop["step"] == 80
    steps = {r["step"]: r for r in log if "loss" in r}
    # A record "step": n holds the learning rate of the n-th step, computed when the loop's
    # step counter was n - 1; the counter's budget checks are at multiples of 20.
    checked = [n for n in steps if n % 20 == 0 and n > 0 and n + 1 in steps]
    assert checked

    def cosine(fraction):
        return 1e-3 * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, fraction))))

    for n in checked:
        fraction = (n - 1) * 0.05 / (budget_s - 3.0)  # time since the first step / time left
        assert steps[n + 1]["lr"] == pytest.approx(cosine(fraction), rel=1e-6, abs=1e-12), n


def _binarization_damage_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "binarization_damage", Path(__file__).resolve().parents[1] / "scripts" /
        "binarization_damage.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_resolution_levels_follow_the_resolution_of_each_layers_output():
    """resolution_level (which binarization_damage.py groups layers by, and binarize's
    lr_act_bases selects them by) reads a layer's level from its name; here a Denoiser's
    forward pass says where each binarizable layer's output really is."""
    config = ModelConfig.from_dict(TINY["model"])
    model = Denoiser(config).eval()
    sides = {}  # layer -> the width of its output map (convolutions only)

    def record(module, args, out, name):
        if isinstance(module, torch.nn.Conv2d):
            sides[name] = out.shape[-1]

    for name in binarizable_layers(model):
        model.get_submodule(name).register_forward_hook(
            lambda m, args, out, n=name: record(m, args, out, n))
    with torch.no_grad():
        model(torch.zeros(1, 48, 64, 64), torch.zeros(1, 3, 64, 64), 0)
    deepest = len(config.widths) - 1
    assert len(sides) > 20
    for name, side in sides.items():
        assert 64 // 2 ** resolution_level(name, deepest) == side, name


def test_binarization_drift_reports_scale_ratio_and_sign_flips_per_level():
    """A trained state whose one level-0 layer has every sign flipped and half its weight
    scale (gain unchanged) shows at level 0 alone: that layer's ratio 0.5 and flips 1."""
    script = _binarization_damage_script()
    torch.manual_seed(0)
    student = binarize(Denoiser(ModelConfig.from_dict(
        {**TINY["model"], "widths": [8, 16], "attn_levels": []})),
                       shortcut=True, act_shift=True, gain=True)
    with torch.no_grad():
        for name, p in student.named_parameters():
            if name.endswith(".gain"):
                p.uniform_(0.5, 2.0)  # a gain that differs per channel, kept by training
    trained = {k: v.clone() for k, v in student.state_dict().items()}
    trained["down.0.0.res.conv1.weight"] *= -0.5
    rows = {row["level"]: row for row in script.drift(student, trained, deepest=1)}
    level0 = [n for n, m in student.named_modules()
              if isinstance(m, BinaryConv2d) and resolution_level(n, 1) == 0]
    assert set(rows) == {0, 1} and rows[0]["layers"] == len(level0) > 1
    assert rows[0]["scale_ratio_min"] == pytest.approx(0.5)
    assert rows[0]["scale_ratio_median"] == pytest.approx(1.0)
    assert rows[0]["sign_flips"] == pytest.approx(1 / len(level0))
    assert rows[1]["scale_ratio_min"] == pytest.approx(1.0) and rows[1]["sign_flips"] == 0


def test_binarization_drift_refuses_a_run_that_is_not_a_student_of_the_config(capsys, tmp_path):
    """--trained checks the run before the minutes of converting: a folder without weights
    and the FP parent (not a student) are usage errors."""
    script = _binarization_damage_script()
    parent = Path(binarize_stage.__file__).parents[2] / "resources" / "training" / "parent"
    for run, message in ((tmp_path, "--trained: no checkpoint"),
                         (parent, "is not a student of binarize_parent.json")):
        with pytest.raises(SystemExit) as exit_info:
            script.main(["--trained", str(run)])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_every_config_parses_and_binarize_configs_match_their_parent():
    """Each file of training/configs/ is a valid StageConfig of its stage; a binarize config
    whose target is a parent config's run (``runs/<config>``) has that config's architecture
    and schedule, which the binarize stage requires of its target."""
    folder = Path(binarize_stage.__file__).parent / "configs"
    configs = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    assert {"parent", "parent_flat", "binarize_parent", "binarize_flat"} <= set(configs)
    checked = set()
    for name, d in configs.items():
        stage = ("teacher" if name.startswith("teacher") else
                 "binarize" if name.startswith("binarize") else "onestep")
        cfg = StageConfig.from_dict({**d, "stage": stage})
        target = Path(d.get("target_run", "")).name
        if stage == "binarize" and target in configs:
            parent = StageConfig.from_dict({**configs[target], "stage": "onestep"})
            assert cfg.model_config() == parent.model_config(), name
            assert cfg.diffusion == parent.diffusion, name
            checked.add(name)
    assert {"binarize_parent", "binarize_flat", "binarize_twolevel"} <= checked


def test_bf16_autocast_option_reaches_the_training_forward(tmp_path, data_dirs):
    # same seed, same batches: off equals the CPU default (float32) exactly, on differs a little
    losses = {}
    for name, enabled in (("default", None), ("off", False), ("on", True)):
        out = _run(teacher.main, tmp_path, data_dirs, name, steps=1, log_every=1,
                   bf16_autocast=enabled)
        losses[name] = next(r["loss"] for r in _log(out) if "loss" in r)
    assert math.isfinite(losses["on"])
    assert losses["off"] == losses["default"]
    assert losses["on"] != losses["default"]
    assert abs(losses["on"] - losses["default"]) < 0.05 * losses["default"]
    with pytest.raises(ValueError, match="bf16_autocast must be true, false or null"):
        StageConfig.from_dict({"stage": "teacher", "bf16_autocast": "cuda"})
