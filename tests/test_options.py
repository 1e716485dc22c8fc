"""The one option schema: every option walks through the command line, the settings file, the
settings dialog and the jobs, which all read it, and each refuses the same bad values."""

from __future__ import annotations

import dataclasses
import math

import pytest

from bimacosr_app.cli import build_parser, main
from bimacosr_app.gui.settings import Preferences, Settings
from bimacosr_app.gui.settings_dialog import SettingsDialog
from bimacosr_app.jobs import (
    BATCH_OPTIONS,
    JOB_OPTIONS,
    OPTIONS,
    WINDOW_OPTIONS,
    UpscaleRequest,
    plan_batch,
)

# A value other than the default, and values every reader must refuse, per option.
SAMPLES = {"naming": "{stem}-{scale}x.{ext}", "tile_budget_mb": 512.0,
           "output_folder": "/tmp/upscaled"}
BAD = {
    "scale": [5, "4"], "format": ["gif"], "quality": [0, 101, 9.5],
    "naming": ["{stem}_x{scale}", "{name}.{ext}", "x.{ext}", "../{stem}.{ext}"],
    "on_exists": ["ask"], "strip_metadata": ["yes"], "backend": ["tpu"], "device": ["metal"],
    "tile_budget_mb": [0.0, math.nan, math.inf, -5.0], "recursive": [1],
    "output_folder": [None], "theme": ["neon"],
}


def _refused_as_text(opt, text) -> bool:
    try:
        opt.parse(text)
    except ValueError:
        return True
    return False  # e.g. "4" for the scale: fine on the command line


def sample(opt):
    if opt.name in SAMPLES:
        return SAMPLES[opt.name]
    if opt.kind is bool:
        return not opt.default
    if opt.choices:
        return next(v for v in reversed(list(opt.choices)) if v != opt.default)
    return type(opt.default)((opt.minimum + opt.maximum) // 2)


def test_the_schema_is_what_every_reader_holds():
    assert {f.name for f in dataclasses.fields(Preferences)} == {o.name for o in OPTIONS}
    assert {o.name for o in JOB_OPTIONS} <= {f.name for f in dataclasses.fields(UpscaleRequest)}
    for opt in OPTIONS:
        assert getattr(Preferences(), opt.name) == opt.default, opt.name
        assert opt.problem(opt.default) == "" and opt.problem(sample(opt)) == "", opt.name
        assert opt.parse(opt.format(sample(opt))) == sample(opt), opt.name
        assert BAD[opt.name] and all(opt.problem(v) for v in BAD[opt.name]), opt.name
    for opt in JOB_OPTIONS:
        assert getattr(UpscaleRequest("a.png"), opt.name) == opt.default, opt.name
    assert all(o.flag for o in JOB_OPTIONS + BATCH_OPTIONS)
    assert not any(o.flag for o in WINDOW_OPTIONS)


@pytest.mark.parametrize("opt", JOB_OPTIONS + BATCH_OPTIONS, ids=lambda o: o.name)
def test_each_option_goes_from_the_command_line_to_the_jobs(opt, tmp_path):
    photo = tmp_path / "a.png"
    photo.write_bytes(b"\x89PNG")  # scanned, not read
    value = sample(opt)
    flag = [opt.flag] if opt.kind is bool else [opt.flag, opt.format(value)]
    args = build_parser().parse_args(["upscale", str(tmp_path), *flag])
    assert getattr(args, opt.name) == value
    batch = plan_batch([tmp_path], tmp_path / "out", **{o.name: getattr(args, o.name)
                                                       for o in JOB_OPTIONS + BATCH_OPTIONS})
    assert [r.input for r in batch.requests] == [photo]
    if opt in JOB_OPTIONS:
        assert getattr(batch.requests[0], opt.name) == value
        for bad in BAD[opt.name]:
            with pytest.raises(ValueError, match=opt.name):
                UpscaleRequest(photo, **{opt.name: bad})


@pytest.mark.parametrize("opt", [o for o in JOB_OPTIONS + BATCH_OPTIONS if o.kind is not bool],
                         ids=lambda o: o.name)
def test_the_command_line_refuses_bad_values_as_usage_errors(opt, tmp_path, capsys):
    texts = [str(bad) for bad in BAD[opt.name] if _refused_as_text(opt, str(bad))]
    assert texts
    for bad in texts:
        with pytest.raises(SystemExit) as exit_info:
            main(["upscale", str(tmp_path), opt.flag, bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        with pytest.raises(ValueError) as reason:
            opt.parse(bad)
        assert f"argument {opt.flag}" in err  # the usage line names the flag and the reason
        assert str(reason.value).removeprefix(f"{opt.name}: ") in err, err


@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: o.name)
def test_each_option_goes_through_the_settings_file_and_dialog(opt, tmp_path, qtbot):
    prefs = Preferences(**{opt.name: sample(opt)})
    path = tmp_path / "settings.ini"
    Settings(path).set_preferences(prefs)
    assert Settings(path).preferences() == prefs
    dialog = SettingsDialog(prefs, ["cpu-packed", "reference", "cuda"], path)
    qtbot.addWidget(dialog)
    assert dialog.preferences() == prefs
    for bad in BAD[opt.name]:  # a bad value never survives the schema's check
        assert getattr(dataclasses.replace(prefs, **{opt.name: bad}).validated(),
                       opt.name) == opt.default
