// Plain-C++ implementations of the non-binary operations (LayerNorm[+SiLU], position-noise
// uniforms, the attention softmax, GELU, the one-step input and output image), written so that the compiler vectorizes them: fixed-width lane arrays for the
// reductions (no -ffast-math needed) and branch-free inner loops.
//
// Included only by the vector kernels' translation units (through vector_loops.h), so every copy
// is compiled with that unit's instruction-set flags; everything here is in an anonymous
// namespace (internal linkage: see the LINKAGE RULE in bitkernels.h). The scalar reference
// versions these are tested against live in kernel_reference.cpp.
#pragma once

#include <math.h>  // sqrtf: a C function (std::sqrt(float) is an inline one, see bitkernels.h)

#include <cstdint>
#include <cstring>

#include "bitkernels.h"

namespace bk {
namespace {

constexpr int64_t kLanes = 16;  // reduction lanes (one AVX-512 vector, two AVX2 / four NEON)

// exp(x) for float32, Cephes' expf polynomial (relative error ~2 ulp); x is clamped to
// [-87, 88], so the result is finite and positive. Branch-free: vectorizes.
inline float exp_poly(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    // n = round(x / ln 2) with the 1.5 * 2^23 trick (exact for |x / ln 2| < 2^22)
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;  // 2^n
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// y[c] = y[c] / (1 + exp(-y[c])) in place, in blocks: first the denominators, then the
// divisions. In one loop GCC threads the exp's clamp into a second, constant division for every
// element (y / 1.65e38: denormal results, microcode assists; AVX2 SiLU was 6x slower than LN).
inline void silu_row(float* y, int64_t C) {
    constexpr int64_t kBlock = 4 * kLanes;
    float d[kBlock];
    for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
        const int64_t n = C - c0 < kBlock ? C - c0 : kBlock;
        for (int64_t c = 0; c < n; ++c) d[c] = 1.0f + exp_poly(-y[c0 + c]);
        for (int64_t c = 0; c < n; ++c) y[c0 + c] = y[c0 + c] / d[c];
    }
}

// LayerNorm (then SiLU if `silu`) of one row x[C] into out[C] (may alias x).
inline void layer_norm_row(const float* x, const float* gamma, const float* beta, int64_t C,
                           float eps, bool silu, float* out) {
    const int64_t Cv = C - C % kLanes;
    float s[kLanes] = {};
    for (int64_t c = 0; c < Cv; c += kLanes)
        for (int64_t j = 0; j < kLanes; ++j) s[j] += x[c + j];
    float sum = 0.0f;
    for (int64_t j = 0; j < kLanes; ++j) sum += s[j];
    for (int64_t c = Cv; c < C; ++c) sum += x[c];
    const float mean = sum / static_cast<float>(C);
    float q[kLanes] = {};
    for (int64_t c = 0; c < Cv; c += kLanes)
        for (int64_t j = 0; j < kLanes; ++j) {
            const float d = x[c + j] - mean;
            q[j] += d * d;
        }
    float ss = 0.0f;
    for (int64_t j = 0; j < kLanes; ++j) ss += q[j];
    for (int64_t c = Cv; c < C; ++c) ss += (x[c] - mean) * (x[c] - mean);
    const float rstd = 1.0f / sqrtf(ss / static_cast<float>(C) + eps);
    for (int64_t c = 0; c < C; ++c) out[c] = (x[c] - mean) * rstd * gamma[c] + beta[c];
    if (silu) silu_row(out, C);
}

void layer_norm_generic(const NormArgs& a, int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
        layer_norm_row(a.x + p * a.C, a.gamma, a.beta, a.C, a.eps, a.silu, a.out + p * a.C);
}

// Window attention's row t (AttentionArgs), in place: s[u] = scale * s[u] + bias[u], then the
// softmax over u < T of the entries that are kept (every one unless `masked`; then those whose
// token lies in t's region rt); entries not kept get exactly 0.
inline void softmax_row(float* s, const float* bias, const int64_t* reg, int64_t rt, int64_t T,
                        float scale, bool masked) {
    float mx = -3.0e38f;
    for (int64_t u = 0; u < T; ++u) {
        const float v = scale * s[u] + bias[u];
        s[u] = !masked || reg[u] == rt ? v : -3.0e38f;
        mx = s[u] > mx ? s[u] : mx;
    }
    float sum = 0.0f;
    for (int64_t u = 0; u < T; ++u) {
        const float e = s[u] > -3.0e38f ? exp_poly(s[u] - mx) : 0.0f;
        s[u] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
    for (int64_t u = 0; u < T; ++u) s[u] *= inv;
}

// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), branch-free.
inline float erf_poly(float x) {
    const float ax = x < 0.0f ? -x : x;
    const float t = 1.0f / (1.0f + 0.3275911f * ax);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    const float y = 1.0f - p * t * exp_poly(-ax * ax);
    return x < 0.0f ? -y : y;
}

// GeluArgs over elements [i0, i1).
void gelu_generic(const GeluArgs& a, int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
        const float x = a.x[i];
        a.out[i] = 0.5f * x * (1.0f + erf_poly(x * 0.707106781186547524f));
    }
}

// ---------------------------------------------------------------------------------------------
// The one-step model's input and output image (InputArgs, ImageArgs)

inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }
inline int64_t lesser(int64_t a, int64_t b) { return a < b ? a : b; }

// Output pixel 4i + k of torch's bicubic x4 (align_corners=False) reads input coordinate
// i + (2k - 3) / 8: taps i + first .. i + first + 3 (first = -2 for k < 2, else -1) with the
// cubic convolution weights (A = -0.75) of the fraction t in float32, as torch computes them.
struct CubicPhase {
    int64_t first;
    float w[4];
};

inline void cubic_phases(CubicPhase* ph) {
    const float a = -0.75f;
    for (int64_t k = 0; k < 4; ++k) {
        const int64_t f = 2 * k + 1 < 4 ? -1 : 0;  // floor of (2k - 3) / 8
        const float t = static_cast<float>((2.0 * k - 3.0) / 8.0 - static_cast<double>(f));
        const float u = 1.0f - t, t1 = t + 1.0f, u1 = u + 1.0f;
        ph[k].first = f - 1;
        ph[k].w[0] = ((a * t1 - 5.0f * a) * t1 + 8.0f * a) * t1 - 4.0f * a;
        ph[k].w[1] = ((a + 2.0f) * t - (a + 3.0f)) * t * t + 1.0f;
        ph[k].w[2] = ((a + 2.0f) * u - (a + 3.0f)) * u * u + 1.0f;
        ph[k].w[3] = ((a * u1 - 5.0f * a) * u1 + 8.0f * a) * u1 - 4.0f * a;
    }
}

// Scratch of one input task: the x-interpolated rows [rows + 4][w][C][4 phases].
int64_t input_scratch_generic(int64_t rows, int64_t w, int64_t C) { return (rows + 4) * w * C * 4; }

// InputArgs for the real rows [r0, r1) of the N * h: each source row is interpolated along x
// once (into scratch), then every output row combines 4 of them along y.
void one_step_input_generic(const InputArgs& a, int64_t r0, int64_t r1, float* hx) {
    CubicPhase ph[4];
    cubic_phases(ph);
    const int64_t C = a.C, Cl = 16 * C, Cx = Cl + C, h = a.h, w = a.w;
    const int64_t hrow = w * C * 4;  // floats of one interpolated row
    for (int64_t r = r0; r < r1;) {
        const int64_t n = r / h, y0 = r % h, y1 = lesser(h, y0 + (r1 - r));
        const int64_t s0 = y0 - 2 < 0 ? 0 : y0 - 2, s1 = lesser(h, y1 + 2);
        for (int64_t sr = s0; sr < s1; ++sr) {  // along x: hx[sr - s0][x][c][dx]
            const float* src = a.lr + (n * h + sr) * w * C;
            float* dst = hx + (sr - s0) * hrow;
            for (int64_t x = 0; x < w; ++x)
                for (int64_t k = 0; k < 4; ++k) {
                    const float* v[4];
                    for (int64_t j = 0; j < 4; ++j) v[j] = src + clamp64(x + ph[k].first + j, 0, w - 1) * C;
                    for (int64_t c = 0; c < C; ++c)
                        dst[(x * C + c) * 4 + k] = ((v[0][c] * ph[k].w[0] + v[1][c] * ph[k].w[1]) +
                                                    v[2][c] * ph[k].w[2]) + v[3][c] * ph[k].w[3];
                }
        }
        for (int64_t y = y0; y < y1; ++y) {
            float* zrow = a.z + (n * a.Hp + y) * a.Wp * Cl;
            float* xrow = a.x + (n * a.Hp + y) * a.Wp * Cx;
            for (int64_t dy = 0; dy < 4; ++dy) {  // along y: z[y][x][c * 16 + dy * 4 + dx]
                const float* v[4];
                for (int64_t j = 0; j < 4; ++j) v[j] = hx + (clamp64(y + ph[dy].first + j, 0, h - 1) - s0) * hrow;
                const float* wy = ph[dy].w;
                for (int64_t x = 0; x < w; ++x)
                    for (int64_t c = 0; c < C; ++c)
                        for (int64_t dx = 0; dx < 4; ++dx) {
                            const int64_t i = (x * C + c) * 4 + dx;
                            zrow[x * Cl + c * 16 + dy * 4 + dx] =
                                ((v[0][i] * wy[0] + v[1][i] * wy[1]) + v[2][i] * wy[2]) + v[3][i] * wy[3];
                        }
            }
            for (int64_t ch = 0; ch < Cl; ++ch) {  // x = (z + noise_scale * eps) * input_scale
                const float* e = a.eps ? a.eps + (ch * h + y) * w : nullptr;
                for (int64_t x = 0; x < w; ++x) {
                    const float zt = zrow[x * Cl + ch];
                    xrow[x * Cx + ch] = (e ? zt + a.noise_scale * e[x] : zt) * a.input_scale;
                }
            }
            const float* lrow = a.lr + (n * h + y) * w * C;
            for (int64_t x = 0; x < w; ++x)
                for (int64_t c = 0; c < C; ++c) xrow[x * Cx + Cl + c] = lrow[x * C + c];
            for (int64_t x = w; x < a.Wp; ++x) {  // replicate padding: column w - 1
                for (int64_t i = 0; i < Cl; ++i) zrow[x * Cl + i] = zrow[(w - 1) * Cl + i];
                for (int64_t i = 0; i < Cx; ++i) xrow[x * Cx + i] = xrow[(w - 1) * Cx + i];
            }
        }
        r += y1 - y0;
    }
}

// ImageArgs for the LR rows [r0, r1) of the N * h.
void latent_image_generic(const ImageArgs& a, int64_t r0, int64_t r1) {
    const int64_t Cl = 16 * a.C, H4 = 4 * a.h, W4 = 4 * a.w;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / a.h, y = r % a.h;
        const float* src = a.x0 + (n * a.Hp + y) * a.Wp * Cl;
        for (int64_t c = 0; c < a.C; ++c)
            for (int64_t dy = 0; dy < 4; ++dy) {
                float* dst = a.img + ((n * a.C + c) * H4 + 4 * y + dy) * W4;
                for (int64_t x = 0; x < a.w; ++x)
                    for (int64_t dx = 0; dx < 4; ++dx) {
                        const float v = (src[x * Cl + c * 16 + dy * 4 + dx] + 1.0f) * 0.5f;
                        dst[4 * x + dx] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
                    }
            }
    }
}

inline uint32_t lowbias32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}

void noise_generic(const NoiseArgs& a, int64_t y0, int64_t y1) {
    constexpr int64_t kBlock = 256;  // columns per block (their row hashes stay in L1)
    const uint32_t s0 = lowbias32(a.seed0), s1 = lowbias32(a.seed1);
    uint32_t h0[kBlock], h1[kBlock];
    for (int64_t y = y0; y < y1; ++y) {
        const uint32_t yy = static_cast<uint32_t>(a.top + y);
        const uint32_t r0 = lowbias32(s0 ^ yy), r1 = lowbias32(s1 ^ yy);
        for (int64_t xb = 0; xb < a.W; xb += kBlock) {
            const int64_t nx = a.W - xb < kBlock ? a.W - xb : kBlock;
            for (int64_t i = 0; i < nx; ++i) {
                const uint32_t xx = static_cast<uint32_t>(a.left + xb + i);
                h0[i] = lowbias32(r0 ^ xx);
                h1[i] = lowbias32(r1 ^ xx);
            }
            for (int64_t c = 0; c < a.C; ++c) {
                float* u1 = a.u1 + (c * a.H + y) * a.W + xb;
                float* u2 = a.u2 + (c * a.H + y) * a.W + xb;
                const uint32_t cc = static_cast<uint32_t>(c);
                for (int64_t i = 0; i < nx; ++i) {
                    // (h >> 8) < 2^24 converts exactly; via int32 so that it vectorizes
                    const float f0 = static_cast<float>(static_cast<int32_t>(lowbias32(h0[i] ^ cc) >> 8));
                    const float f1 = static_cast<float>(static_cast<int32_t>(lowbias32(h1[i] ^ cc) >> 8));
                    u1[i] = (f0 + 0.5f) * (1.0f / 16777216.0f);
                    u2[i] = (f1 + 0.5f) * (1.0f / 16777216.0f);
                }
            }
        }
    }
}

}  // namespace
}  // namespace bk
