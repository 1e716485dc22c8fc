"""Huge and overflowing sizes at every entry point of the native kernels (issue 16, item 6).

Every size a binding is given (a scalar argument, or the extents of an array) and every array it
makes is checked before anything is allocated or looped over: a size argument or an array of
more than 2^40 elements (the product of its nonzero extents), a product of sizes that overflows,
or an absolute position whose end does not fit int64 raises ``OverflowError``; a negative size
``ValueError`` (kernels/README.md, "Sizes"). Before, 2^62-sized or overflowing arguments made
some bindings write past a wrapped-around allocation (a segfault).

Each entry point's cases run in a child process, so that a crash fails its test instead of
taking the test run down; the child reports, per case, the exception it raised.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

bk = pytest.importorskip(
    "bimacosr_app._bitkernels",
    reason="native kernels not built (pip install -e . needs a C++ compiler)",
)

# Names the cases use: BIG = 2^63 - 1, HALF = 2^62, NEG = -2^63, W32 = 2^32 (two of them
# overflow a product), LIM = 2^40 (the limit), and zero-filled arrays f32/u64/i32(*shape).
# CSR helpers: ROW(cout) = int32 zeros of Cout + 1 (an empty sparse matrix), COL = int32[0].
CASES: dict[str, list[str]] = {
    "prepare_conv3x3_weights": [
        "prepare_conv3x3_weights(u64(1, 3, 3, 1), BIG)",
        "prepare_conv3x3_weights(u64(1, 3, 3, 1), HALF)",
        "prepare_conv3x3_weights(u64(0, 3, 3, 2**56), HALF)",
        "prepare_conv3x3_weights(u64(0, 3, 3, 2**34 + 1), LIM + 1)",
        "prepare_conv3x3_weights(u64(1, 3, 3, 1), NEG)",
    ],
    "prepare_gemm_weights": [
        "prepare_gemm_weights(u64(1, 1), BIG)",
        "prepare_gemm_weights(u64(1, 1), HALF)",
        "prepare_gemm_weights(u64(0, 2**56), HALF)",
        "prepare_gemm_weights(u64(1, 1), NEG)",
    ],
    "pack_activations": [
        "pack_activations(f32(0, 2**21, 2**21, 64))",
        "pack_activations(f32(0, 1, 1, 2**41))",
        "pack_activations(f32(0, 1, 1, 64), x2=f32(0, 1, 1, 2**41))",
    ],
    "binary_conv3x3": [
        "binary_conv3x3(u64(1, 2, 2, 1), f32(1, 2, 2), u64(4, 3, 3, 1), BIG, f32(4))",
        "binary_conv3x3(u64(1, 2, 2, 1), f32(1, 2, 2), u64(4, 3, 3, 1), HALF, f32(4))",
        "binary_conv3x3(u64(0, 2, 2, 2**56), f32(0, 2, 2), u64(0, 3, 3, 2**56), HALF, f32(0))",
        "binary_conv3x3(u64(1, 2, 2, 1), f32(1, 2, 2), u64(4, 3, 3, 1), NEG, f32(4))",
        "binary_conv3x3(u64(1, 2, 2, 1), f32(1, 2, 2), u64(4, 3, 3, 1), 1, f32(4), stride=BIG)",
        "binary_conv3x3(u64(0, 2**21, 2**21, 1), f32(0, 2**21, 2**21), u64(4, 3, 3, 1), 1, f32(4))",
    ],
    "binary_gemm": [
        "binary_gemm(u64(3, 1), f32(3), u64(4, 1), BIG, f32(4))",
        "binary_gemm(u64(3, 1), f32(3), u64(4, 1), HALF, f32(4))",
        "binary_gemm(u64(0, 2**56), f32(0), u64(0, 2**56), HALF, f32(0))",
        "binary_gemm(u64(3, 1), f32(3), u64(4, 1), NEG, f32(4))",
        "binary_gemm(u64(0, 2**35), f32(0), u64(0, 2**35), 2**41, f32(0))",
    ],
    "layer_norm": [
        "layer_norm(f32(0, 2**21, 2**21, 8), f32(8), f32(8), 1e-5)",
        "layer_norm(f32(2**41, 0), f32(0), f32(0), 1e-5)",
    ],
    "dense_conv": [
        "dense_conv(f32(0, 2**21, 2**21, 1), f32(3, 3, 1, 1))",
        "dense_conv(f32(1, 2, 2, 1), f32(3, 3, 1, 1), stride=BIG)",
        "dense_conv(f32(1, 2, 2, 1), f32(3, 3, 1, 1), stride=NEG)",
        "dense_conv(f32(0, 1, 1, 1), f32(3, 3, 2**41, 0), x2=f32(0, 1, 1, 2**41 - 1))",
    ],
    "branch": [
        "branch(f32(0, 2**21, 2**21, 4), f32(0, 4), f32(2, 0), ROW(2), COL, f32(0))",
        "branch(f32(1, 2, 2, 4), f32(0, 4), f32(2, 0), ROW(2), COL, f32(0), stride=BIG)",
        "branch(f32(1, 2, 2, 4), f32(0, 4), f32(2**41, 0), ROW(2), COL, f32(0))",
        "branch(f32(0, 1, 1, 2**41), f32(0, 2**41), f32(2, 0), ROW(2), COL, f32(0))",
    ],
    "norm_branch": [
        "norm_branch(f32(0, 2**21, 2**21, 4), f32(4), f32(4), 1e-5, False, None, f32(0, 4),"
        " f32(2, 0), ROW(2), COL, f32(0))",
        "norm_branch(f32(1, 2, 2, 4), f32(4), f32(4), 1e-5, False, None, f32(0, 4),"
        " f32(2**41, 0), ROW(2), COL, f32(0))",
    ],
    "window_attention": [
        "window_attention(f32(1, 0, 0, 6), f32(1, 0, 0), 1, W32, 0, 1.0)",
        "window_attention(f32(1, 0, 0, 6), f32(1, 1, 1), 1, 3037000500, 0, 1.0)",
        "window_attention(f32(1, 4, 4, 6), f32(1, 4, 4), 1, 2, BIG, 1.0)",
        "window_attention(f32(1, 4, 4, 6), f32(1, 4, 4), BIG, 2, 0, 1.0)",
        "window_attention(f32(1, 4, 4, 6), f32(1, 4, 4), 1, NEG, 0, 1.0)",
        "window_attention(f32(0, 2**21, 2**21, 6), f32(1, 4, 4), 1, 2, 0, 1.0)",
    ],
    "gelu": [
        "gelu(f32(0, 2**21, 2**21))",
        "gelu(f32(2**41, 0))",
    ],
    "one_step_input": [
        "one_step_input(f32(1, 2, 2, 3), None, 0.0, 1.0, HALF, 2)",
        "one_step_input(f32(1, 2, 2, 3), None, 0.0, 1.0, BIG, BIG)",
        "one_step_input(f32(1, 2, 2, 3), None, 0.0, 1.0, W32, W32)",
        "one_step_input(f32(1, 2, 2, 3), None, 0.0, 1.0, 2**20, 2**20)",
        "one_step_input(f32(1, 2, 2, 3), None, 0.0, 1.0, NEG, 2)",
        "one_step_input(f32(0, 2**20, 2**20, 3), None, 0.0, 1.0, 2**20, 2**20)",
    ],
    "latent_image": [
        "latent_image(f32(0, 2**20, 2**20, 16), 2**20, 2**20)",
        "latent_image(f32(1, 2, 2, 16), BIG, 1)",
        "latent_image(f32(1, 2, 2, 16), NEG, 1)",
    ],
    "position_uniforms": [
        "position_uniforms(0, 1, 0, 0, W32, W32, 1)",
        "position_uniforms(0, 1, 0, 0, 4, 4, HALF)",
        "position_uniforms(0, 1, 0, 0, BIG, 1, 1)",
        "position_uniforms(0, 1, 0, 0, 2**20, 2**20, 2**10)",
        "position_uniforms(0, 1, 0, 0, NEG, 1, 1)",
        "position_uniforms(0, 1, BIG, 0, 2, 2, 1)",
        "position_uniforms(0, 1, 0, BIG - 1, 2, 2, 1)",
    ],
    "set_num_threads": [
        "set_num_threads(2**31 - 1)",
        "set_num_threads(-(2**31))",
    ],
}

# Entry points without sizes.
NO_SIZES = {"available_kernels", "cpu_features", "get_num_threads", "kernel_name", "set_kernel"}

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import bimacosr_app._bitkernels as bk

    BIG, HALF, NEG, W32, LIM = 2**63 - 1, 2**62, -(2**63), 2**32, 2**40
    f32 = lambda *s: np.zeros(s, np.float32)
    u64 = lambda *s: np.zeros(s, np.uint64)
    ROW = lambda cout: np.zeros(cout + 1, np.int32)
    COL = np.zeros(0, np.int32)
    before = bk.get_num_threads()
    for case in json.loads(sys.argv[1]):
        print(json.dumps({"case": case}), flush=True)  # the last line names a crashing case
        try:
            eval("bk." + case)
            outcome = "returned"
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        finally:
            bk.set_num_threads(before)
        print(json.dumps({"case": case, "outcome": outcome}), flush=True)
""")


def test_every_entry_point_has_cases():
    entry_points = {name for name in dir(bk)
                    if not name.startswith("_") and callable(getattr(bk, name))
                    and not isinstance(getattr(bk, name), type)}
    assert entry_points == set(CASES) | NO_SIZES


@pytest.mark.parametrize("entry_point", sorted(CASES))
def test_huge_and_overflowing_sizes_raise(entry_point):
    cases = CASES[entry_point]
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)],
                          capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    outcomes = {line["case"]: line["outcome"] for line in lines if "outcome" in line}
    crashed = lines[-1]["case"] if lines and "outcome" not in lines[-1] else None
    assert proc.returncode == 0 and crashed is None, (
        f"{entry_point}: the child died (status {proc.returncode}) in {crashed!r}:\n"
        f"{proc.stderr[-2000:]}")
    wrong = {case: outcome for case, outcome in outcomes.items()
             if not outcome.startswith(("ValueError: ", "OverflowError: "))}
    assert not wrong, f"{entry_point}: not rejected with ValueError/OverflowError: {wrong}"
    assert set(outcomes) == set(cases)


@pytest.mark.parametrize("case, error, message", [
    ("position_uniforms(0, 1, 0, 0, W32, W32, 1)", "OverflowError", "2^40"),
    ("one_step_input(f32(1, 2, 2, 3), None, 0.0, 1.0, W32, W32)", "OverflowError", "2^40"),
    ("binary_gemm(u64(3, 1), f32(3), u64(4, 1), BIG, f32(4))", "OverflowError", "k"),
    ("position_uniforms(0, 1, 0, 0, NEG, 1, 1)", "ValueError", ">= 0"),
    ("position_uniforms(0, 1, BIG, 0, 2, 2, 1)", "OverflowError", "top"),
])
def test_size_errors_say_what_is_wrong(case, error, message):
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps([case])],
                          capture_output=True, text=True, timeout=60)
    outcome = json.loads(proc.stdout.splitlines()[-1])["outcome"]
    assert outcome.startswith(f"{error}: ") and message in outcome, outcome


def test_sizes_at_the_limit_still_work():
    """Empty arrays whose other extents reach the limit are fine, as are real calls."""
    assert bk.position_uniforms(0, 1, 2**62, -(2**62), 0, 2**40, 1)[0].shape == (1, 0, 2**40)
    assert bk.gelu(np.zeros((0, 2**40), np.float32)).shape == (0, 2**40)
    assert bk.one_step_input(np.zeros((1, 2, 2, 3), np.float32), None, 0.0, 1.0, 64, 64)[0].shape \
        == (1, 64, 64, 51)
