// AVX2 kernels (compiled with -mavx2 -mfma -mpopcnt or /arch:AVX2; only reached after the
// run-time CPU check in dispatch.cpp): the instruction-set parts of the loop skeleton in
// vector_loops.h.
//
// Popcount: vpshufb nibble lookup. Activations are re-encoded once per call (prep_word) and
// weights once per layer (repack_word) "nibble-split": each word x becomes
// (x & 0x0F..0F, (x >> 4) & 0x0F..0F), so popcount(x ^ w) per 256 bits is 2 vpxor + 2 vpshufb +
// 1 vpaddb with no masking or shifting in the inner loop. Output channels go in groups of 8
// (vectors A, B of 4 x 64-bit lanes); byte counts are summed per 64-bit lane with vpsadbw once
// per tap, converted to float and accumulated with the tap's alpha.
//
// Only intrinsics and functions with internal linkage here: see the LINKAGE RULE in bitkernels.h.
#include "bitkernels.h"

#if defined(BK_HAVE_AVX2)
#include <immintrin.h>

#include "vector_loops.h"

namespace bk {
namespace {

constexpr uint64_t kLowNibbles = 0x0F0F0F0F0F0F0F0FULL;

inline __m256i ld(const uint64_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// The packed values d of the 8 channels from c on: x, or x - shift in float32 (kShift).
// xw, sw: the word's channels and (kShift) their thresholds.
template <bool kShift>
inline __m256 load_d(const float* xw, const float* sw, int64_t c) {
    const __m256 v = _mm256_loadu_ps(xw + c);
    if constexpr (kShift) return _mm256_sub_ps(v, _mm256_loadu_ps(sw + c));
    return v;
}

// Sign mask of the 8 values (bit i = v_i < 0).
inline uint64_t negative_bits(__m256 v) {
    return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ)));
}

struct Avx2 {
    static constexpr int64_t kGroup = 8;
    // Per (group, tap, word): vectors A_lo, A_hi, B_lo, B_hi; lane i of A = channel 2i, of
    // B = channel 2i + 1 of the group, so that (count(A) | count(B) << 32) lists the 8 int32
    // counts in channel order.
    static constexpr int64_t kWordStride = 16;
    static constexpr int64_t kXWords = 2;  // (low nibbles, high nibbles)

    using Counts = __m256i;  // 8 x int32, channel order
    using Acc = __m256;

    // Float32 vectors; fma_block accumulates 4 rows x 3 vectors in 12 of the 16 registers (3
    // hold the loaded vectors, 1 the broadcast).
    static constexpr int64_t kLanes = 8;
    static constexpr int kDenseRows = 4, kDenseVecs = 3;
    using F = __m256;
    static F fzero() { return _mm256_setzero_ps(); }
    static F fbcast(float v) { return _mm256_set1_ps(v); }
    static F fload(const float* p) { return _mm256_loadu_ps(p); }
    static void fstore(float* p, F v) { _mm256_storeu_ps(p, v); }
    static F fadd(F a, F b) { return _mm256_add_ps(a, b); }
    static F ffma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
    static __m256i part_mask(int64_t n) {  // lanes [0, n)
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                                  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static F fload_part(const float* p, int64_t n) { return _mm256_maskload_ps(p, part_mask(n)); }
    static void fstore_part(float* p, F v, int64_t n) { _mm256_maskstore_ps(p, part_mask(n), v); }

    // 8 x 8 transpose: 4 x 4 blocks within each 128-bit lane (unpack, shuffle), then the lanes.
    static void transpose(F* v) {
        F t[8], u[8];
        for (int k = 0; k < 4; ++k) {
            t[2 * k] = _mm256_unpacklo_ps(v[2 * k], v[2 * k + 1]);
            t[2 * k + 1] = _mm256_unpackhi_ps(v[2 * k], v[2 * k + 1]);
        }
        for (int k = 0; k < 2; ++k) {  // u[4k + m], lane q: column 4q + m of rows 4k .. 4k + 3
            u[4 * k] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
            u[4 * k + 1] = _mm256_shuffle_ps(t[4 * k], t[4 * k + 2], 0xEE);
            u[4 * k + 2] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
            u[4 * k + 3] = _mm256_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xEE);
        }
        for (int m = 0; m < 4; ++m) {
            v[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
            v[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
        }
    }

    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i zero = _mm256_setzero_si256();

    static void prep_word(uint64_t x, uint64_t* dst) {
        dst[0] = x & kLowNibbles;
        dst[1] = (x >> 4) & kLowNibbles;
    }

    static void repack_word(const uint64_t* words, uint64_t* dst) {
        for (int64_t v = 0; v < 2; ++v)  // v = 0: A (even), 1: B (odd channels)
            for (int64_t i = 0; i < 4; ++i) {
                const uint64_t word = words[2 * i + v];
                dst[v * 8 + i] = word & kLowNibbles;
                dst[v * 8 + 4 + i] = (word >> 4) & kLowNibbles;
            }
    }

    // Byte counts of popcount(x ^ w) for one vector of 4 channels (nibble-split operands).
    __m256i nibble_counts(__m256i xl, __m256i xh, const uint64_t* p) const {
        return _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_xor_si256(xl, ld(p))),
                               _mm256_shuffle_epi8(lut, _mm256_xor_si256(xh, ld(p + 4))));
    }

    template <int CW>
    Counts counts(const uint64_t* xs, const uint64_t* wp, int64_t Cw) const {
        const int64_t n = CW > 0 ? CW : Cw;
        __m256i sa = zero, sb = zero;
        for (int64_t w0 = 0; w0 < n; w0 += 31) {  // <= 31 words: byte counts (<= 8 each) fit
            const int64_t w1 = min64(n, w0 + 31);
            __m256i ca = zero, cb = zero;
            for (int64_t w = w0; w < w1; ++w) {
                const __m256i xl = _mm256_set1_epi64x(static_cast<long long>(xs[2 * w]));
                const __m256i xh = _mm256_set1_epi64x(static_cast<long long>(xs[2 * w + 1]));
                const uint64_t* p = wp + kWordStride * w;
                ca = _mm256_add_epi8(ca, nibble_counts(xl, xh, p));
                cb = _mm256_add_epi8(cb, nibble_counts(xl, xh, p + 8));
            }
            sa = _mm256_add_epi64(sa, _mm256_sad_epu8(ca, zero));
            sb = _mm256_add_epi64(sb, _mm256_sad_epu8(cb, zero));
        }
        // Counts < 2^32: channel 2i+1 (B lane i) goes into the high half of A's lane i.
        return _mm256_or_si256(sa, _mm256_slli_epi64(sb, 32));
    }

    Acc acc_zero() const { return _mm256_setzero_ps(); }

    Acc acc_fma(Acc acc, Counts c, float alpha) const {
        return _mm256_fmadd_ps(_mm256_cvtepi32_ps(c), _mm256_set1_ps(alpha), acc);
    }

    void store_conv(const Epilogue& ep, int64_t o0, int64_t Cout, Acc acc, float cinS,
                    const float* add, float* out) const {
        const __m256 y = _mm256_fmadd_ps(
            _mm256_loadu_ps(ep.beta + o0),
            _mm256_fnmadd_ps(_mm256_set1_ps(2.0f), acc, _mm256_set1_ps(cinS)),
            _mm256_loadu_ps(ep.bias + o0));
        finish(ep, o0, Cout, y, add, out);
    }

    void store_gemm(const Epilogue& ep, int64_t o0, int64_t Nout, Counts c, int64_t k,
                    float alpha, const float* add, float* out) const {
        const __m256 d = _mm256_cvtepi32_ps(
            _mm256_sub_epi32(_mm256_set1_epi32(static_cast<int>(k)), _mm256_slli_epi32(c, 1)));
        const __m256 y = _mm256_fmadd_ps(
            d, _mm256_mul_ps(_mm256_set1_ps(alpha), _mm256_loadu_ps(ep.beta + o0)),
            _mm256_loadu_ps(ep.bias + o0));
        finish(ep, o0, Nout, y, add, out);
    }

    // RPReLU, residual add and store of the 8 channels from o0 on (those >= Cout are dropped).
    static void finish(const Epilogue& ep, int64_t o0, int64_t Cout, __m256 y, const float* add,
                       float* out) {
        if (ep.shift_in) {
            const __m256 u = _mm256_add_ps(y, _mm256_loadu_ps(ep.shift_in + o0));
            const __m256 neg = _mm256_mul_ps(_mm256_loadu_ps(ep.slope + o0), u);
            const __m256 pos = _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_GT_OQ);
            y = _mm256_add_ps(_mm256_blendv_ps(neg, u, pos), _mm256_loadu_ps(ep.shift_out + o0));
        }
        if (o0 + kGroup <= Cout) {
            if (add) y = _mm256_add_ps(y, _mm256_loadu_ps(add + o0));
            _mm256_storeu_ps(out + o0, y);
        } else {
            alignas(32) float tmp[kGroup];
            _mm256_store_ps(tmp, y);
            for (int64_t c = 0; c < Cout - o0; ++c) out[o0 + c] = tmp[c] + (add ? add[o0 + c] : 0.0f);
        }
    }

    struct AbsSum {
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        float tail = 0.0f;  // channels after the last multiple of 8 of a word
    };

    template <bool kShift>
    uint64_t pack_bits(const PackWord& src, AbsSum& sum) const {
        const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        const float *xw = src.x, *sw = src.shift;
        uint64_t word = 0;
        int64_t c = 0;
        for (; c + 16 <= src.n; c += 16) {
            const __m256 v0 = load_d<kShift>(xw, sw, c), v1 = load_d<kShift>(xw, sw, c + 8);
            word |= (negative_bits(v0) | (negative_bits(v1) << 8)) << c;
            sum.s0 = _mm256_add_ps(sum.s0, _mm256_and_ps(v0, absmask));
            sum.s1 = _mm256_add_ps(sum.s1, _mm256_and_ps(v1, absmask));
        }
        for (; c + 8 <= src.n; c += 8) {
            const __m256 v = load_d<kShift>(xw, sw, c);
            word |= negative_bits(v) << c;
            sum.s0 = _mm256_add_ps(sum.s0, _mm256_and_ps(v, absmask));
        }
        for (; c < src.n; ++c) {
            const float v = kShift ? xw[c] - sw[c] : xw[c];
            if (v < 0.0f) word |= uint64_t{1} << c;
            sum.tail += v < 0.0f ? -v : v;
        }
        return word;
    }

    float total(const AbsSum& sum) const {
        const __m256 s = _mm256_add_ps(sum.s0, sum.s1);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        return _mm_cvtss_f32(h) + sum.tail;
    }
};

}  // namespace

constexpr KernelImpl kImplAvx2 = vector_kernel<Avx2>("avx2");

}  // namespace bk
#endif  // BK_HAVE_AVX2
