// The loop skeleton of the vector kernels (kernel_avx2.cpp, kernel_avx512.cpp, kernel_neon.cpp),
// in the manner of larq compute-engine: the loops over pixels, taps, output-channel groups and
// packed words, the weight repacking and the KernelImpl table are written once here, as
// templates on an instruction-set class `Isa`; each unit supplies only that class, i.e. how one
// group of output channels is counted, accumulated and stored and how one word is packed.
//
// Included only by the instruction-set translation units, after their intrinsics header.
// Everything here is in an anonymous namespace, so each unit instantiates its own copy with its
// own flags and exports nothing but its table (LINKAGE RULE in bitkernels.h).
//
// An `Isa` class (default-constructible: the constructor loads the constants it keeps in
// registers, e.g. a lookup table; the row functions make one per call) provides:
//   kGroup        output channels per group; Cpad = Cout rounded up to a multiple of it
//   kWordStride   uint64 per (group, tap, packed word) of the repacked weights
//   kXWords       uint64 per packed activation word as the kernel reads it: 1 = the packed word
//                 itself; more = re-encoded per call by prep_word (only needed then)
//   prep_word(x, dst)              the kXWords re-encoded words of activation word x
//   repack_word(words, dst)        the kWordStride uint64 of one (group, tap, word) from the
//                                  group's kGroup weight words in channel order
//   Counts counts<CW>(x, w, Cw)    popcount(x ^ w_c) of the group's channels c over Cw words;
//                                  x: one pixel's (row's) kXWords * Cw words, w: the group's
//                                  [Cw][kWordStride] words of one tap; Cw == CW when CW > 0
//   Acc acc_zero(), acc_fma(acc, counts, alpha)            acc + alpha * counts
//   store_conv(ep, o0, Cout, acc, cinS, add, out)          y = beta * (cinS - 2 acc) + bias
//   store_gemm(ep, o0, Nout, counts, k, alpha, add, out)   y = alpha * beta * (k - 2 counts) + bias
//                                  both then apply the epilogue (RPReLU, + add[o]) and write
//                                  channels [o0, min(o0 + kGroup, Cout)) of out; o0 < Cout, and
//                                  beta, bias and the RPReLU vectors are padded to Cpad
//   AbsSum (zero when constructed), pack_bits<kShift>(word, sum), total(sum)
//                                  the bits of PackWord `word` (bit j = d_j < 0 with d = x, or
//                                  x - shift in float32 when kShift), adding |d| to the row's
//                                  sum; total(sum) is that sum over the row's words
#pragma once
#define BK_VECTOR_LOOPS_H 1
#if defined(BK_API_H)
#error "api.h (baseline inline code) must not be included by instruction-set units"
#endif

#include <cstdint>

#include "bitkernels.h"
#include "generic_ops.h"

namespace bk {
namespace {

// Not std::min: an inline template with external linkage (LINKAGE RULE in bitkernels.h).
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// ---------------------------------------------------------------------------------------------
// Packing

// Packed word w of pixel p: its channels (x's or x2's, one source per word, see PackArgs), their
// thresholds (null without a shift) and their count n (64; fewer in the last word). Channels
// [0, n) of `x` pack into bits [0, n) of the word; bits [n, 64) stay 0.
struct PackWord {
    const float* x;
    const float* shift;
    int64_t n;
};

inline PackWord pack_word(const PackArgs& a, int64_t p, int64_t w) {
    const int64_t c0 = 64 * w;
    const float* x = c0 < a.C1 ? a.x + p * a.C1 + c0 : a.x2 + p * (a.C - a.C1) + (c0 - a.C1);
    const int64_t left = a.C - c0;
    return {x, a.shift ? a.shift + c0 : nullptr, left < 64 ? left : 64};
}

template <class Isa, bool kShift>
void pack_rows(const PackArgs& a, int64_t p0, int64_t p1) {
    const Isa isa;
    for (int64_t p = p0; p < p1; ++p) {
        uint64_t* bits = a.bits + p * a.Cw;
        typename Isa::AbsSum sum;
        for (int64_t w = 0; w < a.Cw; ++w)
            bits[w] = isa.template pack_bits<kShift>(pack_word(a, p, w), sum);
        a.alpha[p] = a.C > 0 ? isa.total(sum) / static_cast<float>(a.C) : 0.0f;
    }
}

// The shift or no-shift loop, chosen once per row range.
template <class Isa>
void pack(const PackArgs& a, int64_t p0, int64_t p1) {
    if (a.shift) return pack_rows<Isa, true>(a, p0, p1);
    return pack_rows<Isa, false>(a, p0, p1);
}

// ---------------------------------------------------------------------------------------------
// Activation re-encoding and weight repacking

template <class Isa>
void prep_x(const uint64_t* x, int64_t i0, int64_t i1, uint64_t* dst) {
    for (int64_t i = i0; i < i1; ++i) Isa::prep_word(x[i], dst + i * Isa::kXWords);
}

using PrepX = void (*)(const uint64_t* x, int64_t i0, int64_t i1, uint64_t* dst);

// KernelImpl::prep_x: null when the kernel reads the packed words themselves.
template <class Isa>
constexpr PrepX prep_x_of() {
    if constexpr (Isa::kXWords > 1) return prep_x<Isa>;
    return nullptr;
}

// Repacked weights: the kWordStride uint64 of (group g, tap t, word wd) start at
// ((g * taps + t) * Cw + wd) * kWordStride, so a group's words of one tap are contiguous and a
// group's taps follow each other. Channels >= Cout repack as 0 words.
template <class Isa>
int64_t repacked_size(int64_t Cpad, int64_t taps, int64_t Cw) {
    return Cpad / Isa::kGroup * taps * Cw * Isa::kWordStride;
}

template <class Isa>
void repack(const uint64_t* w, int64_t Cout, int64_t taps, int64_t Cw, int64_t Cpad,
            uint64_t* dst) {
    uint64_t words[Isa::kGroup];  // one (group, tap, word) in channel order
    for (int64_t g = 0; g < Cpad / Isa::kGroup; ++g)
        for (int64_t t = 0; t < taps; ++t)
            for (int64_t wd = 0; wd < Cw; ++wd) {
                for (int64_t j = 0; j < Isa::kGroup; ++j) {
                    const int64_t o = g * Isa::kGroup + j;
                    words[j] = o < Cout ? w[(o * taps + t) * Cw + wd] : 0;
                }
                Isa::repack_word(words, dst + ((g * taps + t) * Cw + wd) * Isa::kWordStride);
            }
}

// ---------------------------------------------------------------------------------------------
// 3x3 conv and GEMM

struct Tap {
    const uint64_t* x;  // the input pixel's words (kXWords per packed word)
    int64_t woff;       // offset of the tap in a group's weights
    float alpha;
};

// Pixel by pixel: the pixel's valid taps (padded pixels have alpha = 0 and are skipped) and
// S = sum_t alpha_t are found once, then every group of output channels runs over them:
// y = beta * sum_t alpha_t * (cin - 2 pc_t) + bias = beta * (cin * S - 2 sum_t alpha_t pc_t) + bias.
// A layer's repacked weights (36 KiB for 128 -> 128 channels) stay in L1 / L2.
template <class Isa, int CW>
void conv_rows(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
    const Isa isa;
    const int64_t Cw = CW > 0 ? CW : a.Cw;
    const int64_t ngroups = a.Cpad / Isa::kGroup;
    const int64_t tap_words = Cw * Isa::kWordStride;
    const int64_t group_words = 9 * tap_words;
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
                    taps[nt].x = a.x + pix * Cw * Isa::kXWords;
                    taps[nt].woff = (ky * 3 + kx) * tap_words;
                    taps[nt].alpha = a.alpha[pix];
                    S += taps[nt].alpha;
                    ++nt;
                }
            }
            const float cinS = static_cast<float>(a.cin) * S;
            const int64_t opix = (n * a.Ho + oy) * a.Wo + ox;
            float* out = a.out + opix * a.Cout;
            const float* add = a.add ? a.add + opix * a.Cout : nullptr;
            for (int64_t g = 0; g < ngroups; ++g) {
                const uint64_t* wg = a.w + g * group_words;
                typename Isa::Acc acc = isa.acc_zero();
                for (int i = 0; i < nt; ++i)
                    acc = isa.acc_fma(acc, isa.template counts<CW>(taps[i].x, wg + taps[i].woff, Cw),
                                      taps[i].alpha);
                isa.store_conv(a.ep, g * Isa::kGroup, a.Cout, acc, cinS, add, out);
            }
        }
    }
}

template <class Isa, int CW>
void gemm_rows(const GemmArgs& a, int64_t m0, int64_t m1) {
    const Isa isa;
    const int64_t Kw = CW > 0 ? CW : a.Kw;
    const int64_t ngroups = a.Cpad / Isa::kGroup;
    const int64_t group_words = Kw * Isa::kWordStride;
    const int64_t k = a.k;
    for (int64_t m = m0; m < m1; ++m) {
        const uint64_t* x = a.x + m * Kw * Isa::kXWords;
        const float alpha = a.alpha[m];  // a local: the stores to out cannot change it
        float* out = a.out + m * a.Nout;
        const float* add = a.add ? a.add + m * a.Nout : nullptr;
        for (int64_t g = 0; g < ngroups; ++g)
            isa.store_gemm(a.ep, g * Isa::kGroup, a.Nout,
                           isa.template counts<CW>(x, a.w + g * group_words, Kw), k, alpha, add,
                           out);
    }
}

// The word count as a compile-time constant (unrolled word loops) for the channel counts of the
// network's layers and concatenations (64 * Cw); any other count runs the generic loop (CW = 0).
template <class Isa>
void conv(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
    switch (a.Cw) {
        case 1: return conv_rows<Isa, 1>(a, n, oy0, oy1);
        case 2: return conv_rows<Isa, 2>(a, n, oy0, oy1);
        case 3: return conv_rows<Isa, 3>(a, n, oy0, oy1);
        case 4: return conv_rows<Isa, 4>(a, n, oy0, oy1);
        case 5: return conv_rows<Isa, 5>(a, n, oy0, oy1);
        case 6: return conv_rows<Isa, 6>(a, n, oy0, oy1);
        case 8: return conv_rows<Isa, 8>(a, n, oy0, oy1);
        case 10: return conv_rows<Isa, 10>(a, n, oy0, oy1);
        default: return conv_rows<Isa, 0>(a, n, oy0, oy1);
    }
}

template <class Isa>
void gemm(const GemmArgs& a, int64_t m0, int64_t m1) {
    switch (a.Kw) {
        case 1: return gemm_rows<Isa, 1>(a, m0, m1);
        case 2: return gemm_rows<Isa, 2>(a, m0, m1);
        case 3: return gemm_rows<Isa, 3>(a, m0, m1);
        case 4: return gemm_rows<Isa, 4>(a, m0, m1);
        case 5: return gemm_rows<Isa, 5>(a, m0, m1);
        case 6: return gemm_rows<Isa, 6>(a, m0, m1);
        case 8: return gemm_rows<Isa, 8>(a, m0, m1);
        case 10: return gemm_rows<Isa, 10>(a, m0, m1);
        default: return gemm_rows<Isa, 0>(a, m0, m1);
    }
}

// The kernel table of an instruction set (a constant: no run-time initialization).
template <class Isa>
constexpr KernelImpl vector_kernel(const char* name) {
    return {name,
            static_cast<int>(Isa::kGroup),
            /*xprep=*/Isa::kXWords > 1 ? Isa::kXWords : 0,
            prep_x_of<Isa>(),
            repacked_size<Isa>,
            repack<Isa>,
            pack<Isa>,
            conv<Isa>,
            gemm<Isa>,
            layer_norm_generic,
            noise_generic};
}

}  // namespace
}  // namespace bk
