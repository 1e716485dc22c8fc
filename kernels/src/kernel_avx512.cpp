// AVX-512 kernels: AVX512F + AVX512BW + AVX512_VPOPCNTDQ (compiled with
// -mavx512f -mavx512bw -mavx512vpopcntdq or /arch:AVX512; only reached after the run-time CPU
// and OS-state check in dispatch.cpp). vpopcntq on the XOR of one broadcast activation word with
// 8 output channels' weight words; groups of 16 output channels (two vectors, interleaved lanes).
//
// Only intrinsics and functions with internal linkage here: see the note in bitkernels.h.
#include "bitkernels.h"

#if defined(BK_HAVE_AVX512)
#include <immintrin.h>

#include <cmath>
#include <cstring>

namespace bk {
namespace {

#include "generic_ops.inc"

constexpr int64_t kG = 16;  // output channels per group


// Repacked weights, per (group of 16 channels g, tap t, word w): 16 uint64 = vectors A, B;
// lane i of A = channel 16g + 2i, of B = channel 16g + 2i + 1.
int64_t repacked_size_avx512(int64_t Cpad, int64_t taps, int64_t Cw) { return Cpad * taps * Cw; }

void repack_avx512(const uint64_t* w, int64_t Cout, int64_t taps, int64_t Cw, int64_t Cpad,
                   uint64_t* dst) {
    for (int64_t g = 0; g < Cpad / kG; ++g)
        for (int64_t j = 0; j < kG; ++j) {
            const int64_t o = g * kG + (j < 8 ? 2 * j : 2 * (j - 8) + 1);
            for (int64_t t = 0; t < taps; ++t)
                for (int64_t wd = 0; wd < Cw; ++wd)
                    dst[((g * taps + t) * Cw + wd) * kG + j] =
                        o < Cout ? w[(o * taps + t) * Cw + wd] : 0;
        }
}

inline __m512i ld(const uint64_t* p) { return _mm512_loadu_si512(static_cast<const void*>(p)); }

// popcount(x ^ w[c]) for the 16 channels of one group over Cw words, as 16 x int32 in natural
// channel order. wp points at the group's words for this tap: [Cw][16] uint64 (interleaved).
template <int CW>
inline __m512i group_counts(const uint64_t* xp, const uint64_t* wp, int64_t Cw) {
    const int64_t n = CW > 0 ? CW : Cw;
    __m512i qa = _mm512_setzero_si512(), qb = _mm512_setzero_si512();
    for (int64_t w = 0; w < n; ++w) {
        const __m512i xv = _mm512_set1_epi64(static_cast<long long>(xp[w]));
        qa = _mm512_add_epi64(qa, _mm512_popcnt_epi64(_mm512_xor_si512(xv, ld(wp + 16 * w))));
        qb = _mm512_add_epi64(qb, _mm512_popcnt_epi64(_mm512_xor_si512(xv, ld(wp + 16 * w + 8))));
    }
    return _mm512_or_si512(qa, _mm512_slli_epi64(qb, 32));
}

inline __mmask16 tail_mask(int64_t o0, int64_t Cout) {
    const int64_t r = Cout - o0;
    return r >= kG ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << r) - 1u);
}

inline void finish(const Epilogue& ep, int64_t o0, int64_t Cout, __m512 y, const float* add,
                   float* out) {
    if (ep.shift_in) {
        const __m512 u = _mm512_add_ps(y, _mm512_loadu_ps(ep.shift_in + o0));
        const __m512 neg = _mm512_mul_ps(_mm512_loadu_ps(ep.slope + o0), u);
        const __mmask16 pos = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_GT_OQ);
        y = _mm512_add_ps(_mm512_mask_blend_ps(pos, neg, u), _mm512_loadu_ps(ep.shift_out + o0));
    }
    const __mmask16 m = tail_mask(o0, Cout);
    if (add) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, add + o0));
    _mm512_mask_storeu_ps(out + o0, m, y);
}

// The packed values d of the 16 channels from c on: x, or x - shift in float32 (kShift).
// xw, sw: the word's channels and (kShift) their thresholds.
template <bool kShift>
inline __m512 load_d(const float* xw, const float* sw, int64_t c) {
    const __m512 v = _mm512_loadu_ps(xw + c);
    if constexpr (kShift) return _mm512_sub_ps(v, _mm512_loadu_ps(sw + c));
    return v;
}

// load_d of the lanes in `lanes` only; the others are 0 (no bit, nothing added to alpha).
template <bool kShift>
inline __m512 load_d_masked(const float* xw, const float* sw, int64_t c, __mmask16 lanes) {
    const __m512 v = _mm512_maskz_loadu_ps(lanes, xw + c);
    if constexpr (kShift) return _mm512_sub_ps(v, _mm512_maskz_loadu_ps(lanes, sw + c));
    return v;
}

template <bool kShift>
void pack_rows(const PackArgs& a, int64_t p0, int64_t p1) {
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t p = p0; p < p1; ++p) {
        uint64_t* bits = a.bits + p * a.Cw;
        __m512 s0 = zero, s1 = zero;
        for (int64_t w = 0; w < a.Cw; ++w) {
            const PackWord src = pack_word(a, p, w);
            const float *xw = src.x, *sw = src.shift;
            const int64_t n = src.n;
            uint64_t word = 0;
            int64_t c = 0;
            for (; c + 32 <= n; c += 32) {
                const __m512 v0 = load_d<kShift>(xw, sw, c), v1 = load_d<kShift>(xw, sw, c + 16);
                const uint64_t m0 = _mm512_cmp_ps_mask(v0, zero, _CMP_LT_OQ);
                const uint64_t m1 = _mm512_cmp_ps_mask(v1, zero, _CMP_LT_OQ);
                word |= (m0 | (m1 << 16)) << c;
                s0 = _mm512_add_ps(s0, _mm512_abs_ps(v0));
                s1 = _mm512_add_ps(s1, _mm512_abs_ps(v1));
            }
            for (; c < n; c += 16) {
                const int64_t r = n - c;
                const __mmask16 lm = r >= 16 ? static_cast<__mmask16>(0xFFFF)
                                             : static_cast<__mmask16>((1u << r) - 1u);
                const __m512 v = load_d_masked<kShift>(xw, sw, c, lm);
                const uint64_t m = _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ);
                word |= m << c;
                s0 = _mm512_add_ps(s0, _mm512_abs_ps(v));
            }
            bits[w] = word;
        }
        const float sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
        a.alpha[p] = a.C > 0 ? sum / static_cast<float>(a.C) : 0.0f;
    }
}

void pack_avx512(const PackArgs& a, int64_t p0, int64_t p1) {
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
    const __m512 two = _mm512_set1_ps(2.0f);
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
            const __m512 cinS = _mm512_set1_ps(static_cast<float>(a.cin) * S);
            const int64_t opix = (n * a.Ho + oy) * a.Wo + ox;
            float* out = a.out + opix * a.Cout;
            const float* add = a.add ? a.add + opix * a.Cout : nullptr;
            for (int64_t g = 0; g < ngroups; ++g) {
                const uint64_t* wg = a.w + g * gstride;
                __m512 acc = _mm512_setzero_ps();
                for (int i = 0; i < nt; ++i) {
                    const __m512i c = group_counts<CW>(taps[i].x, wg + taps[i].woff, Cw);
                    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), _mm512_set1_ps(taps[i].alpha), acc);
                }
                const int64_t o0 = g * kG;
                const __m512 y = _mm512_fmadd_ps(_mm512_loadu_ps(a.ep.beta + o0),
                                                 _mm512_fnmadd_ps(two, acc, cinS),
                                                 _mm512_loadu_ps(a.ep.bias + o0));
                finish(a.ep, o0, a.Cout, y, add, out);
            }
        }
    }
}

template <int CW>
void gemm_rows(const GemmArgs& a, int64_t m0, int64_t m1) {
    const int64_t Kw = CW > 0 ? CW : a.Kw;
    const int64_t ngroups = a.Cpad / kG;
    const __m512i kv = _mm512_set1_epi32(static_cast<int>(a.k));
    for (int64_t m = m0; m < m1; ++m) {
        const uint64_t* xp = a.x + m * Kw;
        const __m512 am = _mm512_set1_ps(a.alpha[m]);
        float* out = a.out + m * a.Nout;
        const float* add = a.add ? a.add + m * a.Nout : nullptr;
        for (int64_t g = 0; g < ngroups; ++g) {
            const __m512i c = group_counts<CW>(xp, a.w + g * Kw * kG, Kw);
            const __m512 d = _mm512_cvtepi32_ps(_mm512_sub_epi32(kv, _mm512_slli_epi32(c, 1)));
            const int64_t o0 = g * kG;
            const __m512 y = _mm512_fmadd_ps(d, _mm512_mul_ps(am, _mm512_loadu_ps(a.ep.beta + o0)),
                                             _mm512_loadu_ps(a.ep.bias + o0));
            finish(a.ep, o0, a.Nout, y, add, out);
        }
    }
}

void conv_avx512(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
    switch (a.Cw) {
        case 1: return conv_rows<1>(a, n, oy0, oy1);
        case 2: return conv_rows<2>(a, n, oy0, oy1);
        case 3: return conv_rows<3>(a, n, oy0, oy1);
        case 4: return conv_rows<4>(a, n, oy0, oy1);
        case 5: return conv_rows<5>(a, n, oy0, oy1);
        case 6: return conv_rows<6>(a, n, oy0, oy1);
        case 8: return conv_rows<8>(a, n, oy0, oy1);
        case 10: return conv_rows<10>(a, n, oy0, oy1);
        default: return conv_rows<0>(a, n, oy0, oy1);
    }
}

void gemm_avx512(const GemmArgs& a, int64_t m0, int64_t m1) {
    switch (a.Kw) {
        case 1: return gemm_rows<1>(a, m0, m1);
        case 2: return gemm_rows<2>(a, m0, m1);
        case 3: return gemm_rows<3>(a, m0, m1);
        case 4: return gemm_rows<4>(a, m0, m1);
        case 5: return gemm_rows<5>(a, m0, m1);
        case 6: return gemm_rows<6>(a, m0, m1);
        case 8: return gemm_rows<8>(a, m0, m1);
        case 10: return gemm_rows<10>(a, m0, m1);
        default: return gemm_rows<0>(a, m0, m1);
    }
}

}  // namespace

const KernelImpl kImplAvx512 = {"avx512",
                                static_cast<int>(kG),
                                /*xprep=*/0,
                                /*prep_x=*/nullptr,
                                repacked_size_avx512,
                                repack_avx512,
                                pack_avx512,
                                conv_avx512,
                                gemm_avx512,
                                layer_norm_generic,
                                noise_generic};

}  // namespace bk
#endif  // BK_HAVE_AVX512
