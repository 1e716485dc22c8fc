// Scalar reference kernels: plain loops, portable popcount, no intrinsics.
// Compiled with the project's baseline flags only. These define the semantics that every
// optimized kernel is tested against (see bitkernels.h for the layout and the formulas).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "bitkernels.h"

namespace bk {
namespace {

inline int popcount64(uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_popcountll(v);  // portable: a library routine when POPCNT is not enabled
#else
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return static_cast<int>((v * 0x0101010101010101ULL) >> 56);
#endif
}

inline float epilogue(const Epilogue& ep, int64_t o, float y) {
    if (ep.shift_in) {
        const float u = y + ep.shift_in[o];
        y = (u > 0.0f ? u : ep.slope[o] * u) + ep.shift_out[o];
    }
    return y;
}

void pack_ref(const PackArgs& a, int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
        const float* x = a.x + p * a.C1;               // channels [0, C1)
        const float* x2 = a.x2 + p * (a.C - a.C1);     // channels [C1, C) (x2 null: none)
        uint64_t* bits = a.bits + p * a.Cw;
        for (int64_t w = 0; w < a.Cw; ++w) bits[w] = 0;
        double sum = 0.0;
        for (int64_t c = 0; c < a.C; ++c) {
            const float v = c < a.C1 ? x[c] : x2[c - a.C1];
            const float d = a.shift ? v - a.shift[c] : v;  // the packed value, float32
            if (d < 0.0f) bits[c >> 6] |= uint64_t{1} << (c & 63);
            sum += d < 0.0f ? -static_cast<double>(d) : static_cast<double>(d);
        }
        a.alpha[p] = a.C > 0 ? static_cast<float>(sum / static_cast<double>(a.C)) : 0.0f;
    }
}

// kTwo: the second activation base (x2, alpha2) adds its term tap by tap after the first's.
template <bool kTwo>
void conv3x3_rows(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
    const int64_t Cw = a.Cw;
    for (int64_t oy = oy0; oy < oy1; ++oy) {
        for (int64_t ox = 0; ox < a.Wo; ++ox) {
            float* out = a.out + ((n * a.Ho + oy) * a.Wo + ox) * a.Cout;
            const float* add = a.add ? a.add + ((n * a.Ho + oy) * a.Wo + ox) * a.Cout : nullptr;
            for (int64_t o = 0; o < a.Cout; ++o) {
                float acc = 0.0f;
                for (int64_t ky = 0; ky < 3; ++ky) {
                    const int64_t iy = oy * a.stride - 1 + ky;
                    if (iy < 0 || iy >= a.H) continue;  // padded pixel: alpha = 0
                    for (int64_t kx = 0; kx < 3; ++kx) {
                        const int64_t ix = ox * a.stride - 1 + kx;
                        if (ix < 0 || ix >= a.W) continue;
                        const int64_t pix = (n * a.H + iy) * a.W + ix;
                        const uint64_t* xw = a.x + pix * Cw;
                        const uint64_t* ww = a.w + ((o * 3 + ky) * 3 + kx) * Cw;
                        int64_t pc = 0;
                        for (int64_t w = 0; w < Cw; ++w) pc += popcount64(xw[w] ^ ww[w]);
                        acc += a.alpha[pix] * static_cast<float>(a.cin - 2 * pc);
                        if constexpr (kTwo) {  // the second base: same weights
                            const uint64_t* xw2 = a.x2 + pix * Cw;
                            int64_t pc2 = 0;
                            for (int64_t w = 0; w < Cw; ++w) pc2 += popcount64(xw2[w] ^ ww[w]);
                            acc += a.alpha2[pix] * static_cast<float>(a.cin - 2 * pc2);
                        }
                    }
                }
                float y = a.ep.beta[o] * acc + a.ep.bias[o];
                y = epilogue(a.ep, o, y);
                if (add) y += add[o];
                out[o] = y;
            }
        }
    }
}

void conv3x3_ref(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
    if (a.x2) return conv3x3_rows<true>(a, n, oy0, oy1);
    return conv3x3_rows<false>(a, n, oy0, oy1);
}

template <bool kTwo>
void gemm_rows(const GemmArgs& a, int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
        const uint64_t* xw = a.x + m * a.Kw;
        float* out = a.out + m * a.Nout;
        const float* add = a.add ? a.add + m * a.Nout : nullptr;
        for (int64_t o = 0; o < a.Nout; ++o) {
            const uint64_t* ww = a.w + o * a.Kw;
            int64_t pc = 0;
            for (int64_t w = 0; w < a.Kw; ++w) pc += popcount64(xw[w] ^ ww[w]);
            float y;
            if constexpr (kTwo) {  // beta * (alpha (k - 2 pc) + alpha2 (k - 2 pc2)) + bias
                const uint64_t* xw2 = a.x2 + m * a.Kw;
                int64_t pc2 = 0;
                for (int64_t w = 0; w < a.Kw; ++w) pc2 += popcount64(xw2[w] ^ ww[w]);
                y = a.ep.beta[o] * (a.alpha[m] * static_cast<float>(a.k - 2 * pc) +
                                    a.alpha2[m] * static_cast<float>(a.k - 2 * pc2)) +
                    a.ep.bias[o];
            } else {
                y = a.alpha[m] * a.ep.beta[o] * static_cast<float>(a.k - 2 * pc) + a.ep.bias[o];
            }
            y = epilogue(a.ep, o, y);
            if (add) y += add[o];
            out[o] = y;
        }
    }
}

void gemm_ref(const GemmArgs& a, int64_t m0, int64_t m1) {
    if (a.x2) return gemm_rows<true>(a, m0, m1);
    return gemm_rows<false>(a, m0, m1);
}

// LayerNorm (+ SiLU) of one row at a time in double precision, std::exp.
void layer_norm_ref(const NormArgs& a, int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
        const float* x = a.x + p * a.C;
        float* out = a.out + p * a.C;
        double sum = 0.0, ss = 0.0;
        for (int64_t c = 0; c < a.C; ++c) sum += x[c];
        const double mean = sum / static_cast<double>(a.C);
        for (int64_t c = 0; c < a.C; ++c) ss += (x[c] - mean) * (x[c] - mean);
        const double rstd = 1.0 / std::sqrt(ss / static_cast<double>(a.C) + a.eps);
        for (int64_t c = 0; c < a.C; ++c) {
            double y = (x[c] - mean) * rstd * a.gamma[c] + a.beta[c];
            if (a.silu) y = y / (1.0 + std::exp(-y));
            out[c] = static_cast<float>(y);
        }
    }
}

uint32_t lowbias32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}

// The noise definition of bitkernels.h, one element at a time.
void noise_ref(const NoiseArgs& a, int64_t y0, int64_t y1) {
    const uint32_t seeds[2] = {a.seed0, a.seed1};
    float* outs[2] = {a.u1, a.u2};
    for (int s = 0; s < 2; ++s)
        for (int64_t c = 0; c < a.C; ++c)
            for (int64_t y = y0; y < y1; ++y)
                for (int64_t x = 0; x < a.W; ++x) {
                    uint32_t h = lowbias32(seeds[s]);
                    h = lowbias32(h ^ static_cast<uint32_t>(a.top + y));
                    h = lowbias32(h ^ static_cast<uint32_t>(a.left + x));
                    h = lowbias32(h ^ static_cast<uint32_t>(c));
                    outs[s][(c * a.H + y) * a.W + x] =
                        (static_cast<float>(h >> 8) + 0.5f) * (1.0f / 16777216.0f);
                }
}

// The float32 convolution of DenseArgs, one output element at a time, summed in double.
void dense_ref(const DenseArgs& a, int64_t p0, int64_t p1) {
    const int64_t half = a.k / 2, C2 = a.Cin - a.C1;
    for (int64_t opix = p0; opix < p1; ++opix) {
        const int64_t n = opix / (a.Ho * a.Wo), oy = opix / a.Wo % a.Ho, ox = opix % a.Wo;
        for (int64_t o = 0; o < a.Cout; ++o) {
            double acc = a.bias[o];
            for (int64_t ky = 0; ky < a.k; ++ky) {
                const int64_t iy = oy * a.stride + ky - half;
                if (iy < 0 || iy >= a.H) continue;
                for (int64_t kx = 0; kx < a.k; ++kx) {
                    const int64_t ix = ox * a.stride + kx - half;
                    if (ix < 0 || ix >= a.W) continue;
                    const int64_t pix = (n * a.H + iy) * a.W + ix;
                    const float* w = a.w + (ky * a.k + kx) * a.Cin * a.Cpad + o;
                    for (int64_t i = 0; i < a.Cin; ++i) {
                        const float v = i < a.C1 ? a.x[pix * a.C1 + i] : a.x2[pix * C2 + i - a.C1];
                        acc += static_cast<double>(v) * w[i * a.Cpad];
                    }
                }
            }
            if (a.add) acc += a.add[opix * a.Cout + o];
            a.out[opix * a.Cout + o] = static_cast<float>(acc);
        }
    }
}

// The row or column of the rolled frame coordinate r lies in region 0, 1 or 2 (AttentionArgs).
int64_t region(int64_t r, int64_t n, int64_t ws, int64_t shift) {
    if (shift == 0 || r < n - ws) return 0;
    return r < n - shift ? 1 : 2;
}

// Window attention of AttentionArgs in double: scores, mask, softmax and the weighted sum.
void attention_ref(const AttentionArgs& a, int64_t w0, int64_t w1, float*) {
    const int64_t ws = a.ws, T = ws * ws, d = a.C / a.heads, C3 = 3 * a.C;
    const int64_t nwy = a.H / ws, nwx = a.W / ws;
    std::vector<int64_t> pix(T), reg(T);
    std::vector<double> s(T);
    for (int64_t win = w0; win < w1; ++win) {
        const int64_t n = win / (nwy * nwx), wy = win / nwx % nwy, wx = win % nwx;
        for (int64_t t = 0; t < T; ++t) {
            const int64_t ry = wy * ws + t / ws, rx = wx * ws + t % ws;
            pix[t] = (n * a.H + (ry + a.shift) % a.H) * a.W + (rx + a.shift) % a.W;
            reg[t] = 3 * region(ry, a.H, ws, a.shift) + region(rx, a.W, ws, a.shift);
        }
        for (int64_t h = 0; h < a.heads; ++h)
            for (int64_t t = 0; t < T; ++t) {
                const float* q = a.qkv + pix[t] * C3 + h * d;
                double mx = -HUGE_VAL;
                for (int64_t u = 0; u < T; ++u) {
                    if (reg[u] != reg[t]) continue;  // masked: -inf, weight 0
                    const float* k = a.qkv + pix[u] * C3 + a.C + h * d;
                    double dot = 0.0;
                    for (int64_t c = 0; c < d; ++c) dot += static_cast<double>(q[c]) * k[c];
                    s[u] = a.scale * dot + a.bias[(h * T + t) * T + u];
                    mx = s[u] > mx ? s[u] : mx;
                }
                double sum = 0.0;
                for (int64_t u = 0; u < T; ++u)
                    if (reg[u] == reg[t]) sum += s[u] = std::exp(s[u] - mx);
                float* out = a.out + pix[t] * a.C + h * d;
                for (int64_t c = 0; c < d; ++c) {
                    double acc = 0.0;
                    for (int64_t u = 0; u < T; ++u)
                        if (reg[u] == reg[t]) acc += s[u] * a.qkv[pix[u] * C3 + 2 * a.C + h * d + c];
                    out[c] = static_cast<float>(acc / sum);
                }
            }
    }
}

void gelu_ref(const GeluArgs& a, int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
        const double x = a.x[i];
        a.out[i] = static_cast<float>(0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440)));
    }
}

int64_t attention_scratch_ref(int64_t, int64_t) { return 0; }

// The branch of BranchArgs, one output element at a time, summed in double.
void branch_ref(const BranchArgs& a, int64_t p0, int64_t p1, float*) {
    const int64_t C2 = a.Cin - a.C1;
    std::vector<double> in(static_cast<size_t>(a.Cin)), t(static_cast<size_t>(a.rank8));
    std::vector<float> normed(static_cast<size_t>(a.Cin));
    for (int64_t opix = p0; opix < p1; ++opix) {
        const int64_t n = opix / (a.Ho * a.Wo), oy = opix / a.Wo % a.Ho, ox = opix % a.Wo;
        const int64_t pix = (n * a.H + oy * a.stride) * a.W + ox * a.stride;
        if (a.gamma) {  // prologue: the reference LayerNorm and packing of the pixel
            const NormArgs na{a.x + pix * a.Cin, a.gamma, a.beta, normed.data(), 1, a.Cin, a.eps, a.silu};
            layer_norm_ref(na, 0, 1);
            const PackArgs pa{normed.data(), nullptr, a.shift, a.bits + pix * a.Cw, a.alpha + pix,
                              1, a.Cin, a.Cin, a.Cw};
            pack_ref(pa, 0, 1);
        }
        for (int64_t i = 0; i < a.Cin; ++i)
            in[i] = a.gamma ? normed[i] : (i < a.C1 ? a.x[pix * a.C1 + i] : a.x2[pix * C2 + i - a.C1]);
        for (int64_t r = 0; r < a.rank8; ++r) {
            t[r] = 0.0;
            for (int64_t i = 0; i < a.Cin; ++i) t[r] += a.down[r * a.Cin + i] * in[i];
        }
        for (int64_t o = 0; o < a.Cout; ++o) {
            double acc = 0.0;
            for (int64_t r = 0; r < a.rank8; ++r) acc += a.up[o * a.rank8 + r] * t[r];
            const int64_t g = o / 8, j = o % 8;
            for (int64_t k = a.slots[g]; k < a.slots[g + 1]; ++k)
                acc += a.val[8 * k + j] * in[a.col[8 * k + j]];
            if (a.add) acc += a.add[opix * a.Cout + o];
            a.out[opix * a.Cout + o] = static_cast<float>(acc);
        }
    }
}

int64_t branch_scratch_ref(int64_t, int64_t, int64_t) { return 0; }

// The cubic convolution weight (A = -0.75) of distance d, in double.
double cubic(double d) {
    const double a = -0.75;
    d = d < 0 ? -d : d;
    if (d <= 1.0) return ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0;
    return d < 2.0 ? ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a : 0.0;
}

// InputArgs one element at a time in double: the bicubic x4 sample at output coordinate
// (4y + dy, 4x + dx) from its source coordinate (o + 0.5) / 4 - 0.5, 4 x 4 clamped taps.
void one_step_input_ref(const InputArgs& a, int64_t r0, int64_t r1, float*) {
    const int64_t C = a.C, Cl = 16 * C, Cx = Cl + C;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / a.h, y = r % a.h;
        for (int64_t xo = 0; xo < a.Wp; ++xo) {
            const int64_t x = xo < a.w ? xo : a.w - 1;
            float* z = a.z + ((n * a.Hp + y) * a.Wp + xo) * Cl;
            float* xin = a.x + ((n * a.Hp + y) * a.Wp + xo) * Cx;
            for (int64_t c = 0; c < C; ++c)
                for (int64_t dy = 0; dy < 4; ++dy)
                    for (int64_t dx = 0; dx < 4; ++dx) {
                        const double sy = (4 * y + dy + 0.5) / 4.0 - 0.5, sx = (4 * x + dx + 0.5) / 4.0 - 0.5;
                        const int64_t fy = static_cast<int64_t>(std::floor(sy)), fx = static_cast<int64_t>(std::floor(sx));
                        double v = 0.0;
                        for (int64_t j = -1; j <= 2; ++j)
                            for (int64_t i = -1; i <= 2; ++i) {
                                const int64_t yy = std::min(std::max(fy + j, int64_t{0}), a.h - 1);
                                const int64_t xx = std::min(std::max(fx + i, int64_t{0}), a.w - 1);
                                v += cubic(sy - static_cast<double>(fy + j)) * cubic(sx - static_cast<double>(fx + i)) *
                                     a.lr[((n * a.h + yy) * a.w + xx) * C + c];
                            }
                        const int64_t ch = c * 16 + dy * 4 + dx;
                        z[ch] = static_cast<float>(v);
                        const double e = a.eps ? a.eps[(ch * a.h + y) * a.w + x] : 0.0;
                        xin[ch] = static_cast<float>((v + static_cast<double>(a.noise_scale) * e) * a.input_scale);
                    }
            for (int64_t c = 0; c < C; ++c) xin[Cl + c] = a.lr[((n * a.h + y) * a.w + x) * C + c];
        }
    }
}

void latent_image_ref(const ImageArgs& a, int64_t r0, int64_t r1) {
    const int64_t Cl = 16 * a.C;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / a.h, y = r % a.h;
        for (int64_t c = 0; c < a.C; ++c)
            for (int64_t dy = 0; dy < 4; ++dy)
                for (int64_t x = 0; x < a.w; ++x)
                    for (int64_t dx = 0; dx < 4; ++dx) {
                        const double v = (a.x0[((n * a.Hp + y) * a.Wp + x) * Cl + c * 16 + dy * 4 + dx] + 1.0) * 0.5;
                        a.img[((n * a.C + c) * 4 * a.h + 4 * y + dy) * 4 * a.w + 4 * x + dx] =
                            static_cast<float>(v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v));
                    }
    }
}

int64_t input_scratch_ref(int64_t, int64_t, int64_t) { return 0; }

}  // namespace

// The second activation base (SecondBaseArgs, LAYOUT RULE in bitkernels.h): per pixel the
// residual r = d -/+ alpha of each channel (float32, one rounding: alpha * sign(d) is exact),
// its sign bits and mean |r|. Word by word (with x2, C1 is a multiple of 64, so every word
// reads one source), the sign bits gathered into the word without a branch, |r| summed in
// float64 over four interleaved partial sums (no serial chain of dependent adds).
void pack_second_base_rows(const SecondBaseArgs& a, int64_t p0, int64_t p1) {
    const int64_t C2 = a.C - a.C1;
    for (int64_t p = p0; p < p1; ++p) {
        uint32_t alpha_bits;
        std::memcpy(&alpha_bits, a.alpha + p, sizeof alpha_bits);
        double part[4] = {0.0, 0.0, 0.0, 0.0};
        for (int64_t w = 0; w < a.Cw; ++w) {
            const int64_t c0 = 64 * w;
            const int64_t n = a.C - c0 < 64 ? a.C - c0 : 64;
            const float* src = c0 < a.C1 ? a.x + p * a.C1 + c0 : a.x2 + p * C2 + (c0 - a.C1);
            const uint64_t b1 = a.bits[p * a.Cw + w];
            uint64_t b2 = 0;
            for (int64_t j = 0; j < n; ++j) {
                const float d = a.shift ? src[j] - a.shift[c0 + j] : src[j];
                // alpha * sign(d): alpha with base 1's bit as its sign bit (a select on a random
                // bit would be a mispredicted branch per channel)
                const uint32_t s_bits =
                    alpha_bits ^ (static_cast<uint32_t>((b1 >> j) & 1) << 31);
                float s;
                std::memcpy(&s, &s_bits, sizeof s);
                const float r = d - s;
                b2 |= static_cast<uint64_t>(r < 0.0f) << j;
                part[j & 3] += static_cast<double>(std::fabs(r));
            }
            a.bits2[p * a.Cw + w] = b2;
        }
        const double sum = (part[0] + part[1]) + (part[2] + part[3]);
        a.alpha2[p] = a.C > 0 ? static_cast<float>(sum / static_cast<double>(a.C)) : 0.0f;
    }
}

const KernelImpl kImplReference = {
    "reference", /*group=*/1, /*xprep=*/0, /*prep_x=*/nullptr, /*repacked_size=*/nullptr,
    /*repack=*/nullptr, pack_ref, conv3x3_ref, gemm_ref, layer_norm_ref, noise_ref,
    /*float_lanes=*/1, dense_ref, attention_scratch_ref, attention_ref, gelu_ref,
    branch_scratch_ref, branch_ref, input_scratch_ref, one_step_input_ref, latent_image_ref};

}  // namespace bk
