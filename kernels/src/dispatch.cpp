// Run-time ISA dispatch, the threading (host OpenMP team or private pool) and the top-level
// kernel drivers.
// Compiled with baseline flags only: nothing here may execute AVX/NEON instructions itself; the
// vector code is reached only through KernelImpl tables of kernels the CPU (and OS) support.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "api.h"
#include "bitkernels.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)
#define BK_X86 1
#include <emmintrin.h>  // _mm_pause (SSE2: baseline on x86-64)
#if defined(_MSC_VER)
#include <intrin.h>
#include <immintrin.h>
#else
#include <cpuid.h>
#endif
#endif

#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#if !defined(_WIN32)
#include <pthread.h>
#endif

#if defined(__linux__)
#include <dlfcn.h>
#endif

namespace bk {
namespace {

// ---------------------------------------------------------------------------------------------
// CPU features
struct Features {
    bool sse42 = false, popcnt = false, avx = false, avx2 = false, fma = false;
    bool avx512f = false, avx512bw = false, avx512vpopcntdq = false, neon = false;
};

#if defined(BK_X86)
void cpuid(int leaf, int sub, unsigned r[4]) {
#if defined(_MSC_VER)
    int v[4];
    __cpuidex(v, leaf, sub);
    for (int i = 0; i < 4; ++i) r[i] = static_cast<unsigned>(v[i]);
#else
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

uint64_t xgetbv0() {
#if defined(_MSC_VER)
    return _xgetbv(0);
#else
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
#endif
}

#if defined(__APPLE__)
bool sysctl_flag(const char* name) {
    int v = 0;
    size_t len = sizeof(v);
    return sysctlbyname(name, &v, &len, nullptr, 0) == 0 && v != 0;
}
#endif
#endif  // BK_X86

Features detect() {
    Features f;
#if defined(BK_X86)
    unsigned r[4];
    cpuid(0, 0, r);
    const unsigned max_leaf = r[0];
    if (max_leaf < 1) return f;
    cpuid(1, 0, r);
    const unsigned ecx1 = r[2];
    f.sse42 = (ecx1 >> 20) & 1;
    f.popcnt = (ecx1 >> 23) & 1;
    const bool osxsave = (ecx1 >> 27) & 1;
    const bool cpu_avx = (ecx1 >> 28) & 1;
    const bool cpu_fma = (ecx1 >> 12) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const bool os_ymm = (xcr0 & 0x6) == 0x6;          // SSE + AVX state
    bool os_zmm = (xcr0 & 0xE6) == 0xE6;              // + opmask, ZMM_Hi256, Hi16_ZMM state
    unsigned ebx7 = 0, ecx7 = 0;
    if (max_leaf >= 7) {
        cpuid(7, 0, r);
        ebx7 = r[1];
        ecx7 = r[2];
    }
#if defined(__APPLE__)
    // macOS enables AVX-512 state lazily on first use; XCR0 does not show it before that.
    if (os_ymm && sysctl_flag("hw.optional.avx512f")) os_zmm = true;
#endif
    f.avx = cpu_avx && os_ymm;
    f.fma = f.avx && cpu_fma;
    f.avx2 = f.avx && ((ebx7 >> 5) & 1);
    f.avx512f = f.avx2 && os_zmm && ((ebx7 >> 16) & 1);
    f.avx512bw = f.avx512f && ((ebx7 >> 30) & 1);
    f.avx512vpopcntdq = f.avx512f && ((ecx7 >> 14) & 1);
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
    f.neon = true;  // Advanced SIMD is mandatory on AArch64
#endif
    return f;
}

const Features& features() {
    static const Features f = detect();
    return f;
}

// ---------------------------------------------------------------------------------------------
// Kernel registry
std::vector<const KernelImpl*> usable_kernels() {  // best first
    std::vector<const KernelImpl*> v;
    const Features& f = features();
#if defined(BK_HAVE_AVX512)
    if (f.avx512f && f.avx512bw && f.avx512vpopcntdq && f.avx2 && f.fma && f.popcnt)
        v.push_back(&kImplAvx512);
#endif
#if defined(BK_HAVE_AVX2)
    if (f.avx2 && f.fma && f.popcnt) v.push_back(&kImplAvx2);
#endif
#if defined(BK_HAVE_NEON)
    if (f.neon) v.push_back(&kImplNeon);
#endif
    (void) f;
    v.push_back(&kImplReference);
    return v;
}

std::atomic<const KernelImpl*> g_kernel{nullptr};

const KernelImpl* current() {
    const KernelImpl* k = g_kernel.load(std::memory_order_acquire);
    if (!k) {
        k = usable_kernels().front();
        g_kernel.store(k, std::memory_order_release);
    }
    return k;
}

// ---------------------------------------------------------------------------------------------
// Private thread pool, used where no host OpenMP team is found (see host_team below): the caller
// runs tasks too; n-1 workers sleep on a condition variable. Not OpenMP itself on purpose (a
// second OpenMP runtime next to torch's crashes on macOS).
int default_threads() {
    const unsigned hc = std::thread::hardware_concurrency();
    return hc > 0 ? static_cast<int>(hc) : 1;
}

std::atomic<int> g_threads{default_threads()};

inline void cpu_relax() {
#if defined(BK_X86)
    _mm_pause();
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
    __asm__ volatile("yield");
#endif
}

// Workers and the waiting caller spin this long before blocking: kernels are called back to back
// (layer after layer), and a condition-variable wake-up costs tens of microseconds.
constexpr std::chrono::microseconds kSpin{100};

class Pool {
  public:
    // Runs fn(0..ntasks-1); returns when all are done. Concurrent callers (other Python
    // threads) do not wait for the pool: they run their tasks serially on their own thread.
    void run(int64_t ntasks, const std::function<void(int64_t)>& fn) {
        if (ntasks <= 0) return;
        std::unique_lock<std::mutex> run_lock(run_mu_, std::try_to_lock);
        const int want = g_threads.load();
        if (!run_lock.owns_lock() || want <= 1 || ntasks == 1) {
            for (int64_t i = 0; i < ntasks; ++i) fn(i);
            return;
        }
        if (static_cast<int>(workers_.size()) != want - 1) resize(want - 1);
        fn_ = &fn;
        ntasks_ = ntasks;
        next_.store(0);
        pending_.store(static_cast<int>(workers_.size()));
        generation_.fetch_add(1);  // seq_cst: publishes the job, ordered before reading sleepers_
        if (sleepers_.load() > 0) {
            std::lock_guard<std::mutex> lk(mu_);
            cv_work_.notify_all();
        }
        for (int64_t i; (i = next_.fetch_add(1)) < ntasks;) fn(i);
        // Wait for every worker to be done with this job (not just for the tasks), so that the
        // next job cannot be mistaken for this one.
        const auto t0 = std::chrono::steady_clock::now();
        for (unsigned spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
            cpu_relax();
            if ((spins & 255) == 255 && std::chrono::steady_clock::now() - t0 > kSpin)
                std::this_thread::yield();
        }
        fn_ = nullptr;
    }

    ~Pool() { resize(0); }

  private:
    void resize(int n) {
        if (!workers_.empty()) {
            stop_.store(true);
            {
                std::lock_guard<std::mutex> lk(mu_);
                cv_work_.notify_all();
            }
            for (auto& t : workers_) t.join();
            workers_.clear();
            stop_.store(false);
        }
        const uint64_t gen = generation_.load();
        for (int i = 0; i < n; ++i) workers_.emplace_back([this, gen] { worker(gen); });
    }

    void worker(uint64_t seen) {
        for (;;) {
            // spin for a new job, then sleep
            const auto t0 = std::chrono::steady_clock::now();
            unsigned spins = 0;
            while (generation_.load() == seen && !stop_.load()) {
                cpu_relax();
                if ((++spins & 255) == 0 && std::chrono::steady_clock::now() - t0 > kSpin) {
                    std::unique_lock<std::mutex> lk(mu_);
                    sleepers_.fetch_add(1);  // seq_cst: ordered before re-reading generation_
                    cv_work_.wait(lk, [&] { return generation_.load() != seen || stop_.load(); });
                    sleepers_.fetch_sub(1);
                    break;
                }
            }
            if (stop_.load()) return;
            seen = generation_.load();
            const std::function<void(int64_t)>* fn = fn_;
            const int64_t ntasks = ntasks_;
            for (int64_t i; (i = next_.fetch_add(1)) < ntasks;) (*fn)(i);
            pending_.fetch_sub(1, std::memory_order_release);
        }
    }

    std::mutex run_mu_;  // one parallel run at a time
    std::mutex mu_;      // only for sleeping workers
    std::condition_variable cv_work_;
    std::vector<std::thread> workers_;
    const std::function<void(int64_t)>* fn_ = nullptr;  // written before generation_ changes
    int64_t ntasks_ = 0;
    std::atomic<int64_t> next_{0};
    std::atomic<int> pending_{0};
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};
};

// The pool is created on first use and deliberately never destroyed (workers blocked at
// interpreter exit must not be joined from a static destructor). After fork() the child has no
// worker threads: the old pool is abandoned and a new one is made on next use.
std::atomic<Pool*> g_pool{nullptr};

// Set in a forked child: the host's OpenMP team (below) is not used there.
std::atomic<bool> g_forked{false};

#if !defined(_WIN32)
void after_fork_child() {
    g_pool.store(nullptr);
    g_forked.store(true);
}
#endif

void watch_fork() {
#if !defined(_WIN32)
    static const int registered = pthread_atfork(nullptr, nullptr, after_fork_child);
    (void) registered;
#endif
}

Pool& pool() {
    Pool* p = g_pool.load(std::memory_order_acquire);
    if (p) return *p;
    watch_fork();
    Pool* fresh = new Pool();
    if (!g_pool.compare_exchange_strong(p, fresh)) {
        delete fresh;  // has no workers yet
        return *p;
    }
    return *fresh;
}

// ---------------------------------------------------------------------------------------------
// The host's OpenMP team. Where the process has already loaded an OpenMP runtime (torch's
// libgomp on Linux), kernels run their tasks on its threads through `GOMP_parallel` (libgomp's
// ABI entry point, also exported by LLVM's and Intel's runtimes on Linux) instead of on the
// private pool. Two pools on the same cores fight: libgomp's workers spin for milliseconds after
// every torch op, so a private pool started right after one got about 2/3 of the cores
// (measured in the network on 2 cores: packing and kernels 1.5-2x slower than alone). Nothing is
// loaded here (RTLD_NOLOAD) and nothing links against OpenMP: without a runtime in the process,
// on Windows/macOS, or in a forked child (an OpenMP team does not survive fork), the private
// pool runs. The looked-up entry point is kept once found.
using TeamParallel = void (*)(void (*)(void*), void*, unsigned, unsigned);

TeamParallel host_team() {
#if defined(__linux__)
    if (g_forked.load(std::memory_order_relaxed)) return nullptr;
    static std::atomic<TeamParallel> found{nullptr};
    TeamParallel f = found.load(std::memory_order_acquire);
    if (f) return f;
    watch_fork();
    for (const char* name : {"libgomp.so.1", "libomp.so", "libiomp5.so"}) {
        void* lib = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);  // only if already loaded
        if (!lib) continue;
        f = reinterpret_cast<TeamParallel>(dlsym(lib, "GOMP_parallel"));
        if (f) {  // the handle stays open: the runtime is never unloaded under us
            found.store(f, std::memory_order_release);
            return f;
        }
        dlclose(lib);
    }
#endif
    return nullptr;
}

struct TeamJob {
    const std::function<void(int64_t)>* fn;
    int64_t ntasks;
    std::atomic<int64_t> next{0};
};

// Body of the OpenMP parallel region: every team thread takes tasks until none are left.
void team_worker(void* data) {
    TeamJob& job = *static_cast<TeamJob*>(data);
    for (int64_t i; (i = job.next.fetch_add(1)) < job.ntasks;) (*job.fn)(i);
}

// Runs fn(0..ntasks-1) on the host's OpenMP team if there is one, else on the private pool
// (tasks are taken dynamically either way, so each output is computed by exactly one thread).
void parallel_for(int64_t ntasks, const std::function<void(int64_t)>& fn) {
    const int threads = g_threads.load();
    if (ntasks <= 1 || threads <= 1) {
        for (int64_t i = 0; i < ntasks; ++i) fn(i);
        return;
    }
    if (const TeamParallel team = host_team()) {
        TeamJob job{&fn, ntasks};
        team(team_worker, &job, static_cast<unsigned>(std::min<int64_t>(threads, ntasks)), 0);
        return;
    }
    pool().run(ntasks, fn);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Number of tasks for `units` units of work costing `cost` each: enough for load balance
// (4 per thread), none smaller than ~`min_cost` of work, at most `units`.
int64_t task_count(int64_t units, double cost, double min_cost) {
    const int64_t t = g_threads.load();
    if (t <= 1 || units <= 1) return units > 0 ? 1 : 0;
    int64_t n = std::min<int64_t>(units, 4 * t);
    const int64_t by_cost = static_cast<int64_t>(static_cast<double>(units) * cost / min_cost);
    n = std::min(n, std::max<int64_t>(by_cost, 1));
    return n;
}

// Splits [0, units) into task_count(units, cost, min_cost) contiguous ranges of equal length
// (the last shorter) and runs fn(begin, end) for each in parallel_for.
void parallel_ranges(int64_t units, double cost, double min_cost,
                     const std::function<void(int64_t, int64_t)>& fn) {
    const int64_t ntasks = task_count(units, cost, min_cost);
    if (ntasks == 0) return;
    const int64_t per = ceil_div(units, ntasks);
    parallel_for(ceil_div(units, per), [&](int64_t i) {
        fn(i * per, std::min(units, (i + 1) * per));
    });
}

// The first 64-byte boundary in a vector of n + 64 / sizeof(T) elements: n of them follow it.
template <typename T>
T* first_aligned(std::vector<T>& v) {
    return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t{63});
}

// 64-byte aligned scratch buffer.
template <typename T>
struct Aligned {
    std::vector<T> store;
    T* ptr = nullptr;
    explicit Aligned(size_t n) : store(n + 64 / sizeof(T), T{}), ptr(first_aligned(store)) {}
};

uint64_t pad_mask(int64_t cin) {
    const int64_t r = cin & 63;
    return r == 0 ? ~uint64_t{0} : ((uint64_t{1} << r) - 1);
}

void check_weight_pad_bits(const uint64_t* w, int64_t rows, int64_t Cw, int64_t cin) {
    const uint64_t keep = pad_mask(cin);
    if (keep == ~uint64_t{0}) return;
    for (int64_t r = 0; r < rows; ++r)
        if (w[r * Cw + Cw - 1] & ~keep)
            throw std::invalid_argument(
                "weight bits have pad bits set (channels >= cin must pack as 0)");
}

struct Params {
    Aligned<float> buf;
    Epilogue ep{};
    Params(int64_t Cout, int64_t Cpad, const float* beta, const float* bias, const float* sin,
           const float* slope, const float* sout)
        : buf(static_cast<size_t>(5 * Cpad)) {
        float* b = buf.ptr;
        const float* src[5] = {beta, bias, sin, slope, sout};
        for (int i = 0; i < 5; ++i)
            if (src[i]) std::copy(src[i], src[i] + Cout, b + i * Cpad);
        ep.beta = b;
        ep.bias = b + Cpad;
        if (sin) {
            ep.shift_in = b + 2 * Cpad;
            ep.slope = b + 3 * Cpad;
            ep.shift_out = b + 4 * Cpad;
        }
    }
};

// Activations re-encoded for kernels that want it (prep_x), in parallel.
struct PrepX {
    Aligned<uint64_t> buf;
    const uint64_t* ptr;
    PrepX(const KernelImpl& k, const uint64_t* x, int64_t words)
        : buf(k.prep_x ? static_cast<size_t>(k.xprep * words) : 0), ptr(x) {
        if (!k.prep_x) return;
        uint64_t* d = buf.ptr;
        parallel_ranges(words, 4.0, 1 << 15,
                        [&](int64_t begin, int64_t end) { k.prep_x(x, begin, end, d); });
        ptr = d;
    }
};

const char* const kKnownNames[] = {"reference", "avx2", "avx512", "neon"};

}  // namespace

// ---------------------------------------------------------------------------------------------
std::vector<std::string> cpu_features() {
    const Features& f = features();
    std::vector<std::string> v;
    if (f.sse42) v.push_back("sse4.2");
    if (f.popcnt) v.push_back("popcnt");
    if (f.avx) v.push_back("avx");
    if (f.avx2) v.push_back("avx2");
    if (f.fma) v.push_back("fma");
    if (f.avx512f) v.push_back("avx512f");
    if (f.avx512bw) v.push_back("avx512bw");
    if (f.avx512vpopcntdq) v.push_back("avx512vpopcntdq");
    if (f.neon) v.push_back("neon");
    return v;
}

std::vector<std::string> available_kernels() {
    std::vector<std::string> v{"reference"};
    for (const KernelImpl* k : usable_kernels())
        if (k != &kImplReference) v.push_back(k->name);
    return v;
}

std::string kernel_name() { return current()->name; }

void set_kernel(const std::string& name) {
    if (name == "auto") {
        g_kernel.store(usable_kernels().front());
        return;
    }
    for (const KernelImpl* k : usable_kernels())
        if (name == k->name) {
            g_kernel.store(k);
            return;
        }
    for (const char* known : kKnownNames)
        if (name == known)
            throw std::invalid_argument("kernel '" + name +
                                        "' is not available on this CPU/build");
    throw std::invalid_argument("unknown kernel '" + name +
                                "' (expected auto, reference, avx2, avx512 or neon)");
}

std::string init_kernel_from_env() {
    const char* env = std::getenv("BIMACOSR_KERNEL");
    if (!env || !*env) return "";
    try {
        set_kernel(env);
    } catch (const std::exception& e) {
        set_kernel("auto");
        return std::string("BIMACOSR_KERNEL ignored: ") + e.what() + "; using '" + kernel_name() + "'";
    }
    return "";
}

void set_num_threads(int n) {
    if (n < 1 || n > kMaxThreads)
        throw std::invalid_argument("number of threads must be in [1, " +
                                    std::to_string(kMaxThreads) + "], got " + std::to_string(n));
    g_threads.store(n);
}

int get_num_threads() { return g_threads.load(); }

namespace {
// x alone holds all C channels (C1 == C); with x2, x holds the first C1 <= C, whole words.
void check_channel_split(const char* fn, const float* x2, int64_t C1, int64_t C) {
    if (x2 ? C1 % 64 != 0 || C1 > C : C1 != C)
        throw std::invalid_argument(
            std::string(fn) + ": " +
            (x2 ? "with x2, x's channels must be a multiple of 64 and at most the total"
                : "without x2, x must hold all channels") +
            " (x: " + std::to_string(C1) + ", total: " + std::to_string(C) + ")");
}
}  // namespace

void pack_activations(const float* x, const float* x2, int64_t P, int64_t C1, int64_t C,
                      const float* shift, uint64_t* bits, float* alpha) {
    check_channel_split("pack_activations", x2, C1, C);
    const KernelImpl& k = *current();
    PackArgs a{x, x2, shift, bits, alpha, P, C, C1, ceil_div(C, 64)};
    parallel_ranges(P, static_cast<double>(C), 1 << 16,
                    [&](int64_t begin, int64_t end) { k.pack(a, begin, end); });
}

void pack_second_base(const float* x, const float* x2, int64_t P, int64_t C1, int64_t C,
                      const float* shift, const uint64_t* bits, const float* alpha,
                      uint64_t* bits2, float* alpha2) {
    check_channel_split("pack_second_base", x2, C1, C);
    SecondBaseArgs a{x, x2, shift, bits, alpha, bits2, alpha2, P, C, C1, ceil_div(C, 64)};
    parallel_ranges(P, static_cast<double>(C), 1 << 16,
                    [&](int64_t begin, int64_t end) { pack_second_base_rows(a, begin, end); });
}

// ---------------------------------------------------------------------------------------------
PreparedWeights::PreparedWeights(const uint64_t* w, int64_t rows, int64_t taps, int64_t cin)
    : kernel_(current()), rows_(rows), taps_(taps), cin_(cin) {
    if (rows < 0 || taps < 1 || cin < 1)
        throw std::invalid_argument("weights: need rows >= 0, taps >= 1 and cin >= 1");
    const int64_t Cw = words();
    check_weight_pad_bits(w, rows * taps, Cw, cin);
    const KernelImpl& k = *kernel_;
    padded_rows_ = ceil_div(rows, k.group) * k.group;
    const int64_t size = k.repack ? k.repacked_size(padded_rows_, taps, Cw) : rows * taps * Cw;
    buffer_.resize(static_cast<size_t>(size) + 64 / sizeof(uint64_t));
    uint64_t* dst = first_aligned(buffer_);
    if (k.repack)
        k.repack(w, rows, taps, Cw, padded_rows_, dst);
    else
        std::copy(w, w + size, dst);
    data_ = dst;
}

std::string PreparedWeights::kernel_name() const { return kernel_->name; }

namespace {

// The kernel that runs prepared weights: theirs, which must be the active one.
const KernelImpl& kernel_for(const PreparedWeights& w, int64_t taps, const char* op) {
    if (w.taps() != taps)
        throw std::invalid_argument(std::string(op) + ": weights prepared with " +
                                    std::to_string(w.taps()) + " taps, expected " +
                                    std::to_string(taps));
    const KernelImpl& k = w.kernel();
    if (&k != current())
        throw std::invalid_argument(std::string(op) + ": weights prepared for kernel '" + k.name +
                                    "', but the active kernel is '" + current()->name +
                                    "': prepare them again");
    return k;
}

// The second activation base: both pointers or neither.
void check_second_base(const uint64_t* x2, const float* alpha2, const char* op) {
    if ((x2 == nullptr) != (alpha2 == nullptr))
        throw std::invalid_argument(std::string(op) +
                                    ": the second base needs both x2 and alpha2 (or neither)");
}

}  // namespace

void binary_conv3x3(const uint64_t* x, const float* alpha, const PreparedWeights& w, int64_t N,
                    int64_t H, int64_t W, int64_t stride, const float* beta, const float* bias,
                    const float* shift_in, const float* slope, const float* shift_out,
                    const float* add, float* out, const uint64_t* x2, const float* alpha2) {
    check_second_base(x2, alpha2, "binary_conv3x3");
    const KernelImpl& k = kernel_for(w, 9, "binary_conv3x3");
    const int64_t Cw = w.words(), Cout = w.rows(), Cpad = w.padded_rows();
    const int64_t Ho = H > 0 ? (H - 1) / stride + 1 : 0;
    const int64_t Wo = W > 0 ? (W - 1) / stride + 1 : 0;
    if (N * Ho * Wo * Cout == 0) return;
    Params params(Cout, Cpad, beta, bias, shift_in, slope, shift_out);
    const PrepX xs(k, x, N * H * W * Cw);
    std::optional<PrepX> xs2;  // the second base, re-encoded like x
    if (x2) xs2.emplace(k, x2, N * H * W * Cw);
    ConvArgs a{xs.ptr, alpha, w.data(), N, H, W, Cw, w.cin(), Cout, Cpad,
               stride, Ho, Wo, params.ep, add, out, xs2 ? xs2->ptr : nullptr, alpha2};
    const int64_t rows = N * Ho;
    const int64_t bases = x2 ? 2 : 1;
    const int64_t ntasks =
        task_count(rows, static_cast<double>(Wo * Cpad * 9 * Cw * bases), 1 << 17);
    const int64_t per_n = std::max<int64_t>(1, ceil_div(ntasks, N));  // tasks per image
    const int64_t rb = ceil_div(Ho, per_n);                           // rows per task
    const int64_t blocks = ceil_div(Ho, rb);
    parallel_for(N * blocks, [&](int64_t i) {
        const int64_t n = i / blocks, b = i % blocks;
        k.conv3x3(a, n, b * rb, std::min(Ho, (b + 1) * rb));
    });
}

void binary_gemm(const uint64_t* x, const float* alpha, const PreparedWeights& w, int64_t M,
                 const float* beta, const float* bias, const float* shift_in, const float* slope,
                 const float* shift_out, const float* add, float* out, const uint64_t* x2,
                 const float* alpha2) {
    check_second_base(x2, alpha2, "binary_gemm");
    const KernelImpl& k = kernel_for(w, 1, "binary_gemm");
    const int64_t Kw = w.words(), Nout = w.rows(), Cpad = w.padded_rows();
    if (M * Nout == 0) return;
    Params params(Nout, Cpad, beta, bias, shift_in, slope, shift_out);
    const PrepX xs(k, x, M * Kw);
    std::optional<PrepX> xs2;
    if (x2) xs2.emplace(k, x2, M * Kw);
    GemmArgs a{xs.ptr, alpha, w.data(), M, Kw, w.cin(), Nout, Cpad, params.ep, add, out,
               xs2 ? xs2->ptr : nullptr, alpha2};
    parallel_ranges(M, static_cast<double>(Cpad * Kw * (x2 ? 2 : 1)), 1 << 17,
                    [&](int64_t begin, int64_t end) { k.gemm(a, begin, end); });
}

void layer_norm(const float* x, int64_t P, int64_t C, const float* gamma, const float* beta,
                float eps, bool silu, float* out) {
    const KernelImpl& k = *current();
    NormArgs a{x, gamma, beta, out, P, C, eps, silu};
    parallel_ranges(P, static_cast<double>(C), 1 << 15,
                    [&](int64_t begin, int64_t end) { k.layer_norm(a, begin, end); });
}

void dense_conv(const float* x, const float* x2, int64_t N, int64_t H, int64_t W, int64_t C1,
                int64_t Cin, const float* w, int64_t k, int64_t Cout, const float* bias,
                int64_t stride, const float* add, float* out) {
    if ((k != 1 && k != 3) || (stride != 1 && stride != 2) || Cin < 1 || Cout < 1 ||
        C1 < 0 || C1 > Cin || (!x2 && C1 != Cin))
        throw std::invalid_argument("dense_conv: k 1 or 3, stride 1 or 2, 0 <= C1 <= Cin");
    const KernelImpl& kr = *current();
    const int64_t Ho = H > 0 ? (H - 1) / stride + 1 : 0, Wo = W > 0 ? (W - 1) / stride + 1 : 0;
    const int64_t P = N * Ho * Wo;
    if (P == 0) return;
    // The kernels' weight layout: output channels padded with zeros to whole vectors.
    const int64_t Cpad = ceil_div(Cout, kr.float_lanes) * kr.float_lanes;
    Aligned<float> wp(static_cast<size_t>(k * k * Cin * Cpad)), bp(static_cast<size_t>(Cpad));
    Aligned<float> zeros(static_cast<size_t>(Cin));
    for (int64_t r = 0; r < k * k * Cin; ++r)
        std::copy(w + r * Cout, w + (r + 1) * Cout, wp.ptr + r * Cpad);
    if (bias) std::copy(bias, bias + Cout, bp.ptr);
    DenseArgs a{x, x2, wp.ptr, bp.ptr, add, zeros.ptr, out,
                N, H, W, Cin, C1, Cout, Cpad, k, stride, Ho, Wo};
    parallel_ranges(P, static_cast<double>(k * k * Cin * Cpad), 1 << 18,
                    [&](int64_t begin, int64_t end) { kr.dense(a, begin, end); });
}

namespace {

// BranchArgs' normalization prologue (all null: none).
struct Prologue {
    const float* gamma = nullptr;
    const float* beta = nullptr;
    float eps = 0.0f;
    bool silu = false;
    const float* shift = nullptr;
    uint64_t* bits = nullptr;
    float* alpha = nullptr;
};

void run_branch(const float* x, const float* x2, int64_t N, int64_t H, int64_t W, int64_t C1,
                int64_t Cin, int64_t stride, const float* down, const float* up, int64_t rank,
                const int32_t* row, const int32_t* col, const float* val, int64_t Cout,
                const float* add, float* out, const Prologue& pro) {
    if ((stride != 1 && stride != 2) || Cin < 1 || Cout < 1 || rank < 0 || C1 < 0 || C1 > Cin ||
        (!x2 && C1 != Cin))
        throw std::invalid_argument("branch: stride 1 or 2, Cin, Cout >= 1, 0 <= C1 <= Cin");
    if (row[0] != 0) throw std::invalid_argument("branch: row[0] must be 0");
    for (int64_t o = 0; o < Cout; ++o)
        if (row[o + 1] < row[o]) throw std::invalid_argument("branch: row must not decrease");
    for (int64_t e = 0; e < row[Cout]; ++e)
        if (col[e] < 0 || col[e] >= Cin) throw std::invalid_argument("branch: col out of range");
    const KernelImpl& k = *current();
    const int64_t Ho = H > 0 ? (H - 1) / stride + 1 : 0, Wo = W > 0 ? (W - 1) / stride + 1 : 0;
    const int64_t P = N * Ho * Wo;
    if (P == 0) return;
    // BranchArgs' layout: the rank and the outputs padded to multiples of 8, the CSR matrix
    // regrouped into slots of 8 outputs (zero values where an output has fewer entries).
    const int64_t rank8 = ceil_div(rank, 8) * 8, Cout8 = ceil_div(Cout, 8) * 8, G = Cout8 / 8;
    Aligned<float> dp(static_cast<size_t>(rank8 * Cin)), upad(static_cast<size_t>(Cout8 * rank8));
    Aligned<float> zeros(static_cast<size_t>(Cin));
    std::copy(down, down + rank * Cin, dp.ptr);
    for (int64_t o = 0; o < Cout; ++o) std::copy(up + o * rank, up + (o + 1) * rank, upad.ptr + o * rank8);
    std::vector<int32_t> slots(static_cast<size_t>(G + 1), 0);
    for (int64_t g = 0; g < G; ++g) {
        int32_t most = 0;
        for (int64_t o = 8 * g; o < std::min(Cout, 8 * g + 8); ++o) most = std::max(most, row[o + 1] - row[o]);
        slots[g + 1] = slots[g] + most;
    }
    std::vector<int32_t> scol(static_cast<size_t>(8 * slots[G]), 0);
    std::vector<float> sval(static_cast<size_t>(8 * slots[G]), 0.0f);
    for (int64_t o = 0; o < Cout; ++o)
        for (int32_t e = row[o]; e < row[o + 1]; ++e) {
            const size_t at = static_cast<size_t>(8 * (slots[o / 8] + e - row[o]) + o % 8);
            scol[at] = col[e];
            sval[at] = val[e];
        }
    BranchArgs a{x, x2, dp.ptr, upad.ptr, slots.data(), scol.data(), sval.data(), add, zeros.ptr,
                 out, N, H, W, Cin, C1, Cout, Cout8, rank8, stride, Ho, Wo,
                 pro.gamma, pro.beta, pro.eps, pro.silu, pro.shift, pro.bits, pro.alpha,
                 ceil_div(Cin, 64)};
    const double cost = static_cast<double>(rank8 * (Cin + Cout8) + 8 * slots[G] + 2 * (Cin + Cout));
    const int64_t ntasks = task_count(P, cost, 1 << 17);
    const int64_t per = ceil_div(ceil_div(P, ntasks), 16) * 16;  // whole blocks of pixels
    const int64_t nt = ceil_div(P, per);
    const int64_t scratch = ceil_div(k.branch_scratch(Cin, rank8, Cout8), 16) * 16;
    Aligned<float> buf(static_cast<size_t>(nt * scratch));
    parallel_for(nt, [&](int64_t i) {
        k.branch(a, i * per, std::min(P, (i + 1) * per), buf.ptr + i * scratch);
    });
}

}  // namespace

void branch(const float* x, const float* x2, int64_t N, int64_t H, int64_t W, int64_t C1,
            int64_t Cin, int64_t stride, const float* down, const float* up, int64_t rank,
            const int32_t* row, const int32_t* col, const float* val, int64_t Cout,
            const float* add, float* out) {
    run_branch(x, x2, N, H, W, C1, Cin, stride, down, up, rank, row, col, val, Cout, add, out,
               Prologue{});
}

void norm_branch(const float* x, int64_t N, int64_t H, int64_t W, int64_t Cin,
                 const float* gamma, const float* beta, float eps, bool silu, const float* shift,
                 const float* down, const float* up, int64_t rank, const int32_t* row,
                 const int32_t* col, const float* val, int64_t Cout, const float* add,
                 float* out, uint64_t* bits, float* alpha) {
    Prologue pro;
    pro.gamma = gamma;
    pro.beta = beta;
    pro.eps = eps;
    pro.silu = silu;
    pro.shift = shift;
    pro.bits = bits;
    pro.alpha = alpha;
    run_branch(x, nullptr, N, H, W, Cin, Cin, 1, down, up, rank, row, col, val, Cout, add, out,
               pro);
}

void window_attention(const float* qkv, const float* bias, int64_t N, int64_t H, int64_t W,
                      int64_t C, int64_t heads, int64_t ws, int64_t shift, float scale,
                      float* out) {
    if (ws < 1 || heads < 1 || C < heads || C % heads != 0 || H % ws != 0 || W % ws != 0 ||
        shift < 0 || shift >= ws)
        throw std::invalid_argument(
            "window_attention: needs H, W multiples of the window, C a multiple of heads and "
            "0 <= shift < window");
    const KernelImpl& k = *current();
    const int64_t T = ws * ws, d = C / heads, windows = N * (H / ws) * (W / ws);
    if (windows == 0) return;
    AttentionArgs a{qkv, bias, out, N, H, W, C, heads, ws, shift, scale};
    // Ranges of windows, each with its own scratch (whole cache lines).
    const int64_t ntasks = task_count(windows, static_cast<double>(2 * heads * T * T * d), 1 << 17);
    const int64_t per = ceil_div(windows, ntasks), nt = ceil_div(windows, per);
    const int64_t scratch = ceil_div(k.attention_scratch(T, d), 16) * 16;
    Aligned<float> buf(static_cast<size_t>(nt * scratch));
    parallel_for(nt, [&](int64_t i) {
        k.attention(a, i * per, std::min(windows, (i + 1) * per), buf.ptr + i * scratch);
    });
}

void gelu(const float* x, int64_t n, float* out) {
    const KernelImpl& k = *current();
    GeluArgs a{x, out};
    parallel_ranges(n, 8.0, 1 << 15, [&](int64_t begin, int64_t end) { k.gelu(a, begin, end); });
}

void one_step_input(const float* lr, const float* eps, int64_t N, int64_t h, int64_t w,
                    int64_t C, float noise_scale, float input_scale, int64_t Hp, int64_t Wp,
                    float* x, float* z) {
    if (h < 1 || w < 1 || C < 1 || Hp < h || Wp < w)
        throw std::invalid_argument("one_step_input: needs 1 <= h <= Hp, 1 <= w <= Wp, C >= 1");
    const KernelImpl& k = *current();
    InputArgs a{lr, eps, noise_scale, input_scale, x, z, N, h, w, C, Hp, Wp};
    const int64_t rows = N * h;
    const int64_t ntasks = task_count(rows, static_cast<double>(w * C * 100), 1 << 16);
    const int64_t per = ceil_div(rows, ntasks), nt = ceil_div(rows, per);
    const int64_t scratch = ceil_div(k.input_scratch(per, w, C), 16) * 16;
    Aligned<float> buf(static_cast<size_t>(nt * scratch));
    parallel_for(nt, [&](int64_t i) {
        k.one_step_input(a, i * per, std::min(rows, (i + 1) * per), buf.ptr + i * scratch);
    });
    const int64_t zrow = Wp * 16 * C, xrow = Wp * 17 * C;  // replicate padding: row h - 1
    for (int64_t n = 0; n < N; ++n)
        for (int64_t y = h; y < Hp; ++y) {
            std::copy(z + (n * Hp + h - 1) * zrow, z + (n * Hp + h) * zrow, z + (n * Hp + y) * zrow);
            std::copy(x + (n * Hp + h - 1) * xrow, x + (n * Hp + h) * xrow, x + (n * Hp + y) * xrow);
        }
}

void latent_image(const float* x0, int64_t N, int64_t Hp, int64_t Wp, int64_t C, int64_t h,
                  int64_t w, float* img) {
    if (h < 0 || w < 0 || h > Hp || w > Wp || C < 1)
        throw std::invalid_argument("latent_image: needs 0 <= h <= Hp, 0 <= w <= Wp, C >= 1");
    const KernelImpl& k = *current();
    ImageArgs a{x0, img, N, h, w, C, Hp, Wp};
    parallel_ranges(N * h, static_cast<double>(w * 16 * C), 1 << 16,
                    [&](int64_t begin, int64_t end) { k.latent_image(a, begin, end); });
}

void position_uniforms(uint32_t seed0, uint32_t seed1, int64_t top, int64_t left, int64_t H,
                       int64_t W, int64_t C, float* u1, float* u2) {
    const KernelImpl& k = *current();
    NoiseArgs a{seed0, seed1, top, left, H, W, C, u1, u2};
    if (W * C == 0) return;
    parallel_ranges(H, static_cast<double>(W * C), 1 << 15,
                    [&](int64_t begin, int64_t end) { k.noise(a, begin, end); });
}

}  // namespace bk
