// nanobind bindings: thin wrappers over C-contiguous CPU arrays (NumPy arrays, or torch CPU
// tensors and anything else exposing DLPack, without copies). Inputs are checked strictly
// (dtype, shape, C-contiguity); nothing is converted implicitly. Outputs are new NumPy arrays.
// The GIL is released while the kernels run.
//
// Sizes (kernels/README.md, "Sizes"): every array a binding is given or makes, and every size
// argument, has at most kMaxElements elements (the product of its nonzero extents, so that an
// empty array's other extents are bounded too), and absolute positions plus sizes fit int64.
// So every product of extents the kernels form fits int64 and no allocation wraps around. It is
// checked before anything is allocated or looped over: too large or overflowing raises
// OverflowError, a negative size ValueError.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <initializer_list>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "api.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using AnyArray = nb::ndarray<nb::ro, nb::device::cpu>;
using MutArray = nb::ndarray<nb::device::cpu>;  // writable (caller-provided outputs)
using OutF32 = nb::ndarray<nb::numpy, float>;
using OutU64 = nb::ndarray<nb::numpy, uint64_t>;

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }
[[noreturn]] void too_large(const std::string& msg) { throw std::overflow_error(msg); }

constexpr int64_t kMaxElements = int64_t{1} << 40;
constexpr const char* kLimit = "2^40";

std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
}

std::vector<int64_t> shape_of(const AnyArray& a) {
    std::vector<int64_t> shape(a.ndim());
    for (size_t i = 0; i < a.ndim(); ++i) shape[i] = static_cast<int64_t>(a.shape(i));
    return shape;
}

std::string shape_str(const AnyArray& a) { return shape_str(shape_of(a)); }

// The element count of an array `name` of `shape`, every extent >= 0 (else ValueError) and the
// product of the nonzero extents at most kMaxElements (else OverflowError, before it overflows).
int64_t checked_count(const std::string& name, const std::vector<int64_t>& shape) {
    int64_t count = 1;
    bool empty = false;
    for (int64_t d : shape) {
        if (d < 0) fail(name + " would have a negative extent: shape " + shape_str(shape));
        if (d == 0) {
            empty = true;
            continue;
        }
        if (d > kMaxElements / count)
            too_large(name + " would have more than " + kLimit + " elements: shape " +
                      shape_str(shape));
        count *= d;
    }
    return empty ? 0 : count;
}

// A size argument: in [lo, kMaxElements] (below: ValueError, above: OverflowError).
int64_t size_arg(const char* name, int64_t value, int64_t lo) {
    if (value < lo) fail(std::string(name) + " must be >= " + std::to_string(lo) + ", got " + std::to_string(value));
    if (value > kMaxElements)
        too_large(std::string(name) + " = " + std::to_string(value) + " exceeds the kernels' limit of " + kLimit);
    return value;
}

bool c_contiguous(const AnyArray& a) {
    if (a.size() == 0) return true;  // no element: any strides describe it
    int64_t expect = 1;
    for (size_t i = a.ndim(); i-- > 0;) {
        if (a.shape(i) != 1 && a.stride(i) != expect) return false;
        expect *= static_cast<int64_t>(a.shape(i));
    }
    return true;
}

enum class Kind { F32, U64 };

// Checks dtype (float32, or uint64/int64 bit words), rank, C-contiguity and, for every entry of
// `shape` >= 0, the extent. Returns the data pointer.
const void* check(const AnyArray& a, const char* name, Kind kind, std::vector<int64_t> shape) {
    const auto dt = a.dtype();
    const bool ok_dtype =
        kind == Kind::F32
            ? dt == nb::dtype<float>()
            : (dt == nb::dtype<uint64_t>() || dt == nb::dtype<int64_t>());
    if (!ok_dtype)
        fail(std::string(name) + (kind == Kind::F32 ? " must be float32" : " must be uint64 (or int64)"));
    if (a.ndim() != shape.size())
        fail(std::string(name) + " must have " + std::to_string(shape.size()) + " dimensions, got shape " +
             shape_str(a));
    checked_count(name, shape_of(a));
    for (size_t i = 0; i < shape.size(); ++i)
        if (shape[i] >= 0 && static_cast<int64_t>(a.shape(i)) != shape[i]) {
            std::string want = "(";
            for (size_t j = 0; j < shape.size(); ++j)
                want += (j ? ", " : "") + (shape[j] >= 0 ? std::to_string(shape[j]) : std::string("*"));
            fail(std::string(name) + " has shape " + shape_str(a) + ", expected " + want +
                 (shape.size() == 1 ? ",)" : ")"));
        }
    if (!c_contiguous(a)) fail(std::string(name) + " must be C-contiguous");
    return a.data();
}

template <typename T>
std::pair<T*, nb::capsule> alloc(size_t n) {
    T* p = new T[n > 0 ? n : 1];
    nb::capsule owner(p, [](void* q) noexcept { delete[] static_cast<T*>(q); });
    return {p, owner};
}

int64_t words_for(int64_t c) { return (c + 63) / 64; }

// A caller-provided float32 output of `shape`: C-contiguous and writable (nanobind rejects
// read-only arrays). It may be the input array `in` (named `in_name`) itself, where each output
// element is computed from the input at its own position (or row) only, so the kernel can work
// in place, but must not overlap it otherwise.
float* check_out(const nb::object& out, std::vector<int64_t> shape, const float* in,
                 const char* in_name) {
    MutArray arr;
    if (!nb::try_cast(out, arr)) fail("out must be a writable array on the CPU");
    const AnyArray view(arr);  // the same array, for the common checks
    auto* p = const_cast<float*>(static_cast<const float*>(check(view, "out", Kind::F32, std::move(shape))));
    if (in && in != p) {
        const size_t n = arr.size();
        if (in < p + n && p < in + n)
            fail(std::string("out must be the ") + in_name + " array itself or not overlap it");
    }
    return p;
}

// A kernel's float32 output: the caller's `out` (checked by check_out) or a fresh array of
// `shape`. `result()` is what the binding returns: the fresh array, or `out` itself.
class Output {
public:
    Output(const std::optional<nb::object>& out, const std::vector<size_t>& shape,
           const float* in, const char* in_name)
        : out_(out) {
        if (out) {
            ptr_ = check_out(*out, std::vector<int64_t>(shape.begin(), shape.end()), in, in_name);
            return;
        }
        const auto n = static_cast<size_t>(
            checked_count("the output", std::vector<int64_t>(shape.begin(), shape.end())));
        auto [p, owner] = alloc<float>(n);
        fresh_.emplace(p, shape.size(), shape.data(), owner);
        ptr_ = p;
    }
    float* ptr() const { return ptr_; }
    nb::object result() const { return fresh_ ? nb::cast(*fresh_) : *out_; }

private:
    std::optional<nb::object> out_;
    std::optional<OutF32> fresh_;
    float* ptr_ = nullptr;
};

using RPReLU = std::tuple<AnyArray, AnyArray, AnyArray>;

struct Epi {
    const float* bias = nullptr;
    const float* sin = nullptr;
    const float* slope = nullptr;
    const float* sout = nullptr;
    const float* add = nullptr;
};

Epi check_epilogue(int64_t cout, const std::optional<AnyArray>& bias,
                   const std::optional<RPReLU>& rprelu, const std::optional<AnyArray>& add,
                   std::vector<int64_t> add_shape) {
    Epi e;
    if (bias) e.bias = static_cast<const float*>(check(*bias, "bias", Kind::F32, {cout}));
    if (rprelu) {
        e.sin = static_cast<const float*>(check(std::get<0>(*rprelu), "rprelu[0] (shift_in)", Kind::F32, {cout}));
        e.slope = static_cast<const float*>(check(std::get<1>(*rprelu), "rprelu[1] (slope)", Kind::F32, {cout}));
        e.sout = static_cast<const float*>(check(std::get<2>(*rprelu), "rprelu[2] (shift_out)", Kind::F32, {cout}));
    }
    if (add) e.add = static_cast<const float*>(check(*add, "add", Kind::F32, std::move(add_shape)));
    return e;
}

// uint64 bits of `shape` as numpy.uint64: NumPy may label a fresh array 'ulonglong' rather than
// numpy.uint64 ('ulong' on LP64), which torch.from_numpy rejects, so view it (same bits, no copy).
nb::object uint64_array(uint64_t* bits, std::initializer_list<size_t> shape, nb::capsule owner) {
    OutU64 b(bits, shape, owner);
    return nb::cast(b).attr("view")(nb::module_::import_("numpy").attr("uint64"));
}

nb::tuple pack_activations(const AnyArray& x, const std::optional<AnyArray>& x2,
                           const std::optional<AnyArray>& shift, int64_t bases) {
    if (bases != 1 && bases != 2) fail("bases must be 1 or 2, got " + std::to_string(bases));
    const auto* xp = static_cast<const float*>(check(x, "x", Kind::F32, {-1, -1, -1, -1}));
    const size_t N = x.shape(0), H = x.shape(1), W = x.shape(2), C1 = x.shape(3);
    const float* x2p = nullptr;
    size_t C = C1;
    if (x2) {
        if (C1 % 64 != 0) fail("x2 needs x's channel count to be a multiple of 64, got " + shape_str(x));
        const auto n = static_cast<int64_t>(N), h = static_cast<int64_t>(H), w = static_cast<int64_t>(W);
        x2p = static_cast<const float*>(check(*x2, "x2", Kind::F32, {n, h, w, -1}));
        C += x2->shape(3);
    }
    const float* shiftp = nullptr;  // one threshold per channel: x's, then x2's
    if (shift)
        shiftp = static_cast<const float*>(check(*shift, "shift", Kind::F32, {static_cast<int64_t>(C)}));
    const size_t Cw = static_cast<size_t>(words_for(static_cast<int64_t>(C)));
    checked_count("bits", {int64_t(N), int64_t(H), int64_t(W), int64_t(Cw)});
    auto [bits, bits_owner] = alloc<uint64_t>(N * H * W * Cw);
    auto [alpha, alpha_owner] = alloc<float>(N * H * W);
    uint64_t* bits2 = nullptr;
    float* alpha2 = nullptr;
    nb::capsule bits2_owner, alpha2_owner;
    if (bases == 2) {
        std::tie(bits2, bits2_owner) = alloc<uint64_t>(N * H * W * Cw);
        std::tie(alpha2, alpha2_owner) = alloc<float>(N * H * W);
    }
    {
        nb::gil_scoped_release release;
        const auto P = static_cast<int64_t>(N * H * W);
        bk::pack_activations(xp, x2p, P, static_cast<int64_t>(C1), static_cast<int64_t>(C), shiftp,
                             bits, alpha);
        if (bases == 2)
            bk::pack_second_base(xp, x2p, P, static_cast<int64_t>(C1), static_cast<int64_t>(C),
                                 shiftp, bits, alpha, bits2, alpha2);
    }
    nb::object b = uint64_array(bits, {N, H, W, Cw}, bits_owner);
    OutF32 a(alpha, {N, H, W}, alpha_owner);
    if (bases == 1) return nb::make_tuple(b, a);
    nb::object b2 = uint64_array(bits2, {N, H, W, Cw}, bits2_owner);
    OutF32 a2(alpha2, {N, H, W}, alpha2_owner);
    return nb::make_tuple(b, a, b2, a2);
}

// Sign-bit weights uint64[rows, *taps_shape, ceil(cin / 64)] (taps_shape {3, 3} for 3x3 convs,
// {} for GEMMs), checked, prepared for the active kernel.
bk::PreparedWeights prepare(const AnyArray& wbits, int64_t cin, std::vector<int64_t> taps_shape,
                            const char* cin_name) {
    size_arg(cin_name, cin, 1);
    std::vector<int64_t> shape{-1};
    int64_t taps = 1;
    for (int64_t t : taps_shape) {
        shape.push_back(t);
        taps *= t;
    }
    shape.push_back(words_for(cin));
    const auto* wp = static_cast<const uint64_t*>(check(wbits, "wbits", Kind::U64, shape));
    const auto rows = static_cast<int64_t>(wbits.shape(0));
    nb::gil_scoped_release release;
    return bk::PreparedWeights(wp, rows, taps, cin);
}

bk::PreparedWeights prepare_conv3x3_weights(const AnyArray& wbits, int64_t cin) {
    return prepare(wbits, cin, {3, 3}, "cin");
}

bk::PreparedWeights prepare_gemm_weights(const AnyArray& wbits, int64_t k) {
    return prepare(wbits, k, {}, "k");
}

// The weights of one conv / GEMM call: a PreparedWeights passed in (for `cin` input channels and
// `taps` taps: ValueError otherwise), or raw sign bits prepared for this call only.
class CallWeights {
  public:
    CallWeights(nb::handle wbits, int64_t cin, std::vector<int64_t> taps_shape, const char* cin_name) {
        int64_t taps = 1;
        for (int64_t t : taps_shape) taps *= t;
        if (nb::isinstance<bk::PreparedWeights>(wbits)) {
            prepared_ = &nb::cast<const bk::PreparedWeights&>(wbits);
            if (prepared_->taps() != taps)
                fail(taps == 9 ? "wbits were prepared for binary_gemm, not binary_conv3x3"
                               : "wbits were prepared for binary_conv3x3, not binary_gemm");
            if (prepared_->cin() != cin)
                fail("wbits were prepared for " + std::to_string(prepared_->cin()) +
                     " input channels, the call has " + std::to_string(cin));
            return;
        }
        AnyArray raw;
        if (!nb::try_cast(wbits, raw))
            throw nb::type_error("wbits must be PreparedWeights or a uint64 (int64) array");
        once_.emplace(prepare(raw, cin, std::move(taps_shape), cin_name));
        prepared_ = &*once_;
    }
    const bk::PreparedWeights& get() const { return *prepared_; }

  private:
    std::optional<bk::PreparedWeights> once_;
    const bk::PreparedWeights* prepared_ = nullptr;
};

// The second activation base of a conv / GEMM call: bits2 and alpha2 both given (checked like
// bits and alpha, with their shapes) or both None (one base: null pointers).
struct SecondBase {
    const uint64_t* bits = nullptr;
    const float* alpha = nullptr;
    SecondBase(const std::optional<AnyArray>& bits2, const std::optional<AnyArray>& alpha2,
               std::vector<int64_t> bits_shape, std::vector<int64_t> alpha_shape) {
        if (bits2.has_value() != alpha2.has_value())
            fail("bits2 and alpha2 (the second activation base) go together: pass both or neither");
        if (!bits2) return;
        bits = static_cast<const uint64_t*>(check(*bits2, "bits2", Kind::U64, std::move(bits_shape)));
        alpha = static_cast<const float*>(check(*alpha2, "alpha2", Kind::F32, std::move(alpha_shape)));
    }
};

nb::object binary_conv3x3(const AnyArray& bits, const AnyArray& alpha, nb::handle wbits,
                          int64_t cin, const AnyArray& beta, const std::optional<AnyArray>& bias,
                          int64_t stride, const std::optional<RPReLU>& rprelu,
                          const std::optional<AnyArray>& add, const std::optional<nb::object>& out,
                          const std::optional<AnyArray>& bits2,
                          const std::optional<AnyArray>& alpha2) {
    if (stride != 1 && stride != 2) fail("stride must be 1 or 2");
    const int64_t Cw = words_for(size_arg("cin", cin, 1));
    const auto* xp = static_cast<const uint64_t*>(check(bits, "bits", Kind::U64, {-1, -1, -1, Cw}));
    const int64_t N = bits.shape(0), H = bits.shape(1), W = bits.shape(2);
    const auto* ap = static_cast<const float*>(check(alpha, "alpha", Kind::F32, {N, H, W}));
    const SecondBase second(bits2, alpha2, {N, H, W, Cw}, {N, H, W});
    const CallWeights w(wbits, cin, {3, 3}, "cin");
    const int64_t Cout = w.get().rows();
    const auto* bp = static_cast<const float*>(check(beta, "beta", Kind::F32, {Cout}));
    const int64_t Ho = H > 0 ? (H - 1) / stride + 1 : 0;
    const int64_t Wo = W > 0 ? (W - 1) / stride + 1 : 0;
    const Epi e = check_epilogue(Cout, bias, rprelu, add, {N, Ho, Wo, Cout});
    const Output y(out, {size_t(N), size_t(Ho), size_t(Wo), size_t(Cout)}, e.add, "add");
    {
        nb::gil_scoped_release release;
        bk::binary_conv3x3(xp, ap, w.get(), N, H, W, stride, bp, e.bias, e.sin, e.slope, e.sout,
                           e.add, y.ptr(), second.bits, second.alpha);
    }
    return y.result();
}

nb::object binary_gemm(const AnyArray& bits, const AnyArray& alpha, nb::handle wbits,
                       int64_t k, const AnyArray& beta, const std::optional<AnyArray>& bias,
                       const std::optional<RPReLU>& rprelu, const std::optional<AnyArray>& add,
                       const std::optional<nb::object>& out, const std::optional<AnyArray>& bits2,
                       const std::optional<AnyArray>& alpha2) {
    const int64_t Kw = words_for(size_arg("k", k, 1));
    const auto* xp = static_cast<const uint64_t*>(check(bits, "bits", Kind::U64, {-1, Kw}));
    const int64_t M = bits.shape(0);
    const auto* ap = static_cast<const float*>(check(alpha, "alpha", Kind::F32, {M}));
    const SecondBase second(bits2, alpha2, {M, Kw}, {M});
    const CallWeights w(wbits, k, {}, "k");
    const int64_t Nout = w.get().rows();
    const auto* bp = static_cast<const float*>(check(beta, "beta", Kind::F32, {Nout}));
    const Epi e = check_epilogue(Nout, bias, rprelu, add, {M, Nout});
    const Output y(out, {size_t(M), size_t(Nout)}, e.add, "add");
    {
        nb::gil_scoped_release release;
        bk::binary_gemm(xp, ap, w.get(), M, bp, e.bias, e.sin, e.slope, e.sout, e.add, y.ptr(),
                        second.bits, second.alpha);
    }
    return y.result();
}

nb::object layer_norm(const AnyArray& x, const AnyArray& gamma, const AnyArray& beta, double eps,
                      bool silu, const std::optional<nb::object>& out) {
    if (x.ndim() < 1) fail("x must have at least 1 dimension");
    std::vector<int64_t> any(x.ndim(), -1);
    const auto* xp = static_cast<const float*>(check(x, "x", Kind::F32, any));
    const int64_t C = x.shape(x.ndim() - 1);
    if (C < 1) fail("x must have at least 1 channel");
    const auto* gp = static_cast<const float*>(check(gamma, "gamma", Kind::F32, {C}));
    const auto* bp = static_cast<const float*>(check(beta, "beta", Kind::F32, {C}));
    std::vector<size_t> shape(x.ndim());
    for (size_t i = 0; i < x.ndim(); ++i) shape[i] = x.shape(i);
    const int64_t P = static_cast<int64_t>(x.size()) / C;
    const Output y(out, shape, xp, "x");
    {
        nb::gil_scoped_release release;
        bk::layer_norm(xp, P, C, gp, bp, static_cast<float>(eps), silu, y.ptr());
    }
    return y.result();
}

nb::object dense_conv(const AnyArray& x, const AnyArray& weight, const std::optional<AnyArray>& bias,
                      int64_t stride, const std::optional<AnyArray>& x2,
                      const std::optional<AnyArray>& add, const std::optional<nb::object>& out) {
    if (stride != 1 && stride != 2) fail("stride must be 1 or 2");
    const auto* xp = static_cast<const float*>(check(x, "x", Kind::F32, {-1, -1, -1, -1}));
    const int64_t N = x.shape(0), H = x.shape(1), W = x.shape(2), C1 = x.shape(3);
    const float* x2p = nullptr;
    int64_t Cin = C1;
    if (x2) {
        x2p = static_cast<const float*>(check(*x2, "x2", Kind::F32, {N, H, W, -1}));
        Cin += x2->shape(3);
    }
    const auto* wp = static_cast<const float*>(check(weight, "weight", Kind::F32, {-1, -1, Cin, -1}));
    const int64_t k = weight.shape(0), Cout = weight.shape(3);
    if ((k != 1 && k != 3) || static_cast<int64_t>(weight.shape(1)) != k)
        fail("weight must be float32[k, k, Cin, Cout] with k = 1 or 3, got shape " + shape_str(weight));
    if (Cout < 1 || Cin < 1) fail("dense_conv needs at least one input and one output channel");
    const float* bp = bias ? static_cast<const float*>(check(*bias, "bias", Kind::F32, {Cout})) : nullptr;
    const int64_t Ho = H > 0 ? (H - 1) / stride + 1 : 0, Wo = W > 0 ? (W - 1) / stride + 1 : 0;
    const float* ap = add ? static_cast<const float*>(check(*add, "add", Kind::F32, {N, Ho, Wo, Cout})) : nullptr;
    const Output y(out, {size_t(N), size_t(Ho), size_t(Wo), size_t(Cout)}, ap, "add");
    {
        nb::gil_scoped_release release;
        bk::dense_conv(xp, x2p, N, H, W, C1, Cin, wp, k, Cout, bp, stride, ap, y.ptr());
    }
    return y.result();
}

nb::object branch(const AnyArray& x, const AnyArray& down, const AnyArray& up, const AnyArray& row,
                  const AnyArray& col, const AnyArray& val, int64_t stride,
                  const std::optional<AnyArray>& x2, const std::optional<AnyArray>& add,
                  const std::optional<nb::object>& out) {
    if (stride != 1 && stride != 2) fail("stride must be 1 or 2");
    const auto* xp = static_cast<const float*>(check(x, "x", Kind::F32, {-1, -1, -1, -1}));
    const int64_t N = x.shape(0), H = x.shape(1), W = x.shape(2), C1 = x.shape(3);
    const float* x2p = nullptr;
    int64_t Cin = C1;
    if (x2) {
        x2p = static_cast<const float*>(check(*x2, "x2", Kind::F32, {N, H, W, -1}));
        Cin += x2->shape(3);
    }
    const auto* dp = static_cast<const float*>(check(down, "down", Kind::F32, {-1, Cin}));
    const int64_t rank = down.shape(0);
    const auto* upp = static_cast<const float*>(check(up, "up", Kind::F32, {-1, rank}));
    const int64_t Cout = up.shape(0);
    if (row.dtype() != nb::dtype<int32_t>() || col.dtype() != nb::dtype<int32_t>())
        fail("row and col must be int32");
    if (row.ndim() != 1 || static_cast<int64_t>(row.shape(0)) != Cout + 1 || !c_contiguous(row))
        fail("row must be a C-contiguous int32[Cout + 1]");
    if (col.ndim() != 1 || !c_contiguous(col)) fail("col must be a C-contiguous int32[nnz]");
    const int64_t nnz = col.shape(0);
    const auto* vp = static_cast<const float*>(check(val, "val", Kind::F32, {nnz}));
    const auto* rp = static_cast<const int32_t*>(row.data());
    if (rp[Cout] != nnz) fail("row[Cout] must be the number of entries of col and val");
    const int64_t Ho = H > 0 ? (H - 1) / stride + 1 : 0, Wo = W > 0 ? (W - 1) / stride + 1 : 0;
    const float* ap = add ? static_cast<const float*>(check(*add, "add", Kind::F32, {N, Ho, Wo, Cout})) : nullptr;
    const Output y(out, {size_t(N), size_t(Ho), size_t(Wo), size_t(Cout)}, ap, "add");
    {
        nb::gil_scoped_release release;
        bk::branch(xp, x2p, N, H, W, C1, Cin, stride, dp, upp, rank, rp,
                   static_cast<const int32_t*>(col.data()), vp, Cout, ap, y.ptr());
    }
    return y.result();
}

nb::tuple norm_branch(const AnyArray& x, const AnyArray& gamma, const AnyArray& beta, double eps,
                      bool silu, const std::optional<AnyArray>& shift, const AnyArray& down,
                      const AnyArray& up, const AnyArray& row, const AnyArray& col,
                      const AnyArray& val, const std::optional<AnyArray>& add,
                      const std::optional<nb::object>& out) {
    const auto* xp = static_cast<const float*>(check(x, "x", Kind::F32, {-1, -1, -1, -1}));
    const int64_t N = x.shape(0), H = x.shape(1), W = x.shape(2), Cin = x.shape(3);
    if (Cin < 1) fail("x must have at least 1 channel");
    const auto* gp = static_cast<const float*>(check(gamma, "gamma", Kind::F32, {Cin}));
    const auto* bp = static_cast<const float*>(check(beta, "beta", Kind::F32, {Cin}));
    const float* sp = shift ? static_cast<const float*>(check(*shift, "shift", Kind::F32, {Cin})) : nullptr;
    const auto* dp = static_cast<const float*>(check(down, "down", Kind::F32, {-1, Cin}));
    const int64_t rank = down.shape(0);
    const auto* upp = static_cast<const float*>(check(up, "up", Kind::F32, {-1, rank}));
    const int64_t Cout = up.shape(0);
    if (row.dtype() != nb::dtype<int32_t>() || col.dtype() != nb::dtype<int32_t>())
        fail("row and col must be int32");
    if (row.ndim() != 1 || static_cast<int64_t>(row.shape(0)) != Cout + 1 || !c_contiguous(row))
        fail("row must be a C-contiguous int32[Cout + 1]");
    if (col.ndim() != 1 || !c_contiguous(col)) fail("col must be a C-contiguous int32[nnz]");
    const int64_t nnz = col.shape(0);
    const auto* vp = static_cast<const float*>(check(val, "val", Kind::F32, {nnz}));
    const auto* rp = static_cast<const int32_t*>(row.data());
    if (rp[Cout] != nnz) fail("row[Cout] must be the number of entries of col and val");
    const float* ap = add ? static_cast<const float*>(check(*add, "add", Kind::F32, {N, H, W, Cout})) : nullptr;
    const Output y(out, {size_t(N), size_t(H), size_t(W), size_t(Cout)}, ap, "add");
    const size_t Cw = static_cast<size_t>(words_for(Cin));
    checked_count("bits", {N, H, W, int64_t(Cw)});
    auto [bits, bits_owner] = alloc<uint64_t>(N * H * W * Cw);
    auto [alpha, alpha_owner] = alloc<float>(N * H * W);
    {
        nb::gil_scoped_release release;
        bk::norm_branch(xp, N, H, W, Cin, gp, bp, static_cast<float>(eps), silu, sp, dp, upp, rank,
                        rp, static_cast<const int32_t*>(col.data()), vp, Cout, ap, y.ptr(), bits,
                        alpha);
    }
    OutU64 b(bits, {size_t(N), size_t(H), size_t(W), Cw}, bits_owner);
    OutF32 al(alpha, {size_t(N), size_t(H), size_t(W)}, alpha_owner);
    nb::object bits_arr = nb::cast(b).attr("view")(nb::module_::import_("numpy").attr("uint64"));
    return nb::make_tuple(y.result(), bits_arr, al);
}

nb::object window_attention(const AnyArray& qkv, const AnyArray& bias, int64_t heads, int64_t window,
                            int64_t shift, double scale, const std::optional<nb::object>& out) {
    const auto* qp = static_cast<const float*>(check(qkv, "qkv", Kind::F32, {-1, -1, -1, -1}));
    const int64_t N = qkv.shape(0), H = qkv.shape(1), W = qkv.shape(2), C3 = qkv.shape(3);
    if (C3 % 3 != 0) fail("qkv must have 3 * C channels, got shape " + shape_str(qkv));
    size_arg("heads", heads, 1);
    size_arg("window", window, 1);
    if (window > (int64_t{1} << 20))
        too_large("window = " + std::to_string(window) + ": window^2 tokens exceed the kernels' limit of " + kLimit);
    if (shift < 0 || shift >= window) fail("shift must be in [0, window)");
    const int64_t T = window * window;
    const auto* bp = static_cast<const float*>(check(bias, "bias", Kind::F32, {heads, T, T}));
    const Output y(out, {size_t(N), size_t(H), size_t(W), size_t(C3 / 3)}, nullptr, "qkv");
    float* yp = y.ptr();
    if (qp < yp + N * H * W * (C3 / 3) && yp < qp + N * H * W * C3) fail("out must not overlap qkv");
    {
        nb::gil_scoped_release release;
        bk::window_attention(qp, bp, N, H, W, C3 / 3, heads, window, shift,
                             static_cast<float>(scale), yp);
    }
    return y.result();
}

nb::object gelu(const AnyArray& x, const std::optional<nb::object>& out) {
    std::vector<int64_t> any(x.ndim(), -1);
    const auto* xp = static_cast<const float*>(check(x, "x", Kind::F32, any));
    std::vector<size_t> shape(x.ndim());
    for (size_t i = 0; i < x.ndim(); ++i) shape[i] = x.shape(i);
    const Output y(out, shape, xp, "x");
    {
        nb::gil_scoped_release release;
        bk::gelu(xp, static_cast<int64_t>(x.size()), y.ptr());
    }
    return y.result();
}

nb::tuple one_step_input(const AnyArray& lr, const std::optional<AnyArray>& eps, double noise_scale,
                         double input_scale, int64_t height, int64_t width) {
    const auto* lp = static_cast<const float*>(check(lr, "lr", Kind::F32, {-1, -1, -1, -1}));
    const int64_t N = lr.shape(0), h = lr.shape(1), w = lr.shape(2), C = lr.shape(3);
    if (h < 1 || w < 1 || C < 1 || height < h || width < w)
        fail("one_step_input needs a non-empty lr no larger than (height, width), got shape " +
             shape_str(lr));
    size_arg("height", height, 1);
    size_arg("width", width, 1);
    checked_count("x", {N, height, width, 17, C});  // z is smaller
    const float* ep = eps ? static_cast<const float*>(check(*eps, "eps", Kind::F32, {16 * C, h, w})) : nullptr;
    auto [x, xo] = alloc<float>(static_cast<size_t>(N * height * width * 17 * C));
    auto [z, zo] = alloc<float>(static_cast<size_t>(N * height * width * 16 * C));
    {
        nb::gil_scoped_release release;
        bk::one_step_input(lp, ep, N, h, w, C, static_cast<float>(noise_scale),
                           static_cast<float>(input_scale), height, width, x, z);
    }
    const size_t xs[4] = {size_t(N), size_t(height), size_t(width), size_t(17 * C)};
    const size_t zs[4] = {size_t(N), size_t(height), size_t(width), size_t(16 * C)};
    return nb::make_tuple(OutF32(x, 4, xs, xo), OutF32(z, 4, zs, zo));
}

nb::object latent_image(const AnyArray& x0, int64_t height, int64_t width,
                        const std::optional<nb::object>& out) {
    const auto* xp = static_cast<const float*>(check(x0, "x0", Kind::F32, {-1, -1, -1, -1}));
    const int64_t N = x0.shape(0), Hp = x0.shape(1), Wp = x0.shape(2), Cl = x0.shape(3);
    if (Cl % 16 != 0 || Cl == 0) fail("x0 must have 16 C channels, got shape " + shape_str(x0));
    if (height < 0 || width < 0 || height > Hp || width > Wp)
        fail("(height, width) must fit in x0, got shape " + shape_str(x0));
    const int64_t C = Cl / 16;
    const Output y(out, {size_t(N), size_t(C), size_t(4 * height), size_t(4 * width)}, nullptr, "x0");
    if (out && xp < y.ptr() + N * C * 16 * height * width && y.ptr() < xp + N * Hp * Wp * Cl)
        fail("out must not overlap x0");
    {
        nb::gil_scoped_release release;
        bk::latent_image(xp, N, Hp, Wp, C, height, width, y.ptr());
    }
    return y.result();
}

nb::tuple position_uniforms(uint32_t seed0, uint32_t seed1, int64_t top, int64_t left,
                            int64_t height, int64_t width, int64_t channels) {
    if (height < 0 || width < 0 || channels < 0) fail("height, width and channels must be >= 0");
    const size_t n = static_cast<size_t>(checked_count("u1", {channels, height, width}));
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    if (top > kMax - height || left > kMax - width)
        too_large("top + height and left + width must fit int64, got top " + std::to_string(top) +
                  ", left " + std::to_string(left));
    auto [u1, o1] = alloc<float>(n);
    auto [u2, o2] = alloc<float>(n);
    {
        nb::gil_scoped_release release;
        bk::position_uniforms(seed0, seed1, top, left, height, width, channels, u1, u2);
    }
    const size_t shape[3] = {size_t(channels), size_t(height), size_t(width)};
    return nb::make_tuple(OutF32(u1, 3, shape, o1), OutF32(u2, 3, shape, o2));
}

}  // namespace

NB_MODULE(_bitkernels, m) {
    m.doc() =
        "XNOR-popcount kernels of the BiMaCoSR upscaler (see kernels/README.md).\n\n"
        "Layout: activations NHWC float32; sign bits packed along channels into 64-bit "
        "little-endian words, bit j of word w = sign of channel 64w+j, 1 = negative (x < 0), "
        "pad bits 0. 3x3 weights: uint64[Cout, 3, 3, ceil(Cin/64)], GEMM weights "
        "uint64[Nout, ceil(K/64)], each prepared once per layer for the active kernel "
        "(prepare_conv3x3_weights / prepare_gemm_weights).";

    nb::class_<bk::PreparedWeights>(
        m, "PreparedWeights",
        "A layer's sign-bit weights prepared once for one kernel (its own layout), made by "
        "prepare_conv3x3_weights / prepare_gemm_weights for the kernel active then. Immutable "
        "(copy and deepcopy return the object itself). binary_conv3x3 / binary_gemm reject it "
        "(ValueError) while another kernel is active: after set_kernel(), prepare again.")
        .def_prop_ro("kernel", &bk::PreparedWeights::kernel_name, "The kernel they are prepared for.")
        .def_prop_ro("cin", &bk::PreparedWeights::cin, "Input channels (K for GEMM weights).")
        .def_prop_ro("out_features", &bk::PreparedWeights::rows, "Output channels.")
        .def_prop_ro("taps", &bk::PreparedWeights::taps, "9 for 3x3 conv weights, 1 for GEMM weights.")
        .def("__copy__", [](nb::handle self) { return nb::borrow(self); })
        .def("__deepcopy__", [](nb::handle self, nb::handle) { return nb::borrow(self); }, "memo"_a)
        .def("__repr__", [](const bk::PreparedWeights& w) {
            return "PreparedWeights(kernel='" + w.kernel_name() + "', " +
                   (w.taps() == 9 ? "conv3x3" : "gemm") + ", cin=" + std::to_string(w.cin()) +
                   ", out_features=" + std::to_string(w.rows()) + ")";
        });

    m.def("prepare_conv3x3_weights", &prepare_conv3x3_weights, "wbits"_a, "cin"_a,
          "prepare_conv3x3_weights(wbits: uint64[Cout,3,3,ceil(cin/64)], cin) -> PreparedWeights\n\n"
          "The 3x3 conv weights repacked once for the active kernel (pad bits must be 0), for "
          "binary_conv3x3's wbits.");
    m.def("prepare_gemm_weights", &prepare_gemm_weights, "wbits"_a, "k"_a,
          "prepare_gemm_weights(wbits: uint64[Nout,ceil(k/64)], k) -> PreparedWeights\n\n"
          "The GEMM (1x1 conv, linear) weights repacked once for the active kernel (pad bits "
          "must be 0), for binary_gemm's wbits.");
    m.def("pack_activations", &pack_activations, "x"_a, "x2"_a.none() = nb::none(),
          "shift"_a.none() = nb::none(), "bases"_a = 1,
          "pack_activations(x: float32[N,H,W,C], x2=None, shift=None, bases=1) -> (bits: "
          "uint64[N,H,W,ceil(C/64)], alpha: float32[N,H,W]), with bases=2 -> (bits, alpha, "
          "bits2, alpha2) of the same shapes\n\nSign bits along channels "
          "(1 = x < 0) and alpha = mean |x| over the C channels.\nx2 (float32[N,H,W,C2], x's C "
          "a multiple of 64): pack the channel concatenation [x, x2] (C = C1 + C2) without "
          "materializing it; bit-identical.\nshift (float32[C], C-contiguous; with x2 C = C1 + "
          "C2, x's thresholds first): per-channel activation threshold; packs d = x - shift "
          "(float32) instead of x: bit 1 iff d < 0 (x == shift packs as 0), alpha = mean |d|.\n"
          "bases=2: also the second activation base, the residual r = d - alpha * s (s = -1 "
          "where bits has 1, else +1; float32: d + alpha or d - alpha) packed the same way: "
          "bits2 (1 = r < 0) and alpha2 = mean |r| over the C channels. bits and alpha are "
          "those of bases=1.");
    m.def("binary_conv3x3", &binary_conv3x3, "bits"_a, "alpha"_a, "wbits"_a, "cin"_a, "beta"_a,
          "bias"_a.none() = nb::none(), "stride"_a = 1, "rprelu"_a.none() = nb::none(),
          "add"_a.none() = nb::none(), "out"_a.none() = nb::none(),
          "bits2"_a.none() = nb::none(), "alpha2"_a.none() = nb::none(),
          "Binary 3x3 conv, padding 1, stride 1 or 2 -> float32[N,Ho,Wo,Cout]:\n"
          "y = beta[o] * sum_t alpha[p*s+t] * (cin - 2*popcount(x[p*s+t] ^ w[o,t])) + bias[o]; "
          "then optional RPReLU (shift_in, slope, shift_out), then optional y += add.\n"
          "wbits: PreparedWeights (prepare_conv3x3_weights for cin, the active kernel), or "
          "uint64[Cout,3,3,ceil(cin/64)] prepared for this call only.\n"
          "out: write y there and return it (may be add itself: in place) instead of a new array.\n"
          "bits2, alpha2 (shapes of bits, alpha; both or neither): a second activation base "
          "(pack_activations(..., bases=2)) with the same weights: y = beta[o] * sum_t "
          "(alpha[q] * (cin - 2*popcount(x[q] ^ w[o,t])) + alpha2[q] * (cin - 2*popcount(x2[q] "
          "^ w[o,t]))) + bias[o], q = p*s+t, then the same epilogue.");
    m.def("binary_gemm", &binary_gemm, "bits"_a, "alpha"_a, "wbits"_a, "k"_a, "beta"_a,
          "bias"_a.none() = nb::none(), "rprelu"_a.none() = nb::none(), "add"_a.none() = nb::none(),
          "out"_a.none() = nb::none(), "bits2"_a.none() = nb::none(),
          "alpha2"_a.none() = nb::none(),
          "Binary GEMM -> float32[M,Nout]: y = alpha[m]*beta[o]*(k - 2*popcount(x[m]^w[o])) + "
          "bias[o]; then optional RPReLU, then optional y += add.\n"
          "wbits: PreparedWeights (prepare_gemm_weights for k, the active kernel), or "
          "uint64[Nout,ceil(k/64)] prepared for this call only.\n"
          "out: write y there and return it (may be add itself: in place) instead of a new array.\n"
          "bits2, alpha2 (shapes of bits, alpha; both or neither): a second activation base "
          "with the same weights: y = beta[o] * (alpha[m]*(k - 2*popcount(x[m]^w[o])) + "
          "alpha2[m]*(k - 2*popcount(x2[m]^w[o]))) + bias[o], then the same epilogue.");
    m.def("layer_norm", &layer_norm, "x"_a, "gamma"_a, "beta"_a, "eps"_a, "silu"_a = false,
          "out"_a.none() = nb::none(),
          "layer_norm(x: float32[..., C], gamma, beta: float32[C], eps, silu=False, out=None) -> "
          "float32 like x\n\nLayerNorm over the last axis (biased variance), then x * sigmoid(x) "
          "if silu.\nout: write there and return it (may be x itself: in place).");
    m.def("dense_conv", &dense_conv, "x"_a, "weight"_a, "bias"_a.none() = nb::none(),
          "stride"_a = 1, "x2"_a.none() = nb::none(), "add"_a.none() = nb::none(),
          "out"_a.none() = nb::none(),
          "dense_conv(x: float32[N,H,W,C1], weight: float32[k,k,Cin,Cout], bias=None, stride=1, "
          "x2=None, add=None, out=None) -> float32[N,Ho,Wo,Cout]\n\nFull-precision k x k conv "
          "(k = 1 or 3, 'same' zero padding, stride 1 or 2, Ho = (H-1)//stride + 1) of x, or of "
          "the channel concatenation [x, x2] (x2: float32[N,H,W,Cin-C1]) without materializing "
          "it; then + add. A 1x1 conv is a GEMM of the pixels (tokens) with weight[0, 0].\n"
          "out: write there and return it (may be add itself: in place).");
    m.def("branch", &branch, "x"_a, "down"_a, "up"_a, "row"_a, "col"_a, "val"_a, "stride"_a = 1,
          "x2"_a.none() = nb::none(), "add"_a.none() = nb::none(), "out"_a.none() = nb::none(),
          "branch(x: float32[N,H,W,C1], down: float32[r,Cin], up: float32[Cout,r], row: "
          "int32[Cout+1], col: int32[nnz], val: float32[nnz], stride=1, x2=None, add=None, "
          "out=None) -> float32[N,Ho,Wo,Cout]\n\nA binarized layer's full-precision branch in "
          "structured form, 1x1 at the stride on x (or the concatenation [x, x2]): "
          "up @ (down @ x) + S x with S the CSR matrix (row, col, val); then + add. r may be 0.\n"
          "out: write there and return it (may be add itself: in place).");
    m.def("norm_branch", &norm_branch, "x"_a, "gamma"_a, "beta"_a, "eps"_a, "silu"_a,
          "shift"_a.none(), "down"_a, "up"_a, "row"_a, "col"_a, "val"_a,
          "add"_a.none() = nb::none(), "out"_a.none() = nb::none(),
          "norm_branch(x: float32[N,H,W,C], gamma, beta: float32[C], eps, silu, shift: float32[C] | "
          "None, down, up, row, col, val, add=None, out=None) -> (y: float32[N,H,W,Cout], bits: "
          "uint64[N,H,W,ceil(C/64)], alpha: float32[N,H,W])\n\nA binarized layer's inputs from "
          "x in one pass: h = LayerNorm(x) (then SiLU if silu), y = branch(h) (+ add), and "
          "(bits, alpha) = pack_activations(h, shift=shift); bit-identical to those calls in "
          "turn, h never written.");
    m.def("window_attention", &window_attention, "qkv"_a, "bias"_a, "heads"_a, "window"_a,
          "shift"_a, "scale"_a, "out"_a.none() = nb::none(),
          "window_attention(qkv: float32[N,H,W,3C], bias: float32[heads,T,T], heads, window, shift, "
          "scale, out=None) -> float32[N,H,W,C]\n\nSwin attention in window x window tiles (T = "
          "window^2 tokens) of the map rolled by -shift: softmax(scale * q k^T + bias + mask) v "
          "per head (d = C / heads channels each), the mask separating what the roll brought "
          "together; outputs at the tokens' own pixels.");
    m.def("gelu", &gelu, "x"_a, "out"_a.none() = nb::none(),
          "gelu(x: float32[...], out=None) -> float32 like x: 0.5 x (1 + erf(x / sqrt(2))).\n"
          "out: write there and return it (may be x itself: in place).");
    m.def("one_step_input", &one_step_input, "lr"_a, "eps"_a.none(), "noise_scale"_a,
          "input_scale"_a, "height"_a, "width"_a,
          "one_step_input(lr: float32[N,h,w,C], eps: float32[16C,h,w] | None, noise_scale, "
          "input_scale, height, width) -> (x: float32[N,height,width,17C], z: "
          "float32[N,height,width,16C])\n\nThe one-step model's input: z = PixelUnshuffle4 of "
          "torch's bicubic x4 of lr (align_corners=False), x = concat((z + noise_scale * eps) * "
          "input_scale, lr), both replicate-padded from (h, w) to (height, width).");
    m.def("latent_image", &latent_image, "x0"_a, "height"_a, "width"_a, "out"_a.none() = nb::none(),
          "latent_image(x0: float32[N,Hp,Wp,16C], height, width, out=None) -> "
          "float32[N,C,4*height,4*width]\n\nclamp((PixelShuffle4(x0[:, :height, :width]) + 1) / 2, "
          "0, 1), channels first.");
    m.def("position_uniforms", &position_uniforms, "seed0"_a, "seed1"_a, "top"_a, "left"_a,
          "height"_a, "width"_a, "channels"_a,
          "position_uniforms(seed0, seed1, top, left, height, width, channels) -> (u1, u2: "
          "float32[C,H,W])\n\nThe uniforms of model/noise.py: seed_s = (2*seed + s) mod 2^32, "
          "lowbias32 chained over seed_s, row, column, channel; (float(h >> 8) + 0.5) / 2^24.");
    m.def("cpu_features", &bk::cpu_features, "CPU (and OS) features relevant to the kernels.");
    m.def("available_kernels", &bk::available_kernels, "Kernels usable on this CPU and build.");
    m.def("kernel_name", &bk::kernel_name, "The active kernel: avx512, avx2, neon or reference.");
    m.def("set_kernel", &bk::set_kernel, "name"_a,
          "Select 'auto', 'reference', 'avx2', 'avx512' or 'neon' (ValueError if unavailable). "
          "Weights prepared before for another kernel must be prepared again.");
    m.def("set_num_threads", &bk::set_num_threads, "n"_a, "Threads of the private pool (1 to 1024).");
    m.def("get_num_threads", &bk::get_num_threads);

    const std::string warning = bk::init_kernel_from_env();
    if (!warning.empty() && PyErr_WarnEx(PyExc_RuntimeWarning, warning.c_str(), 1) != 0)
        throw nb::python_error();
}
