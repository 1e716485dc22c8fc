// BiMaCoSR 1-bit kernels: XNOR/popcount binary convolutions and GEMMs on the CPU.
//
// LAYOUT RULE (shared by every kernel, the Python packer bimacosr_app/checkpoint/bitpack.py
// and the packed checkpoint format):
//   * Activations are NHWC float32, C-contiguous.
//   * Sign bits are packed along the channel axis into 64-bit little-endian words:
//     bit j of word w is the sign of channel 64*w + j; 1 = negative (x < 0), 0 = non-negative.
//     sign(0) = +1, so 0 (and -0.0) packs as bit 0. Pad bits (channels >= C) are 0.
//     Packed activations are uint64[N, H, W, Cw] with Cw = ceil(C / 64).
//   * alpha[n, h, w] = mean |x[n, h, w, :]| over the C true channels (float32[N, H, W]).
//   * Optional per-channel activation threshold shift[C] (ReActNet's RSign): the packed value
//     is then d = x - shift, computed in float32, in place of x in both rules above:
//     bit j of word w = 1 iff x[64w+j] - shift[64w+j] < 0 in float32 (x == shift packs as 0:
//     sign(0) = +1), alpha = mean |x - shift| over the C channels, pad bits 0.
//     Without a shift, d = x.
//   * Weights of a kh x kw conv are packed as uint64[Cout, kh, kw, Cw], Cw = ceil(Cin / 64),
//     same bit rule (pad bits must be 0). Binary linears / 1x1 convs: uint64[Nout, Kw].
//   * 3x3 conv (padding 1, stride 1 or 2), per output pixel p and output channel o:
//       y[n,p,o] = beta[o] * sum_t alpha[n, p*s + t] * (Cin - 2*popcount(x[n, p*s + t] ^ w[o, t]))
//                  + bias[o]
//     padded pixels have alpha = 0 and contribute exactly 0.
//   * GEMM: y[m, o] = alpha[m] * beta[o] * (K - 2*popcount(x[m] ^ w[o])) + bias[o].
//   * Second activation base (two bases, model/binary.py binarize_activation(bases=2)): with
//     the packed value d (x, or x - shift) and base 1's bits and alpha above, per pixel p and
//     channel c the residual r = d - alpha[p] * s, s = -1 where base 1's bit is 1, else +1,
//     i.e. r = d + alpha[p] (bit 1) or d - alpha[p] (bit 0), one float32 rounding. Base 2 packs
//     r by the same rule: bits2 (bit 1 = r < 0, r == 0 packs as 0, pad bits 0) and
//     alpha2[p] = mean |r| over the C true channels (summed in double).
//     A layer with two bases adds the second base's term with the same weights:
//       3x3 conv: y = beta[o] * sum_t (alpha[q] * (Cin - 2*popcount(x[q] ^ w[o, t]))
//                                     + alpha2[q] * (Cin - 2*popcount(x2[q] ^ w[o, t]))) + bias[o],
//                 q = p*s + t (padded pixels contribute 0 in both bases);
//       GEMM: y[m, o] = beta[o] * (alpha[m] * (K - 2*pc1) + alpha2[m] * (K - 2*pc2)) + bias[o],
//     then the same epilogue.
//   * Epilogue: optional RPReLU  u = y + shift_in[o]; y = (u > 0 ? u : slope[o]*u) + shift_out[o],
//     then optional residual add  y += add[n, p, o].
//
// LINKAGE RULE. The instruction-set translation units (kernel_avx2.cpp, kernel_avx512.cpp,
// kernel_neon.cpp) are compiled with their own -m / /arch flags. An inline function or template
// with external linkage that one of them instantiates (an own helper, or a std:: one such as
// std::min or std::sqrt(float)) is emitted there as a weak / COMDAT copy compiled with those
// flags, and the linker keeps one copy for every caller: generic code could then execute AVX
// instructions on a CPU without them. So:
//   * this header (included by every translation unit) holds only declarations, POD structs and
//     macros: no function definitions;
//   * the code of an instruction-set unit, and the headers only those units include
//     (vector_loops.h, generic_ops.h), lives in an anonymous namespace (internal linkage: each
//     unit keeps its own copy) and calls no std:: inline function or template; the unit exports
//     only its KernelImpl table;
//   * api.h (inline code compiled with baseline flags) is never included by them (#error).
// The self-test build checks the first two with nm (tools/check_linkage.cmake).
#pragma once

#include <cstddef>
#include <cstdint>

// CMake requests instruction sets with BK_BUILD_*; an ISA is compiled in only when the target
// architecture also matches (so one source list serves x86-64, AArch64 and universal builds).
#if defined(BK_BUILD_AVX2) && (defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64))
#define BK_HAVE_AVX2 1
#endif
#if defined(BK_BUILD_AVX512) && (defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64))
#define BK_HAVE_AVX512 1
#endif
#if defined(BK_BUILD_NEON) && (defined(__aarch64__) || defined(_M_ARM64))
#define BK_HAVE_NEON 1
#endif

namespace bk {

// Per-output-channel epilogue parameters, each padded with zeros to `Cpad` entries
// (bias is never null: zeros when absent; the three RPReLU pointers are all null when absent).
struct Epilogue {
    const float* beta;
    const float* bias;
    const float* shift_in;
    const float* slope;
    const float* shift_out;
};

// Packing reads channels [0, C1) of pixel p at x + p * C1 and channels [C1, C) at
// x2 + p * (C - C1): one NHWC tensor (C1 = C, x2 null) or the concatenation of two along
// channels, packed without materializing it. With x2, C1 is a multiple of 64, so every packed
// word reads one source, and the kernels accumulate alpha's sum over both in the same order as
// over the concatenation (bit-identical bits and alpha). `shift` (null: none) indexes the
// channels of the concatenation: shift[c] is channel c's threshold for every c in [0, C), so
// the first C1 apply to x and the rest to x2. The vector kernels subtract it in registers as
// they load x (no extra pass over memory) and pick the shift or no-shift loop once per row range.
struct PackArgs {
    const float* x;      // [P, C1]
    const float* x2;     // [P, C - C1] or null
    const float* shift;  // [C] or null
    uint64_t* bits;      // [P, Cw]
    float* alpha;        // [P]
    int64_t P;
    int64_t C;
    int64_t C1;
    int64_t Cw;
};

// The second activation base of a packing (see the LAYOUT RULE): the packed values d read as
// PackArgs reads them (x, x2, C1, shift), base 1's bits and alpha read, base 2 written.
// One generic implementation (pack_second_base_rows, kernel_reference.cpp, baseline flags)
// serves every kernel: base 2 depends only on d and base 1, whichever kernel packed base 1.
struct SecondBaseArgs {
    const float* x;         // [P, C1]
    const float* x2;        // [P, C - C1] or null
    const float* shift;     // [C] or null
    const uint64_t* bits;   // [P, Cw]: base 1
    const float* alpha;     // [P]: base 1
    uint64_t* bits2;        // [P, Cw]: base 2
    float* alpha2;          // [P]: base 2
    int64_t P;
    int64_t C;
    int64_t C1;
    int64_t Cw;
};

// Pixels [p0, p1) of SecondBaseArgs (baseline code; called from the thread pool).
void pack_second_base_rows(const SecondBaseArgs& a, int64_t p0, int64_t p1);

// LayerNorm over the last axis of x[P, C] (biased variance, eps inside the square root), then
// optionally SiLU:  y = (x - mean) / sqrt(var + eps) * gamma + beta;  silu: y = y / (1 + exp(-y)).
struct NormArgs {
    const float* x;      // [P, C]
    const float* gamma;  // [C]
    const float* beta;   // [C]
    float* out;          // [P, C] (may alias x)
    int64_t P, C;
    float eps;
    bool silu;
};

// The position-noise uniforms of bimacosr_app/model/noise.py (Wellons' lowbias32 chained over
// the stream seed, absolute row, absolute column and channel), written as [C, H, W] float32:
//   h = lb(lb(lb(lb(seed_s) ^ u32(top + y)) ^ u32(left + x)) ^ c)
//   u_s[c, y, x] = (float(h >> 8) + 0.5f) * 2^-24        (float32 arithmetic, round to nearest)
// seed_s = (2 * seed + s) mod 2^32 for stream s = 0 (u1) and 1 (u2). Integer-exact, so every
// kernel gives the same bits as the torch definition.
struct NoiseArgs {
    uint32_t seed0, seed1;
    int64_t top, left, H, W, C;
    float* u1;  // [C, H, W]
    float* u2;  // [C, H, W]
};

// Full-precision (float32) convolution of the NHWC input x, or of the channel concatenation
// [x, x2] as in PackArgs (C1 channels from x, Cin - C1 from x2; any C1): a k x k conv, k = 1 or
// 3, 'same' zero padding (k / 2), stride 1 or 2, Ho = (H - 1) / s + 1, Wo likewise:
//   y[n, oy, ox, o] = bias[o] + sum_{ky, kx, i} in[n, s*oy + ky - k/2, s*ox + kx - k/2, i]
//                                                * w[ky*k + kx, i, o]        (out of range: 0)
// then optionally y += add[n, oy, ox, o]. The driver hands the kernels w and bias with the
// output channels padded with zeros to Cpad (a multiple of the kernel's float lanes) and a row of
// Cin zeros that out-of-range taps read. A 1x1 conv is a GEMM of the pixels (or tokens) with
// w[0] (Cin x Cout).
struct DenseArgs {
    const float* x;      // [N, H, W, C1]
    const float* x2;     // [N, H, W, Cin - C1] or null (then C1 = Cin)
    const float* w;      // [k*k, Cin, Cpad]
    const float* bias;   // [Cpad]
    const float* add;    // [N, Ho, Wo, Cout] or null
    const float* zeros;  // [Cin]
    float* out;          // [N, Ho, Wo, Cout]
    int64_t N, H, W, Cin, C1, Cout, Cpad, k, stride, Ho, Wo;
};

// The full-precision branch of a binarized layer in its structured form: a low-rank product
// plus a sparse matrix, 1x1 on the NHWC input x (or the channel concatenation [x, x2], as in
// DenseArgs), read at stride s (output pixel (oy, ox) reads input pixel (s*oy, s*ox)):
//   y[n, oy, ox, o] = sum_r up[o, r] * (sum_i down[r, i] * in[i]) + sum_i S[o, i] * in[i]
// then optionally y += add[n, oy, ox, o]. With LRMB's factors as up / down and SMB's entries
// (plus those of the fixed shortcut) as S, this is the dense branch (SMB + LRMB + S) x with
// rank * (Cin + Cout) + nnz(S) multiply-adds per pixel instead of Cin * Cout.
// Layout the driver prepares (padding is zeros): the rank padded to rank8 (a multiple of 8)
// and the output channels to groups of 8, Cout8 = 8 * groups; S in groups of 8 outputs: group
// g owns the slots [slots[g], slots[g+1]) and slot k holds one entry for each of its outputs,
// input channel col[8k + j] and value val[8k + j] for output 8g + j (value 0 where that output
// has fewer entries than the group's most).
// Optional prologue (stride 1, no x2): the branch's input is LayerNorm(x) with gamma, beta, eps
// (then SiLU if silu), computed per pixel as NormArgs does, and that normalized input is also
// packed as PackArgs does (bits[N, H, W, Cw], alpha[N, H, W], threshold shift or none): the
// layer's three inputs from one pass over x, the normalized map never written (bits, alpha and
// the branch bit-identical to layer_norm, pack_activations and branch called in turn).
struct BranchArgs {
    const float* x;        // [N, H, W, C1]
    const float* x2;       // [N, H, W, Cin - C1] or null
    const float* down;     // [rank8, Cin]
    const float* up;       // [Cout8, rank8]
    const int32_t* slots;  // [Cout8 / 8 + 1]
    const int32_t* col;    // [8 * slots[Cout8 / 8]], each in [0, Cin)
    const float* val;      // [8 * slots[Cout8 / 8]]
    const float* add;      // [N, Ho, Wo, Cout] or null
    const float* zeros;    // [Cin]: the input of pixels past the end of a block
    float* out;            // [N, Ho, Wo, Cout]
    int64_t N, H, W, Cin, C1, Cout, Cout8, rank8, stride, Ho, Wo;
    const float* gamma;    // [Cin]: LayerNorm prologue; null: none (then beta, eps, silu unused)
    const float* beta;     // [Cin]
    float eps;
    bool silu;
    const float* shift;    // [Cin] or null: the packing's activation threshold
    uint64_t* bits;        // [N, H, W, Cw] (with the prologue)
    float* alpha;          // [N, H, W]
    int64_t Cw;
};

// Shifted-window multi-head self-attention (Swin) on a map whose tokens are the pixels of
// qkv[N, H, W, 3C]: channels [0, C) are q, [C, 2C) k, [2C, 3C) v; head h uses channels
// [h*d, (h+1)*d) of each, d = C / heads. Windows are ws x ws tiles of the map cyclically shifted
// by -shift (torch.roll by -shift on both axes, then windows): token (i, j) of window (wy, wx)
// is pixel ((wy*ws + i + shift) mod H, (wx*ws + j + shift) mod W), T = ws*ws tokens, H and W
// multiples of ws. Per window and head, with token index t = i*ws + j:
//   s[t, u] = scale * (q_t . k_u) + bias[h, t, u] + mask(t, u);  p = softmax_u(s);
//   out[pixel of t, h*d + c] = sum_u p[t, u] * v_u[c]
// mask(t, u) = -inf where shift > 0 and t, u lie in different regions of the shifted map (the
// rows of the rolled frame r < H - ws, H - ws <= r < H - shift, r >= H - shift, and likewise
// columns: 9 regions), else 0: what the shifted map brought together from opposite edges never
// attends to each other. The output is written at the token's own pixel (rolled back).
struct AttentionArgs {
    const float* qkv;   // [N, H, W, 3C]
    const float* bias;  // [heads, T, T]
    float* out;         // [N, H, W, C]
    int64_t N, H, W, C, heads, ws, shift;
    float scale;
};

// y = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))) elementwise (GELU, torch's default form).
struct GeluArgs {
    const float* x;  // [n]
    float* out;      // [n] (may alias x)
};

// The one-step model's input (model/pipeline.py) from an LR image lr[N, h, w, C] in [-1, 1]:
//   z   = PixelUnshuffle4(bicubic_x4(lr)): z[n, y, x, c*16 + dy*4 + dx] is the bicubic x4
//         upscale's pixel (4y + dy, 4x + dx) of channel c (torch's F.interpolate, bicubic,
//         align_corners=False: A = -0.75, border taps clamped to the image);
//   x   = concat((z + noise_scale * eps) * input_scale, lr) (eps null: no noise term),
// both on the padded grid Hp x Wp (>= h x w), replicate padding: the values of pixel
// (min(y, h-1), min(x, w-1)). eps is the position noise [16C, h, w] (its own layout, as
// model/noise.py draws it). Rounding: the bicubic sums run in float32 along x first, then
// along y, each as ((v0 w0 + v1 w1) + v2 w2) + v3 w3 with the float32 weights; then
// x_t = z + noise_scale * eps and x_t * input_scale, each rounded (torch's order).
struct InputArgs {
    const float* lr;    // [N, h, w, C]
    const float* eps;   // [16C, h, w] or null
    float noise_scale, input_scale;
    float* x;           // [N, Hp, Wp, 17C]
    float* z;           // [N, Hp, Wp, 16C]
    int64_t N, h, w, C, Hp, Wp;
};

// The HR image of a latent: img[n, c, 4y + dy, 4x + dx] = clamp((x0[n, y, x, c*16 + dy*4 + dx]
// + 1) * 0.5, 0, 1) for y < h, x < w (PixelShuffle4 of the top left h x w of x0, mapped from
// [-1, 1] to [0, 1]).
struct ImageArgs {
    const float* x0;  // [N, Hp, Wp, 16C]
    float* img;       // [N, C, 4h, 4w]
    int64_t N, h, w, C, Hp, Wp;
};

// The kernels read weights prepared once per layer (bk::PreparedWeights, api.h): the vector
// kernels' repacked by their own `repack` function (output channels in groups of `group`), the
// reference's as they are. Some read activations re-encoded per call by their own `prep_x`
// function (`xprep` uint64 per packed word, e.g. the AVX2 kernel's nibble lookup offsets).
// x2 / alpha2: the second activation base (both null: one base), laid out as x / alpha (also
// re-encoded by prep_x where x is).
struct ConvArgs {
    const uint64_t* x;      // [N, H, W, Cw], or [N, H, W, Cw * xprep] after prep_x
    const float* alpha;     // [N, H, W]
    const uint64_t* w;      // reference: [Cout, 3, 3, Cw]; vector kernels: repacked (see above)
    int64_t N, H, W, Cw, cin;
    int64_t Cout, Cpad;
    int64_t stride, Ho, Wo;
    Epilogue ep;
    const float* add;       // [N, Ho, Wo, Cout] or null
    float* out;             // [N, Ho, Wo, Cout]
    const uint64_t* x2;     // like x, or null
    const float* alpha2;    // [N, H, W], or null
};

struct GemmArgs {
    const uint64_t* x;      // [M, Kw], or [M, Kw * xprep] after prep_x
    const float* alpha;     // [M]
    const uint64_t* w;      // reference: [Nout, Kw]; vector kernels: repacked, one "tap"
    int64_t M, Kw, k;
    int64_t Nout, Cpad;
    Epilogue ep;
    const float* add;       // [M, Nout] or null
    float* out;             // [M, Nout]
    const uint64_t* x2;     // like x, or null
    const float* alpha2;    // [M], or null
};

// One instruction-set implementation. The row functions compute a half-open range of work and
// are called concurrently from the thread pool on disjoint ranges.
struct KernelImpl {
    const char* name;
    int group;              // output channels per group; Cpad = Cout rounded up to it
    // Activation re-encoding (xprep = 0 and prep_x null when the kernel reads packed words):
    // prep_x(x, i0, i1, dst) writes words [i0, i1) of x as xprep uint64 each at dst + i * xprep.
    int64_t xprep;
    void (*prep_x)(const uint64_t* x, int64_t i0, int64_t i1, uint64_t* dst);
    // Weight repacking, done once per layer by bk::PreparedWeights (null for the reference,
    // which reads [Cout, taps, Cw] directly): number of uint64 for Cpad channels, and the
    // repack of w[Cout, taps, Cw] into dst (channels >= Cout repack as 0).
    int64_t (*repacked_size)(int64_t Cpad, int64_t taps, int64_t Cw);
    void (*repack)(const uint64_t* w, int64_t Cout, int64_t taps, int64_t Cw, int64_t Cpad,
                   uint64_t* dst);
    void (*pack)(const PackArgs&, int64_t p0, int64_t p1);
    void (*conv3x3)(const ConvArgs&, int64_t n, int64_t oy0, int64_t oy1);
    void (*gemm)(const GemmArgs&, int64_t m0, int64_t m1);
    void (*layer_norm)(const NormArgs&, int64_t p0, int64_t p1);  // rows [p0, p1)
    void (*noise)(const NoiseArgs&, int64_t y0, int64_t y1);        // rows [y0, y1)
    // Float32 kernels. dense: output pixels [p0, p1) of the N * Ho * Wo. attention: windows
    // [w0, w1) of the N * (H / ws) * (W / ws) windows (all heads), with scratch of
    // attention_scratch(T, d) floats for the calling task. gelu: elements [i0, i1).
    int64_t float_lanes;  // Cpad of DenseArgs is a multiple of it
    void (*dense)(const DenseArgs&, int64_t p0, int64_t p1);
    int64_t (*attention_scratch)(int64_t T, int64_t d);
    void (*attention)(const AttentionArgs&, int64_t w0, int64_t w1, float* scratch);
    void (*gelu)(const GeluArgs&, int64_t i0, int64_t i1);
    // branch: output pixels [p0, p1), with scratch of branch_scratch(Cin, rank8, Cout8) floats
    // (room for the prologue's normalized rows included).
    int64_t (*branch_scratch)(int64_t Cin, int64_t rank8, int64_t Cout8);
    void (*branch)(const BranchArgs&, int64_t p0, int64_t p1, float* scratch);
    // one_step_input: the real rows [r0, r1) of the N * h (columns padded too; the driver
    // copies the padded rows), with scratch of input_scratch(rows, w, C) floats for r1 - r0 =
    // rows. latent_image: LR rows [r0, r1) of the N * h.
    int64_t (*input_scratch)(int64_t rows, int64_t w, int64_t C);
    void (*one_step_input)(const InputArgs&, int64_t r0, int64_t r1, float* scratch);
    void (*latent_image)(const ImageArgs&, int64_t r0, int64_t r1);
};

// Defined in the per-ISA translation units (only those that were compiled in).
extern const KernelImpl kImplReference;
#if defined(BK_HAVE_AVX2)
extern const KernelImpl kImplAvx2;
#endif
#if defined(BK_HAVE_AVX512)
extern const KernelImpl kImplAvx512;
#endif
#if defined(BK_HAVE_NEON)
extern const KernelImpl kImplNeon;
#endif

}  // namespace bk
