// Internal C++ API used by the Python bindings (bindings.cpp). Compiled with baseline flags only.
// See bitkernels.h for the data layout and the exact formulas.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bk {

std::vector<std::string> cpu_features();
std::vector<std::string> available_kernels();  // "reference" first, then the usable vector ones
std::string kernel_name();
// name in {"auto", "reference", "avx2", "avx512", "neon"}; throws std::invalid_argument when the
// name is unknown or the kernel is not compiled in / not supported by this CPU.
void set_kernel(const std::string& name);
// Applies BIMACOSR_KERNEL if set; returns a warning message ("" if none) when it cannot be honoured.
std::string init_kernel_from_env();
void set_num_threads(int n);  // n >= 1
int get_num_threads();

// Packs x[P, C1] (x2 null, C = C1) or the channel concatenation of x[P, C1] and x2[P, C - C1]
// (C1 a multiple of 64) into bits[P, ceil(C/64)] and alpha[P] (see PackArgs); shift[C] (null:
// none) is the per-channel threshold of the concatenation: the packed value is x - shift.
void pack_activations(const float* x, const float* x2, int64_t P, int64_t C1, int64_t C,
                      const float* shift, uint64_t* bits, float* alpha);

// rprelu: shift_in, slope, shift_out all null or all non-null. bias, add may be null.
void binary_conv3x3(const uint64_t* x, const float* alpha, const uint64_t* w, int64_t N, int64_t H,
                    int64_t W, int64_t Cw, int64_t cin, int64_t Cout, int64_t stride,
                    const float* beta, const float* bias, const float* shift_in,
                    const float* slope, const float* shift_out, const float* add, float* out);

void binary_gemm(const uint64_t* x, const float* alpha, const uint64_t* w, int64_t M, int64_t Kw,
                 int64_t k, int64_t Nout, const float* beta, const float* bias,
                 const float* shift_in, const float* slope, const float* shift_out,
                 const float* add, float* out);

// LayerNorm over the last axis of x[P, C], then SiLU if `silu` (see NormArgs). out may alias x.
void layer_norm(const float* x, int64_t P, int64_t C, const float* gamma, const float* beta,
                float eps, bool silu, float* out);

// Position-noise uniforms u1, u2: float32[C, H, W] each (see NoiseArgs).
void position_uniforms(uint32_t seed0, uint32_t seed1, int64_t top, int64_t left, int64_t H,
                       int64_t W, int64_t C, float* u1, float* u2);

}  // namespace bk
