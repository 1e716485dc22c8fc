#!/usr/bin/env python3
"""Smoke test of a built bundle; builds nothing.

    python packaging/smoke_test.py TARGET [--gui-seconds 3] [--json OUT.json]

TARGET is what the build produced: the onedir bundle (``dist/bimacosr``), its ``.tar.xz`` (or
a ``.tar.gz``), an ``.AppImage`` or ``.AppDir`` (Linux), or the ``.app`` (macOS). Archives and
AppImages are unpacked into a temporary folder first (an AppImage with ``--appimage-extract``,
so no FUSE is needed), so the artifact itself is what gets tested.

1. ``bimacosr --self-test``: the bundled model upscales the bundled image with every
   available backend and matches the golden result (bimacosr_app/selftest.py).
2. ``bimacosr-gui`` (through ``AppRun`` for an AppImage/AppDir) on the offscreen Qt platform
   with ``BIMACOSR_QUIT_AFTER``: it must become interactive, start its engine thread (backends
   listed) and, a few seconds later, close and exit 0 with nothing on
   stderr that looks like a crash. Settings and queue go to a temporary folder.

Prints the timings (self-test wall time, GUI time to interactive window measured from the
launch) and exits 0 when both pass, 1 otherwise. Needs only the Python standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

EXE = ".exe" if os.name == "nt" else ""
CRASH_MARKERS = ("Traceback (most recent call last)", "Segmentation fault", "Fatal Python error",
                 "Failed to execute script", "Could not load the Qt platform plugin")


class SmokeFailure(Exception):
    pass


def _find_bundle(root: Path) -> Path:
    """The folder holding ``bimacosr`` and ``bimacosr-gui`` at or below ``root``."""
    for candidate in [root, *sorted(p.parent for p in root.rglob(f"bimacosr-gui{EXE}"))]:
        if (candidate / f"bimacosr{EXE}").is_file() and (
                candidate / f"bimacosr-gui{EXE}").is_file():
            return candidate
    raise SmokeFailure(f"no bimacosr and bimacosr-gui executables in {root}")


def resolve(target: Path, scratch: Path) -> tuple[Path, Path]:
    """(console program, GUI launcher) for ``target``, unpacking it into ``scratch``."""
    if not target.exists():
        raise SmokeFailure(f"{target} does not exist")
    name = target.name
    if target.is_file() and name.endswith((".tar.xz", ".tar.gz", ".tgz")):
        with tarfile.open(target) as tar:
            if hasattr(tarfile, "tar_filter"):  # Python 3.12+ and 3.11.4+
                tar.extractall(scratch, filter="tar")
            else:
                tar.extractall(scratch)
        bundle = _find_bundle(scratch)
        apprun = bundle / "AppRun"
        return bundle / "bimacosr", apprun if apprun.is_file() else bundle / "bimacosr-gui"
    if target.is_file() and name.endswith(".AppImage"):
        subprocess.run([str(target.resolve()), "--appimage-extract"], cwd=scratch, check=True,
                       stdout=subprocess.DEVNULL, timeout=600)
        target = scratch / "squashfs-root"
    if name.endswith(".app") and target.is_dir():
        macos = target / "Contents" / "MacOS"
        return macos / "bimacosr", macos / "bimacosr-gui"
    bundle = _find_bundle(target)
    apprun = target / "AppRun"
    gui = apprun if apprun.is_file() else bundle / f"bimacosr-gui{EXE}"
    return bundle / f"bimacosr{EXE}", gui


def _env(home: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "QT_QPA_PLATFORM": "offscreen",
        "BIMACOSR_CONFIG_DIR": str(home / "config"),
        "BIMACOSR_DATA_DIR": str(home / "data"),
    })
    return env


def _crash_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(m in line for m in CRASH_MARKERS)]


def self_test(cli: Path, env: dict, timeout: float) -> dict:
    start = time.time()
    proc = subprocess.run([str(cli), "--self-test"], env=env, capture_output=True, text=True,
                          timeout=timeout)
    seconds = time.time() - start
    sys.stdout.write(proc.stdout)
    sys.stdout.write(proc.stderr)
    if proc.returncode != 0:
        raise SmokeFailure(f"bimacosr --self-test exited {proc.returncode}: "
                           f"{proc.stderr.strip().splitlines()[-1:] or proc.stdout[-300:]}")
    if "self-test passed" not in proc.stdout:
        raise SmokeFailure("bimacosr --self-test exited 0 without 'self-test passed'")
    return {"self_test_s": round(seconds, 2)}


def gui_test(gui: Path, env: dict, home: Path, seconds: float, timeout: float) -> dict:
    ready = home / "gui-ready.json"
    env = {**env, "BIMACOSR_QUIT_AFTER": str(seconds), "BIMACOSR_READY_FILE": str(ready)}
    start = time.time()
    try:
        proc = subprocess.run([str(gui)], env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise SmokeFailure(f"bimacosr-gui did not quit within {timeout:.0f} s") from exc
    total = time.time() - start
    crashes = _crash_lines(proc.stderr) + _crash_lines(proc.stdout)
    if proc.returncode != 0 or crashes:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SmokeFailure(f"bimacosr-gui exited {proc.returncode}; stderr:\n{tail}")
    if not ready.is_file():
        raise SmokeFailure("bimacosr-gui exited without reaching its interactive window "
                           "(no ready report)")
    state = json.loads(ready.read_text(encoding="utf-8"))
    if state.get("engine") != "ready":
        raise SmokeFailure(f"bimacosr-gui's engine did not start: {state}")
    return {
        "gui_interactive_s": round(state["interactive_at"] - start, 2),
        "gui_engine_backends": state.get("backends", []),
        "gui_quit_s": round(time.time() - state["closing_at"], 2),
        "gui_total_s": round(total, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", type=Path, help="bundle folder, .tar.xz, .tar.gz, .AppImage, "
                        ".AppDir or .app")
    parser.add_argument("--gui-seconds", type=float, default=3.0,
                        help="how long the window stays open once interactive (default 3)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="limit for each of the two runs in seconds (default 600)")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)

    results: dict = {"target": str(args.target)}
    with tempfile.TemporaryDirectory(prefix="bimacosr-smoke-") as tmp:
        tmp = Path(tmp)
        scratch, home = tmp / "unpacked", tmp / "home"
        scratch.mkdir()
        home.mkdir()
        try:
            cli, gui = resolve(args.target, scratch)
            print(f"smoke test: {cli} --self-test", flush=True)
            results.update(self_test(cli, _env(home), args.timeout))
            print(f"smoke test: {gui} (offscreen, quits {args.gui_seconds:g} s after start)",
                  flush=True)
            results.update(gui_test(gui, _env(home), home, args.gui_seconds, args.timeout))
        except (SmokeFailure, OSError, subprocess.SubprocessError) as exc:
            print(f"SMOKE TEST FAILED: {exc}", file=sys.stderr)
            return 1
    print(f"self-test passed in {results['self_test_s']:.1f} s; GUI interactive "
          f"{results['gui_interactive_s']:.1f} s after launch (engine: "
          f"{', '.join(results['gui_engine_backends'])}), quit cleanly "
          f"{results['gui_quit_s']:.1f} s after closing")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
