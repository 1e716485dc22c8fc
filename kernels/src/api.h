// Internal C++ API used by the Python bindings (bindings.cpp) and the self-test. Compiled with
// baseline flags only: it has inline code (std::vector, std::string, ...), so the
// instruction-set units must not include it (LINKAGE RULE in bitkernels.h).
// See bitkernels.h for the data layout and the exact formulas.
#pragma once
#define BK_API_H 1
#if defined(BK_VECTOR_LOOPS_H)
#error "api.h (baseline inline code) must not be included by instruction-set units"
#endif

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bk {

struct KernelImpl;  // bitkernels.h

std::vector<std::string> cpu_features();
std::vector<std::string> available_kernels();  // "reference" first, then the usable vector ones
std::string kernel_name();
// name in {"auto", "reference", "avx2", "avx512", "neon"}; throws std::invalid_argument when the
// name is unknown or the kernel is not compiled in / not supported by this CPU.
void set_kernel(const std::string& name);
// Applies BIMACOSR_KERNEL if set; returns a warning message ("" if none) when it cannot be honoured.
std::string init_kernel_from_env();
constexpr int kMaxThreads = 1024;
void set_num_threads(int n);  // 1 <= n <= kMaxThreads (else std::invalid_argument)
int get_num_threads();

// Packs x[P, C1] (x2 null, C = C1) or the channel concatenation of x[P, C1] and x2[P, C - C1]
// (C1 a multiple of 64) into bits[P, ceil(C/64)] and alpha[P] (see PackArgs); shift[C] (null:
// none) is the per-channel threshold of the concatenation: the packed value is x - shift.
void pack_activations(const float* x, const float* x2, int64_t P, int64_t C1, int64_t C,
                      const float* shift, uint64_t* bits, float* alpha);

// The second activation base (two bases; LAYOUT RULE in bitkernels.h) of the same pixels
// (x, x2, P, C1, C, shift as for pack_activations) from base 1's bits[P, ceil(C/64)] and
// alpha[P] (as pack_activations wrote them): with d the packed value, r = d + alpha where
// base 1's bit is 1, else d - alpha (float32), packed into bits2[P, ceil(C/64)] (1 = r < 0) and
// alpha2[P] = mean |r| (summed in double, four interleaved partial sums). One generic
// implementation for every kernel; bits2 depends on the alpha given, so it is bit-identical
// across kernels for the same base 1. Throws std::invalid_argument on the conditions of pack_activations.
void pack_second_base(const float* x, const float* x2, int64_t P, int64_t C1, int64_t C,
                      const float* shift, const uint64_t* bits, const float* alpha,
                      uint64_t* bits2, float* alpha2);

// A layer's binary weights prepared once for one kernel, the one active when they are made:
// repacked into that kernel's layout (KernelImpl::repack; the reference's: a copy of w). From
// w[rows, taps, words()] (3x3 conv: rows = Cout, taps = 9; GEMM: rows = Nout, taps = 1) of `cin`
// input channels, words() = ceil(cin / 64); pad bits (channels >= cin) must be 0 and rows >= 0,
// taps, cin >= 1 (else std::invalid_argument). Immutable: may be used by concurrent calls.
// binary_conv3x3 / binary_gemm reject them (std::invalid_argument) while another kernel is
// active: after set_kernel, prepare them again.
class PreparedWeights {
  public:
    PreparedWeights(const uint64_t* w, int64_t rows, int64_t taps, int64_t cin);
    PreparedWeights(PreparedWeights&&) = default;  // a moved vector keeps its buffer: data_ too
    PreparedWeights(const PreparedWeights&) = delete;
    PreparedWeights& operator=(const PreparedWeights&) = delete;
    PreparedWeights& operator=(PreparedWeights&&) = delete;
    const KernelImpl& kernel() const { return *kernel_; }
    std::string kernel_name() const;
    int64_t rows() const { return rows_; }
    int64_t taps() const { return taps_; }
    int64_t cin() const { return cin_; }
    int64_t words() const { return (cin_ + 63) / 64; }
    int64_t padded_rows() const { return padded_rows_; }  // rows rounded up to the kernel's group
    const uint64_t* data() const { return data_; }  // 64-byte aligned

  private:
    const KernelImpl* kernel_;
    int64_t rows_, taps_, cin_, padded_rows_;
    std::vector<uint64_t> buffer_;  // the prepared words start at its first 64-byte boundary
    const uint64_t* data_;
};

// rprelu: shift_in, slope, shift_out all null or all non-null. bias, add may be null.
// w: prepared with taps = 9 (rows = Cout) for the active kernel (else std::invalid_argument).
// x2, alpha2: the second activation base (laid out as x, alpha; same weights), both null for
// one base (else both non-null: one without the other is std::invalid_argument).
void binary_conv3x3(const uint64_t* x, const float* alpha, const PreparedWeights& w, int64_t N,
                    int64_t H, int64_t W, int64_t stride, const float* beta, const float* bias,
                    const float* shift_in, const float* slope, const float* shift_out,
                    const float* add, float* out, const uint64_t* x2 = nullptr,
                    const float* alpha2 = nullptr);

// w: prepared with taps = 1 (rows = Nout, cin = k) for the active kernel. x2, alpha2 as for
// binary_conv3x3.
void binary_gemm(const uint64_t* x, const float* alpha, const PreparedWeights& w, int64_t M,
                 const float* beta, const float* bias, const float* shift_in, const float* slope,
                 const float* shift_out, const float* add, float* out,
                 const uint64_t* x2 = nullptr, const float* alpha2 = nullptr);

// LayerNorm over the last axis of x[P, C], then SiLU if `silu` (see NormArgs). out may alias x.
void layer_norm(const float* x, int64_t P, int64_t C, const float* gamma, const float* beta,
                float eps, bool silu, float* out);

// Full-precision k x k conv (k = 1 or 3, 'same' zero padding, stride 1 or 2) of x[N, H, W, C1]
// or of the channel concatenation with x2[N, H, W, Cin - C1] (null: C1 = Cin), weights
// w[k, k, Cin, Cout] (HWIO), bias[Cout] (null: 0), then + add[N, Ho, Wo, Cout] (null: none)
// -> out[N, Ho, Wo, Cout] (may be add itself). See DenseArgs.
void dense_conv(const float* x, const float* x2, int64_t N, int64_t H, int64_t W, int64_t C1,
                int64_t Cin, const float* w, int64_t k, int64_t Cout, const float* bias,
                int64_t stride, const float* add, float* out);

// The structured branch of BranchArgs: 1x1 at stride 1 or 2 of x[N, H, W, C1] (or of its
// concatenation with x2[N, H, W, Cin - C1]) with the low-rank factors down[rank, Cin],
// up[Cout, rank] (rank 0: none) and the CSR sparse matrix row[Cout + 1], col[nnz], val[nnz]
// (col in [0, Cin), row non-decreasing from 0 to nnz), then + add -> out[N, Ho, Wo, Cout]
// (may be add itself).
void branch(const float* x, const float* x2, int64_t N, int64_t H, int64_t W, int64_t C1,
            int64_t Cin, int64_t stride, const float* down, const float* up, int64_t rank,
            const int32_t* row, const int32_t* col, const float* val, int64_t Cout,
            const float* add, float* out);

// The same with BranchArgs' prologue (stride 1, x alone): the branch of LayerNorm(x) (gamma,
// beta, eps, then SiLU if silu), whose packing (threshold shift[Cin] or null) goes to
// bits[N, H, W, ceil(Cin / 64)] and alpha[N, H, W].
void norm_branch(const float* x, int64_t N, int64_t H, int64_t W, int64_t Cin,
                 const float* gamma, const float* beta, float eps, bool silu, const float* shift,
                 const float* down, const float* up, int64_t rank, const int32_t* row,
                 const int32_t* col, const float* val, int64_t Cout, const float* add,
                 float* out, uint64_t* bits, float* alpha);

// Shifted-window self-attention of qkv[N, H, W, 3C] with bias[heads, ws^2, ws^2] ->
// out[N, H, W, C] (see AttentionArgs). Needs ws >= 1, H and W multiples of ws, C a multiple of
// heads and 0 <= shift < ws (else std::invalid_argument).
void window_attention(const float* qkv, const float* bias, int64_t N, int64_t H, int64_t W,
                      int64_t C, int64_t heads, int64_t ws, int64_t shift, float scale, float* out);

// GELU (erf form) of x[n] -> out[n] (may alias x).
void gelu(const float* x, int64_t n, float* out);

// The one-step input of lr[N, h, w, C] (see InputArgs): x[N, Hp, Wp, 17C] and z[N, Hp, Wp,
// 16C]; eps[16C, h, w] or null. Needs 1 <= h <= Hp, 1 <= w <= Wp.
void one_step_input(const float* lr, const float* eps, int64_t N, int64_t h, int64_t w,
                    int64_t C, float noise_scale, float input_scale, int64_t Hp, int64_t Wp,
                    float* x, float* z);

// The image of the top left h x w of x0[N, Hp, Wp, 16C]: img[N, C, 4h, 4w] (see ImageArgs).
void latent_image(const float* x0, int64_t N, int64_t Hp, int64_t Wp, int64_t C, int64_t h,
                  int64_t w, float* img);

// Position-noise uniforms u1, u2: float32[C, H, W] each (see NoiseArgs).
void position_uniforms(uint32_t seed0, uint32_t seed1, int64_t top, int64_t left, int64_t H,
                       int64_t W, int64_t C, float* u1, float* u2);

}  // namespace bk
