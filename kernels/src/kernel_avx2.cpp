// AVX2 kernels (compiled with -mavx2 -mfma -mpopcnt or /arch:AVX2; only reached after the
// run-time CPU check in dispatch.cpp).
//
// Popcount: vpshufb nibble lookup. Activations are re-encoded once per call (prep_x) and weights
// once per call (repack) "nibble-split": each word x becomes (x & 0x0F..0F, (x >> 4) & 0x0F..0F),
// so popcount(x ^ w) per 256 bits is 2 vpxor + 2 vpshufb + 1 vpaddb with no masking or shifting
// in the inner loop. Output channels go in groups of 8 (vectors A, B of 4 x 64-bit lanes); byte
// counts are summed per 64-bit lane with vpsadbw once per tap, converted to float and
// accumulated with the tap's alpha.
//
// Only intrinsics and functions with internal linkage here: see the note in bitkernels.h.
#include "bitkernels.h"

#if defined(BK_HAVE_AVX2)
#include <immintrin.h>

#include <cmath>
#include <cstring>

namespace bk {
namespace {

#include "generic_ops.inc"

constexpr int64_t kG = 8;           // output channels per group
constexpr int64_t kWordStride = 16;  // uint64 per (group, tap, word): A_lo, A_hi, B_lo, B_hi
constexpr uint64_t kLowNibbles = 0x0F0F0F0F0F0F0F0FULL;

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Activation word -> (x & 0x0F.., (x >> 4) & 0x0F..).
void prep_x_avx2(const uint64_t* x, int64_t i0, int64_t i1, uint64_t* dst) {
    for (int64_t i = i0; i < i1; ++i) {
        dst[2 * i] = x[i] & kLowNibbles;
        dst[2 * i + 1] = (x[i] >> 4) & kLowNibbles;
    }
}

// Repacked weights, per (group of 8 channels g, tap t, word w): 16 uint64 = vectors
// A_lo, A_hi, B_lo, B_hi; lane i of A = channel 8g + 2i, of B = channel 8g + 2i + 1, so that
// (count(A) | count(B) << 32) lists 8 int32 counts in natural channel order.
int64_t repacked_size_avx2(int64_t Cpad, int64_t taps, int64_t Cw) {
    return (Cpad / kG) * taps * Cw * kWordStride;
}

void repack_avx2(const uint64_t* w, int64_t Cout, int64_t taps, int64_t Cw, int64_t Cpad,
                 uint64_t* dst) {
    for (int64_t g = 0; g < Cpad / kG; ++g)
        for (int64_t t = 0; t < taps; ++t)
            for (int64_t wd = 0; wd < Cw; ++wd) {
                uint64_t* d = dst + ((g * taps + t) * Cw + wd) * kWordStride;
                for (int64_t v = 0; v < 2; ++v)  // v = 0: A (even), 1: B (odd channels)
                    for (int64_t i = 0; i < 4; ++i) {
                        const int64_t o = g * kG + 2 * i + v;
                        const uint64_t word = o < Cout ? w[(o * taps + t) * Cw + wd] : 0;
                        d[v * 8 + i] = word & kLowNibbles;
                        d[v * 8 + 4 + i] = (word >> 4) & kLowNibbles;
                    }
            }
}

struct Consts {
    __m256i lut, zero;
    Consts()
        : lut(_mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                               0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4)),
          zero(_mm256_setzero_si256()) {}
};

inline __m256i ld(const uint64_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Byte counts of popcount(x ^ w) for one vector of 4 channels (nibble-split operands).
inline __m256i nib(const Consts& k, __m256i xl, __m256i xh, const uint64_t* p) {
    return _mm256_add_epi8(_mm256_shuffle_epi8(k.lut, _mm256_xor_si256(xl, ld(p))),
                           _mm256_shuffle_epi8(k.lut, _mm256_xor_si256(xh, ld(p + 4))));
}

// popcount(x ^ w[c]) for the 8 channels of a group over Cw words, as 8 int32 in channel order.
// xs: nibble-split activation words [Cw][2]; wp: the group's words for this tap [Cw][16].
template <int CW>
inline __m256i group_counts(const Consts& k, const uint64_t* xs, const uint64_t* wp, int64_t Cw) {
    const int64_t n = CW > 0 ? CW : Cw;
    __m256i sa = k.zero, sb = k.zero;
    for (int64_t w0 = 0; w0 < n; w0 += 31) {  // <= 31 words: byte counts (<= 8 each) fit
        const int64_t w1 = min64(n, w0 + 31);
        __m256i ca = k.zero, cb = k.zero;
        for (int64_t w = w0; w < w1; ++w) {
            const __m256i xl = _mm256_set1_epi64x(static_cast<long long>(xs[2 * w]));
            const __m256i xh = _mm256_set1_epi64x(static_cast<long long>(xs[2 * w + 1]));
            const uint64_t* p = wp + kWordStride * w;
            ca = _mm256_add_epi8(ca, nib(k, xl, xh, p));
            cb = _mm256_add_epi8(cb, nib(k, xl, xh, p + 8));
        }
        sa = _mm256_add_epi64(sa, _mm256_sad_epu8(ca, k.zero));
        sb = _mm256_add_epi64(sb, _mm256_sad_epu8(cb, k.zero));
    }
    // Counts < 2^32: channel 2i+1 (B lane i) goes into the high half of A's lane i.
    return _mm256_or_si256(sa, _mm256_slli_epi64(sb, 32));
}

// RPReLU, residual add and store of 8 channels starting at o0 (any of them may be >= Cout).
inline void finish(const Epilogue& ep, int64_t o0, int64_t Cout, __m256 y, const float* add,
                   float* out) {
    if (o0 >= Cout) return;
    if (ep.shift_in) {
        const __m256 u = _mm256_add_ps(y, _mm256_loadu_ps(ep.shift_in + o0));
        const __m256 neg = _mm256_mul_ps(_mm256_loadu_ps(ep.slope + o0), u);
        const __m256 pos = _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_GT_OQ);
        y = _mm256_add_ps(_mm256_blendv_ps(neg, u, pos), _mm256_loadu_ps(ep.shift_out + o0));
    }
    if (o0 + 8 <= Cout) {
        if (add) y = _mm256_add_ps(y, _mm256_loadu_ps(add + o0));
        _mm256_storeu_ps(out + o0, y);
    } else {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, y);
        for (int64_t c = 0; c < Cout - o0; ++c) out[o0 + c] = tmp[c] + (add ? add[o0 + c] : 0.0f);
    }
}

// The packed values d of the 8 channels from c on: x, or x - shift in float32 (kShift).
// xw, sw: the word's channels and (kShift) their thresholds.
template <bool kShift>
inline __m256 load_d(const float* xw, const float* sw, int64_t c) {
    const __m256 v = _mm256_loadu_ps(xw + c);
    if constexpr (kShift) return _mm256_sub_ps(v, _mm256_loadu_ps(sw + c));
    return v;
}

template <bool kShift>
void pack_rows(const PackArgs& a, int64_t p0, int64_t p1) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t p = p0; p < p1; ++p) {
        uint64_t* bits = a.bits + p * a.Cw;
        __m256 s0 = zero, s1 = zero;
        float tail = 0.0f;
        for (int64_t w = 0; w < a.Cw; ++w) {
            const PackWord src = pack_word(a, p, w);
            const float *xw = src.x, *sw = src.shift;
            const int64_t n = src.n;
            uint64_t word = 0;
            int64_t c = 0;
            for (; c + 16 <= n; c += 16) {
                const __m256 v0 = load_d<kShift>(xw, sw, c), v1 = load_d<kShift>(xw, sw, c + 8);
                const uint64_t m0 = static_cast<uint32_t>(
                    _mm256_movemask_ps(_mm256_cmp_ps(v0, zero, _CMP_LT_OQ)));
                const uint64_t m1 = static_cast<uint32_t>(
                    _mm256_movemask_ps(_mm256_cmp_ps(v1, zero, _CMP_LT_OQ)));
                word |= (m0 | (m1 << 8)) << c;
                s0 = _mm256_add_ps(s0, _mm256_and_ps(v0, absmask));
                s1 = _mm256_add_ps(s1, _mm256_and_ps(v1, absmask));
            }
            for (; c + 8 <= n; c += 8) {
                const __m256 v = load_d<kShift>(xw, sw, c);
                const uint64_t m = static_cast<uint32_t>(
                    _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_LT_OQ)));
                word |= m << c;
                s0 = _mm256_add_ps(s0, _mm256_and_ps(v, absmask));
            }
            for (; c < n; ++c) {
                const float v = kShift ? xw[c] - sw[c] : xw[c];
                if (v < 0.0f) word |= uint64_t{1} << c;
                tail += v < 0.0f ? -v : v;
            }
            bits[w] = word;
        }
        const __m256 s = _mm256_add_ps(s0, s1);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        const float sum = _mm_cvtss_f32(h) + tail;
        a.alpha[p] = a.C > 0 ? sum / static_cast<float>(a.C) : 0.0f;
    }
}

void pack_avx2(const PackArgs& a, int64_t p0, int64_t p1) {
    if (a.shift) return pack_rows<true>(a, p0, p1);
    return pack_rows<false>(a, p0, p1);
}

struct Tap {
    const uint64_t* x;  // nibble-split words of the input pixel
    int64_t woff;       // offset of the tap in a group's weights
    float alpha;
};

// Pixel by pixel: the pixel's valid taps (padded pixels have alpha = 0 and are skipped) and
// sum_t alpha_t are computed once, then every group of 8 output channels runs over them. A
// layer's repacked weights (36 KiB for 128 -> 128 channels) stay in L1 / L2.
template <int CW>
void conv_rows(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
    const Consts k;
    const int64_t Cw = CW > 0 ? CW : a.Cw;
    const int64_t ngroups = a.Cpad / kG;
    const int64_t tap_words = Cw * kWordStride;
    const int64_t gstride = 9 * tap_words;
    const __m256 two = _mm256_set1_ps(2.0f);
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
                    taps[nt].x = a.x + pix * Cw * 2;
                    taps[nt].woff = (ky * 3 + kx) * tap_words;
                    taps[nt].alpha = a.alpha[pix];
                    S += taps[nt].alpha;
                    ++nt;
                }
            }
            const __m256 cinS = _mm256_set1_ps(static_cast<float>(a.cin) * S);
            const int64_t opix = (n * a.Ho + oy) * a.Wo + ox;
            float* out = a.out + opix * a.Cout;
            const float* add = a.add ? a.add + opix * a.Cout : nullptr;
            for (int64_t g = 0; g < ngroups; ++g) {
                const uint64_t* wg = a.w + g * gstride;
                __m256 acc = _mm256_setzero_ps();
                for (int i = 0; i < nt; ++i) {
                    const __m256i c = group_counts<CW>(k, taps[i].x, wg + taps[i].woff, Cw);
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c), _mm256_set1_ps(taps[i].alpha), acc);
                }
                // y = beta * (cin * sum_t alpha_t - 2 * sum_t alpha_t * pc_t) + bias
                const int64_t o0 = g * kG;
                const __m256 y = _mm256_fmadd_ps(_mm256_loadu_ps(a.ep.beta + o0),
                                                 _mm256_fnmadd_ps(two, acc, cinS),
                                                 _mm256_loadu_ps(a.ep.bias + o0));
                finish(a.ep, o0, a.Cout, y, add, out);
            }
        }
    }
}

template <int CW>
void gemm_rows(const GemmArgs& a, int64_t m0, int64_t m1) {
    const Consts k;
    const int64_t Kw = CW > 0 ? CW : a.Kw;
    const int64_t ngroups = a.Cpad / kG;
    const __m256i kv = _mm256_set1_epi32(static_cast<int>(a.k));
    for (int64_t m = m0; m < m1; ++m) {
        const uint64_t* xs = a.x + m * Kw * 2;
        const __m256 am = _mm256_set1_ps(a.alpha[m]);
        float* out = a.out + m * a.Nout;
        const float* add = a.add ? a.add + m * a.Nout : nullptr;
        for (int64_t g = 0; g < ngroups; ++g) {
            const __m256i c = group_counts<CW>(k, xs, a.w + g * Kw * kWordStride, Kw);
            // y = alpha * beta * (k - 2 * pc) + bias
            const __m256 d = _mm256_cvtepi32_ps(_mm256_sub_epi32(kv, _mm256_slli_epi32(c, 1)));
            const int64_t o0 = g * kG;
            const __m256 y = _mm256_fmadd_ps(d, _mm256_mul_ps(am, _mm256_loadu_ps(a.ep.beta + o0)),
                                             _mm256_loadu_ps(a.ep.bias + o0));
            finish(a.ep, o0, a.Nout, y, add, out);
        }
    }
}

void conv_avx2(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
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

void gemm_avx2(const GemmArgs& a, int64_t m0, int64_t m1) {
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

const KernelImpl kImplAvx2 = {"avx2",
                              static_cast<int>(kG),
                              /*xprep=*/2,
                              prep_x_avx2,
                              repacked_size_avx2,
                              repack_avx2,
                              pack_avx2,
                              conv_avx2,
                              gemm_avx2,
                              layer_norm_generic,
                              noise_generic};

}  // namespace bk
#endif  // BK_HAVE_AVX2
