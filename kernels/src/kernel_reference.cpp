// Scalar reference kernels: plain loops, portable popcount, no intrinsics.
// Compiled with the project's baseline flags only. These define the semantics that every
// optimized kernel is tested against (see bitkernels.h for the layout and the formulas).
#include <cmath>

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

void conv3x3_ref(const ConvArgs& a, int64_t n, int64_t oy0, int64_t oy1) {
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

void gemm_ref(const GemmArgs& a, int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
        const uint64_t* xw = a.x + m * a.Kw;
        float* out = a.out + m * a.Nout;
        const float* add = a.add ? a.add + m * a.Nout : nullptr;
        for (int64_t o = 0; o < a.Nout; ++o) {
            const uint64_t* ww = a.w + o * a.Kw;
            int64_t pc = 0;
            for (int64_t w = 0; w < a.Kw; ++w) pc += popcount64(xw[w] ^ ww[w]);
            float y = a.alpha[m] * a.ep.beta[o] * static_cast<float>(a.k - 2 * pc) + a.ep.bias[o];
            y = epilogue(a.ep, o, y);
            if (add) y += add[o];
            out[o] = y;
        }
    }
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

}  // namespace

const KernelImpl kImplReference = {
    "reference", /*group=*/1, /*xprep=*/0, /*prep_x=*/nullptr, /*repacked_size=*/nullptr,
    /*repack=*/nullptr, pack_ref, conv3x3_ref, gemm_ref, layer_norm_ref, noise_ref};

}  // namespace bk
