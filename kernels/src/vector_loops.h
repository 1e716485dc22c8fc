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
//                                  (also the GEMM's with two activation bases)
//   store_gemm(ep, o0, Nout, counts, k, alpha, add, out)   y = alpha * beta * (k - 2 counts) + bias
//                                  both then apply the epilogue (RPReLU, + add[o]) and write
//                                  channels [o0, min(o0 + kGroup, Cout)) of out; o0 < Cout, and
//                                  beta, bias and the RPReLU vectors are padded to Cpad
//   AbsSum (zero when constructed), pack_bits<kShift>(word, sum), total(sum)
//                                  the bits of PackWord `word` (bit j = d_j < 0 with d = x, or
//                                  x - shift in float32 when kShift), adding |d| to the row's
//                                  sum; total(sum) is that sum over the row's words
// and, for the float32 kernels (static functions on the vector type F of kLanes floats):
//   kLanes, F, fzero(), fbcast(v), fload(p), fstore(p, v), fadd(a, b), ffma(a, b, c) = a*b + c,
//   fload_part(p, n) (lanes >= n read as 0), fstore_part(p, v, n) (lanes < n written)
//   kDenseRows x kDenseVecs   the register block of fma_block: rows (pixels, tokens) times
//                             vectors of output channels, sized to the register file
//   transpose(v)              v[0..kLanes) in place: lane j of v[i] <-> lane i of v[j]
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

// One row x[C] packed (bits[Cw], alpha) as pack_rows packs it.
template <class Isa, bool kShift>
inline void pack_row(const Isa& isa, const float* x, const float* shift, int64_t C, int64_t Cw,
                     uint64_t* bits, float* alpha) {
    typename Isa::AbsSum sum;
    for (int64_t w = 0; w < Cw; ++w) {
        const int64_t left = C - 64 * w;
        bits[w] = isa.template pack_bits<kShift>(
            PackWord{x + 64 * w, kShift ? shift + 64 * w : nullptr, left < 64 ? left : 64}, sum);
    }
    *alpha = C > 0 ? isa.total(sum) / static_cast<float>(C) : 0.0f;
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
// kTwo (two activation bases): each valid tap is listed twice, for x (alpha) and for x2
// (alpha2), with the same weight offset, and S sums both alphas: one pass over the weights
// serves both bases, and the formula above holds with the 18 terms.
template <class Isa, int CW, bool kTwo>
void conv_rows(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
    const Isa isa;
    const int64_t Cw = CW > 0 ? CW : a.Cw;
    const int64_t ngroups = a.Cpad / Isa::kGroup;
    const int64_t tap_words = Cw * Isa::kWordStride;
    const int64_t group_words = 9 * tap_words;
    Tap taps[kTwo ? 18 : 9];
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
                    const int64_t woff = (ky * 3 + kx) * tap_words;
                    taps[nt].x = a.x + pix * Cw * Isa::kXWords;
                    taps[nt].woff = woff;
                    taps[nt].alpha = a.alpha[pix];
                    S += taps[nt].alpha;
                    ++nt;
                    if constexpr (kTwo) {
                        taps[nt].x = a.x2 + pix * Cw * Isa::kXWords;
                        taps[nt].woff = woff;
                        taps[nt].alpha = a.alpha2[pix];
                        S += taps[nt].alpha;
                        ++nt;
                    }
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

// kTwo (two activation bases): acc = alpha * pc1 + alpha2 * pc2 per channel, stored by
// store_conv with cinS = k * (alpha + alpha2): y = beta * (k (alpha + alpha2) - 2 acc) + bias
// = beta * (alpha (k - 2 pc1) + alpha2 (k - 2 pc2)) + bias (the conv's formula, two terms).
template <class Isa, int CW, bool kTwo>
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
        if constexpr (kTwo) {
            const uint64_t* x2 = a.x2 + m * Kw * Isa::kXWords;
            const float alpha2 = a.alpha2[m];
            const float kS = static_cast<float>(k) * (alpha + alpha2);
            for (int64_t g = 0; g < ngroups; ++g) {
                const uint64_t* wg = a.w + g * group_words;
                const typename Isa::Acc acc = isa.acc_fma(
                    isa.acc_fma(isa.acc_zero(), isa.template counts<CW>(x, wg, Kw), alpha),
                    isa.template counts<CW>(x2, wg, Kw), alpha2);
                isa.store_conv(a.ep, g * Isa::kGroup, a.Nout, acc, kS, add, out);
            }
        } else {
            for (int64_t g = 0; g < ngroups; ++g)
                isa.store_gemm(a.ep, g * Isa::kGroup, a.Nout,
                               isa.template counts<CW>(x, a.w + g * group_words, Kw), k, alpha,
                               add, out);
        }
    }
}

// The word count as a compile-time constant (unrolled word loops) for the channel counts of the
// network's layers and concatenations (64 * Cw); any other count runs the generic loop (CW = 0).
// One or two activation bases: chosen once per call of the row function.
template <class Isa, bool kTwo>
void conv_bases(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
    switch (a.Cw) {
        case 1: return conv_rows<Isa, 1, kTwo>(a, n, oy0, oy1);
        case 2: return conv_rows<Isa, 2, kTwo>(a, n, oy0, oy1);
        case 3: return conv_rows<Isa, 3, kTwo>(a, n, oy0, oy1);
        case 4: return conv_rows<Isa, 4, kTwo>(a, n, oy0, oy1);
        case 5: return conv_rows<Isa, 5, kTwo>(a, n, oy0, oy1);
        case 6: return conv_rows<Isa, 6, kTwo>(a, n, oy0, oy1);
        case 8: return conv_rows<Isa, 8, kTwo>(a, n, oy0, oy1);
        case 10: return conv_rows<Isa, 10, kTwo>(a, n, oy0, oy1);
        default: return conv_rows<Isa, 0, kTwo>(a, n, oy0, oy1);
    }
}

template <class Isa>
void conv(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
    if (a.x2) return conv_bases<Isa, true>(a, n, oy0, oy1);
    return conv_bases<Isa, false>(a, n, oy0, oy1);
}

template <class Isa, bool kTwo>
void gemm_bases(const GemmArgs& a, int64_t m0, int64_t m1) {
    switch (a.Kw) {
        case 1: return gemm_rows<Isa, 1, kTwo>(a, m0, m1);
        case 2: return gemm_rows<Isa, 2, kTwo>(a, m0, m1);
        case 3: return gemm_rows<Isa, 3, kTwo>(a, m0, m1);
        case 4: return gemm_rows<Isa, 4, kTwo>(a, m0, m1);
        case 5: return gemm_rows<Isa, 5, kTwo>(a, m0, m1);
        case 6: return gemm_rows<Isa, 6, kTwo>(a, m0, m1);
        case 8: return gemm_rows<Isa, 8, kTwo>(a, m0, m1);
        case 10: return gemm_rows<Isa, 10, kTwo>(a, m0, m1);
        default: return gemm_rows<Isa, 0, kTwo>(a, m0, m1);
    }
}

template <class Isa>
void gemm(const GemmArgs& a, int64_t m0, int64_t m1) {
    if (a.x2) return gemm_bases<Isa, true>(a, m0, m1);
    return gemm_bases<Isa, false>(a, m0, m1);
}

// ---------------------------------------------------------------------------------------------
// Float32 kernels

inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// The register-blocked micro-kernel of every float32 product here:
//   acc[r][v] += sum_{k < K} a[r][k] * b[k * ldb + v * kLanes + lane]
// a[r]: R rows of K floats each (pixels' channels, a token's q, ...), b: K rows of at least
// V * kLanes floats, ldb apart. Each step loads V vectors of b and broadcasts one float per row.
template <class Isa, int R, int V>
inline void fma_block(const float* const* a, int64_t K, const float* b, int64_t ldb,
                      typename Isa::F (&acc)[R][V]) {
    for (int64_t k = 0; k < K; ++k) {
        const float* bk = b + k * ldb;
        typename Isa::F bv[V];
        for (int v = 0; v < V; ++v) bv[v] = Isa::fload(bk + v * Isa::kLanes);
        for (int r = 0; r < R; ++r) {
            const typename Isa::F xr = Isa::fbcast(a[r][k]);
            for (int v = 0; v < V; ++v) acc[r][v] = Isa::ffma(xr, bv[v], acc[r][v]);
        }
    }
}

// out[o] = acc[v] (+ add[o]) for the channels o = o0 + v * kLanes + lane < n (the rest of the
// block is padding and is not written).
template <class Isa, int V>
inline void store_row(const typename Isa::F (&acc)[V], int64_t o0, int64_t n, const float* add,
                      float* out) {
    for (int v = 0; v < V; ++v) {
        const int64_t o = o0 + v * Isa::kLanes;
        if (o >= n) return;
        typename Isa::F y = acc[v];
        if (n - o >= Isa::kLanes) {
            if (add) y = Isa::fadd(y, Isa::fload(add + o));
            Isa::fstore(out + o, y);
        } else {
            if (add) y = Isa::fadd(y, Isa::fload_part(add + o, n - o));
            Isa::fstore_part(out + o, y, n - o);
        }
    }
}

// DenseArgs: R output pixels (flat indices p0 .. p0 + nr - 1 < N * Ho * Wo) times V vectors of
// output channels from o0 on. Taps outside the input (and the rows past nr) read a.zeros.
template <class Isa, int V>
void dense_tile(const DenseArgs& a, int64_t p0, int64_t nr, int64_t o0) {
    constexpr int R = Isa::kDenseRows;
    using F = typename Isa::F;
    F acc[R][V];
    for (int v = 0; v < V; ++v) {
        const F b = Isa::fload(a.bias + o0 + v * Isa::kLanes);
        for (int r = 0; r < R; ++r) acc[r][v] = b;
    }
    int64_t n[R], iy0[R], ix0[R];  // image and top left input tap of each output pixel
    for (int r = 0; r < R; ++r) {
        const int64_t p = r < nr ? p0 + r : p0;
        const int64_t ox = p % a.Wo, oy = p / a.Wo % a.Ho;
        n[r] = p / (a.Wo * a.Ho);
        iy0[r] = oy * a.stride - a.k / 2;
        ix0[r] = ox * a.stride - a.k / 2;
    }
    const int64_t C2 = a.Cin - a.C1;
    for (int64_t ky = 0; ky < a.k; ++ky)
        for (int64_t kx = 0; kx < a.k; ++kx) {
            const float* r1[R];
            const float* r2[R];
            for (int r = 0; r < R; ++r) {
                const int64_t iy = iy0[r] + ky, ix = ix0[r] + kx;
                const bool in = r < nr && iy >= 0 && iy < a.H && ix >= 0 && ix < a.W;
                const int64_t pix = (n[r] * a.H + iy) * a.W + ix;
                r1[r] = in ? a.x + pix * a.C1 : a.zeros;
                r2[r] = in && C2 > 0 ? a.x2 + pix * C2 : a.zeros;
            }
            const float* w = a.w + (ky * a.k + kx) * a.Cin * a.Cpad + o0;
            fma_block<Isa, R, V>(r1, a.C1, w, a.Cpad, acc);
            if (C2 > 0) fma_block<Isa, R, V>(r2, C2, w + a.C1 * a.Cpad, a.Cpad, acc);
        }
    for (int r = 0; r < nr; ++r) {
        const int64_t opix = p0 + r;
        store_row<Isa, V>(acc[r], o0, a.Cout, a.add ? a.add + opix * a.Cout : nullptr,
                          a.out + opix * a.Cout);
    }
}

// DenseArgs over the output pixels [p0, p1) (flat), kDenseRows at a time.
template <class Isa>
void dense(const DenseArgs& a, int64_t p0, int64_t p1) {
    constexpr int64_t R = Isa::kDenseRows, V = Isa::kDenseVecs;
    static_assert(V >= 1 && V <= 4, "dense tiles of 1 to 4 vectors");
    const int64_t nvec = a.Cpad / Isa::kLanes;
    for (int64_t p = p0; p < p1; p += R) {
        const int64_t nr = min64(R, p1 - p);
        for (int64_t v0 = 0; v0 < nvec; v0 += V) {
            const int64_t o0 = v0 * Isa::kLanes;
            switch (min64(V, nvec - v0)) {  // the last block may hold fewer vectors
                case 1: dense_tile<Isa, 1>(a, p, nr, o0); break;
                case 2: dense_tile<Isa, 2>(a, p, nr, o0); break;
                case 3: dense_tile<Isa, 3>(a, p, nr, o0); break;
                default: dense_tile<Isa, 4>(a, p, nr, o0); break;
            }
        }
    }
}

// C[t, :] = sum_k A[t][k] * B[k, :] for the T rows of A (pointers a[t], K floats each; T may
// not be a multiple of kDenseRows: the rows past it read `zeros`, at least K floats), B with
// nvec vectors per row (ldb floats apart). Row t of the result goes to out(t) (a callable
// giving the row's destination; nvec * kLanes floats are written unless `width` < that, then
// `width`).
template <class Isa, class Out>
void product_rows(const float* const* a, int64_t T, int64_t K, const float* b, int64_t ldb,
                  int64_t nvec, const float* zeros, int64_t width, Out out) {
    constexpr int R = Isa::kDenseRows, V = Isa::kDenseVecs;
    using F = typename Isa::F;
    for (int64_t t0 = 0; t0 < T; t0 += R) {
        const float* rows[R];
        for (int r = 0; r < R; ++r) rows[r] = t0 + r < T ? a[t0 + r] : zeros;
        for (int64_t v0 = 0; v0 < nvec; v0 += V) {
            F acc[R][V];
            for (int r = 0; r < R; ++r)
                for (int v = 0; v < V; ++v) acc[r][v] = Isa::fzero();
            // V vectors always: B's rows hold whole blocks of V (the caller pads them)
            fma_block<Isa, R, V>(rows, K, b + v0 * Isa::kLanes, ldb, acc);
            for (int r = 0; r < R && t0 + r < T; ++r)
                store_row<Isa, V>(acc[r], v0 * Isa::kLanes, width, nullptr, out(t0 + r));
        }
    }
}

// Channels [c, c + n) (n <= kLanes) of the kLanes pixels rows[p] (pointers to channel 0 of
// their segment) into the channel-major block dst[j][lane p] (j < n, rows kLanes apart).
template <class Isa>
inline void load_transposed(const float* const* rows, int64_t c, int64_t n, float* dst) {
    typename Isa::F v[Isa::kLanes];
    for (int64_t p = 0; p < Isa::kLanes; ++p)
        v[p] = n == Isa::kLanes ? Isa::fload(rows[p] + c) : Isa::fload_part(rows[p] + c, n);
    Isa::transpose(v);
    for (int64_t j = 0; j < n; ++j) Isa::fstore(dst + j * Isa::kLanes, v[j]);
}

// The inverse for output channels [c, c + n) of the first np pixels: src[j][lane p] (j < n)
// to out_rows[p][c + j], plus add_rows[p][c + j] where add_rows is given.
template <class Isa>
inline void store_transposed(const float* src, int64_t c, int64_t n, int64_t np,
                             float* const* out_rows, const float* const* add_rows) {
    typename Isa::F v[Isa::kLanes];
    for (int64_t j = 0; j < Isa::kLanes; ++j)
        v[j] = j < n ? Isa::fload(src + j * Isa::kLanes) : Isa::fzero();
    Isa::transpose(v);
    for (int64_t p = 0; p < np; ++p) {
        typename Isa::F y = v[p];
        if (n == Isa::kLanes) {
            if (add_rows) y = Isa::fadd(y, Isa::fload(add_rows[p] + c));
            Isa::fstore(out_rows[p] + c, y);
        } else {
            if (add_rows) y = Isa::fadd(y, Isa::fload_part(add_rows[p] + c, n));
            Isa::fstore_part(out_rows[p] + c, y, n);
        }
    }
}

// Scratch of one branch task, in floats: the block's inputs [Cin][kLanes], its low-rank
// projections [rank8][kLanes] and its outputs [Cout8][kLanes], channel-major, and the
// prologue's normalized pixels [kLanes][Cin].
template <class Isa>
int64_t branch_scratch(int64_t Cin, int64_t rank8, int64_t Cout8) {
    return (2 * Cin + rank8 + Cout8) * Isa::kLanes;  // + the prologue's rows [kLanes][Cin]
}

// BranchArgs over output pixels [p0, p1), kLanes pixels at a time, vectorized over the pixels:
// the block's inputs are transposed to channel-major (in registers, kLanes x kLanes at a
// time), the products run as broadcast multiply-adds on whole vectors of pixels (8
// independent accumulators: 8 ranks, then 8 outputs), and the outputs are transposed back.
template <class Isa>
void branch(const BranchArgs& a, int64_t p0, int64_t p1, float* scratch) {
    constexpr int64_t L = Isa::kLanes;
    using F = typename Isa::F;
    float* xt = scratch;            // [Cin][L]
    float* t = xt + a.Cin * L;      // [rank8][L]
    float* ot = t + a.rank8 * L;    // [Cout8][L]
    float* normed = ot + a.Cout8 * L;  // [L][Cin] (prologue)
    const Isa isa;
    const int64_t C2 = a.Cin - a.C1;
    const float* r1[L];
    const float* r2[L];
    float* orow[L];
    const float* arow[L];
    // (n, oy, ox) of pixel p0, then stepped: no division per pixel
    int64_t ox = p0 % a.Wo, oy = p0 / a.Wo % a.Ho, n = p0 / (a.Wo * a.Ho);
    for (int64_t pb = p0; pb < p1; pb += L) {
        const int64_t np = min64(L, p1 - pb);
        for (int64_t p = 0; p < L; ++p) {
            if (p < np) {
                const int64_t pix = (n * a.H + oy * a.stride) * a.W + ox * a.stride;
                r1[p] = a.x + pix * a.C1;
                if (a.gamma) {  // prologue: normalize and pack the pixel (stride 1: pix = pb + p)
                    float* row = normed + p * a.Cin;
                    layer_norm_row(r1[p], a.gamma, a.beta, a.Cin, a.eps, a.silu, row);
                    if (a.shift)
                        pack_row<Isa, true>(isa, row, a.shift, a.Cin, a.Cw, a.bits + pix * a.Cw, a.alpha + pix);
                    else
                        pack_row<Isa, false>(isa, row, nullptr, a.Cin, a.Cw, a.bits + pix * a.Cw, a.alpha + pix);
                    r1[p] = row;
                }
                r2[p] = C2 > 0 ? a.x2 + pix * C2 : a.zeros;
                orow[p] = a.out + (pb + p) * a.Cout;
                arow[p] = a.add ? a.add + (pb + p) * a.Cout : nullptr;
                if (++ox == a.Wo) {
                    ox = 0;
                    if (++oy == a.Ho) oy = 0, ++n;
                }
            } else {
                r1[p] = r2[p] = a.zeros;
            }
        }
        for (int64_t c = 0; c < a.C1; c += L) load_transposed<Isa>(r1, c, min64(L, a.C1 - c), xt + c * L);
        for (int64_t c = 0; c < C2; c += L)
            load_transposed<Isa>(r2, c, min64(L, C2 - c), xt + (a.C1 + c) * L);
        for (int64_t r0 = 0; r0 < a.rank8; r0 += 8) {  // t[r] = sum_i down[r, i] * in[i]
            F acc[8];
            for (int r = 0; r < 8; ++r) acc[r] = Isa::fzero();
            const float* d = a.down + r0 * a.Cin;
            for (int64_t i = 0; i < a.Cin; ++i) {
                const F xv = Isa::fload(xt + i * L);
                for (int r = 0; r < 8; ++r) acc[r] = Isa::ffma(Isa::fbcast(d[r * a.Cin + i]), xv, acc[r]);
            }
            for (int r = 0; r < 8; ++r) Isa::fstore(t + (r0 + r) * L, acc[r]);
        }
        for (int64_t g = 0; g < a.Cout8 / 8; ++g) {  // outputs 8g .. 8g + 7
            F acc[8];
            for (int j = 0; j < 8; ++j) acc[j] = Isa::fzero();
            const float* u = a.up + 8 * g * a.rank8;
            for (int64_t r = 0; r < a.rank8; ++r) {
                const F tv = Isa::fload(t + r * L);
                for (int j = 0; j < 8; ++j) acc[j] = Isa::ffma(Isa::fbcast(u[j * a.rank8 + r]), tv, acc[j]);
            }
            for (int64_t k = a.slots[g]; k < a.slots[g + 1]; ++k) {
                const int32_t* col = a.col + 8 * k;
                const float* val = a.val + 8 * k;
                for (int j = 0; j < 8; ++j)
                    acc[j] = Isa::ffma(Isa::fbcast(val[j]), Isa::fload(xt + col[j] * L), acc[j]);
            }
            for (int j = 0; j < 8; ++j) Isa::fstore(ot + (8 * g + j) * L, acc[j]);
        }
        for (int64_t c = 0; c < a.Cout; c += L)
            store_transposed<Isa>(ot + c * L, c, min64(L, a.Cout - c), np, orow,
                                  a.add ? arow : nullptr);
    }
}

// Scratch of one attention task, in floats: per token its pixel, region and the rows that
// product_rows reads (4 * T 8-byte slots), K^T [d][Tp], the scores / probabilities [T][Tp],
// V [T][dp] and a row of zeros; Tp and dp are T and d rounded up to whole blocks of
// kDenseVecs vectors.
template <class Isa>
int64_t attention_scratch(int64_t T, int64_t d) {
    const int64_t blk = Isa::kDenseVecs * Isa::kLanes;
    const int64_t Tp = round_up(T, blk), dp = round_up(d, blk);
    return 8 * T + d * Tp + T * Tp + T * dp + (Tp > dp ? Tp : dp);
}

// AttentionArgs over windows [w0, w1), every head. Per (window, head): K^T and V gathered into
// scratch, S = Q K^T by product_rows (Q read in place from the map), the scaled, biased and
// masked softmax of each row (masked entries get weight exactly 0), O = P V by product_rows,
// written to the tokens' pixels. `scratch`: attention_scratch(T, d) floats, 64-byte aligned.
template <class Isa>
void attention(const AttentionArgs& a, int64_t w0, int64_t w1, float* scratch) {
    const int64_t ws = a.ws, T = ws * ws, d = a.C / a.heads, C3 = 3 * a.C;
    const int64_t blk = Isa::kDenseVecs * Isa::kLanes;
    const int64_t Tp = round_up(T, blk), dp = round_up(d, blk);
    const int64_t nwy = a.H / ws, nwx = a.W / ws;
    int64_t* pix = reinterpret_cast<int64_t*>(scratch);  // [T] pixel of each token
    int64_t* reg = pix + T;                              // [T] region of each token (0..8)
    const float** qrows = reinterpret_cast<const float**>(reg + T);  // [T] the tokens' q
    const float** prows = qrows + T;                     // [T] rows of p
    float* kt = scratch + 8 * T;                         // [d][Tp]
    float* p = kt + d * Tp;                              // [T][Tp]
    float* vb = p + T * Tp;                              // [T][dp]
    float* zeros = vb + T * dp;                          // [max(Tp, dp)]
    const int64_t floats = d * Tp + T * Tp + T * dp + (Tp > dp ? Tp : dp);
    for (int64_t i = 0; i < floats; ++i) kt[i] = 0.0f;  // padding columns stay 0
    for (int64_t t = 0; t < T; ++t) prows[t] = p + t * Tp;
    for (int64_t win = w0; win < w1; ++win) {
        const int64_t n = win / (nwy * nwx), wy = win / nwx % nwy, wx = win % nwx;
        for (int64_t t = 0; t < T; ++t) {
            const int64_t ry = wy * ws + t / ws, rx = wx * ws + t % ws;
            pix[t] = (n * a.H + (ry + a.shift) % a.H) * a.W + (rx + a.shift) % a.W;
            const int64_t gy = a.shift == 0 || ry < a.H - ws ? 0 : (ry < a.H - a.shift ? 1 : 2);
            const int64_t gx = a.shift == 0 || rx < a.W - ws ? 0 : (rx < a.W - a.shift ? 1 : 2);
            reg[t] = 3 * gy + gx;
        }
        for (int64_t h = 0; h < a.heads; ++h) {
            for (int64_t t = 0; t < T; ++t) {
                const float* q = a.qkv + pix[t] * C3 + h * d;
                qrows[t] = q;
                for (int64_t c = 0; c < d; ++c) {
                    kt[c * Tp + t] = q[a.C + c];
                    vb[t * dp + c] = q[2 * a.C + c];
                }
            }
            product_rows<Isa>(qrows, T, d, kt, Tp, Tp / Isa::kLanes, zeros, Tp,
                              [&](int64_t t) { return p + t * Tp; });
            for (int64_t t = 0; t < T; ++t)
                softmax_row(p + t * Tp, a.bias + (h * T + t) * T, reg, reg[t], T, a.scale,
                            a.shift > 0);
            float* out = a.out + h * d;
            product_rows<Isa>(prows, T, T, vb, dp, dp / Isa::kLanes, zeros, d,
                              [&](int64_t t) { return out + pix[t] * a.C; });
        }
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
            noise_generic,
            Isa::kLanes,
            dense<Isa>,
            attention_scratch<Isa>,
            attention<Isa>,
            gelu_generic,
            branch_scratch<Isa>,
            branch<Isa>,
            input_scratch_generic,
            one_step_input_generic,
            latent_image_generic};
}

}  // namespace
}  // namespace bk
