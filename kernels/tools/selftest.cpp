// Stand-alone parity self-test of every kernel usable on this machine against the scalar
// reference (no Python needed; e.g. for cross-compiled builds run under qemu):
//   cmake -S kernels -B build/selftest -DBIMACOSR_KERNELS_SELFTEST=ON && cmake --build build/selftest
//   build/selftest/bk_selftest
// The Python parity harness (tests/test_kernels.py) is the main test; this one only checks that
// the optimized kernels agree with the reference (exact bits, outputs within float32 rounding).
#include <algorithm>
#include <bitset>
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "api.h"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    if (!ok) {
        ++failures;
        std::printf("FAIL %s\n", what.c_str());
    }
}

struct Rng {
    std::mt19937_64 g{12345};
    float normal() { return std::normal_distribution<float>(0.f, 1.f)(g); }
    float uniform(float a, float b) { return std::uniform_real_distribution<float>(a, b)(g); }
};

void pack_cases(const std::string& kernel, Rng& rng) {
    for (int C : {1, 7, 8, 16, 63, 64, 65, 127, 128, 129, 200, 256}) {
        const int P = 37;
        std::vector<float> x(P * C), shift(C);
        for (auto& v : x) v = rng.normal();
        for (auto& v : shift) v = rng.normal();
        x[0] = 0.0f;
        x[x.size() / 2] = -0.0f;
        x[C * (P - 1)] = shift[0];  // on the threshold: packs as 0
        const int Cw = (C + 63) / 64;
        const float* const shifts[] = {nullptr, shift.data()};  // without, then with a shift
        for (const float* sh : shifts) {
            const std::string what = kernel + (sh ? " pack shift" : " pack") + " C=" + std::to_string(C);
            std::vector<uint64_t> b0(P * Cw), b1(P * Cw);
            std::vector<float> a0(P), a1(P);
            bk::set_kernel("reference");
            bk::pack_activations(x.data(), nullptr, P, C, C, sh, b0.data(), a0.data());
            bk::set_kernel(kernel);
            bk::pack_activations(x.data(), nullptr, P, C, C, sh, b1.data(), a1.data());
            bool ok = b0 == b1;
            for (int p = 0; p < P; ++p) ok = ok && std::fabs(a0[p] - a1[p]) <= 1e-5f * std::fabs(a0[p]);
            check(ok, what);
            // the same pixels as the concatenation of x[:, :C1] and x[:, C1:]: bit-identical
            for (int C1 = 64; C1 < C; C1 += 64) {
                std::vector<float> xa(P * C1), xb(P * (C - C1));
                for (int p = 0; p < P; ++p)
                    for (int c = 0; c < C; ++c)
                        (c < C1 ? xa[p * C1 + c] : xb[p * (C - C1) + c - C1]) = x[p * C + c];
                std::vector<uint64_t> b2(P * Cw);
                std::vector<float> a2(P);
                bk::pack_activations(xa.data(), xb.data(), P, C1, C, sh, b2.data(), a2.data());
                check(b2 == b1 && a2 == a1, what + " concat C1=" + std::to_string(C1));
            }
        }
    }
}

// The second activation base: bits2 / alpha2 from each kernel's base 1 equal a scalar
// evaluation of r = d -/+ alpha (float32) with that base 1 (bits exact, alpha2 to rounding),
// and the concatenation [x, x2] with a shift packs as the concatenated tensor (bit-identical).
void pack2_cases(const std::string& kernel, Rng& rng) {
    for (int C : {1, 7, 63, 64, 65, 127, 128, 129, 200}) {
        const int P = 29, Cw = (C + 63) / 64;
        std::vector<float> x(P * C), shift(C);
        for (auto& v : x) v = rng.normal();
        for (auto& v : shift) v = 0.5f * rng.normal();
        x[0] = 0.0f;
        x[C * (P - 1)] = shift[0];  // d == 0 exactly
        const float* const shifts[] = {nullptr, shift.data()};
        for (const float* sh : shifts) {
            const std::string what = kernel + (sh ? " pack2 shift" : " pack2") + " C=" + std::to_string(C);
            std::vector<uint64_t> b1(P * Cw), b2(P * Cw);
            std::vector<float> a1(P), a2(P);
            bk::set_kernel(kernel);
            bk::pack_activations(x.data(), nullptr, P, C, C, sh, b1.data(), a1.data());
            bk::pack_second_base(x.data(), nullptr, P, C, C, sh, b1.data(), a1.data(), b2.data(), a2.data());
            bool ok = true;
            for (int p = 0; p < P; ++p) {
                std::vector<uint64_t> want(Cw, 0);
                double sum = 0.0;
                for (int c = 0; c < C; ++c) {
                    const float d = sh ? x[p * C + c] - sh[c] : x[p * C + c];
                    const bool neg = (b1[p * Cw + c / 64] >> (c % 64)) & 1;
                    const float r = neg ? d + a1[p] : d - a1[p];
                    if (r < 0.0f) want[c / 64] |= uint64_t{1} << (c % 64);
                    sum += std::fabs(static_cast<double>(r));
                }
                const float wa = static_cast<float>(sum / C);
                ok = ok && std::equal(want.begin(), want.end(), b2.begin() + p * Cw) &&
                     std::fabs(a2[p] - wa) <= 1e-6f * wa;
            }
            check(ok, what);
            for (int C1 = 64; C1 < C; C1 += 64) {  // the concatenation: bit-identical
                std::vector<float> xa(P * C1), xb(P * (C - C1));
                for (int p = 0; p < P; ++p)
                    for (int c = 0; c < C; ++c)
                        (c < C1 ? xa[p * C1 + c] : xb[p * (C - C1) + c - C1]) = x[p * C + c];
                std::vector<uint64_t> c1(P * Cw), c2(P * Cw);
                std::vector<float> ca1(P), ca2(P);
                bk::pack_activations(xa.data(), xb.data(), P, C1, C, sh, c1.data(), ca1.data());
                bk::pack_second_base(xa.data(), xb.data(), P, C1, C, sh, c1.data(), ca1.data(),
                                     c2.data(), ca2.data());
                check(c1 == b1 && ca1 == a1 && c2 == b2 && ca2 == a2,
                      what + " concat C1=" + std::to_string(C1));
            }
        }
    }
}

void conv_cases(const std::string& kernel, Rng& rng) {
    const int chans[] = {1, 63, 64, 65, 127, 128, 129};
    int idx = 0;
    for (int cin : chans)
        for (int cout : chans) {
            const int N = 1 + idx % 2, H = 7 + idx % 3, W = 5 + idx % 4, stride = 1 + idx % 2;
            const bool epi = idx % 3 != 0;
            ++idx;
            const int Cw = (cin + 63) / 64;
            const uint64_t keep = cin % 64 ? (uint64_t{1} << (cin % 64)) - 1 : ~uint64_t{0};
            std::vector<uint64_t> x(N * H * W * Cw), w(cout * 9 * Cw);
            for (size_t i = 0; i < x.size(); ++i) x[i] = rng.g() & ((i % Cw == size_t(Cw - 1)) ? keep : ~0ULL);
            for (size_t i = 0; i < w.size(); ++i) w[i] = rng.g() & ((i % Cw == size_t(Cw - 1)) ? keep : ~0ULL);
            std::vector<float> alpha(N * H * W), beta(cout), bias(cout), sin(cout), slope(cout), sout(cout);
            for (auto& v : alpha) v = rng.uniform(0.05f, 2.f);
            for (int o = 0; o < cout; ++o) {
                beta[o] = rng.uniform(0.01f, 1.f);
                bias[o] = rng.normal();
                sin[o] = rng.normal();
                slope[o] = rng.uniform(0.f, 0.5f);
                sout[o] = rng.normal();
            }
            const int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
            std::vector<float> add(N * Ho * Wo * cout), y0(add.size()), y1(add.size());
            for (auto& v : add) v = rng.normal();
            // the second activation base (two-base runs): other bits, smaller alphas
            std::vector<uint64_t> x2(x.size());
            for (size_t i = 0; i < x2.size(); ++i) x2[i] = rng.g() & ((i % Cw == size_t(Cw - 1)) ? keep : ~0ULL);
            std::vector<float> alpha2(alpha.size());
            for (auto& v : alpha2) v = rng.uniform(0.01f, 1.f);
            for (int bases = 1; bases <= 2; ++bases) {
                for (int run = 0; run < 2; ++run) {
                    bk::set_kernel(run == 0 ? "reference" : kernel);
                    const bk::PreparedWeights pw(w.data(), cout, 9, cin);
                    bk::binary_conv3x3(x.data(), alpha.data(), pw, N, H, W, stride, beta.data(),
                                       epi ? bias.data() : nullptr, epi ? sin.data() : nullptr,
                                       epi ? slope.data() : nullptr, epi ? sout.data() : nullptr,
                                       epi ? add.data() : nullptr, run == 0 ? y0.data() : y1.data(),
                                       bases == 2 ? x2.data() : nullptr,
                                       bases == 2 ? alpha2.data() : nullptr);
                }
                const float per_term = bases == 2 ? 3.f : 2.f;  // the second base's terms add
                bool ok = true;
                for (size_t i = 0; i < y0.size(); ++i)
                    ok = ok && std::fabs(y0[i] - y1[i]) <= 1e-5f * (cin * 9 * per_term + 10.f);
                check(ok, kernel + (bases == 2 ? " conv two bases" : " conv") +
                              " cin=" + std::to_string(cin) + " cout=" + std::to_string(cout));
            }
        }
}

void gemm_cases(const std::string& kernel, Rng& rng) {
    for (int k : {1, 63, 64, 65, 128, 129, 256, 2000})
        for (int nout : {1, 8, 17, 64, 65, 129}) {
            const int M = 23, Kw = (k + 63) / 64;
            const uint64_t keep = k % 64 ? (uint64_t{1} << (k % 64)) - 1 : ~uint64_t{0};
            std::vector<uint64_t> x(M * Kw), w(nout * Kw);
            for (size_t i = 0; i < x.size(); ++i) x[i] = rng.g() & ((i % Kw == size_t(Kw - 1)) ? keep : ~0ULL);
            for (size_t i = 0; i < w.size(); ++i) w[i] = rng.g() & ((i % Kw == size_t(Kw - 1)) ? keep : ~0ULL);
            std::vector<float> alpha(M), beta(nout), bias(nout), add(M * nout), y0(M * nout), y1(M * nout);
            for (auto& v : alpha) v = rng.uniform(0.05f, 2.f);
            for (auto& v : beta) v = rng.uniform(0.01f, 1.f);
            for (auto& v : bias) v = rng.normal();
            for (auto& v : add) v = rng.normal();
            std::vector<uint64_t> x2(x.size());
            for (size_t i = 0; i < x2.size(); ++i) x2[i] = rng.g() & ((i % Kw == size_t(Kw - 1)) ? keep : ~0ULL);
            std::vector<float> alpha2(M);
            for (auto& v : alpha2) v = rng.uniform(0.01f, 1.f);
            for (int bases = 1; bases <= 2; ++bases) {
                for (int run = 0; run < 2; ++run) {
                    bk::set_kernel(run == 0 ? "reference" : kernel);
                    const bk::PreparedWeights pw(w.data(), nout, 1, k);
                    bk::binary_gemm(x.data(), alpha.data(), pw, M, beta.data(), bias.data(), nullptr,
                                    nullptr, nullptr, add.data(), run == 0 ? y0.data() : y1.data(),
                                    bases == 2 ? x2.data() : nullptr,
                                    bases == 2 ? alpha2.data() : nullptr);
                }
                const float per_term = bases == 2 ? 3.f : 2.f;  // the second base's terms add
                bool ok = true;
                for (size_t i = 0; i < y0.size(); ++i)
                    ok = ok && std::fabs(y0[i] - y1[i]) <= 1e-5f * (per_term * k + 10.f);
                check(ok, kernel + (bases == 2 ? " gemm two bases" : " gemm") + " k=" +
                              std::to_string(k) + " nout=" + std::to_string(nout));
            }
        }
}

// The float32 kernels (dense conv, structured branch, window attention, GELU, the one-step
// input and image) against the reference, which sums in double: within 1e-5 of the output's
// scale.
bool close(const std::vector<float>& a, const std::vector<float>& b, float scale) {
    for (size_t i = 0; i < a.size(); ++i)
        if (!(std::fabs(a[i] - b[i]) <= 1e-5f * scale)) return false;
    return true;
}

void float_cases(const std::string& kernel, Rng& rng) {
    auto fill = [&](std::vector<float>& v) { for (auto& e : v) e = rng.normal(); };
    for (int cin : {1, 63, 64, 65, 129})
        for (int cout : {1, 48, 64, 65, 129})
            for (int k : {1, 3}) {
                const int N = 1, H = 5 + cin % 3, W = 6 + cout % 4, stride = 1 + (cin + k) % 2;
                const int C1 = cin > 64 ? 64 : cin;  // a concatenation where it can be one
                const int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
                std::vector<float> x(N * H * W * C1), x2(N * H * W * (cin - C1)), w(k * k * cin * cout),
                    bias(cout), add(N * Ho * Wo * cout), y0(add.size()), y1(add.size());
                fill(x), fill(x2), fill(w), fill(bias), fill(add);
                std::vector<float> down(8 * cin), up(cout * 8), val;
                fill(down), fill(up);
                std::vector<int32_t> row{0}, col;
                for (int o = 0; o < cout; ++o) {
                    for (int e = 0; e < o % 4; ++e) {
                        col.push_back(static_cast<int32_t>((o * 7 + e * 13) % cin));
                        val.push_back(rng.normal());
                    }
                    row.push_back(static_cast<int32_t>(col.size()));
                }
                const float* x2p = cin > C1 ? x2.data() : nullptr;
                const std::string what = " cin=" + std::to_string(cin) + " cout=" + std::to_string(cout);
                for (int run = 0; run < 2; ++run) {
                    bk::set_kernel(run == 0 ? "reference" : kernel);
                    bk::dense_conv(x.data(), x2p, N, H, W, C1, cin, w.data(), k, cout, bias.data(),
                                   stride, add.data(), run == 0 ? y0.data() : y1.data());
                }
                check(close(y0, y1, 10.0f * (k * k * cin + 2)), kernel + " dense k=" + std::to_string(k) + what);
                for (int run = 0; run < 2; ++run) {
                    bk::set_kernel(run == 0 ? "reference" : kernel);
                    bk::branch(x.data(), x2p, N, H, W, C1, cin, stride, down.data(), up.data(), 8,
                               row.data(), col.data(), val.data(), cout, add.data(),
                               run == 0 ? y0.data() : y1.data());
                }
                check(close(y0, y1, 10.0f * (8 * cin + 10)), kernel + " branch" + what);
                if (cin == C1) {  // the LayerNorm prologue: the same bits, close outputs
                    std::vector<float> g(cin), b(cin), sh(cin), a0(N * H * W), a1(a0.size()),
                        yb0(N * H * W * cout), yb1(yb0.size());
                    std::vector<uint64_t> b0(N * H * W * ((cin + 63) / 64)), b1(b0.size());
                    fill(g), fill(b), fill(sh);
                    for (int run = 0; run < 2; ++run) {
                        bk::set_kernel(run == 0 ? "reference" : kernel);
                        bk::norm_branch(x.data(), N, H, W, cin, g.data(), b.data(), 1e-5f, k == 3,
                                        sh.data(), down.data(), up.data(), 8, row.data(), col.data(),
                                        val.data(), cout, nullptr, run == 0 ? yb0.data() : yb1.data(),
                                        run == 0 ? b0.data() : b1.data(), run == 0 ? a0.data() : a1.data());
                    }
                    size_t flips = 0;  // a normalized value within rounding of its threshold
                    for (size_t i = 0; i < b0.size(); ++i) flips += std::bitset<64>(b0[i] ^ b1[i]).count();
                    check(flips <= b0.size() / 64 + 1 && close(a0, a1, 1.0f) &&
                              close(yb0, yb1, 10.0f * (8 * cin + 10)),
                          kernel + " norm_branch" + what);
                }
            }
    for (int heads : {1, 3, 4})
        for (int ws : {2, 4, 8}) {
            const int N = 2, H = 2 * ws, W = 3 * ws, C = heads * (ws == 4 ? 13 : 32), T = ws * ws;
            std::vector<float> qkv(N * H * W * 3 * C), bias(heads * T * T), y0(N * H * W * C), y1(y0.size());
            fill(qkv), fill(bias);
            for (int shift : {0, ws / 2}) {
                for (int run = 0; run < 2; ++run) {
                    bk::set_kernel(run == 0 ? "reference" : kernel);
                    bk::window_attention(qkv.data(), bias.data(), N, H, W, C, heads, ws, shift,
                                         0.2f, run == 0 ? y0.data() : y1.data());
                }
                check(close(y0, y1, 5.0f), kernel + " attention heads=" + std::to_string(heads) +
                                               " window=" + std::to_string(ws) + " shift=" + std::to_string(shift));
            }
        }
    for (int h : {1, 5, 37})
        for (int w : {1, 3, 21}) {  // the one-step input and the image of a latent
            const int N = 2, C = 3, Hp = h + 3, Wp = w + 5;
            std::vector<float> lr(N * h * w * C), eps(16 * C * h * w);
            for (auto& v : lr) v = rng.uniform(-1.f, 1.f);
            fill(eps);
            std::vector<float> x0(N * Hp * Wp * 17 * C), x1(x0.size()), z0(N * Hp * Wp * 16 * C), z1(z0.size());
            std::vector<float> i0(N * C * 16 * h * w), i1(i0.size());
            for (int run = 0; run < 2; ++run) {
                bk::set_kernel(run == 0 ? "reference" : kernel);
                bk::one_step_input(lr.data(), eps.data(), N, h, w, C, 1.9f, 0.4f, Hp, Wp,
                                   run == 0 ? x0.data() : x1.data(), run == 0 ? z0.data() : z1.data());
                bk::latent_image(run == 0 ? z0.data() : z1.data(), N, Hp, Wp, C, h, w,
                                 run == 0 ? i0.data() : i1.data());
            }
            const std::string what = " h=" + std::to_string(h) + " w=" + std::to_string(w);
            check(close(x0, x1, 10.0f) && close(z0, z1, 5.0f), kernel + " one_step_input" + what);
            check(close(i0, i1, 1.0f), kernel + " latent_image" + what);
        }
    std::vector<float> x(1001), y0(x.size()), y1(x.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = -10.0f + 0.02f * static_cast<float>(i);
    for (int run = 0; run < 2; ++run) {
        bk::set_kernel(run == 0 ? "reference" : kernel);
        bk::gelu(x.data(), static_cast<int64_t>(x.size()), run == 0 ? y0.data() : y1.data());
    }
    check(close(y0, y1, 10.0f), kernel + " gelu");  // erf polynomial: 1.5e-7 absolute
}

// Weights prepared for one kernel are rejected while another is active, and so are bad ones.
void prepared_weight_cases(const std::string& kernel) {
    const uint64_t w[2 * 9] = {};
    const float alpha[1] = {1.0f}, beta[2] = {1.0f, 1.0f};
    const uint64_t x[1] = {};
    float y[2];
    auto rejects = [](auto&& call) {
        try {
            call();
        } catch (const std::invalid_argument&) {
            return true;
        }
        return false;
    };
    bk::set_kernel(kernel);
    const bk::PreparedWeights conv(w, 2, 9, 64), gemm(w, 2, 1, 64);
    check(conv.kernel_name() == kernel, kernel + " prepared: kernel name");
    for (const auto& other : bk::available_kernels()) {
        bk::set_kernel(other);
        const bool stale = other != kernel;
        check(rejects([&] { bk::binary_conv3x3(x, alpha, conv, 1, 1, 1, 1, beta, nullptr, nullptr,
                                               nullptr, nullptr, nullptr, y); }) == stale,
              kernel + " prepared conv weights under " + other);
        check(rejects([&] { bk::binary_gemm(x, alpha, gemm, 1, beta, nullptr, nullptr, nullptr,
                                            nullptr, nullptr, y); }) == stale,
              kernel + " prepared gemm weights under " + other);
    }
    bk::set_kernel(kernel);
    check(rejects([&] { bk::binary_gemm(x, alpha, conv, 1, beta, nullptr, nullptr, nullptr,
                                        nullptr, nullptr, y); }),
          kernel + " conv weights in a gemm");
    // the second base needs both x2 and alpha2
    check(rejects([&] { bk::binary_conv3x3(x, alpha, conv, 1, 1, 1, 1, beta, nullptr, nullptr,
                                           nullptr, nullptr, nullptr, y, x, nullptr); }),
          kernel + " conv x2 without alpha2");
    check(rejects([&] { bk::binary_gemm(x, alpha, gemm, 1, beta, nullptr, nullptr, nullptr,
                                        nullptr, nullptr, y, nullptr, alpha); }),
          kernel + " gemm alpha2 without x2");
    check(!rejects([&] { bk::binary_gemm(x, alpha, gemm, 1, beta, nullptr, nullptr, nullptr,
                                         nullptr, nullptr, y, x, alpha); }),
          kernel + " gemm two bases");
    const uint64_t pad[1] = {uint64_t{1} << 40};
    check(rejects([&] { bk::PreparedWeights(pad, 1, 1, 40); }), kernel + " pad bits");
    check(rejects([&] { bk::PreparedWeights(pad, 1, 1, 0); }), kernel + " cin 0");
}

}  // namespace

int main() {
    std::printf("cpu features:");
    for (const auto& f : bk::cpu_features()) std::printf(" %s", f.c_str());
    std::printf("\n");
    Rng rng;
    for (int threads : {1, 3}) {
        bk::set_num_threads(threads);
        for (const auto& k : bk::available_kernels()) {
            pack_cases(k, rng);
            pack2_cases(k, rng);
            conv_cases(k, rng);
            gemm_cases(k, rng);
            float_cases(k, rng);
            prepared_weight_cases(k);
            std::printf("kernel %-9s threads %d: %s\n", k.c_str(), threads, failures ? "FAILURES" : "ok");
        }
    }
    return failures ? 1 : 0;
}
