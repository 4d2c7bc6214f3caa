// Tests of the run-time ISA choice (csrc/cpu/isa.cpp) over the extension's own per-ISA
// objects (csrc/cpu/kernels_*.cpp), linked here without torch: every path this CPU can run
// draws the reference's fixture tokens; avx2 and avx512 agree bit for bit on a larger random
// case (same lanes, same FMA order); forcing an unknown or unrunnable path is refused.
// Usage: seqgan_dispatch_tests fixture.txt
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/api.h"
#include "fixture.h"

using namespace seqgan;


static int64_t count_diff(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  int64_t d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d += a[i] != b[i];
  return d + static_cast<int64_t>(a.size() > b.size() ? a.size() - b.size() : b.size() - a.size());
}

static const CoreKernels& force(const char* isa) {
  const char* error = nullptr;
  EXPECT(set_active_isa(isa, &error) != nullptr, "set_active_isa(%s): %s", isa,
         error ? error : "");
  const CoreKernels* k = active_kernels(&error);
  EXPECT(k && std::strcmp(k->isa, isa) == 0, "active path is not %s", isa);
  return *k;
}

int main(int argc, char** argv) {
  Fixture f;
  if (argc < 2 || !load_fixture(argv[1], f)) {
    std::fprintf(stderr, "usage: %s fixture.txt\n", argv[0]);
    return 2;
  }
  const LSTMWeightsView w = f.view();
  const std::vector<int64_t> x = ints(f.rows["x"], 0);
  const int best = isa_rank(best_supported_isa());
  std::printf("best supported path: %s\n", best_supported_isa());
  EXPECT(best >= 0, "best_supported_isa() names no path");

  // Errors: unknown names and paths above the CPU's are refused; the active path stays.
  const char* error = nullptr;
  force("baseline");
  EXPECT(set_active_isa("sse9", &error) == nullptr && error && std::strstr(error, "sse9"),
         "unknown path accepted");
  if (best < 2) {
    EXPECT(set_active_isa("avx512", &error) == nullptr && std::strstr(error, "cannot run"),
           "unrunnable path accepted");
  }
  EXPECT(std::strcmp(active_kernels(&error)->isa, "baseline") == 0, "refusal changed path");

  // Every runnable path draws the fixture's reference tokens (the baseline, without FMA,
  // may differ where a logit rounds across a sampling boundary: at most 0.1%).
  std::vector<std::vector<int64_t>> big(3);
  const char* names[] = {"baseline", "avx2", "avx512"};
  for (int r = 0; r <= best; ++r) {
    const CoreKernels& k = force(names[r]);
    const auto& row = f.rows["rollout"];
    std::vector<int64_t> out((f.T - 1) * f.N * f.B * f.T);
    k.rollout(w, x.data(), f.B, f.T, f.N, f.start, std::stoull(row[0]),
              static_cast<float>(std::stod(row[1])), out.data(), 2, nullptr, nullptr, 1, 0, 0);
    const std::vector<int64_t> want = ints(row, 2);
    const int64_t d = count_diff(out, want);
    const int64_t allowed = r == 0 ? static_cast<int64_t>(want.size()) / 1000 : 0;
    EXPECT(d <= allowed, "%s rollout: %" PRId64 " of %zu tokens differ from the reference",
           names[r], d, want.size());
    const auto& srow = f.rows["sample"];
    std::vector<int64_t> s(f.B * f.T);
    k.sample(w, nullptr, f.B, 0, f.T, f.start, std::stoull(srow[0]),
             static_cast<uint32_t>(std::stoll(srow[2])), static_cast<float>(std::stod(srow[1])),
             s.data(), 1, nullptr, nullptr);
    const int64_t ds = count_diff(s, ints(srow, 3));
    EXPECT(ds <= (r == 0 ? static_cast<int64_t>(s.size()) / 1000 : 0),
           "%s sample: %" PRId64 " tokens differ from the reference", names[r], ds);
    // A larger case with odd sizes (V not a multiple of 256, H not of 16, B not of 4).
    const int64_t V = 1999, E = 24, H = 40, B = 37, T = 9, N = 3;
    const std::vector<float> emb = hashed(11, V * E, 1.0f), wih = hashed(12, 4 * H * E, 0.3f),
                             whh = hashed(13, 4 * H * H, 0.3f), bias = hashed(14, 4 * H, 0.3f),
                             wout = hashed(15, V * H, 1.5f), bout = hashed(16, V, 0.5f);
    const LSTMWeightsView w2{emb.data(), wih.data(), whh.data(), bias.data(),
                             wout.data(), bout.data(), V, E, H};
    std::vector<int64_t> xs(B * T);
    for (int64_t i = 0; i < B * T; ++i) xs[i] = (i * 7919) % V;
    big[r].assign((T - 1) * N * B * T, -1);
    k.rollout(w2, xs.data(), B, T, N, 0, 1234, 0.9f, big[r].data(), 2, nullptr, nullptr, 1, 0,
              0);
    std::printf("%s: ok so far (%d failures)\n", names[r], g_failures);
  }
  if (best >= 2) {
    EXPECT(count_diff(big[1], big[2]) == 0, "avx2 and avx512 rollouts differ in %" PRId64
           " tokens", count_diff(big[1], big[2]));
  }
  if (best >= 1) {
    const int64_t d = count_diff(big[0], big[1]);
    EXPECT(d * 1000 <= static_cast<int64_t>(big[1].size()),
           "baseline and avx2 rollouts differ in %" PRId64 " of %zu tokens", d, big[1].size());
  }
  std::printf("dispatch: %s\n", g_failures ? "FAILED" : "ok");
  return g_failures ? 1 : 0;
}
