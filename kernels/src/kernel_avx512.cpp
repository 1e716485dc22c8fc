// AVX-512 kernels: AVX512F + AVX512BW + AVX512_VPOPCNTDQ (compiled with
// -mavx512f -mavx512bw -mavx512vpopcntdq or /arch:AVX512; only reached after the run-time CPU
// and OS-state check in dispatch.cpp): the instruction-set parts of the loop skeleton in
// vector_loops.h. vpopcntq on the XOR of one broadcast activation word with 8 output channels'
// weight words; groups of 16 output channels (two vectors, interleaved lanes).
//
// Only intrinsics and functions with internal linkage here: see the LINKAGE RULE in bitkernels.h.
#include "bitkernels.h"

#if defined(BK_HAVE_AVX512)
#include <immintrin.h>

#include "vector_loops.h"

namespace bk {
namespace {

inline __m512i ld(const uint64_t* p) { return _mm512_loadu_si512(static_cast<const void*>(p)); }

// Lanes [0, n) of a 16-lane vector (all for n >= 16).
inline __mmask16 first_lanes(int64_t n) {
    return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
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

// Sign mask of the 16 values (bit i = v_i < 0).
inline uint64_t negative_bits(__m512 v) {
    return _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
}

struct Avx512 {
    static constexpr int64_t kGroup = 16;
    // Per (group, tap, word): vectors A, B; lane i of A = channel 2i, of B = channel 2i + 1 of
    // the group, so that (count(A) | count(B) << 32) lists the 16 int32 counts in channel order.
    static constexpr int64_t kWordStride = 16;
    static constexpr int64_t kXWords = 1;

    using Counts = __m512i;  // 16 x int32, channel order
    using Acc = __m512;

    // Float32 vectors; fma_block accumulates 6 rows x 4 vectors in 24 of the 32 registers.
    static constexpr int64_t kLanes = 16;
    static constexpr int kDenseRows = 6, kDenseVecs = 4;
    using F = __m512;
    static F fzero() { return _mm512_setzero_ps(); }
    static F fbcast(float v) { return _mm512_set1_ps(v); }
    static F fload(const float* p) { return _mm512_loadu_ps(p); }
    static void fstore(float* p, F v) { _mm512_storeu_ps(p, v); }
    static F fadd(F a, F b) { return _mm512_add_ps(a, b); }
    static F ffma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
    static F fload_part(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(first_lanes(n), p); }
    static void fstore_part(float* p, F v, int64_t n) { _mm512_mask_storeu_ps(p, first_lanes(n), v); }

    // 16 x 16 transpose: 4 x 4 blocks within each 128-bit lane (unpack, shuffle), then the
    // lanes (two rounds of shuffle_f32x4).
    static void transpose(F* v) {
        F t[16], u[16];
        for (int k = 0; k < 8; ++k) {
            t[2 * k] = _mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]);
        }
        for (int k = 0; k < 4; ++k) {  // u[4k + m], lane q: column 4q + m of rows 4k .. 4k + 3
            u[4 * k] = _mm512_shuffle_ps(t[4 * k], t[4 * k + 2], 0x44);
            u[4 * k + 1] = _mm512_shuffle_ps(t[4 * k], t[4 * k + 2], 0xEE);
            u[4 * k + 2] = _mm512_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0x44);
            u[4 * k + 3] = _mm512_shuffle_ps(t[4 * k + 1], t[4 * k + 3], 0xEE);
        }
        for (int m = 0; m < 4; ++m) {  // column 4q + m = lane q of u[m], u[4+m], u[8+m], u[12+m]
            const F even_a = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88);
            const F even_b = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88);
            const F odd_a = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xDD);
            const F odd_b = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xDD);
            v[m] = _mm512_shuffle_f32x4(even_a, even_b, 0x88);
            v[8 + m] = _mm512_shuffle_f32x4(even_a, even_b, 0xDD);
            v[4 + m] = _mm512_shuffle_f32x4(odd_a, odd_b, 0x88);
            v[12 + m] = _mm512_shuffle_f32x4(odd_a, odd_b, 0xDD);
        }
    }

    static void repack_word(const uint64_t* words, uint64_t* dst) {
        for (int64_t i = 0; i < 8; ++i) {
            dst[i] = words[2 * i];
            dst[8 + i] = words[2 * i + 1];
        }
    }

    template <int CW>
    Counts counts(const uint64_t* xp, const uint64_t* wp, int64_t Cw) const {
        const int64_t n = CW > 0 ? CW : Cw;
        __m512i qa = _mm512_setzero_si512(), qb = _mm512_setzero_si512();
        for (int64_t w = 0; w < n; ++w) {
            const __m512i xv = _mm512_set1_epi64(static_cast<long long>(xp[w]));
            const uint64_t* p = wp + kWordStride * w;
            qa = _mm512_add_epi64(qa, _mm512_popcnt_epi64(_mm512_xor_si512(xv, ld(p))));
            qb = _mm512_add_epi64(qb, _mm512_popcnt_epi64(_mm512_xor_si512(xv, ld(p + 8))));
        }
        return _mm512_or_si512(qa, _mm512_slli_epi64(qb, 32));
    }

    Acc acc_zero() const { return _mm512_setzero_ps(); }

    Acc acc_fma(Acc acc, Counts c, float alpha) const {
        return _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), _mm512_set1_ps(alpha), acc);
    }

    void store_conv(const Epilogue& ep, int64_t o0, int64_t Cout, Acc acc, float cinS,
                    const float* add, float* out) const {
        const __m512 y = _mm512_fmadd_ps(
            _mm512_loadu_ps(ep.beta + o0),
            _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), acc, _mm512_set1_ps(cinS)),
            _mm512_loadu_ps(ep.bias + o0));
        finish(ep, o0, Cout, y, add, out);
    }

    void store_gemm(const Epilogue& ep, int64_t o0, int64_t Nout, Counts c, int64_t k,
                    float alpha, const float* add, float* out) const {
        const __m512 d = _mm512_cvtepi32_ps(
            _mm512_sub_epi32(_mm512_set1_epi32(static_cast<int>(k)), _mm512_slli_epi32(c, 1)));
        const __m512 y = _mm512_fmadd_ps(
            d, _mm512_mul_ps(_mm512_set1_ps(alpha), _mm512_loadu_ps(ep.beta + o0)),
            _mm512_loadu_ps(ep.bias + o0));
        finish(ep, o0, Nout, y, add, out);
    }

    // RPReLU, residual add and masked store of the 16 channels from o0 on (those >= Cout are
    // neither read from add nor written).
    static void finish(const Epilogue& ep, int64_t o0, int64_t Cout, __m512 y, const float* add,
                       float* out) {
        if (ep.shift_in) {
            const __m512 u = _mm512_add_ps(y, _mm512_loadu_ps(ep.shift_in + o0));
            const __m512 neg = _mm512_mul_ps(_mm512_loadu_ps(ep.slope + o0), u);
            const __mmask16 pos = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_GT_OQ);
            y = _mm512_add_ps(_mm512_mask_blend_ps(pos, neg, u), _mm512_loadu_ps(ep.shift_out + o0));
        }
        const __mmask16 m = first_lanes(Cout - o0);
        if (add) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, add + o0));
        _mm512_mask_storeu_ps(out + o0, m, y);
    }

    struct AbsSum {
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    };

    template <bool kShift>
    uint64_t pack_bits(const PackWord& src, AbsSum& sum) const {
        const float *xw = src.x, *sw = src.shift;
        uint64_t word = 0;
        int64_t c = 0;
        for (; c + 32 <= src.n; c += 32) {
            const __m512 v0 = load_d<kShift>(xw, sw, c), v1 = load_d<kShift>(xw, sw, c + 16);
            word |= (negative_bits(v0) | (negative_bits(v1) << 16)) << c;
            sum.s0 = _mm512_add_ps(sum.s0, _mm512_abs_ps(v0));
            sum.s1 = _mm512_add_ps(sum.s1, _mm512_abs_ps(v1));
        }
        for (; c < src.n; c += 16) {
            const __m512 v = load_d_masked<kShift>(xw, sw, c, first_lanes(src.n - c));
            word |= negative_bits(v) << c;
            sum.s0 = _mm512_add_ps(sum.s0, _mm512_abs_ps(v));
        }
        return word;
    }

    float total(const AbsSum& sum) const {
        return _mm512_reduce_add_ps(_mm512_add_ps(sum.s0, sum.s1));
    }
};

}  // namespace

constexpr KernelImpl kImplAvx512 = vector_kernel<Avx512>("avx512");

}  // namespace bk
#endif  // BK_HAVE_AVX512
