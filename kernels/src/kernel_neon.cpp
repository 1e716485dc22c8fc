// NEON kernels for AArch64 (NEON is architectural there, so no run-time check is needed): the
// instruction-set parts of the loop skeleton in vector_loops.h. vcnt on the XOR of one broadcast
// activation word with 2 output channels' weight words per vector; byte counts widened with
// pairwise adds. Groups of 8 output channels, natural order.
//
// Only intrinsics and functions with internal linkage here: see the LINKAGE RULE in bitkernels.h.
#include "bitkernels.h"

#if defined(BK_HAVE_NEON)
#include <arm_neon.h>

#include "vector_loops.h"

namespace bk {
namespace {

// The packed values d of the 4 channels from c on: x, or x - shift in float32 (kShift).
// xw, sw: the word's channels and (kShift) their thresholds.
template <bool kShift>
inline float32x4_t load_d(const float* xw, const float* sw, int64_t c) {
    const float32x4_t v = vld1q_f32(xw + c);
    if constexpr (kShift) return vsubq_f32(v, vld1q_f32(sw + c));
    return v;
}

inline float32x4_t rprelu(float32x4_t y, const Epilogue& ep, int64_t o) {
    const float32x4_t u = vaddq_f32(y, vld1q_f32(ep.shift_in + o));
    const float32x4_t neg = vmulq_f32(vld1q_f32(ep.slope + o), u);
    const uint32x4_t pos = vcgtq_f32(u, vdupq_n_f32(0.0f));
    return vaddq_f32(vbslq_f32(pos, u, neg), vld1q_f32(ep.shift_out + o));
}

struct Neon {
    static constexpr int64_t kGroup = 8;
    static constexpr int64_t kWordStride = 8;  // per (group, tap, word): 8 uint64, channel order
    static constexpr int64_t kXWords = 1;

    struct Counts {
        uint32x4_t lo, hi;  // channels 0-3 and 4-7 of the group
    };
    struct Acc {
        float32x4_t lo, hi;
    };

    // Float32 vectors; fma_block accumulates 6 rows x 4 vectors in 24 of the 32 registers.
    static constexpr int64_t kLanes = 4;
    static constexpr int kDenseRows = 6, kDenseVecs = 4;
    using F = float32x4_t;
    static F fzero() { return vdupq_n_f32(0.0f); }
    static F fbcast(float v) { return vdupq_n_f32(v); }
    static F fload(const float* p) { return vld1q_f32(p); }
    static void fstore(float* p, F v) { vst1q_f32(p, v); }
    static F fadd(F a, F b) { return vaddq_f32(a, b); }
    static F ffma(F a, F b, F c) { return vfmaq_f32(c, a, b); }
    static F fload_part(const float* p, int64_t n) {
        float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t i = 0; i < n && i < 4; ++i) tmp[i] = p[i];
        return vld1q_f32(tmp);
    }
    static void fstore_part(float* p, F v, int64_t n) {
        float tmp[4];
        vst1q_f32(tmp, v);
        for (int64_t i = 0; i < n && i < 4; ++i) p[i] = tmp[i];
    }

    // 4 x 4 transpose: trn of the row pairs, then the halves recombined.
    static void transpose(F* v) {
        const float32x4x2_t a = vtrnq_f32(v[0], v[1]);  // (v0[0] v1[0] v0[2] v1[2]), (..[1] ..[3])
        const float32x4x2_t b = vtrnq_f32(v[2], v[3]);
        v[0] = vcombine_f32(vget_low_f32(a.val[0]), vget_low_f32(b.val[0]));
        v[1] = vcombine_f32(vget_low_f32(a.val[1]), vget_low_f32(b.val[1]));
        v[2] = vcombine_f32(vget_high_f32(a.val[0]), vget_high_f32(b.val[0]));
        v[3] = vcombine_f32(vget_high_f32(a.val[1]), vget_high_f32(b.val[1]));
    }

    static void repack_word(const uint64_t* words, uint64_t* dst) {
        for (int64_t j = 0; j < kGroup; ++j) dst[j] = words[j];
    }

    template <int CW>
    Counts counts(const uint64_t* xp, const uint64_t* wp, int64_t Cw) const {
        const int64_t n = CW > 0 ? CW : Cw;
        uint32x4_t s0 = vdupq_n_u32(0), s1 = s0, s2 = s0, s3 = s0;
        for (int64_t w0 = 0; w0 < n; w0 += 31) {  // <= 31 words: byte counts cannot overflow
            const int64_t w1 = min64(n, w0 + 31);
            uint8x16_t c0 = vdupq_n_u8(0), c1 = c0, c2 = c0, c3 = c0;
            for (int64_t w = w0; w < w1; ++w) {
                const uint64x2_t xv = vdupq_n_u64(xp[w]);
                const uint64_t* p = wp + kWordStride * w;
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
        return {vpaddq_u32(s0, s1), vpaddq_u32(s2, s3)};  // [ch0..ch3], [ch4..ch7]
    }

    Acc acc_zero() const { return {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}; }

    Acc acc_fma(Acc acc, Counts c, float alpha) const {
        const float32x4_t al = vdupq_n_f32(alpha);
        return {vfmaq_f32(acc.lo, vcvtq_f32_u32(c.lo), al), vfmaq_f32(acc.hi, vcvtq_f32_u32(c.hi), al)};
    }

    void store_conv(const Epilogue& ep, int64_t o0, int64_t Cout, Acc acc, float cinS,
                    const float* add, float* out) const {
        const float32x4_t cin_s = vdupq_n_f32(cinS), two = vdupq_n_f32(2.0f);
        const float32x4_t y0 = vfmaq_f32(vld1q_f32(ep.bias + o0), vld1q_f32(ep.beta + o0),
                                         vfmsq_f32(cin_s, two, acc.lo));
        const float32x4_t y1 = vfmaq_f32(vld1q_f32(ep.bias + o0 + 4), vld1q_f32(ep.beta + o0 + 4),
                                         vfmsq_f32(cin_s, two, acc.hi));
        finish(ep, o0, Cout, y0, y1, add, out);
    }

    void store_gemm(const Epilogue& ep, int64_t o0, int64_t Nout, Counts c, int64_t k,
                    float alpha, const float* add, float* out) const {
        const int32x4_t kv = vdupq_n_s32(static_cast<int32_t>(k));
        const float32x4_t d0 = vcvtq_f32_s32(vsubq_s32(kv, vshlq_n_s32(vreinterpretq_s32_u32(c.lo), 1)));
        const float32x4_t d1 = vcvtq_f32_s32(vsubq_s32(kv, vshlq_n_s32(vreinterpretq_s32_u32(c.hi), 1)));
        const float32x4_t y0 = vfmaq_f32(vld1q_f32(ep.bias + o0), d0,
                                         vmulq_n_f32(vld1q_f32(ep.beta + o0), alpha));
        const float32x4_t y1 = vfmaq_f32(vld1q_f32(ep.bias + o0 + 4), d1,
                                         vmulq_n_f32(vld1q_f32(ep.beta + o0 + 4), alpha));
        finish(ep, o0, Nout, y0, y1, add, out);
    }

    // RPReLU, residual add and store of the 8 channels from o0 on (those >= Cout are dropped).
    static void finish(const Epilogue& ep, int64_t o0, int64_t Cout, float32x4_t y0,
                       float32x4_t y1, const float* add, float* out) {
        if (ep.shift_in) {
            y0 = rprelu(y0, ep, o0);
            y1 = rprelu(y1, ep, o0 + 4);
        }
        if (o0 + kGroup <= Cout) {
            if (add) {
                y0 = vaddq_f32(y0, vld1q_f32(add + o0));
                y1 = vaddq_f32(y1, vld1q_f32(add + o0 + 4));
            }
            vst1q_f32(out + o0, y0);
            vst1q_f32(out + o0 + 4, y1);
        } else {
            float tmp[kGroup];
            vst1q_f32(tmp, y0);
            vst1q_f32(tmp + 4, y1);
            for (int64_t c = 0; c < Cout - o0; ++c) out[o0 + c] = tmp[c] + (add ? add[o0 + c] : 0.0f);
        }
    }

    struct AbsSum {
        float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);
        float tail = 0.0f;  // channels after the last multiple of 8 of a word
    };

    template <bool kShift>
    uint64_t pack_bits(const PackWord& src, AbsSum& sum) const {
        const float32x4_t zero = vdupq_n_f32(0.0f);
        const uint32_t lanebits_arr[4] = {1u, 2u, 4u, 8u};
        const uint32x4_t lanebits = vld1q_u32(lanebits_arr);
        const float *xw = src.x, *sw = src.shift;
        uint64_t word = 0;
        int64_t c = 0;
        for (; c + 8 <= src.n; c += 8) {
            const float32x4_t v0 = load_d<kShift>(xw, sw, c);
            const float32x4_t v1 = load_d<kShift>(xw, sw, c + 4);
            const uint64_t m0 = vaddvq_u32(vandq_u32(vcltq_f32(v0, zero), lanebits));
            const uint64_t m1 = vaddvq_u32(vandq_u32(vcltq_f32(v1, zero), lanebits));
            word |= (m0 | (m1 << 4)) << c;
            sum.s0 = vaddq_f32(sum.s0, vabsq_f32(v0));
            sum.s1 = vaddq_f32(sum.s1, vabsq_f32(v1));
        }
        for (; c < src.n; ++c) {
            const float v = kShift ? xw[c] - sw[c] : xw[c];
            if (v < 0.0f) word |= uint64_t{1} << c;
            sum.tail += v < 0.0f ? -v : v;
        }
        return word;
    }

    float total(const AbsSum& sum) const { return vaddvq_f32(vaddq_f32(sum.s0, sum.s1)) + sum.tail; }
};

}  // namespace

constexpr KernelImpl kImplNeon = vector_kernel<Neon>("neon");

}  // namespace bk
#endif  // BK_HAVE_NEON
