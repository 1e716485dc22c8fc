"""Parity harness for the native XNOR-popcount kernels (bimacosr_app._bitkernels).

Every kernel usable on this CPU (the scalar reference and each optimized one, selected with
``set_kernel``) runs on the same random inputs and is compared with a float64 NumPy evaluation
of the formulas in docs / DESIGN section 3:

    conv: y[n,p,o] = beta[o] * sum_t alpha[n,p*s+t] * (cin - 2*popcount(x[n,p*s+t] ^ w[o,t])) + b[o]
    gemm: y[m,o]   = alpha[m] * beta[o] * (k - 2*popcount(x[m] ^ w[o])) + b[o]

then RPReLU and the residual add. ``cin - 2*popcount(x ^ w)`` equals the +-1 dot product of the
unpacked signs, which is what the NumPy side computes.

Tolerance: the kernels accumulate in float32 (exact integer popcounts, then about ten float32
multiply-adds per output), so their error is bounded by a few tens of float32 epsilons (6e-8)
times the magnitude of the terms, ``|beta| * cin * sum_t alpha_t + |bias|`` (plus the RPReLU
shifts and the added tensor). We allow 1e-5 of that scale (relative ~1e-5, a 5x margin over the
bound); cancellation can make the *result* small, so a plain relative error on y is meaningless.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from bimacosr_app.checkpoint.bitpack import num_words, pack_signs, unpack_signs

bk = pytest.importorskip(
    "bimacosr_app._bitkernels",
    reason="native kernels not built (pip install -e . needs a C++ compiler)",
)

KERNELS = list(bk.available_kernels())
CHANNELS = [1, 63, 64, 65, 127, 128, 129]
RTOL = 1e-5


@pytest.fixture(params=KERNELS)
def kernel(request):
    bk.set_kernel(request.param)
    assert bk.kernel_name() == request.param
    yield request.param
    bk.set_kernel("auto")


# ----------------------------------------------------------------------------------------------
# float64 NumPy references


def signs(a: np.ndarray) -> np.ndarray:
    return np.where(a < 0, -1.0, 1.0)


def ref_epilogue(y, rprelu, add):
    if rprelu is not None:
        s_in, slope, s_out = (np.asarray(v, np.float64) for v in rprelu)
        u = y + s_in
        y = np.where(u > 0, u, slope * u) + s_out
    if add is not None:
        y = y + add.astype(np.float64)
    return y


def ref_conv3x3(xs, alpha, ws, beta, bias, stride, rprelu, add, second=None):
    """xs: +-1 [N,H,W,Cin]; alpha [N,H,W]; ws: +-1 [Cout,3,3,Cin]; second: (xs2, alpha2) of a
    second activation base (same shapes, same weights) or None. Returns (y, error scale)."""
    n, h, w, _ = xs.shape
    cin = xs.shape[-1]
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    xa = np.zeros((n, h + 2, w + 2, cin))
    apad = np.zeros((n, h + 2, w + 2))
    for xs_b, alpha_b in [(xs, alpha)] + ([second] if second is not None else []):
        a64 = alpha_b.astype(np.float64)
        xa[:, 1:-1, 1:-1] += a64[..., None] * xs_b  # the conv is linear in sum_b alpha_b xs_b
        apad[:, 1:-1, 1:-1] += np.abs(a64)
    acc = np.zeros((n, ho, wo, ws.shape[0]))
    asum = np.zeros((n, ho, wo))
    for ky in range(3):
        for kx in range(3):
            ys = slice(ky, ky + stride * (ho - 1) + 1, stride)
            xsl = slice(kx, kx + stride * (wo - 1) + 1, stride)
            acc += xa[:, ys, xsl] @ ws[:, ky, kx, :].T
            asum += apad[:, ys, xsl]
    b64 = np.zeros(ws.shape[0]) if bias is None else bias.astype(np.float64)
    y = beta.astype(np.float64) * acc + b64
    scale = np.abs(beta.astype(np.float64)) * cin * asum[..., None] + np.abs(b64)
    return ref_epilogue(y, rprelu, add), error_scale(scale, rprelu, add)


def ref_gemm(xs, alpha, ws, beta, bias, rprelu, add, second=None):
    """second: (xs2, alpha2) of a second activation base or None:
    y = beta * (alpha (xs . w) + alpha2 (xs2 . w)) + bias."""
    k = xs.shape[-1]
    b64 = np.zeros(ws.shape[0]) if bias is None else bias.astype(np.float64)
    if second is None:
        ab = alpha.astype(np.float64)[:, None] * beta.astype(np.float64)[None, :]
        y = ab * (xs @ ws.T) + b64
        scale = np.abs(ab) * k + np.abs(b64)
    else:
        a1, a2 = (a.astype(np.float64)[:, None] for a in (alpha, second[1]))
        beta64 = beta.astype(np.float64)[None, :]
        y = beta64 * (a1 * (xs @ ws.T) + a2 * (second[0] @ ws.T)) + b64
        scale = np.abs(beta64) * k * (np.abs(a1) + np.abs(a2)) + np.abs(b64)
    return ref_epilogue(y, rprelu, add), error_scale(scale, rprelu, add)


def error_scale(scale, rprelu, add):
    if rprelu is not None:
        s_in, slope, s_out = (np.abs(np.asarray(v, np.float64)) for v in rprelu)
        scale = (scale + s_in) * np.maximum(1.0, slope) + s_out
    if add is not None:
        scale = scale + np.abs(add)
    return scale + 1e-30


def assert_close(got, want, scale):
    assert got.dtype == np.float32
    assert got.shape == want.shape
    err = np.abs(got.astype(np.float64) - want) / scale
    assert np.all(np.isfinite(got))
    assert err.max() <= RTOL, f"max scaled error {err.max():.3g} > {RTOL}"


# ----------------------------------------------------------------------------------------------
# random problems


def make_conv(rng, n, h, w, cin, cout, stride, *, bias=True, rprelu=True, add=True):
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = 0.0  # sign(0) = +1
    alpha = rng.uniform(0.05, 2.0, (n, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, 3, 3, cin)).astype(np.float32)
    beta = rng.uniform(0.01, 1.0, cout).astype(np.float32)
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    return {
        "x": x,
        "bits": pack_signs(x),
        "alpha": alpha,
        "w": wt,
        "wbits": pack_signs(wt),
        "beta": beta,
        "bias": rng.standard_normal(cout).astype(np.float32) if bias else None,
        "rprelu": (
            tuple(
                v.astype(np.float32)
                for v in (
                    rng.standard_normal(cout),
                    rng.uniform(0.0, 0.5, cout),
                    rng.standard_normal(cout),
                )
            )
            if rprelu
            else None
        ),
        "add": rng.standard_normal((n, ho, wo, cout)).astype(np.float32) if add else None,
        "stride": stride,
    }


def run_conv(p):
    return bk.binary_conv3x3(
        p["bits"],
        p["alpha"],
        p["wbits"],
        p["x"].shape[-1],
        p["beta"],
        p["bias"],
        p["stride"],
        rprelu=p["rprelu"],
        add=p["add"],
    )


def check_conv(p):
    got = run_conv(p)
    want, scale = ref_conv3x3(
        signs(p["x"]),
        p["alpha"],
        signs(p["w"]),
        p["beta"],
        p["bias"],
        p["stride"],
        p["rprelu"],
        p["add"],
    )
    assert_close(got, want, scale)
    return got


def make_gemm(rng, m, k, nout, *, bias=True, rprelu=True, add=True):
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = 0.0
    wt = rng.standard_normal((nout, k)).astype(np.float32)
    return {
        "x": x,
        "bits": pack_signs(x),
        "alpha": rng.uniform(0.05, 2.0, m).astype(np.float32),
        "w": wt,
        "wbits": pack_signs(wt),
        "beta": rng.uniform(0.01, 1.0, nout).astype(np.float32),
        "bias": rng.standard_normal(nout).astype(np.float32) if bias else None,
        "rprelu": (
            tuple(
                v.astype(np.float32)
                for v in (
                    rng.standard_normal(nout),
                    rng.uniform(0.0, 0.5, nout),
                    rng.standard_normal(nout),
                )
            )
            if rprelu
            else None
        ),
        "add": rng.standard_normal((m, nout)).astype(np.float32) if add else None,
    }


def check_gemm(p):
    got = bk.binary_gemm(
        p["bits"],
        p["alpha"],
        p["wbits"],
        p["x"].shape[-1],
        p["beta"],
        p["bias"],
        rprelu=p["rprelu"],
        add=p["add"],
    )
    want, scale = ref_gemm(
        signs(p["x"]), p["alpha"], signs(p["w"]), p["beta"], p["bias"], p["rprelu"], p["add"]
    )
    assert_close(got, want, scale)
    return got


EPILOGUES = {
    "plain": {"bias": False, "rprelu": False, "add": False},
    "bias": {"bias": True, "rprelu": False, "add": False},
    "rprelu": {"bias": False, "rprelu": True, "add": False},
    "add": {"bias": False, "rprelu": False, "add": True},
    "all": {"bias": True, "rprelu": True, "add": True},
}


# ----------------------------------------------------------------------------------------------
# conv3x3


@pytest.mark.parametrize("cin", CHANNELS)
@pytest.mark.parametrize("cout", CHANNELS)
def test_conv3x3_channels(kernel, cin, cout):
    rng = np.random.default_rng(1000 * cin + cout)
    stride = 1 + (cin + cout) % 2
    check_conv(make_conv(rng, 2, 7, 5, cin, cout, stride))


@pytest.mark.parametrize("hw", [(7, 5), (1, 1), (13, 9), (2, 3), (8, 8)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("epi", list(EPILOGUES))
def test_conv3x3_shapes(kernel, hw, stride, n, epi):
    rng = np.random.default_rng(zlib.crc32(repr((hw, stride, n, epi)).encode()))
    for cin, cout in [(65, 17), (128, 129)]:
        check_conv(make_conv(rng, n, *hw, cin, cout, stride, **EPILOGUES[epi]))


@pytest.mark.parametrize("stride", [1, 2])
def test_conv3x3_threaded_large(kernel, stride):
    """Enough work to be split over the thread pool; results must not depend on threads."""
    rng = np.random.default_rng(7 + stride)
    p = make_conv(rng, 2, 33, 31, 128, 72, stride)
    threads = bk.get_num_threads()
    try:
        bk.set_num_threads(1)
        one = check_conv(p)
        bk.set_num_threads(3)
        three = check_conv(p)
    finally:
        bk.set_num_threads(threads)
    np.testing.assert_array_equal(one, three)  # each output is computed by exactly one thread


_OPENMP_TEAM_SCRIPT = """
import os, sys
import numpy as np
import torch  # loads torch's OpenMP runtime: the kernels then run on its team
import bimacosr_app._bitkernels as bk

torch.set_num_threads(2)
torch.ones(64, 64) @ torch.ones(64, 64)  # start torch's team
rng = np.random.default_rng(0)
bits, alpha = bk.pack_activations(rng.standard_normal((2, 33, 31, 128), dtype=np.float32))
w = bk.pack_activations(rng.standard_normal((72, 3, 3, 128), dtype=np.float32))[0]
beta = np.ones(72, np.float32)
def run(threads):
    bk.set_num_threads(threads)
    return bk.binary_conv3x3(bits, alpha, w, 128, beta)
one, two = run(1), run(2)
assert np.array_equal(one, two)
pid = os.fork()  # the child has no OpenMP team: the kernels use their private pool there
if pid == 0:
    os._exit(0 if np.array_equal(run(2), one) else 1)
assert os.waitpid(pid, 0)[1] == 0
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_threads_with_torch_openmp_and_after_fork():
    """With torch loaded, threaded kernels (on torch's OpenMP team where one is found) give the
    single-threaded results, and a forked child neither hangs nor differs."""
    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, "-c", _OPENMP_TEAM_SCRIPT], capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("cout", CHANNELS)
@pytest.mark.parametrize("in_place", [True, False])
def test_conv3x3_out(kernel, cout, in_place):
    """``out=``: the result lands in the given array (the add array itself: in place) and is
    the array returned; the values are those of a fresh output."""
    rng = np.random.default_rng(cout)
    p = make_conv(rng, 2, 7, 5, 65, cout, 1 + cout % 2)
    want = run_conv(p)
    out = p["add"].copy() if in_place else np.full_like(p["add"], np.nan)
    add = out if in_place else p["add"]
    got = bk.binary_conv3x3(p["bits"], p["alpha"], p["wbits"], 65, p["beta"], p["bias"],
                            p["stride"], p["rprelu"], add, out=out)
    assert got is out
    np.testing.assert_array_equal(out, want)


def test_conv3x3_matches_torch_conv2d_convention(kernel):
    """Tap (ky, kx) reads input pixel (p*s + ky - 1, p*s + kx - 1): PyTorch's cross-correlation."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for stride in (1, 2):
        p = make_conv(rng, 1, 9, 6, 70, 11, stride, bias=True, rprelu=False, add=False)
        xa = torch.from_numpy(p["alpha"][..., None] * signs(p["x"])).permute(0, 3, 1, 2)
        wb = torch.from_numpy(signs(p["w"])).permute(0, 3, 1, 2)
        ref = torch.nn.functional.conv2d(xa.double(), wb.double(), stride=stride, padding=1)
        ref = ref * torch.from_numpy(p["beta"]).double()[None, :, None, None]
        ref = ref + torch.from_numpy(p["bias"]).double()[None, :, None, None]
        got = run_conv(p)
        np.testing.assert_allclose(got, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-3)


def test_conv3x3_single_weight_bit(kernel):
    """One set weight bit (output o0, tap t0, channel c0) against all-positive inputs."""
    cin, cout, h, w = 130, 20, 6, 7
    o0, ky0, kx0, c0 = 13, 0, 2, 66
    alpha = np.zeros((1, h, w), np.float32)
    alpha[0, 3, 4] = 1.5  # one input pixel with weight: its outputs show where each tap reads
    bits = np.zeros((1, h, w, num_words(cin)), np.uint64)
    wbits = np.zeros((cout, 3, 3, num_words(cin)), np.uint64)
    wbits[o0, ky0, kx0, c0 // 64] = np.uint64(1) << np.uint64(c0 % 64)
    beta = np.ones(cout, np.float32)
    y = bk.binary_conv3x3(bits, alpha, wbits, cin, beta, None, 1)
    want = np.zeros((1, h, w, cout), np.float32)
    for ky in range(3):
        for kx in range(3):
            want[0, 3 - ky + 1, 4 - kx + 1, :] = 1.5 * cin
    want[0, 3 - ky0 + 1, 4 - kx0 + 1, o0] = 1.5 * (cin - 2)
    np.testing.assert_array_equal(y, want)


def test_conv3x3_padding_contributes_zero(kernel):
    """At a corner only 4 taps exist; all-ones alpha and equal signs give beta * 4 * cin."""
    cin, cout = 64, 8
    bits = np.zeros((1, 4, 4, 1), np.uint64)
    alpha = np.ones((1, 4, 4), np.float32)
    wbits = np.zeros((cout, 3, 3, 1), np.uint64)
    y = bk.binary_conv3x3(bits, alpha, wbits, cin, np.ones(cout, np.float32), None, 1)
    assert y[0, 0, 0, 0] == 4 * cin
    assert y[0, 0, 1, 0] == 6 * cin
    assert y[0, 1, 1, 0] == 9 * cin


# ----------------------------------------------------------------------------------------------
# gemm


@pytest.mark.parametrize("k", CHANNELS)
@pytest.mark.parametrize("nout", CHANNELS)
def test_gemm_channels(kernel, k, nout):
    rng = np.random.default_rng(77 * k + nout)
    check_gemm(make_gemm(rng, 37, k, nout))


@pytest.mark.parametrize("m", [1, 2, 513])
@pytest.mark.parametrize("epi", list(EPILOGUES))
def test_gemm_shapes(kernel, m, epi):
    rng = np.random.default_rng(m)
    for k, nout in [(256, 256), (129, 33), (2000, 9)]:
        check_gemm(make_gemm(rng, m, k, nout, **EPILOGUES[epi]))


@pytest.mark.parametrize("nout", CHANNELS)
@pytest.mark.parametrize("in_place", [True, False])
def test_gemm_out(kernel, nout, in_place):
    """``out=`` as for the conv: in place over the add array, or into a separate array."""
    rng = np.random.default_rng(nout)
    p = make_gemm(rng, 37, 129, nout)
    args = (p["bits"], p["alpha"], p["wbits"], 129, p["beta"], p["bias"], p["rprelu"])
    want = bk.binary_gemm(*args, p["add"])
    out = p["add"].copy() if in_place else np.full_like(p["add"], np.nan)
    got = bk.binary_gemm(*args, out if in_place else p["add"], out=out)
    assert got is out
    np.testing.assert_array_equal(out, want)


def test_out_errors():
    """``out`` must be float32 of the output's shape, C-contiguous and writable, and must not
    overlap ``add`` unless it is ``add``."""
    rng = np.random.default_rng(5)
    p = make_gemm(rng, 6, 64, 10)
    args = (p["bits"], p["alpha"], p["wbits"], 64, p["beta"])
    with pytest.raises(ValueError, match="out has shape"):
        bk.binary_gemm(*args, out=np.empty((6, 11), np.float32))
    with pytest.raises(ValueError, match="out must be float32"):
        bk.binary_gemm(*args, out=np.empty((6, 10), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        bk.binary_gemm(*args, out=np.empty((10, 6), np.float32).T)
    read_only = np.empty((6, 10), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        bk.binary_gemm(*args, out=read_only)
    buf = np.zeros(61, np.float32)
    with pytest.raises(ValueError, match="not overlap"):
        bk.binary_gemm(*args, add=buf[1:].reshape(6, 10), out=buf[:-1].reshape(6, 10))


def test_gemm_single_bit(kernel):
    k, nout = 200, 24
    bits = np.zeros((3, num_words(k)), np.uint64)
    bits[1, 2] = np.uint64(1) << np.uint64(5)  # input 1, channel 133 negative
    wbits = np.zeros((nout, num_words(k)), np.uint64)
    wbits[17, 2] = np.uint64(1) << np.uint64(5)  # output 17 has the same bit -> agrees
    wbits[4, 0] = np.uint64(1)  # output 4, channel 0 negative
    alpha = np.array([1.0, 2.0, 0.5], np.float32)
    y = bk.binary_gemm(bits, alpha, wbits, k, np.ones(nout, np.float32), None)
    want = alpha[:, None] * np.full((3, nout), k, np.float32)
    want[1, :] -= 2 * 2.0  # input 1 disagrees with every output on channel 133 ...
    want[1, 17] += 2 * 2.0  # ... except output 17
    want[[0, 2], 17] -= 2 * alpha[[0, 2]]  # inputs 0, 2 disagree with output 17 on channel 133
    want[:, 4] -= 2 * alpha  # output 4 disagrees with every input on channel 0
    np.testing.assert_array_equal(y, want)


# ----------------------------------------------------------------------------------------------
# prepared weights: repacked once per layer for the active kernel, then passed as wbits


def prepared_conv(p):
    return {**p, "wbits": bk.prepare_conv3x3_weights(p["wbits"], p["x"].shape[-1])}


def prepared_gemm(p):
    return {**p, "wbits": bk.prepare_gemm_weights(p["wbits"], p["x"].shape[-1])}


@pytest.mark.parametrize("cin", CHANNELS)
@pytest.mark.parametrize("cout", CHANNELS)
def test_prepared_conv3x3_channels(kernel, cin, cout):
    """Prepared weights give the float64 formula's result, bit-identical to raw bits."""
    rng = np.random.default_rng(3000 * cin + cout)
    p = make_conv(rng, 2, 7, 5, cin, cout, 1 + (cin + cout) % 2)
    np.testing.assert_array_equal(check_conv(prepared_conv(p)), run_conv(p))


@pytest.mark.parametrize("k", CHANNELS)
@pytest.mark.parametrize("nout", CHANNELS)
def test_prepared_gemm_channels(kernel, k, nout):
    rng = np.random.default_rng(3000 * k + nout)
    p = make_gemm(rng, 37, k, nout)
    want = bk.binary_gemm(p["bits"], p["alpha"], p["wbits"], k, p["beta"], p["bias"],
                          p["rprelu"], p["add"])
    np.testing.assert_array_equal(check_gemm(prepared_gemm(p)), want)


def test_prepared_weights_reused(kernel):
    """One PreparedWeights serves calls on other inputs, sizes, strides and epilogues."""
    rng = np.random.default_rng(11)
    wt = rng.standard_normal((40, 3, 3, 130)).astype(np.float32)
    weights = bk.prepare_conv3x3_weights(pack_signs(wt), 130)
    for i, (n, h, w, stride, epi) in enumerate(
        [(1, 7, 5, 1, "all"), (2, 13, 9, 2, "plain"), (1, 1, 1, 1, "rprelu"), (2, 8, 8, 2, "add")]
    ):
        p = make_conv(np.random.default_rng(i), n, h, w, 130, 40, stride, **EPILOGUES[epi])
        p.update(w=wt, wbits=pack_signs(wt))
        np.testing.assert_array_equal(check_conv({**p, "wbits": weights}), run_conv(p))


@pytest.mark.parametrize("prepared_for", KERNELS)
def test_prepared_weights_kernel_switch(prepared_for):
    """Weights prepared for one kernel run only while it is active: after ``set_kernel`` to
    another one the calls raise ValueError (prepare them again), and run again once it is back."""
    rng = np.random.default_rng(12)
    conv = make_conv(rng, 1, 6, 5, 65, 17, 1)
    gemm = make_gemm(rng, 9, 65, 17)
    try:
        bk.set_kernel(prepared_for)
        pconv, pgemm = prepared_conv(conv), prepared_gemm(gemm)
        assert pconv["wbits"].kernel == pgemm["wbits"].kernel == prepared_for
        for active in KERNELS:
            bk.set_kernel(active)
            if active == prepared_for:
                check_conv(pconv)
                check_gemm(pgemm)
                continue
            stale = rf"prepared for kernel '{prepared_for}', but the active kernel is '{active}'"
            with pytest.raises(ValueError, match=stale):
                run_conv(pconv)
            with pytest.raises(ValueError, match=stale):
                check_gemm(pgemm)
            again = prepared_conv(conv)  # prepared for the active kernel: runs
            assert again["wbits"].kernel == active
            np.testing.assert_array_equal(check_conv(again), run_conv(conv))
        bk.set_kernel(prepared_for)
        np.testing.assert_array_equal(run_conv(pconv), run_conv(conv))
    finally:
        bk.set_kernel("auto")


def test_prepared_weights_object(kernel):
    wbits = pack_signs(np.random.default_rng(13).standard_normal((33, 3, 3, 70)))
    conv = bk.prepare_conv3x3_weights(wbits, 70)
    gemm = bk.prepare_gemm_weights(np.ascontiguousarray(wbits[:, 0, 0]), 70)
    assert (conv.kernel, conv.cin, conv.out_features, conv.taps) == (kernel, 70, 33, 9)
    assert (gemm.kernel, gemm.cin, gemm.out_features, gemm.taps) == (kernel, 70, 33, 1)
    assert repr(conv) == f"PreparedWeights(kernel='{kernel}', conv3x3, cin=70, out_features=33)"
    assert copy.copy(conv) is conv and copy.deepcopy(gemm) is gemm  # immutable: shared
    with pytest.raises(AttributeError):
        conv.cin = 64
    with pytest.raises(TypeError):
        bk.PreparedWeights()
    torch = pytest.importorskip("torch")
    from_torch = bk.prepare_conv3x3_weights(torch.from_numpy(wbits.view(np.int64)), 70)
    assert from_torch.out_features == 33


def test_prepared_weights_errors():
    rng = np.random.default_rng(14)
    conv = make_conv(rng, 1, 4, 4, 70, 8, 1, rprelu=False, add=False)
    gemm = make_gemm(rng, 5, 70, 8, rprelu=False, add=False)
    wbits, gbits = conv["wbits"], gemm["wbits"]  # (8, 3, 3, 2), (8, 2)
    with pytest.raises(ValueError, match="wbits must be uint64"):
        bk.prepare_conv3x3_weights(wbits.astype(np.float32), 70)
    with pytest.raises(ValueError, match=r"has shape \(8, 3, 3, 2\), expected \(\*, 3, 3, 3\)"):
        bk.prepare_conv3x3_weights(wbits, 130)
    with pytest.raises(ValueError, match="wbits must have 4 dimensions"):
        bk.prepare_conv3x3_weights(gbits, 70)
    with pytest.raises(ValueError, match="wbits must have 2 dimensions"):
        bk.prepare_gemm_weights(wbits, 70)
    with pytest.raises(ValueError, match="C-contiguous"):
        bk.prepare_gemm_weights(np.asfortranarray(np.zeros((8, 2), np.uint64)), 70)
    with pytest.raises(ValueError, match="k must be >= 1"):
        bk.prepare_gemm_weights(np.zeros((8, 0), np.uint64), 0)
    bad = gbits.copy()
    bad[3, 1] |= np.uint64(1) << np.uint64(6)  # channel 70 >= k = 70
    with pytest.raises(ValueError, match="pad bits"):
        bk.prepare_gemm_weights(bad, 70)
    with pytest.raises(TypeError):
        bk.prepare_gemm_weights(gbits.tolist(), 70)
    pconv, pgemm = prepared_conv(conv), prepared_gemm(gemm)
    with pytest.raises(ValueError, match="prepared for binary_conv3x3, not binary_gemm"):
        check_gemm({**gemm, "wbits": pconv["wbits"]})
    with pytest.raises(ValueError, match="prepared for binary_gemm, not binary_conv3x3"):
        run_conv({**conv, "wbits": pgemm["wbits"]})
    with pytest.raises(ValueError, match="prepared for 70 input channels, the call has 65"):
        bk.binary_conv3x3(conv["bits"], conv["alpha"], pconv["wbits"], 65, conv["beta"])
    with pytest.raises(ValueError, match="prepared for 70 input channels, the call has 128"):
        bk.binary_gemm(gemm["bits"], gemm["alpha"], pgemm["wbits"], 128, gemm["beta"])
    with pytest.raises(ValueError, match=r"beta has shape \(7,\), expected \(8,\)"):
        bk.binary_gemm(gemm["bits"], gemm["alpha"], pgemm["wbits"], 70, gemm["beta"][:7])
    with pytest.raises(TypeError):
        bk.binary_conv3x3(conv["bits"], conv["alpha"], None, 70, conv["beta"])
    for not_weights in ("wbits", wbits.tolist()):
        with pytest.raises(TypeError, match="PreparedWeights or a uint64"):
            bk.binary_conv3x3(conv["bits"], conv["alpha"], not_weights, 70, conv["beta"])


# ----------------------------------------------------------------------------------------------
# packing


@pytest.mark.parametrize("c", [1, 7, 8, 16, 63, 64, 65, 127, 128, 129, 200, 256])
def test_pack_activations(kernel, c):
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, 3, 5, c)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = 0.0
    x[rng.random(x.shape) < 0.05] = -0.0  # -0.0 is not < 0: bit 0
    bits, alpha = bk.pack_activations(x)
    assert bits.dtype == np.uint64 and bits.shape == (2, 3, 5, num_words(c))
    assert alpha.dtype == np.float32 and alpha.shape == (2, 3, 5)
    np.testing.assert_array_equal(bits, pack_signs(x))
    np.testing.assert_allclose(alpha, np.abs(x.astype(np.float64)).mean(-1), rtol=1e-6)


@pytest.mark.parametrize("c", [1, 63, 64, 65, 130, 200])
def test_pack_bit_order(kernel, c):
    """A single negative channel 64w+j sets exactly bit j of word w (pixel i: channel i)."""
    x = np.ones((1, 1, c, c), np.float32)
    x[0, 0, np.arange(c), np.arange(c)] = -1.0
    bits, _ = bk.pack_activations(x)
    for i in range(c):
        want = np.zeros(num_words(c), np.uint64)
        want[i // 64] = np.uint64(1) << np.uint64(i % 64)
        np.testing.assert_array_equal(bits[0, 0, i], want)
    np.testing.assert_array_equal(bits, pack_signs(x))


@pytest.mark.parametrize("c1", [64, 128])
@pytest.mark.parametrize("c2", CHANNELS)
def test_pack_activations_concat(kernel, c1, c2):
    """x2: the channel concatenation [x, x2] packed without materializing it, bit-identical
    (bits and alpha) to packing the concatenation, on every kernel."""
    rng = np.random.default_rng(1000 * c1 + c2)
    x = rng.standard_normal((2, 3, 5, c1 + c2)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = 0.0
    x[rng.random(x.shape) < 0.05] = -0.0
    bits, alpha = bk.pack_activations(np.ascontiguousarray(x[..., :c1]),
                                      np.ascontiguousarray(x[..., c1:]))
    want_bits, want_alpha = bk.pack_activations(x)
    np.testing.assert_array_equal(bits, want_bits)
    np.testing.assert_array_equal(alpha, want_alpha)
    np.testing.assert_array_equal(bits, pack_signs(x))
    np.testing.assert_allclose(alpha, np.abs(x.astype(np.float64)).mean(-1), rtol=1e-6)


def test_pack_activations_concat_errors():
    x = np.ones((1, 2, 3, 64), np.float32)
    with pytest.raises(ValueError, match="multiple of 64"):
        bk.pack_activations(np.ones((1, 2, 3, 65), np.float32), x)
    with pytest.raises(ValueError, match="x2"):
        bk.pack_activations(x, np.ones((1, 3, 2, 8), np.float32))  # other pixels
    with pytest.raises(ValueError, match="x2"):
        bk.pack_activations(x, np.asfortranarray(np.ones((1, 2, 3, 8), np.float32)))


def ref_pack_shift(x, shift):
    """float64 evaluation of a thresholded pack: bits of d = x - shift (the sign of the float32
    difference of two float32 values is that of the exact one, and it is +0 exactly where
    x == shift, so float64 gives the same bits), alpha = mean |d|."""
    d = x.astype(np.float64) - shift.astype(np.float64)
    return pack_signs(d), np.abs(d).mean(-1)


def random_shifted(rng, shape):
    """Random x and per-channel thresholds; some x exactly on their threshold (packs as 0)."""
    x = rng.standard_normal(shape).astype(np.float32)
    shift = (0.5 * rng.standard_normal(shape[-1])).astype(np.float32)
    on = rng.random(shape) < 0.1
    x[on] = np.broadcast_to(shift, shape)[on]
    return x, shift


@pytest.mark.parametrize("c", CHANNELS)
def test_pack_activations_shift(kernel, c):
    """shift: bit 1 iff x - shift < 0 in float32, alpha = mean |x - shift|."""
    rng = np.random.default_rng(c)
    x, shift = random_shifted(rng, (2, 3, 5, c))
    bits, alpha = bk.pack_activations(x, shift=shift)
    assert bits.dtype == np.uint64 and bits.shape == (2, 3, 5, num_words(c))
    assert alpha.dtype == np.float32 and alpha.shape == (2, 3, 5)
    want_bits, want_alpha = ref_pack_shift(x, shift)
    np.testing.assert_array_equal(bits, want_bits)
    np.testing.assert_allclose(alpha, want_alpha, rtol=1e-6)


@pytest.mark.parametrize("c", CHANNELS)
def test_pack_shift_is_packing_shifted_input(kernel, c):
    """The kernels subtract the threshold in float32 as they load x: the result is that of
    packing x - shift computed first in float32 (bit-identical bits and alpha, the same kernel
    summing the same values in the same order)."""
    rng = np.random.default_rng(100 + c)
    x, shift = random_shifted(rng, (3, 4, 7, c))
    bits, alpha = bk.pack_activations(x, shift=shift)
    want_bits, want_alpha = bk.pack_activations(x - shift)
    np.testing.assert_array_equal(bits, want_bits)
    np.testing.assert_array_equal(alpha, want_alpha)


@pytest.mark.parametrize("c1", [64, 128])
@pytest.mark.parametrize("c2", CHANNELS)
def test_pack_activations_concat_shift(kernel, c1, c2):
    """x2 with a shift: shift[:c1] are x's thresholds, shift[c1:] x2's; bit-identical to packing
    the concatenation with the same shift."""
    rng = np.random.default_rng(2000 * c1 + c2)
    x, shift = random_shifted(rng, (2, 3, 5, c1 + c2))
    bits, alpha = bk.pack_activations(np.ascontiguousarray(x[..., :c1]),
                                      np.ascontiguousarray(x[..., c1:]), shift)
    want_bits, want_alpha = bk.pack_activations(x, shift=shift)
    np.testing.assert_array_equal(bits, want_bits)
    np.testing.assert_array_equal(alpha, want_alpha)
    ref_bits, ref_alpha = ref_pack_shift(x, shift)
    np.testing.assert_array_equal(bits, ref_bits)
    np.testing.assert_allclose(alpha, ref_alpha, rtol=1e-6)


@pytest.mark.parametrize("c", [1, 63, 64, 65, 130, 200])
def test_pack_bit_order_shift(kernel, c):
    """With thresholds -1 (even channels) and +1 (odd), every channel sits 0.5 above its
    threshold (-0.5 on even channels: negative, yet bit 0) except channel i of pixel i, 0.5
    below it (0.5 on odd channels: positive, yet bit 1): exactly bit i % 64 of word i // 64."""
    shift = np.where(np.arange(c) % 2 == 0, -1.0, 1.0).astype(np.float32)
    x = np.broadcast_to(shift + np.float32(0.5), (1, 1, c, c)).copy()
    x[0, 0, np.arange(c), np.arange(c)] = shift - np.float32(0.5)
    bits, alpha = bk.pack_activations(x, shift=shift)
    for i in range(c):
        want = np.zeros(num_words(c), np.uint64)
        want[i // 64] = np.uint64(1) << np.uint64(i % 64)
        np.testing.assert_array_equal(bits[0, 0, i], want)
    np.testing.assert_array_equal(alpha, np.full((1, 1, c), 0.5, np.float32))


@pytest.mark.parametrize("c", CHANNELS)
def test_pack_shift_on_threshold(kernel, c):
    """x == shift packs as 0 (sign(0) = +1; also x = -0.0 with shift 0.0, whose difference is
    -0.0) and adds nothing to alpha; one float32 step below the threshold packs as 1."""
    rng = np.random.default_rng(300 + c)
    shift = rng.standard_normal(c).astype(np.float32)
    shift[::3] = 0.0
    on = np.broadcast_to(shift, (2, 1, 1, c)).copy()
    on[1, ..., ::3] = -0.0
    bits, alpha = bk.pack_activations(on, shift=shift)
    np.testing.assert_array_equal(bits, np.zeros((2, 1, 1, num_words(c)), np.uint64))
    np.testing.assert_array_equal(alpha, np.zeros((2, 1, 1), np.float32))
    below = np.nextafter(shift, np.float32(-np.inf)).reshape(1, 1, 1, c)
    bits, _ = bk.pack_activations(below, shift=shift)
    np.testing.assert_array_equal(bits, pack_signs(-np.ones((1, 1, 1, c))))  # pad bits stay 0


def test_pack_shift_errors():
    """shift must be float32[C] (C = all channels, x's and x2's), C-contiguous."""
    x = np.ones((1, 2, 3, 64), np.float32)
    x2 = np.ones((1, 2, 3, 8), np.float32)
    with pytest.raises(ValueError, match=r"shift has shape \(63,\), expected \(64,\)"):
        bk.pack_activations(x, shift=np.zeros(63, np.float32))
    with pytest.raises(ValueError, match=r"shift has shape \(64,\), expected \(72,\)"):
        bk.pack_activations(x, x2, np.zeros(64, np.float32))  # x's channels only
    with pytest.raises(ValueError, match="shift must be float32"):
        bk.pack_activations(x, shift=np.zeros(64, np.float64))
    with pytest.raises(ValueError, match="shift must have 1 dimensions"):
        bk.pack_activations(x, shift=np.zeros((1, 64), np.float32))
    with pytest.raises(ValueError, match="shift must be C-contiguous"):
        bk.pack_activations(x, shift=np.zeros(128, np.float32)[::2])
    with pytest.raises(TypeError):
        bk.pack_activations(x, shift=[0.0] * 64)


def test_pack_signs_reference():
    a = np.array([-1.0, 0.0, -0.0, 2.0] + [-3.0] * 61 + [1.0, -1.0], np.float32)  # 67 values
    words = pack_signs(a)
    assert words.dtype == np.uint64 and words.shape == (2,)
    w0 = 1 | sum(1 << j for j in range(4, 64))
    assert int(words[0]) == w0
    assert int(words[1]) == 0b101  # channel 64 (-3) and 66 (-1) negative, 65 positive
    rng = np.random.default_rng(0)
    for shape in [(5,), (3, 64), (2, 3, 4, 129), (4, 0)]:
        v = rng.standard_normal(shape)
        packed = pack_signs(v)
        assert packed.shape == (*shape[:-1], num_words(shape[-1]))
        np.testing.assert_array_equal(unpack_signs(packed, shape[-1]), signs(v))
        np.testing.assert_array_equal(unpack_signs(packed.view(np.int64), shape[-1]), signs(v))



# ----------------------------------------------------------------------------------------------
# two activation bases (model/binary.py binarize_activation(bases=2)): base 2 packs the residual
# r = d - alpha * sign(d) of base 1 (d = x, or x - shift); a layer adds the second base's term
# with the same weights. pack_activations(..., bases=2) returns both bases; binary_conv3x3 /
# binary_gemm take the second as bits2 / alpha2.


def ref_second_base(x, bits, alpha, shift=None):
    """Base 2 as the kernels define it, from base 1's bits and alpha (whichever kernel packed
    them): d = x or x - shift (float32), r = d + alpha where base 1's bit is 1, else d - alpha,
    one float32 rounding each; bits2 = sign bits of r (bit-exact), alpha2 = mean |r| (float64)."""
    x = np.asarray(x, np.float32)
    d = x if shift is None else x - shift
    a = alpha[..., None]
    r = np.where(unpack_signs(bits, x.shape[-1]) < 0, d + a, d - a)
    assert r.dtype == np.float32
    return pack_signs(r), np.abs(r.astype(np.float64)).mean(-1)


def training_second_alpha(x, shift=None):
    """alpha2 of binarize_activation(bases=2) in float64 (the training form): mean |d - mean|d|
    sign(d)|, sign(0) = +1."""
    d = x.astype(np.float64) - (0.0 if shift is None else shift.astype(np.float64))
    alpha = np.abs(d).mean(-1, keepdims=True)
    return np.abs(d - alpha * signs(d)).mean(-1), alpha[..., 0]


def check_two_base_pack(x, shift, got):
    """The four arrays of pack_activations(x, shift=shift, bases=2) (x the whole tensor):
    base 1 as bases=1 gives it, base 2 bit-exact against ref_second_base, alpha2 also close to
    the training form's float64 value (a function of alpha, continuous)."""
    bits, alpha, bits2, alpha2 = got
    c = x.shape[-1]
    assert bits2.dtype.type is np.uint64 and bits2.shape == (*x.shape[:-1], num_words(c))
    assert alpha2.dtype == np.float32 and alpha2.shape == x.shape[:-1]
    want_bits2, want_alpha2 = ref_second_base(x, bits, alpha, shift)
    np.testing.assert_array_equal(bits2, want_bits2)
    np.testing.assert_allclose(alpha2, want_alpha2, rtol=1e-6)
    train_alpha2, train_alpha = training_second_alpha(x, shift)
    np.testing.assert_allclose(alpha2, train_alpha2, rtol=0, atol=1e-5 * train_alpha.max())


@pytest.mark.parametrize("shifted", [False, True], ids=["", "shift"])
@pytest.mark.parametrize("c", CHANNELS)
def test_pack_two_bases(kernel, c, shifted):
    """bases=2: (bits, alpha) bit-identical to bases=1 (and to the call without bases), then
    base 2 of the same pixels."""
    rng = np.random.default_rng(500 + c)
    if shifted:
        x, shift = random_shifted(rng, (2, 3, 5, c))
    else:
        x, shift = rng.standard_normal((2, 3, 5, c)).astype(np.float32), None
        x[rng.random(x.shape) < 0.1] = 0.0
        x[rng.random(x.shape) < 0.05] = -0.0
    one = bk.pack_activations(x, shift=shift)
    assert len(one) == 2
    same = (bk.pack_activations(x, shift=shift, bases=1), bk.pack_activations(x, None, shift, 1))
    for got in same:
        assert len(got) == 2
        for a, b in zip(got, one, strict=True):
            np.testing.assert_array_equal(a, b)
    two = bk.pack_activations(x, shift=shift, bases=2)
    assert len(two) == 4
    np.testing.assert_array_equal(two[0], one[0])
    np.testing.assert_array_equal(two[1], one[1])
    assert two[0].dtype.type is np.uint64
    check_two_base_pack(x, shift, two)


@pytest.mark.parametrize("shifted", [False, True], ids=["", "shift"])
@pytest.mark.parametrize("c1", [64, 128])
@pytest.mark.parametrize("c2", CHANNELS)
def test_pack_two_bases_concat(kernel, c1, c2, shifted):
    """x2: both bases of the concatenation [x, x2] (shift indexing the concatenation),
    bit-identical to packing the concatenated tensor."""
    rng = np.random.default_rng(700 * c1 + c2)
    x, shift = random_shifted(rng, (2, 3, 5, c1 + c2))
    shift = shift if shifted else None
    got = bk.pack_activations(np.ascontiguousarray(x[..., :c1]), np.ascontiguousarray(x[..., c1:]),
                              shift, bases=2)
    want = bk.pack_activations(x, shift=shift, bases=2)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    check_two_base_pack(x, shift, got)


@pytest.mark.parametrize("shifted", [False, True], ids=["", "shift"])
@pytest.mark.parametrize("c", [4, 64, 128, 132, 200])
def test_pack_second_base_bit_order(kernel, c, shifted):
    """Hand-made pixels (exact in float32): d = 3, 1, -1, -3 on channels c % 4 = 0, 1, 2, 3 has
    alpha = 2 and r = 1, -1, 1, -1: base 1 sets channels 2, 3 (mod 4), base 2 channels 1, 3,
    alpha2 = 1. And d = 3 everywhere but channel i, d = 1 there (pixel i): alpha in (1, 3), so
    r < 0 on channel i alone: base 1 empty, base 2 exactly bit i % 64 of word i // 64."""
    shift = np.where(np.arange(c) % 3 == 0, -1.0, 1.0).astype(np.float32) if shifted else None
    base = np.float32(0.0) if shift is None else shift
    d = np.array([3.0, 1.0, -1.0, -3.0], np.float32)[np.arange(c) % 4]
    bits, alpha, bits2, alpha2 = bk.pack_activations((base + d).reshape(1, 1, 1, c), shift=shift,
                                                     bases=2)
    np.testing.assert_array_equal(alpha, np.full((1, 1, 1), 2.0, np.float32))
    np.testing.assert_array_equal(alpha2, np.full((1, 1, 1), 1.0, np.float32))
    ch = np.arange(c)
    for got, on in ((bits, ch % 4 >= 2), (bits2, ch % 2 == 1)):
        want = np.zeros(num_words(c), np.uint64)
        for i in ch[on]:
            want[i // 64] |= np.uint64(1) << np.uint64(i % 64)
        np.testing.assert_array_equal(got[0, 0, 0], want)
    d = np.full((1, 1, c, c), 3.0, np.float32)
    d[0, 0, ch, ch] = 1.0
    bits, _, bits2, alpha2 = bk.pack_activations(base + d, shift=shift, bases=2)
    np.testing.assert_array_equal(bits, np.zeros_like(bits))
    for i in range(c):
        want = np.zeros(num_words(c), np.uint64)
        want[i // 64] = np.uint64(1) << np.uint64(i % 64)
        np.testing.assert_array_equal(bits2[0, 0, i], want)
    a = (3.0 * c - 2.0) / c  # r = 3 - a on c - 1 channels, 1 - a on one
    np.testing.assert_allclose(alpha2, np.full((1, 1, c), ((c - 1) * (3 - a) + (a - 1)) / c),
                               rtol=1e-6)


def with_second_base(rng, p, shape):
    """p plus a random second base (its own signs, smaller alphas) of activations `shape`."""
    x2 = rng.standard_normal(shape).astype(np.float32)
    x2[rng.random(x2.shape) < 0.05] = 0.0
    return {**p, "x2": x2, "bits2": pack_signs(x2),
            "alpha2": rng.uniform(0.01, 1.0, shape[:-1]).astype(np.float32)}


def check_conv_two_bases(p):
    got = bk.binary_conv3x3(p["bits"], p["alpha"], p["wbits"], p["x"].shape[-1], p["beta"],
                            p["bias"], p["stride"], p["rprelu"], p["add"], bits2=p["bits2"],
                            alpha2=p["alpha2"])
    want, scale = ref_conv3x3(signs(p["x"]), p["alpha"], signs(p["w"]), p["beta"], p["bias"],
                              p["stride"], p["rprelu"], p["add"],
                              second=(signs(p["x2"]), p["alpha2"]))
    assert_close(got, want, scale)
    return got


def check_gemm_two_bases(p):
    got = bk.binary_gemm(p["bits"], p["alpha"], p["wbits"], p["x"].shape[-1], p["beta"],
                         p["bias"], p["rprelu"], p["add"], bits2=p["bits2"], alpha2=p["alpha2"])
    want, scale = ref_gemm(signs(p["x"]), p["alpha"], signs(p["w"]), p["beta"], p["bias"],
                           p["rprelu"], p["add"], second=(signs(p["x2"]), p["alpha2"]))
    assert_close(got, want, scale)
    return got


@pytest.mark.parametrize("cin", CHANNELS)
@pytest.mark.parametrize("cout", CHANNELS)
def test_conv3x3_two_bases_channels(kernel, cin, cout):
    """Two bases against the float64 formula; prepared weights bit-identical to raw ones; the
    one-base call unchanged by the new arguments (None: bit-identical to leaving them out)."""
    rng = np.random.default_rng(5000 * cin + cout)
    p = make_conv(rng, 2, 7, 5, cin, cout, 1 + (cin + cout) % 2)
    p = with_second_base(rng, p, p["x"].shape)
    got = check_conv_two_bases(p)
    np.testing.assert_array_equal(check_conv_two_bases(prepared_conv(p)), got)
    one = run_conv(p)
    none = bk.binary_conv3x3(p["bits"], p["alpha"], p["wbits"], cin, p["beta"], p["bias"],
                             p["stride"], p["rprelu"], p["add"], None, None, None)
    np.testing.assert_array_equal(none, one)


@pytest.mark.parametrize("hw", [(7, 5), (1, 1), (2, 3), (8, 8)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("epi", list(EPILOGUES))
def test_conv3x3_two_bases_shapes(kernel, hw, stride, epi):
    rng = np.random.default_rng(zlib.crc32(repr(("two", hw, stride, epi)).encode()))
    for cin, cout in [(65, 17), (128, 129)]:
        p = make_conv(rng, 2, *hw, cin, cout, stride, **EPILOGUES[epi])
        check_conv_two_bases(with_second_base(rng, p, p["x"].shape))


def test_conv3x3_two_bases_padding(kernel):
    """Padded pixels contribute 0 in both bases: all-equal signs give beta * taps * cin *
    (alpha + alpha2), 4 taps at a corner, 6 on an edge, 9 inside."""
    cin, cout = 64, 8
    bits = np.zeros((1, 4, 4, 1), np.uint64)
    alpha, alpha2 = np.ones((1, 4, 4), np.float32), np.full((1, 4, 4), 0.5, np.float32)
    wbits = np.zeros((cout, 3, 3, 1), np.uint64)
    y = bk.binary_conv3x3(bits, alpha, wbits, cin, np.ones(cout, np.float32), None, 1,
                          bits2=bits, alpha2=alpha2)
    assert y[0, 0, 0, 0] == 4 * cin * 1.5
    assert y[0, 0, 1, 0] == 6 * cin * 1.5
    assert y[0, 1, 1, 0] == 9 * cin * 1.5
    y = bk.binary_conv3x3(bits, alpha, wbits, cin, np.ones(cout, np.float32), None, 1,
                          bits2=np.full_like(bits, np.uint64(2**64 - 1)), alpha2=alpha2)
    assert y[0, 1, 1, 0] == 9 * cin * 0.5  # base 2 all negative: -cin per tap


@pytest.mark.parametrize("k", CHANNELS)
@pytest.mark.parametrize("nout", CHANNELS)
def test_gemm_two_bases_channels(kernel, k, nout):
    rng = np.random.default_rng(5000 * k + nout)
    p = with_second_base(rng, make_gemm(rng, 37, k, nout), (37, k))
    got = check_gemm_two_bases(p)
    np.testing.assert_array_equal(check_gemm_two_bases(prepared_gemm(p)), got)
    args = (p["bits"], p["alpha"], p["wbits"], k, p["beta"], p["bias"], p["rprelu"], p["add"])
    np.testing.assert_array_equal(bk.binary_gemm(*args, None, None, None), bk.binary_gemm(*args))


@pytest.mark.parametrize("m", [1, 2, 513])
@pytest.mark.parametrize("epi", list(EPILOGUES))
def test_gemm_two_bases_shapes(kernel, m, epi):
    rng = np.random.default_rng(m + 17)
    for k, nout in [(256, 256), (129, 33), (2000, 9)]:
        check_gemm_two_bases(with_second_base(rng, make_gemm(rng, m, k, nout, **EPILOGUES[epi]),
                                              (m, k)))


@pytest.mark.parametrize("concat", [False, True], ids=["", "x2"])
@pytest.mark.parametrize("shifted", [False, True], ids=["", "shift"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("c", CHANNELS)
def test_two_bases_layer(kernel, c, stride, shifted, concat):
    """A two-base layer from float activations: pack_activations(bases=2) (of x, or of the
    concatenation [x (64 channels), x2]; with or without a threshold), then the conv and the
    GEMM with both bases, RPReLU and add, against the float64 formula on the packed signs."""
    rng = np.random.default_rng(zlib.crc32(repr((c, stride, shifted, concat)).encode()))
    cin = 64 + c if concat else c
    x, shift = random_shifted(rng, (1, 6, 5, cin))
    shift = shift if shifted else None
    parts = (np.ascontiguousarray(x[..., :64]), np.ascontiguousarray(x[..., 64:])) if concat \
        else (x, None)
    packed = bk.pack_activations(*parts, shift, bases=2)
    check_two_base_pack(x, shift, packed)
    bits, alpha, bits2, alpha2 = packed
    xs, xs2 = unpack_signs(bits, cin), unpack_signs(bits2, cin)
    cout = 33
    p = make_conv(rng, 1, 6, 5, cin, cout, stride)
    y = bk.binary_conv3x3(bits, alpha, p["wbits"], cin, p["beta"], p["bias"], stride, p["rprelu"],
                          p["add"], bits2=bits2, alpha2=alpha2)
    want, scale = ref_conv3x3(xs, alpha, signs(p["w"]), p["beta"], p["bias"], stride, p["rprelu"],
                              p["add"], second=(xs2, alpha2))
    assert_close(y, want, scale)
    g = make_gemm(rng, 30, cin, cout)
    fb, fb2 = bits.reshape(30, -1), bits2.reshape(30, -1)  # the pixels as GEMM rows
    fa, fa2 = alpha.reshape(30), alpha2.reshape(30)
    y = bk.binary_gemm(fb, fa, g["wbits"], cin, g["beta"], g["bias"], g["rprelu"], g["add"],
                       bits2=fb2, alpha2=fa2)
    want, scale = ref_gemm(xs.reshape(30, cin), fa, signs(g["w"]), g["beta"], g["bias"],
                           g["rprelu"], g["add"], second=(xs2.reshape(30, cin), fa2))
    assert_close(y, want, scale)


@pytest.mark.parametrize("stride", [1, 2])
def test_two_bases_threaded(kernel, stride):
    """Enough work for the thread pool: both bases' packing and the two-base conv and GEMM
    give the same bits and values on 1 and 3 threads."""
    rng = np.random.default_rng(40 + stride)
    x, shift = random_shifted(rng, (2, 33, 31, 128))
    wbits = pack_signs(rng.standard_normal((72, 3, 3, 128)))
    gbits = pack_signs(rng.standard_normal((72, 128)))
    beta = rng.uniform(0.1, 1.0, 72).astype(np.float32)
    threads = bk.get_num_threads()
    results = []
    try:
        for n in (1, 3):
            bk.set_num_threads(n)
            packed = bk.pack_activations(x, shift=shift, bases=2)
            b, a, b2, a2 = packed
            conv = bk.binary_conv3x3(b, a, wbits, 128, beta, None, stride, bits2=b2, alpha2=a2)
            gemm = bk.binary_gemm(b.reshape(-1, 2), a.reshape(-1), gbits, 128, beta,
                                  bits2=b2.reshape(-1, 2), alpha2=a2.reshape(-1))
            results.append((*packed, conv, gemm))
    finally:
        bk.set_num_threads(threads)
    for one, three in zip(*results, strict=True):
        np.testing.assert_array_equal(one, three)
    check_two_base_pack(x, shift, results[0][:4])


def test_two_bases_errors():
    """bases 1 or 2; bits2 and alpha2 together, each checked like bits and alpha."""
    x = np.ones((1, 2, 3, 70), np.float32)
    for bases in (0, 3, -1):
        with pytest.raises(ValueError, match="bases must be 1 or 2"):
            bk.pack_activations(x, bases=bases)
    rng = np.random.default_rng(9)
    conv = with_second_base(rng, make_conv(rng, 1, 4, 4, 70, 8, 1, rprelu=False, add=False),
                            (1, 4, 4, 70))
    gemm = with_second_base(rng, make_gemm(rng, 5, 70, 8, rprelu=False, add=False), (5, 70))

    def run(p, **kw):
        args = {"bits2": p["bits2"], "alpha2": p["alpha2"], **kw}
        if p["bits"].ndim == 4:
            return bk.binary_conv3x3(p["bits"], p["alpha"], p["wbits"], 70, p["beta"], **args)
        return bk.binary_gemm(p["bits"], p["alpha"], p["wbits"], 70, p["beta"], **args)

    together = r"bits2 and alpha2 \(the second activation base\) go together"
    for p in (conv, gemm):
        run(p)
        run(p, bits2=p["bits2"].view(np.int64))  # int64 words carry the same bits, as for bits
        with pytest.raises(ValueError, match=together):
            run(p, alpha2=None)
        with pytest.raises(ValueError, match=together):
            run(p, bits2=None)
        with pytest.raises(ValueError, match="bits2 has shape"):
            run(p, bits2=np.ascontiguousarray(p["bits2"][..., :1]))
        with pytest.raises(ValueError, match="bits2 has shape"):
            run(p, bits2=np.ascontiguousarray(p["bits2"][1:]))
        with pytest.raises(ValueError, match="bits2 must be uint64"):
            run(p, bits2=p["bits2"].astype(np.float32))
        with pytest.raises(ValueError, match="alpha2 has shape"):
            run(p, alpha2=np.ascontiguousarray(p["alpha2"][1:]))
        with pytest.raises(ValueError, match="alpha2 must be float32"):
            run(p, alpha2=p["alpha2"].astype(np.float64))
        with pytest.raises(ValueError, match="alpha2 must be C-contiguous"):
            run(p, alpha2=np.stack([p["alpha2"]] * 2, -1)[..., 0])
        with pytest.raises(ValueError, match="alpha2 must have"):
            run(p, alpha2=p["alpha2"][None])


# ----------------------------------------------------------------------------------------------
# LayerNorm (+ SiLU)
#
# Tolerance: the vector kernels normalize in float32 (sums over C in 16 lanes, then one
# multiply-add per element; SiLU's exp is a Cephes polynomial, ~2 ulp), the reference in float64;
# measured <= 2e-6 of max(1, |y|) for C <= 256; bound LN_RTOL.
LN_RTOL = 1e-5


def ref_layer_norm(x, gamma, beta, eps, silu):
    x64 = x.astype(np.float64)
    mean = x64.mean(-1, keepdims=True)
    var = ((x64 - mean) ** 2).mean(-1, keepdims=True)
    y = (x64 - mean) / np.sqrt(var + eps) * gamma.astype(np.float64) + beta.astype(np.float64)
    return y / (1.0 + np.exp(-y)) if silu else y


@pytest.mark.parametrize("silu", [False, True], ids=["plain", "silu"])
@pytest.mark.parametrize("c", [*CHANNELS, 160, 256])
def test_layer_norm(kernel, c, silu):
    rng = np.random.default_rng(c)
    x = (rng.standard_normal((3, 5, 7, c)) * 3 + rng.standard_normal(c)).astype(np.float32)
    x[0, 0, 0] = 0.0  # constant row: variance 0, y = beta (+ SiLU)
    gamma = rng.standard_normal(c).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)
    y = bk.layer_norm(x, gamma, beta, 1e-5, silu)
    assert y.dtype == np.float32 and y.shape == x.shape
    want = ref_layer_norm(x, gamma, beta, 1e-5, silu)
    err = np.abs(y - want) / np.maximum(1.0, np.abs(want))
    assert err.max() <= LN_RTOL, err.max()


@pytest.mark.parametrize("c", CHANNELS)
def test_layer_norm_out(kernel, c):
    """``out=``: in place over x, or into a separate array; the same values, and out returned."""
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, 5, c)).astype(np.float32)
    gamma, beta = rng.standard_normal((2, c)).astype(np.float32)
    want = bk.layer_norm(x, gamma, beta, 1e-5, True)
    separate = np.full_like(x, np.nan)
    assert bk.layer_norm(x, gamma, beta, 1e-5, True, out=separate) is separate
    np.testing.assert_array_equal(separate, want)
    assert bk.layer_norm(x, gamma, beta, 1e-5, True, out=x) is x
    np.testing.assert_array_equal(x, want)
    buf = np.zeros(10 * c + 1, np.float32)
    with pytest.raises(ValueError, match="not overlap"):
        bk.layer_norm(buf[1:].reshape(2, 5, c), gamma, beta, 1e-5,
                      out=buf[:-1].reshape(2, 5, c))


def test_layer_norm_extremes(kernel):
    """SiLU's exp is clamped: huge |y| gives y (positive) or -0 (negative), never inf/nan."""
    c = 65
    x = np.zeros((2, c), np.float32)
    x[:, 0] = 1.0  # y_0 = sqrt(c - 1) ~ 8, the others -1/8: scaled by gamma below
    gamma = np.full(c, 1e3, np.float32)
    beta = np.zeros(c, np.float32)
    y = bk.layer_norm(x, gamma, beta, 1e-5, True)
    want = ref_layer_norm(x, gamma, beta, 1e-5, True)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-30)


def test_layer_norm_matches_torch(kernel):
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 9, 11, 129)
    ln = torch.nn.LayerNorm(129)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
        want = torch.nn.functional.silu(ln(x))
    y = bk.layer_norm(x, ln.weight.detach(), ln.bias.detach(), ln.eps, True)
    assert (torch.from_numpy(y) - want).abs().max().item() <= 1e-5


# ----------------------------------------------------------------------------------------------
# position-noise uniforms: bit-identical to the torch definition (model/noise.py)


@pytest.mark.parametrize(
    "seed, top, left, h, w, c",
    [(0, 0, 0, 16, 16, 48), (3, 5, 9, 7, 13, 1), (-5, 7, 2**31 + 3, 13, 17, 3),
     (12345678901, -3, 5, 9, 300, 5), (1, 2**33 + 1, -(2**32) - 7, 1, 1, 63)],
)
def test_position_uniforms_match_torch_definition(kernel, seed, top, left, h, w, c):
    torch = pytest.importorskip("torch")
    from bimacosr_app.model.noise import _MASK32, _uniform

    ch = torch.arange(c).view(-1, 1, 1)
    ys = torch.arange(top, top + h).view(1, -1, 1)
    xs = torch.arange(left, left + w).view(1, 1, -1)
    u1, u2 = bk.position_uniforms((2 * seed) & _MASK32, (2 * seed + 1) & _MASK32,
                                  top, left, h, w, c)
    assert u1.dtype == np.float32 and u1.shape == (c, h, w) == u2.shape
    assert torch.equal(torch.from_numpy(u1), _uniform(seed, 0, ch, ys, xs))
    assert torch.equal(torch.from_numpy(u2), _uniform(seed, 1, ch, ys, xs))


def test_position_uniforms_threaded_and_empty(kernel):
    a = bk.position_uniforms(7, 8, 100, 200, 257, 129, 48)
    before = bk.get_num_threads()
    try:
        bk.set_num_threads(1)
        b = bk.position_uniforms(7, 8, 100, 200, 257, 129, 48)
    finally:
        bk.set_num_threads(before)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert bk.position_uniforms(0, 1, 0, 0, 0, 5, 3)[0].shape == (3, 0, 5)
    with pytest.raises(ValueError):
        bk.position_uniforms(0, 1, 0, 0, -1, 5, 3)


# ----------------------------------------------------------------------------------------------
# Full-precision kernels: dense_conv, branch, window_attention, gelu
#
# Tolerance: float32 sums of products, in another order than the float64 NumPy references: the
# error of an output is bounded by a few tens of float32 epsilons times the sum of the |terms|
# that make it (its scale, computed beside the reference), so like the binary kernels within
# RTOL = 1e-5 of that scale; measured <= 1e-6 (the reference kernel sums in double).


def ref_dense(x, w, bias, stride, add):
    """x (N,H,W,Cin), w (k,k,Cin,Cout) -> (y, scale) in float64, zero padding k // 2."""
    k, pad = w.shape[0], w.shape[0] // 2
    n, h, wd, cin = x.shape
    ho, wo = (h - 1) // stride + 1, (wd - 1) // stride + 1
    xp = np.zeros((n, h + 2 * pad, wd + 2 * pad, cin))
    xp[:, pad:pad + h, pad:pad + wd] = x
    y = np.zeros((n, ho, wo, w.shape[3]))
    scale = np.zeros_like(y)
    for ky in range(k):
        for kx in range(k):
            rows = slice(ky, ky + stride * (ho - 1) + 1, stride)
            patch = xp[:, rows, kx:kx + stride * (wo - 1) + 1:stride]
            y += patch @ w[ky, kx].astype(np.float64)
            scale += np.abs(patch) @ np.abs(w[ky, kx].astype(np.float64))
    if bias is not None:
        y, scale = y + bias, scale + np.abs(bias)
    if add is not None:
        y, scale = y + add, scale + np.abs(add)
    return y, scale + 1e-30


def make_dense(rng, n, h, w, c1, c2, cout, k, stride, *, bias=True, add=True):
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    return {"x": f32(n, h, w, c1), "x2": f32(n, h, w, c2) if c2 else None,
            "w": f32(k, k, c1 + c2, cout), "bias": f32(cout) if bias else None,
            "add": f32(n, ho, wo, cout) if add else None, "stride": stride}


def check_dense(p):
    got = bk.dense_conv(p["x"], p["w"], p["bias"], p["stride"], p["x2"], p["add"])
    x = p["x"] if p["x2"] is None else np.concatenate([p["x"], p["x2"]], axis=3)
    assert_close(got, *ref_dense(x.astype(np.float64), p["w"], p["bias"], p["stride"],
                                 p["add"]))
    return got


@pytest.mark.parametrize("cin", CHANNELS)
@pytest.mark.parametrize("cout", CHANNELS)
def test_dense_conv_channels(kernel, cin, cout):
    check_dense(make_dense(np.random.default_rng(cin * 131 + cout), 1, 5, 6, cin, 0, cout, 3, 1))


@pytest.mark.parametrize("hw", [(7, 5), (1, 1), (13, 9), (2, 3)])
@pytest.mark.parametrize("k, stride", [(3, 1), (3, 2), (1, 1), (1, 2)])
@pytest.mark.parametrize("c1, c2", [(51, 0), (64, 64), (63, 2), (1, 129)])
def test_dense_conv_shapes(kernel, hw, k, stride, c1, c2):
    """Both kernel sizes and strides, odd sizes, the concatenation of two inputs (any split)."""
    rng = np.random.default_rng(hw[0] * 7 + k * 3 + stride + c1)
    for n, epi in ((1, {}), (2, {"bias": False, "add": False})):
        check_dense(make_dense(rng, n, *hw, c1, c2, 48, k, stride, **epi))


@pytest.mark.parametrize("cout", [1, 48, 65])
def test_dense_conv_out_in_place(kernel, cout):
    p = make_dense(np.random.default_rng(cout), 1, 6, 7, 64, 0, cout, 3, 1)
    want = check_dense(p)
    add = p["add"]
    got = bk.dense_conv(p["x"], p["w"], p["bias"], add=add, out=add)
    assert got is add  # written where asked, the add read in place
    np.testing.assert_array_equal(got, want)


def test_dense_conv_matches_torch_conv2d():
    torch = pytest.importorskip("torch")
    conv = torch.nn.Conv2d(51, 64, 3, padding=1)
    x = torch.randn(1, 51, 9, 11)
    with torch.no_grad():
        want = conv(x).permute(0, 2, 3, 1).numpy()
    w = np.ascontiguousarray(conv.weight.detach().permute(2, 3, 1, 0).numpy())  # HWIO
    got = bk.dense_conv(np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy()), w,
                        conv.bias.detach().numpy())
    np.testing.assert_allclose(got, want, atol=1e-5)


def make_branch(rng, n, h, w, c1, c2, cout, rank, stride, per_row=4, add=True):
    """A random branch: factors of the given rank, a CSR matrix with 0 .. per_row entries per
    output (repeated columns allowed, as an SMB position and a shortcut entry may coincide)."""
    cin = c1 + c2
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    counts = rng.integers(0, per_row + 1, cout)
    row = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    return {"x": f32(n, h, w, c1), "x2": f32(n, h, w, c2) if c2 else None,
            "down": f32(rank, cin), "up": f32(cout, rank), "row": row,
            "col": rng.integers(0, cin, row[-1]).astype(np.int32), "val": f32(row[-1]),
            "add": f32(n, ho, wo, cout) if add else None, "stride": stride}


def check_branch(p):
    got = bk.branch(p["x"], p["down"], p["up"], p["row"], p["col"], p["val"], p["stride"],
                    p["x2"], p["add"])
    x = p["x"] if p["x2"] is None else np.concatenate([p["x"], p["x2"]], axis=3)
    s = p["stride"]
    x = x[:, ::s, ::s].astype(np.float64)
    cout, cin = p["up"].shape[0], x.shape[3]
    sparse = np.zeros((cout, cin))
    for o in range(cout):
        np.add.at(sparse[o], p["col"][p["row"][o]:p["row"][o + 1]],
                  p["val"][p["row"][o]:p["row"][o + 1]])
    up, down = p["up"].astype(np.float64), p["down"].astype(np.float64)
    t = x @ down.T
    want = t @ up.T + x @ sparse.T
    scale = np.abs(x) @ (np.abs(down).T @ np.abs(up).T + np.abs(sparse).T) + 1e-30
    if p["add"] is not None:
        want, scale = want + p["add"], scale + np.abs(p["add"])
    assert_close(got, want, scale)
    return got


@pytest.mark.parametrize("cin", CHANNELS)
@pytest.mark.parametrize("cout", CHANNELS)
def test_branch_channels(kernel, cin, cout):
    check_branch(make_branch(np.random.default_rng(cin * 131 + cout), 1, 5, 7, cin, 0, cout,
                             min(8, cin, cout), 1))


@pytest.mark.parametrize("rank", [0, 1, 3, 8, 16])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("c1, c2", [(64, 0), (64, 64), (63, 65), (160, 160)])
def test_branch_shapes(kernel, rank, stride, c1, c2):
    """Ranks around the kernels' blocks of 8 (0: no low-rank part), strides, concatenations,
    pixel counts that are not whole blocks of lanes."""
    rng = np.random.default_rng(rank * 10 + stride + c1)
    for n, h, w, add in ((1, 9, 7, True), (2, 3, 17, False)):
        check_branch(make_branch(rng, n, h, w, c1, c2, 160 - c2 // 2, rank, stride, add=add))


def test_branch_threads_and_in_place(kernel):
    """The same bits on any thread count; ``out`` may be ``add`` itself."""
    p = make_branch(np.random.default_rng(1), 1, 40, 37, 128, 0, 96, 8, 1)
    before = bk.get_num_threads()
    try:
        bk.set_num_threads(1)
        one = check_branch(p)
        bk.set_num_threads(3)
        np.testing.assert_array_equal(check_branch(p), one)
    finally:
        bk.set_num_threads(before)
    add = p["add"].copy()
    got = bk.branch(p["x"], p["down"], p["up"], p["row"], p["col"], p["val"], add=add, out=add)
    assert got is add
    np.testing.assert_array_equal(got, one)


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("silu", [False, True], ids=["plain", "silu"])
@pytest.mark.parametrize("shift", [False, True], ids=["", "shift"])
def test_norm_branch_is_norm_then_pack_then_branch(kernel, c, silu, shift):
    """The prologue: bit-identical to layer_norm, pack_activations and branch called in turn
    (the same code on the same rows), on any thread count."""
    rng = np.random.default_rng(c * 4 + silu * 2 + shift)
    p = make_branch(rng, 2, 9, 7, c, 0, 130 - c, min(8, c), 1)
    x = (3 * p["x"] + rng.standard_normal(c)).astype(np.float32)
    gamma, beta = (rng.standard_normal(c).astype(np.float32) for _ in range(2))
    s = rng.standard_normal(c).astype(np.float32) if shift else None
    ops = (p["down"], p["up"], p["row"], p["col"], p["val"])
    before = bk.get_num_threads()
    try:
        for threads in (1, 3):
            bk.set_num_threads(threads)
            y, bits, alpha = bk.norm_branch(x, gamma, beta, 1e-5, silu, s, *ops, add=p["add"])
            h = bk.layer_norm(x, gamma, beta, 1e-5, silu)
            want_bits, want_alpha = bk.pack_activations(h, shift=s)
            np.testing.assert_array_equal(bits, want_bits)
            np.testing.assert_array_equal(alpha, want_alpha)
            np.testing.assert_array_equal(y, bk.branch(h, *ops, add=p["add"]))
    finally:
        bk.set_num_threads(before)


def test_branch_errors():
    rng = np.random.default_rng(2)
    p = make_branch(rng, 1, 4, 4, 16, 0, 8, 2, 1, per_row=2)
    args = lambda **kw: {**{k: p[k] for k in ("x", "down", "up", "row", "col", "val")}, **kw}  # noqa: E731
    bad_col = p["col"].copy()
    bad_col[0] = 16
    with pytest.raises(ValueError, match="col out of range"):
        bk.branch(**args(col=bad_col))
    with pytest.raises(ValueError, match="row"):
        bk.branch(**args(row=p["row"][::-1].copy()))
    with pytest.raises(ValueError, match="row"):
        bk.branch(**args(row=p["row"][:-1].copy()))
    with pytest.raises(ValueError, match="int32"):
        bk.branch(**args(col=p["col"].astype(np.int64)))
    with pytest.raises(ValueError, match="down"):
        bk.branch(**args(down=np.zeros((2, 15), np.float32)))


def ref_window_attention(qkv, bias, heads, ws, shift, scale):
    """The definition of AttentionArgs in float64 with NumPy: roll by -shift, windows,
    softmax(scale q k^T + bias + mask) v per head, windows back, roll by +shift."""
    n, h, w, c3 = qkv.shape
    c = c3 // 3
    d, t = c // heads, ws * ws
    x = np.roll(qkv.astype(np.float64), (-shift, -shift), axis=(1, 2))
    x = x.reshape(n, h // ws, ws, w // ws, ws, 3, heads, d).transpose(0, 1, 3, 5, 6, 2, 4, 7)
    x = x.reshape(n, h // ws, w // ws, 3, heads, t, d)
    s = scale * np.einsum("...td,...ud->...tu", x[:, :, :, 0], x[:, :, :, 1]) + bias
    if shift:
        def region(r, size):
            return np.where(r < size - ws, 0, np.where(r < size - shift, 1, 2))
        ry = region(np.arange(h), h).reshape(h // ws, 1, ws, 1)
        rx = region(np.arange(w), w).reshape(1, w // ws, 1, ws)
        reg = (3 * ry + rx).reshape(h // ws, w // ws, t)  # per window and token
        mask = reg[:, :, :, None] != reg[:, :, None, :]
        s = np.where(mask[None, :, :, None], -np.inf, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = np.einsum("...tu,...ud->...td", p, x[:, :, :, 2])  # (n, wy, wx, heads, t, d)
    o = o.reshape(n, h // ws, w // ws, heads, ws, ws, d).transpose(0, 1, 4, 2, 5, 3, 6)
    return np.roll(o.reshape(n, h, w, c), (shift, shift), axis=(1, 2))


ATTENTION_CASES = [  # n, h, w, C, heads, window, shift
    (1, 16, 24, 128, 4, 8, 4), (2, 8, 8, 160, 5, 8, 0), (1, 8, 16, 160, 5, 8, 4),
    (1, 9, 6, 39, 3, 3, 1), (1, 4, 4, 7, 1, 2, 1), (1, 32, 32, 64, 2, 8, 4), (1, 8, 8, 96, 3, 4, 3),
]


@pytest.mark.parametrize("case", ATTENTION_CASES, ids=str)
def test_window_attention(kernel, case):
    """Against the float64 definition: windows, shifts (with the mask across the rolled edges),
    several heads, head sizes that are not whole vectors, a batch."""
    n, h, w, c, heads, ws, shift = case
    rng = np.random.default_rng(sum(case))
    qkv = rng.standard_normal((n, h, w, 3 * c)).astype(np.float32)
    bias = (0.5 * rng.standard_normal((heads, ws * ws, ws * ws))).astype(np.float32)
    scale = (c // heads) ** -0.5
    got = bk.window_attention(qkv, bias, heads, ws, shift, scale)
    want = ref_window_attention(qkv, bias, heads, ws, shift, scale)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)  # outputs are means of v (~1)


def test_window_attention_matches_torch_swin():
    """The attention of model/unet.py's SwinBlock (SDPA with its relative bias and shift mask)
    on the same q, k, v."""
    torch = pytest.importorskip("torch")
    from bimacosr_app.model.unet import SwinBlock

    torch.manual_seed(0)
    block = SwinBlock(128, 4, 8, 4, 2.0).eval()
    x = torch.randn(1, 32, 24, 128)  # (B, H, W, C) tokens of the map
    with torch.no_grad():
        qkv = block.attn.qkv(x)  # per token: the map's q, k, v
        rolled = torch.roll(qkv, (-4, -4), dims=(1, 2))
        windows = rolled.reshape(1, 4, 8, 3, 8, 384).permute(0, 1, 3, 2, 4, 5).reshape(-1, 64, 384)
        q, k, v = windows.view(12, 64, 3, 4, 32).permute(2, 0, 3, 1, 4)
        a = block.attn
        bias = a.rel_bias[a.rel_index.flatten()].view(64, 64, -1).permute(2, 0, 1)
        mask = block._shift_mask(32, 24, "cpu")
        full = (bias[None] + mask[:, None]).reshape(12, 4, 64, 64)
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=full)
        o = o.transpose(1, 2).reshape(1, 4, 3, 8, 8, 128).permute(0, 1, 3, 2, 4, 5)
        want = torch.roll(o.reshape(1, 32, 24, 128), (4, 4), dims=(1, 2)).numpy()
    got = bk.window_attention(qkv.numpy(), np.ascontiguousarray(bias.numpy()), 4, 8, 4,
                              32 ** -0.5)
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_window_attention_errors():
    qkv = np.zeros((1, 8, 8, 12), np.float32)
    bias = np.zeros((2, 16, 16), np.float32)
    with pytest.raises(ValueError, match="multiples of the window"):
        bk.window_attention(np.zeros((1, 6, 8, 12), np.float32), bias, 2, 4, 0, 1.0)
    with pytest.raises(ValueError, match="shift"):
        bk.window_attention(qkv, bias, 2, 4, 4, 1.0)
    with pytest.raises(ValueError, match="bias"):
        bk.window_attention(qkv, np.zeros((2, 9, 9), np.float32), 2, 4, 0, 1.0)
    with pytest.raises(ValueError, match="overlap"):
        bk.window_attention(qkv, bias, 2, 4, 0, 1.0, out=qkv.reshape(-1)[:256].reshape(1, 8, 8, 4))


def test_gelu(kernel):
    """0.5 x (1 + erf(x / sqrt 2)) against float64 (math.erf); the vector kernels' erf is a
    polynomial within 1.5e-7, so within 2.5e-7 of max(1, |x|); in place where asked."""
    import math

    x = np.concatenate([np.linspace(-12, 12, 4001), [0.0, -0.0, 1e-30, -1e-30, 40.0, -40.0],
                        np.random.default_rng(0).standard_normal(20000) * 3]).astype(np.float32)
    want = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    got = bk.gelu(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert np.all(np.abs(got - want) <= 2.5e-7 * np.maximum(1.0, np.abs(x)))
    y = x.copy()
    assert bk.gelu(y, out=y) is y
    np.testing.assert_array_equal(y, got)


# ----------------------------------------------------------------------------------------------
# The one-step model's input and output image: against torch's definitions (model/latent.py,
# model/pipeline.py, model/unet.py's replicate padding) and a float64 NumPy bicubic.


def ref_bicubic_x4(lr: np.ndarray) -> np.ndarray:
    """(N,h,w,C) -> (N,4h,4w,C) in float64: torch's bicubic (align_corners=False, A = -0.75,
    taps clamped to the image), separable."""
    def weights(size: int) -> np.ndarray:  # (4 size, size): output row from input rows
        a, m = -0.75, np.zeros((4 * size, size))
        for o in range(4 * size):
            src = (o + 0.5) / 4 - 0.5
            f = int(np.floor(src))
            for j in range(-1, 3):
                d = abs(src - (f + j))
                v = ((a + 2) * d - (a + 3)) * d * d + 1 if d <= 1 else \
                    ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
                m[o, min(max(f + j, 0), size - 1)] += v
        return m
    wy, wx = weights(lr.shape[1]), weights(lr.shape[2])
    return np.einsum("yi,xj,nijc->nyxc", wy, wx, lr.astype(np.float64))


@pytest.mark.parametrize("h, w, hp, wp", [(1, 1, 1, 1), (2, 3, 64, 64), (37, 53, 64, 64),
                                          (48, 40, 64, 64), (9, 70, 16, 128)])
@pytest.mark.parametrize("noise", [False, True], ids=["", "noise"])
def test_one_step_input(kernel, h, w, hp, wp, noise):
    """z = PU4(bicubic x4 of lr), x = concat((z + k eps) s, lr), both replicate-padded."""
    rng = np.random.default_rng(h * w)
    lr = rng.uniform(-1, 1, (2, h, w, 3)).astype(np.float32)
    eps = rng.standard_normal((48, h, w)).astype(np.float32) if noise else None
    x, z = bk.one_step_input(lr, eps, 1.98, 0.45, hp, wp)
    assert x.shape == (2, hp, wp, 51) and z.shape == (2, hp, wp, 48)
    up = ref_bicubic_x4(lr)  # (2, 4h, 4w, 3)
    want_z = up.reshape(2, h, 4, w, 4, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, h, w, 48)
    rows, cols = np.minimum(np.arange(hp), h - 1), np.minimum(np.arange(wp), w - 1)
    want_z = want_z[:, rows][:, :, cols]
    np.testing.assert_allclose(z, want_z, rtol=0, atol=2e-6)
    x_t = want_z + (1.98 * eps.transpose(1, 2, 0)[rows][:, cols] if noise else 0)
    np.testing.assert_allclose(x[..., :48], x_t * 0.45, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(x[..., 48:], lr[:, rows][:, :, cols])


def test_one_step_input_matches_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from bimacosr_app.model.latent import bicubic_upscale, to_latent

    lr = torch.rand(1, 3, 37, 53) * 2 - 1
    noise = torch.randn(1, 48, 37, 53)
    y = to_latent(bicubic_upscale(lr))
    x_t = (y + 1.98 * noise) * 0.45
    want = F.pad(torch.cat([x_t, lr], dim=1), (0, 11, 0, 27), mode="replicate")
    x, z = bk.one_step_input(np.ascontiguousarray(lr.permute(0, 2, 3, 1).numpy()),
                             np.ascontiguousarray(noise[0].numpy()), 1.98, 0.45, 64, 64)
    np.testing.assert_allclose(z[:, :37, :53], y.permute(0, 2, 3, 1).numpy(), atol=3e-7)
    np.testing.assert_allclose(x, want.permute(0, 2, 3, 1).numpy(), atol=3e-7)


def test_one_step_input_threads_and_errors(kernel):
    lr = np.random.default_rng(0).uniform(-1, 1, (1, 70, 33, 3)).astype(np.float32)
    before = bk.get_num_threads()
    try:
        bk.set_num_threads(1)
        one = bk.one_step_input(lr, None, 0.0, 1.0, 128, 64)
        bk.set_num_threads(3)
        three = bk.one_step_input(lr, None, 0.0, 1.0, 128, 64)
    finally:
        bk.set_num_threads(before)
    for a, b in zip(one, three, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="no larger"):
        bk.one_step_input(lr, None, 0.0, 1.0, 64, 64)
    with pytest.raises(ValueError, match="eps"):
        bk.one_step_input(lr, np.zeros((48, 70, 32), np.float32), 1.0, 1.0, 128, 64)


@pytest.mark.parametrize("h, w", [(1, 1), (37, 53), (64, 64)])
def test_latent_image(kernel, h, w):
    """clamp((PS4(x0[:h, :w]) + 1) / 2, 0, 1), channels first, as model/pipeline.py."""
    torch = pytest.importorskip("torch")
    x0 = (np.random.default_rng(h).standard_normal((2, 64, 64, 48)) * 0.8).astype(np.float32)
    got = bk.latent_image(x0, h, w)
    t = torch.from_numpy(x0[:, :h, :w]).permute(0, 3, 1, 2)
    want = ((torch.nn.functional.pixel_shuffle(t, 4) + 1) * 0.5).clamp(0, 1).numpy()
    assert got.shape == (2, 3, 4 * h, 4 * w)
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="fit"):
        bk.latent_image(x0, 65, 1)


# ----------------------------------------------------------------------------------------------
# interface


def test_torch_tensors_without_copies():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    p = make_conv(rng, 1, 6, 7, 96, 40, 1)
    x_cl = (
        torch.from_numpy(p["x"]).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    )
    x_nhwc = x_cl.permute(0, 2, 3, 1)  # a C-contiguous NHWC view of the channels_last tensor
    bits, alpha = bk.pack_activations(x_nhwc)
    np.testing.assert_array_equal(bits, p["bits"])
    args = [
        torch.from_numpy(bits),
        torch.from_numpy(alpha),
        torch.from_numpy(p["wbits"]),
        96,
        torch.from_numpy(p["beta"]),
        torch.from_numpy(p["bias"]),
        1,
    ]
    y_t = bk.binary_conv3x3(
        *args,
        rprelu=tuple(torch.from_numpy(v) for v in p["rprelu"]),
        add=torch.from_numpy(p["add"]),
    )
    y_n = bk.binary_conv3x3(
        bits, alpha, p["wbits"], 96, p["beta"], p["bias"], 1, rprelu=p["rprelu"], add=p["add"]
    )
    np.testing.assert_array_equal(y_t, y_n)
    # int64 words (torch's usual integer dtype) carry the same bits
    y_i = bk.binary_conv3x3(
        bits.view(np.int64),
        alpha,
        p["wbits"].view(np.int64),
        96,
        p["beta"],
        p["bias"],
        1,
        rprelu=p["rprelu"],
        add=p["add"],
    )
    np.testing.assert_array_equal(y_i, y_n)


def test_invalid_arguments():
    rng = np.random.default_rng(6)
    p = make_conv(rng, 1, 4, 4, 70, 8, 1, rprelu=False, add=False)
    ok = (p["bits"], p["alpha"], p["wbits"], 70, p["beta"], None, 1)
    with pytest.raises(ValueError, match="float32"):
        bk.pack_activations(p["x"].astype(np.float64))
    with pytest.raises(ValueError, match="contiguous"):
        bk.pack_activations(np.asfortranarray(p["x"]))
    with pytest.raises(ValueError, match="shape"):
        bk.binary_conv3x3(*ok[:3], 200, *ok[4:])  # cin needs 4 words, bits have 2
    with pytest.raises(ValueError, match="stride"):
        bk.binary_conv3x3(*ok[:6], 3)
    with pytest.raises(ValueError, match="add"):
        bk.binary_conv3x3(*ok, add=np.zeros((1, 2, 2, 8), np.float32))
    bad_w = p["wbits"].copy()
    bad_w[0, 0, 0, 1] |= np.uint64(1) << np.uint64(63)  # channel 127 >= cin = 70
    with pytest.raises(ValueError, match="pad bits"):
        bk.binary_conv3x3(p["bits"], p["alpha"], bad_w, 70, p["beta"], None, 1)
    with pytest.raises(ValueError):
        bk.set_kernel("bogus")
    for name in {"reference", "avx2", "avx512", "neon"} - set(KERNELS):
        with pytest.raises(ValueError, match="not available"):
            bk.set_kernel(name)
    with pytest.raises(ValueError):
        bk.set_num_threads(0)


def test_introspection():
    assert KERNELS[0] == "reference"
    assert bk.kernel_name() in KERNELS
    assert all(isinstance(f, str) for f in bk.cpu_features())
    if "avx2" in KERNELS:
        assert {"avx2", "fma", "popcnt"} <= set(bk.cpu_features())
    if "avx512" in KERNELS:
        assert {"avx512f", "avx512bw", "avx512vpopcntdq"} <= set(bk.cpu_features())
    bk.set_kernel("auto")
    assert bk.kernel_name() == (KERNELS[1] if len(KERNELS) > 1 else "reference")  # best one
    threads = bk.get_num_threads()
    assert threads >= 1
    bk.set_num_threads(1)
    assert bk.get_num_threads() == 1
    bk.set_num_threads(threads)


def test_env_forces_reference_kernel():
    env = dict(os.environ, BIMACOSR_KERNEL="reference")
    out = subprocess.run(
        [sys.executable, "-c", "import bimacosr_app._bitkernels as b; print(b.kernel_name())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "reference"


def test_kernels_status():
    from bimacosr_app.native import kernels_status, load_kernels

    assert load_kernels() is bk
    status = kernels_status()
    assert status["available"] is True and status["reason"] is None
    assert status["kernel"] == bk.kernel_name()
    assert status["kernels"] == KERNELS
    assert status["threads"] == bk.get_num_threads()
