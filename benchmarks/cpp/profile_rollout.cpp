// A torch-free driver of one rollout_core call on one thread, for instruction-count profiles
// (valgrind's callgrind; this machine class exposes no hardware counters) and quick timings of
// one ISA path. Build per path, from the repository root, e.g. AVX2:
//   g++ -O3 -g -std=c++17 -fopenmp -march=x86-64-v3 -DSEQGAN_ISA=avx2 -DSEQGAN_ISA_LEVEL=1 \
//       -Icsrc benchmarks/cpp/profile_rollout.cpp -o /tmp/prof_avx2
//   valgrind --tool=callgrind /tmp/prof_avx2 5000 32 2 && callgrind_annotate --auto=yes ...
// Arguments: V H N (default 5000 32 16; B = 64, T = 20, E = 32, N(0, 1) weights).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>
#include "common/generate.h"
using namespace seqgan;
using namespace seqgan::SEQGAN_ISA;
int main(int argc, char** argv) {
  const int64_t V = argc > 1 ? atoi(argv[1]) : 5000, E = 32, H = argc > 2 ? atoi(argv[2]) : 32, B = 64, T = 20, N = argc > 3 ? atoi(argv[3]) : 16;
  std::mt19937 rng(0); std::normal_distribution<float> nd(0, 1);
  auto vec = [&](int64_t n) { std::vector<float> v(n); for (auto& x : v) x = nd(rng); return v; };
  auto emb = vec(V * E), wih = vec(4 * H * E), whh = vec(4 * H * H), bias = vec(4 * H), wout = vec(V * H), bout = vec(V);
  LSTMWeightsView w{emb.data(), wih.data(), whh.data(), bias.data(), wout.data(), bout.data(), V, E, H};
  std::vector<int64_t> x(B * T); for (auto& t : x) t = rng() % V;
  std::vector<int64_t> out((T - 1) * N * B * T);
  auto t0 = std::chrono::steady_clock::now();
  rollout_core(w, x.data(), B, T, N, 0, 1, 1.0f, out.data(), 1);
  auto t1 = std::chrono::steady_clock::now();
  double s = std::chrono::duration<double>(t1 - t0).count();
  printf("rollout %.3f s, %.1fk tok/s (1 thread)\n", s, B * N * T * (T - 1) / 2 / s / 1e3);
}
