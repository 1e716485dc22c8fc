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
