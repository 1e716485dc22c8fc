// NEON kernels for AArch64 (NEON is architectural there, so no run-time check is needed).
// vcnt on the XOR of one broadcast activation word with 2 output channels' weight words per
// vector; byte counts widened with pairwise adds. Groups of 8 output channels, natural order.
//
// Only intrinsics and functions with internal linkage here: see the note in bitkernels.h.
#include "bitkernels.h"

#if defined(BK_HAVE_NEON)
#include <arm_neon.h>

#include <cmath>
#include <cstring>

namespace bk {
namespace {

#include "generic_ops.inc"

constexpr int64_t kG = 8;  // output channels per group

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Repacked weights, per (group of 8 channels g, tap t, word w): 8 uint64 in channel order.
int64_t repacked_size_neon(int64_t Cpad, int64_t taps, int64_t Cw) { return Cpad * taps * Cw; }

void repack_neon(const uint64_t* w, int64_t Cout, int64_t taps, int64_t Cw, int64_t Cpad,
                 uint64_t* dst) {
    for (int64_t g = 0; g < Cpad / kG; ++g)
        for (int64_t j = 0; j < kG; ++j) {
            const int64_t o = g * kG + j;
            for (int64_t t = 0; t < taps; ++t)
                for (int64_t wd = 0; wd < Cw; ++wd)
                    dst[((g * taps + t) * Cw + wd) * kG + j] =
                        o < Cout ? w[(o * taps + t) * Cw + wd] : 0;
        }
}

struct Counts {
    uint32x4_t lo, hi;  // channels 0-3 and 4-7 of the group
};

// popcount(x ^ w[c]) for the 8 channels of one group over Cw words.
// wp points at the group's words for this tap: [Cw][8] uint64 (natural channel order).
template <int CW>
inline Counts group_counts(const uint64_t* xp, const uint64_t* wp, int64_t Cw) {
    const int64_t n = CW > 0 ? CW : Cw;
    uint32x4_t s0 = vdupq_n_u32(0), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t w0 = 0; w0 < n; w0 += 31) {  // <= 31 words: byte counts cannot overflow
        const int64_t w1 = min64(n, w0 + 31);
        uint8x16_t c0 = vdupq_n_u8(0), c1 = c0, c2 = c0, c3 = c0;
        for (int64_t w = w0; w < w1; ++w) {
            const uint64x2_t xv = vdupq_n_u64(xp[w]);
            const uint64_t* p = wp + 8 * w;
            c0 = vaddq_u8(c0, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(xv, vld1q_u64(p)))));
            c1 = vaddq_u8(c1, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(xv, vld1q_u64(p + 2)))));
            c2 = vaddq_u8(c2, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(xv, vld1q_u64(p + 4)))));
            c3 = vaddq_u8(c3, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(xv, vld1q_u64(p + 6)))));
        }
        // u8x16 -> u16x8 -> accumulate into u32x4 = [ch_a lo, ch_a hi, ch_b lo, ch_b hi]
        s0 = vpadalq_u16(s0, vpaddlq_u8(c0));
        s1 = vpadalq_u16(s1, vpaddlq_u8(c1));
        s2 = vpadalq_u16(s2, vpaddlq_u8(c2));
        s3 = vpadalq_u16(s3, vpaddlq_u8(c3));
    }
    Counts r;
    r.lo = vpaddq_u32(s0, s1);  // [ch0, ch1, ch2, ch3]
    r.hi = vpaddq_u32(s2, s3);  // [ch4, ch5, ch6, ch7]
    return r;
}

inline float32x4_t rprelu(float32x4_t y, const Epilogue& ep, int64_t o) {
    const float32x4_t u = vaddq_f32(y, vld1q_f32(ep.shift_in + o));
    const float32x4_t neg = vmulq_f32(vld1q_f32(ep.slope + o), u);
    const uint32x4_t pos = vcgtq_f32(u, vdupq_n_f32(0.0f));
    return vaddq_f32(vbslq_f32(pos, u, neg), vld1q_f32(ep.shift_out + o));
}

inline void finish(const Epilogue& ep, int64_t o0, int64_t Cout, float32x4_t y0, float32x4_t y1,
                   const float* add, float* out) {
    if (ep.shift_in) {
        y0 = rprelu(y0, ep, o0);
        y1 = rprelu(y1, ep, o0 + 4);
    }
    if (o0 + kG <= Cout) {
        if (add) {
            y0 = vaddq_f32(y0, vld1q_f32(add + o0));
            y1 = vaddq_f32(y1, vld1q_f32(add + o0 + 4));
        }
        vst1q_f32(out + o0, y0);
        vst1q_f32(out + o0 + 4, y1);
    } else {
        float tmp[kG];
        vst1q_f32(tmp, y0);
        vst1q_f32(tmp + 4, y1);
        for (int64_t c = 0; c < Cout - o0; ++c) out[o0 + c] = tmp[c] + (add ? add[o0 + c] : 0.0f);
    }
}

// The packed values d of the 4 channels from c on: x, or x - shift in float32 (kShift).
// xw, sw: the word's channels and (kShift) their thresholds.
template <bool kShift>
inline float32x4_t load_d(const float* xw, const float* sw, int64_t c) {
    const float32x4_t v = vld1q_f32(xw + c);
    if constexpr (kShift) return vsubq_f32(v, vld1q_f32(sw + c));
    return v;
}

template <bool kShift>
void pack_rows(const PackArgs& a, int64_t p0, int64_t p1) {
    const float32x4_t zero = vdupq_n_f32(0.0f);
    const uint32_t lanebits_arr[4] = {1u, 2u, 4u, 8u};
    const uint32x4_t lanebits = vld1q_u32(lanebits_arr);
    for (int64_t p = p0; p < p1; ++p) {
        uint64_t* bits = a.bits + p * a.Cw;
        float32x4_t s0 = zero, s1 = zero;
        float tail = 0.0f;
        for (int64_t w = 0; w < a.Cw; ++w) {
            const PackWord src = pack_word(a, p, w);
            const float *xw = src.x, *sw = src.shift;
            const int64_t n = src.n;
            uint64_t word = 0;
            int64_t c = 0;
            for (; c + 8 <= n; c += 8) {
                const float32x4_t v0 = load_d<kShift>(xw, sw, c);
                const float32x4_t v1 = load_d<kShift>(xw, sw, c + 4);
                const uint64_t m0 = vaddvq_u32(vandq_u32(vcltq_f32(v0, zero), lanebits));
                const uint64_t m1 = vaddvq_u32(vandq_u32(vcltq_f32(v1, zero), lanebits));
                word |= (m0 | (m1 << 4)) << c;
                s0 = vaddq_f32(s0, vabsq_f32(v0));
                s1 = vaddq_f32(s1, vabsq_f32(v1));
            }
            for (; c < n; ++c) {
                const float v = kShift ? xw[c] - sw[c] : xw[c];
                if (v < 0.0f) word |= uint64_t{1} << c;
                tail += v < 0.0f ? -v : v;
            }
            bits[w] = word;
        }
        const float sum = vaddvq_f32(vaddq_f32(s0, s1)) + tail;
        a.alpha[p] = a.C > 0 ? sum / static_cast<float>(a.C) : 0.0f;
    }
}

void pack_neon(const PackArgs& a, int64_t p0, int64_t p1) {
    if (a.shift) return pack_rows<true>(a, p0, p1);
    return pack_rows<false>(a, p0, p1);
}

struct Tap {
    const uint64_t* x;
    int64_t woff;
    float alpha;
};

template <int CW>
void conv_rows(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
    const int64_t Cw = CW > 0 ? CW : a.Cw;
    const int64_t ngroups = a.Cpad / kG;
    const int64_t gstride = 9 * Cw * kG;
    const float32x4_t two = vdupq_n_f32(2.0f);
    Tap taps[9];
    for (int64_t oy = oy0; oy < oy1; ++oy) {
        for (int64_t ox = 0; ox < a.Wo; ++ox) {
            int nt = 0;
            float S = 0.0f;
            for (int64_t ky = 0; ky < 3; ++ky) {
                const int64_t iy = oy * a.stride - 1 + ky;
                if (iy < 0 || iy >= a.H) continue;
                for (int64_t kx = 0; kx < 3; ++kx) {
                    const int64_t ix = ox * a.stride - 1 + kx;
                    if (ix < 0 || ix >= a.W) continue;
                    const int64_t pix = (n * a.H + iy) * a.W + ix;
                    taps[nt].x = a.x + pix * Cw;
                    taps[nt].woff = (ky * 3 + kx) * Cw * kG;
                    taps[nt].alpha = a.alpha[pix];
                    S += taps[nt].alpha;
                    ++nt;
                }
            }
            const float32x4_t cinS = vdupq_n_f32(static_cast<float>(a.cin) * S);
            const int64_t opix = (n * a.Ho + oy) * a.Wo + ox;
            float* out = a.out + opix * a.Cout;
            const float* add = a.add ? a.add + opix * a.Cout : nullptr;
            for (int64_t g = 0; g < ngroups; ++g) {
                const uint64_t* wg = a.w + g * gstride;
                float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
                for (int i = 0; i < nt; ++i) {
                    const Counts c = group_counts<CW>(taps[i].x, wg + taps[i].woff, Cw);
                    const float32x4_t al = vdupq_n_f32(taps[i].alpha);
                    acc0 = vfmaq_f32(acc0, vcvtq_f32_u32(c.lo), al);
                    acc1 = vfmaq_f32(acc1, vcvtq_f32_u32(c.hi), al);
                }
                const int64_t o0 = g * kG;
                // y = beta * (cin * sum_t alpha_t - 2 * sum_t alpha_t * pc_t) + bias
                const float32x4_t y0 = vfmaq_f32(vld1q_f32(a.ep.bias + o0), vld1q_f32(a.ep.beta + o0),
                                                 vfmsq_f32(cinS, two, acc0));
                const float32x4_t y1 = vfmaq_f32(vld1q_f32(a.ep.bias + o0 + 4),
                                                 vld1q_f32(a.ep.beta + o0 + 4),
                                                 vfmsq_f32(cinS, two, acc1));
                finish(a.ep, o0, a.Cout, y0, y1, add, out);
            }
        }
    }
}

template <int CW>
void gemm_rows(const GemmArgs& a, int64_t m0, int64_t m1) {
    const int64_t Kw = CW > 0 ? CW : a.Kw;
    const int64_t ngroups = a.Cpad / kG;
    const int32x4_t kv = vdupq_n_s32(static_cast<int32_t>(a.k));
    for (int64_t m = m0; m < m1; ++m) {
        const uint64_t* xp = a.x + m * Kw;
        const float am = a.alpha[m];
        float* out = a.out + m * a.Nout;
        const float* add = a.add ? a.add + m * a.Nout : nullptr;
        for (int64_t g = 0; g < ngroups; ++g) {
            const Counts c = group_counts<CW>(xp, a.w + g * Kw * kG, Kw);
            const float32x4_t d0 = vcvtq_f32_s32(vsubq_s32(kv, vshlq_n_s32(vreinterpretq_s32_u32(c.lo), 1)));
            const float32x4_t d1 = vcvtq_f32_s32(vsubq_s32(kv, vshlq_n_s32(vreinterpretq_s32_u32(c.hi), 1)));
            const int64_t o0 = g * kG;
            const float32x4_t y0 = vfmaq_f32(vld1q_f32(a.ep.bias + o0), d0,
                                             vmulq_n_f32(vld1q_f32(a.ep.beta + o0), am));
            const float32x4_t y1 = vfmaq_f32(vld1q_f32(a.ep.bias + o0 + 4), d1,
                                             vmulq_n_f32(vld1q_f32(a.ep.beta + o0 + 4), am));
            finish(a.ep, o0, a.Nout, y0, y1, add, out);
        }
    }
}

void conv_neon(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
    switch (a.Cw) {
        case 1: return conv_rows<1>(a, n, oy0, oy1);
        case 2: return conv_rows<2>(a, n, oy0, oy1);
        case 3: return conv_rows<3>(a, n, oy0, oy1);
        case 4: return conv_rows<4>(a, n, oy0, oy1);
        default: return conv_rows<0>(a, n, oy0, oy1);
    }
}

void gemm_neon(const GemmArgs& a, int64_t m0, int64_t m1) {
    switch (a.Kw) {
        case 1: return gemm_rows<1>(a, m0, m1);
        case 2: return gemm_rows<2>(a, m0, m1);
        case 3: return gemm_rows<3>(a, m0, m1);
        case 4: return gemm_rows<4>(a, m0, m1);
        default: return gemm_rows<0>(a, m0, m1);
    }
}

}  // namespace

const KernelImpl kImplNeon = {"neon",
                                static_cast<int>(kG),
                                /*xprep=*/0,
                                /*prep_x=*/nullptr,
                                repacked_size_neon,
                                repack_neon,
                                pack_neon,
                                conv_neon,
                                gemm_neon,
                              layer_norm_generic,
                              noise_generic};

}  // namespace bk
#endif  // BK_HAVE_NEON
