// Tests of the torch-free CPU core (csrc/common), run by ctest: Philox known answers, the
// vectorised exp, the tile sampler on hand-made logits, the LSTM cell, scoring's pooling, and
// sample/rollout
// against tokens exported from the reference backend (fixture.txt, make_fixture.py).
// Usage: seqgan_core_tests CASE [fixture.txt]
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/dconv.h"
#include "common/dpool.h"
#include "common/finite.h"
#include "common/gemm_nn.h"
#include "common/lnll.h"
#include "common/generate.h"
#include "common/philox.h"
#include "common/sampler.h"
#include "common/score.h"
#include "common/vec.h"
#include "fixture.h"

using namespace seqgan;
using namespace seqgan::SEQGAN_ISA;  // the path this binary was compiled for (CMakeLists.txt)

#define SEQGAN_STR2(x) #x
#define SEQGAN_STR(x) SEQGAN_STR2(x)


// ---- Philox: DESIGN §4 known answers ------------------------------------------------------
static void test_philox() {
  struct Kat {
    uint64_t seed;
    uint32_t c[4], w[4];
    float u0, u1;
  };
  const Kat kats[] = {
      {0, {0, 0, 0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}, 0.798092902f,
       0.238959596f},
      {42, {0, 0, 0, 0}, {0x9ceaf053, 0x77f5493b, 0x12bf50ad, 0x5742b3d7}, 0.774080157f,
       0.937172949f},
      {42, {3, 7, 11, 0}, {0x1db06504, 0xecb98830, 0xc7b07025, 0x345fdb63}, 0.231945619f,
       0.150587991f},
      {12345678901ull, {19, 5, 1023, 1}, {0x0e448539, 0xf5862701, 0x7f756149, 0x165d9c9a},
       0.111466072f, 0.0818434879f},
  };
  for (const Kat& k : kats) {
    const Philox4 w = philox4x32_10(k.seed, k.c[0], k.c[1], k.c[2], k.c[3]);
    for (int i = 0; i < 4; ++i)
      EXPECT(w.w[i] == k.w[i], "seed %" PRIu64 " word %d: %08x != %08x", k.seed, i, w.w[i],
             k.w[i]);
    EXPECT(std::fabs(to_uniform(w.w[0]) - k.u0) <= 1e-7f, "u0 %.9g != %.9g",
           to_uniform(w.w[0]), k.u0);
    EXPECT(std::fabs(to_uniform(w.w[1]) - k.u1) <= 1e-7f, "u1 %.9g != %.9g",
           to_uniform(w.w[1]), k.u1);
  }
  EXPECT(to_uniform(0u) == 0.0f, "u(0) must be exactly 0");
  EXPECT(to_uniform(0xFFFFFFFFu) == 0.0f, "u(-1) must be exactly 0");
  EXPECT(to_uniform(0x80000000u) == to_uniform(0x7FFFFFFFu), "INT32_MIN maps like INT32_MAX");
}

// ---- vexp: within 2 ulp of exp over the range the sampler and the LSTM use -----------------
static int64_t ulp_distance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if (ia < 0) ia = INT32_MIN - ia;
  if (ib < 0) ib = INT32_MIN - ib;
  return std::llabs(static_cast<int64_t>(ia) - ib);
}

static void test_exp() {
  int64_t worst = 0;
  float worst_x = 0;
  alignas(64) float in[16], out[16];
  const int64_t n = 2000000;
  for (int64_t i = 0; i < n; i += 16) {
    for (int l = 0; l < 16; ++l) in[l] = -104.0f + 192.0f * static_cast<float>(i + l) / n;
    vstore(out, vexp(vload(in)));
    for (int l = 0; l < 16; ++l) {
      const float ref = static_cast<float>(std::exp(static_cast<double>(in[l])));
      const int64_t d = ulp_distance(out[l], ref);
      if (d > worst) worst = d, worst_x = in[l];
    }
  }
  std::printf("vexp: max error %" PRId64 " ulp (at x = %.9g)\n", worst, worst_x);
  EXPECT(worst <= 2, "vexp error %" PRId64 " ulp at %.9g", worst, worst_x);
  const float inf = std::numeric_limits<float>::infinity();
  const float special[16] = {-inf, -1000.0f, -110.0f, 0.0f, -0.0f, 1.0f, 100.0f, inf};
  vstore(out, vexp(vload(special)));
  EXPECT(out[0] == 0.0f && out[1] == 0.0f && out[2] == 0.0f, "exp(-inf/-1000/-110) = 0");
  EXPECT(out[3] == 1.0f && out[4] == 1.0f, "exp(0) = 1");
  EXPECT(out[6] == inf && out[7] == inf, "exp overflow -> inf");
}

// ---- vlog: within 2 ulp of log on the Gumbel noise's range, exact at the edges ------------
static void test_log() {
  int64_t worst = 0;
  float worst_x = 0;
  alignas(64) float in[16], out[16];
  for (int64_t i = 0; i < 3000000; i += 16) {
    for (int l = 0; l < 16; ++l) {  // log-spaced over [1e-30, 1e4]
      in[l] = static_cast<float>(std::pow(10.0, -30.0 + 34.0 * static_cast<double>(i + l) / 3e6));
    }
    vstore(out, vlog(vload(in)));
    for (int l = 0; l < 16; ++l) {
      const float ref = static_cast<float>(std::log(static_cast<double>(in[l])));
      const int64_t d = ulp_distance(out[l], ref);
      if (d > worst) worst = d, worst_x = in[l];
    }
  }
  std::printf("vlog: max error %" PRId64 " ulp (at x = %.9g)\n", worst, worst_x);
  EXPECT(worst <= 2, "vlog error %" PRId64 " ulp at %.9g", worst, worst_x);
  const float inf = std::numeric_limits<float>::infinity();
  const float special[16] = {0.0f, -0.0f, 1.0f, inf, -1.0f, 2.0f, 0.5f, 1e-20f};
  vstore(out, vlog(vload(special)));
  EXPECT(out[0] == -inf && out[1] == -inf, "log(+-0) = -inf");
  EXPECT(out[2] == 0.0f, "log(1) = 0");
  EXPECT(out[3] == inf, "log(inf) = inf");
  EXPECT(std::isnan(out[4]), "log(-1) = nan");
  EXPECT(ulp_distance(out[5], std::log(2.0f)) <= 1 && ulp_distance(out[6], std::log(0.5f)) <= 1,
         "log(2), log(1/2)");
}

// ---- sampler: hand-made logits -------------------------------------------------------------
// An independent, plain transcription of DESIGN §4 (std::exp, sequential double sums).
static int64_t sample_plain(const std::vector<float>& logits, uint64_t seed, uint32_t step,
                            uint32_t row, uint32_t stream, float temperature) {
  const int64_t V = static_cast<int64_t>(logits.size()), J = (V + 255) / 256;
  int64_t best = -1;
  float best_score = 0;
  for (int64_t j = 0; j < J; ++j) {
    const int64_t len = std::min<int64_t>(256, V - 256 * j);
    std::vector<float> z(len);
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < len; ++i) {
      z[i] = logits[256 * j + i] / temperature;
      m = std::max(m, z[i]);
    }
    std::vector<float> run(len);
    double acc = 0;
    for (int64_t i = 0; i < len; ++i) run[i] = static_cast<float>(acc += std::exp(z[i] - m));
    const Philox4 w = philox4x32_10(seed, static_cast<uint32_t>(j), step, row, stream);
    const float u0 = to_uniform(w.w[0]), u1 = std::max(to_uniform(w.w[1]), 1e-20f);
    const float S = run[len - 1];
    int64_t cand = len - 1;
    for (int64_t i = 0; i < len; ++i)
      if (run[i] > u0 * S) {
        cand = i;
        break;
      }
    const float score = (m + std::log(S)) + -std::log(-std::log(u1));
    if (best < 0 || score > best_score) best = 256 * j + cand, best_score = score;
  }
  return best;
}

static void test_sampler() {
  std::vector<float> u0(64), g(64);
  // (1) by hand: one tile, p = (.1, .2, .3, .4): first running sum above u0 * S
  {
    const std::vector<float> z = {std::log(0.1f), std::log(0.2f), std::log(0.3f),
                                  std::log(0.4f)};
    for (uint32_t row = 0; row < 50; ++row) {
      const float u = to_uniform(philox4x32_10(5, 0, 0, row, 0).w[0]);
      const float cum[4] = {0.1f, 0.3f, 0.6f, 1.0f};
      int64_t expect = 0;
      while (expect < 3 && cum[expect] <= u) ++expect;  // S = 1 (up to an ulp)
      const int64_t got = sample_logits(z.data(), 4, 5, 0, row, 0, 1.0f, u0.data(), g.data());
      if (std::fabs(u - cum[expect]) > 1e-6f)
        EXPECT(got == expect, "row %u: u0 %.7f -> %" PRId64 ", expected %" PRId64, row, u, got,
               expect);
    }
  }
  // (2) masked vocabulary: only two live entries, in different tiles, the second in a short
  // last tile; nothing else (padding included) may ever be drawn, and both are drawn.
  {
    const int64_t V = 256 + 5;
    std::vector<float> z(V, -1e30f);
    z[3] = 0.0f;
    z[256 + 4] = 0.0f;
    int64_t hits[2] = {0, 0};
    for (uint32_t row = 0; row < 20000; ++row) {
      const int64_t t = sample_logits(z.data(), V, 0, 0, row, 0, 1.0f, u0.data(), g.data());
      EXPECT(t == 3 || t == 256 + 4, "row %u drew masked token %" PRId64, row, t);
      if (t == 3) ++hits[0];
      if (t == 260) ++hits[1];
    }
    EXPECT(hits[0] > 9000 && hits[1] > 9000, "split %" PRId64 "/%" PRId64, hits[0], hits[1]);
  }
  // (3) a dominant logit is always drawn, at any temperature
  {
    std::vector<float> z(700, 0.0f);
    z[517] = 200.0f;
    for (uint32_t row = 0; row < 2000; ++row)
      EXPECT(sample_logits(z.data(), 700, 9, 2, row, 1, row % 2 ? 1.0f : 3.0f, u0.data(),
                           g.data()) == 517, "row %u", row);
  }
  // (4) agreement with the plain transcription on random logits (float ties aside)
  {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    int64_t same = 0, total = 0;
    for (int64_t V : {1, 3, 255, 256, 257, 1000, 5000}) {
      std::vector<float> z(V);
      for (auto& v : z) v = nd(rng);
      for (uint32_t row = 0; row < 400; ++row) {
        const float temp = row % 3 == 0 ? 0.7f : 1.0f;
        const int64_t a = sample_logits(z.data(), V, 123, 4, row, 0, temp, u0.data(), g.data());
        const int64_t b = sample_plain(z, 123, 4, row, 0, temp);
        EXPECT(a >= 0 && a < V, "token %" PRId64 " outside [0, %" PRId64 ")", a, V);
        same += a == b;
        ++total;
      }
    }
    std::printf("sampler vs plain transcription: %" PRId64 " / %" PRId64 " agree\n", same,
                total);
    EXPECT(same >= total - 3, "agreement %" PRId64 " / %" PRId64, same, total);
  }
  // (6) tile pruning: tile_exp_bound brackets the exact sum (S <= bound <= 1.0615 S, up to
  // float rounding), and skipping the tiles it rules out changes no draw, in regimes where
  // the bound is loose (peaked logits), tight (flat: S = len exactly), masked, and at other
  // temperatures; most tiles must actually be skipped.
  {
    std::mt19937 rng(11);
    for (float sd : {0.0f, 0.01f, 1.0f, 4.0f, 20.0f}) {
      std::normal_distribution<float> nd(0.0f, sd > 0 ? sd : 1.0f);
      alignas(64) float z[kTile], e[kTile];
      for (int rep = 0; rep < 200; ++rep) {
        for (int i = 0; i < kTile; ++i) z[i] = sd > 0 ? nd(rng) : 0.0f;
        if (rep % 4 == 1)
          for (int i = 200; i < kTile; ++i) z[i] = -std::numeric_limits<float>::infinity();
        std::memcpy(e, z, sizeof z);
        float m;
        const double S = tile_exp_sum(e, 1.0f, &m);
        const double bound = tile_exp_bound(z, m);
        EXPECT(bound >= S * (1 - 1e-5) && bound <= S * 1.0616, "sd %g: bound %.7g vs S %.7g",
               sd, bound, S);
      }
    }
    int64_t rows = 0, tiles = 0, pruned = 0, differ = 0;
    for (int64_t V : {300, 5000, 5003}) {
      const int64_t rows_before = rows, pruned_before = pruned;
      for (float sd : {0.0f, 0.3f, 3.0f, 30.0f}) {
        std::normal_distribution<float> nd(0.0f, sd > 0 ? sd : 1.0f);
        std::vector<float> z(V);
        for (uint32_t row = 0; row < 300; ++row) {
          for (auto& v : z) v = sd > 0 ? nd(rng) : 0.0f;
          if (row % 5 == 0)
            for (int64_t i = 0; i < V; i += 3) z[i] = -std::numeric_limits<float>::infinity();
          const float temp = row % 3 == 0 ? 0.6f : row % 3 == 1 ? 1.0f : 2.5f;
          const int64_t a = sample_logits(z.data(), V, 31, 7, row, 1, temp, u0.data(), g.data(),
                                          true, &pruned);
          const int64_t b = sample_logits(z.data(), V, 31, 7, row, 1, temp, u0.data(), g.data(),
                                          false);
          differ += a != b;
          ++rows;
          tiles += num_tiles(V);
        }
      }
      std::printf("pruning at V = %" PRId64 ": %.2f of %" PRId64 " tiles evaluated per row\n",
                  V, num_tiles(V) - double(pruned - pruned_before) / (rows - rows_before),
                  num_tiles(V));
    }
    std::printf("pruning: %" PRId64 " of %" PRId64 " tiles skipped over %" PRId64 " rows, %"
                PRId64 " draws differ\n", pruned, tiles, rows, differ);
    EXPECT(differ == 0, "%" PRId64 " of %" PRId64 " draws changed by pruning", differ, rows);
    EXPECT(pruned > tiles / 2, "only %" PRId64 " of %" PRId64 " tiles skipped", pruned, tiles);
  }
  // (5) frequencies over 200k draws match softmax (Pearson chi-square, generous bound)
  {
    const int64_t V = 600, draws = 200000;
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.5f);
    std::vector<float> z(V);
    for (auto& v : z) v = nd(rng);
    std::vector<double> p(V);
    double zmax = -1e30, tot = 0;
    for (float v : z) zmax = std::max<double>(zmax, v);
    for (int64_t i = 0; i < V; ++i) tot += p[i] = std::exp(z[i] - zmax);
    std::vector<int64_t> count(V, 0);
    for (int64_t r = 0; r < draws; ++r)
      ++count[sample_logits(z.data(), V, 77, 1, static_cast<uint32_t>(r), 0, 1.0f, u0.data(),
                            g.data())];
    double chi2 = 0, rare_obs = 0, rare_exp = 0;
    int dof = 0;
    for (int64_t i = 0; i < V; ++i) {
      const double e = draws * p[i] / tot;
      if (e < 5) {
        rare_obs += count[i], rare_exp += e;
        continue;
      }
      chi2 += (count[i] - e) * (count[i] - e) / e;
      ++dof;
    }
    if (rare_exp > 0) chi2 += (rare_obs - rare_exp) * (rare_obs - rare_exp) / rare_exp, ++dof;
    const double bound = dof + 6.0 * std::sqrt(2.0 * dof);  // ~ p < 1e-6 for dof in the 100s
    std::printf("chi-square %.1f over %d bins (bound %.1f)\n", chi2, dof, bound);
    EXPECT(chi2 < bound, "chi2 %.1f >= %.1f", chi2, bound);
  }
}

// Random N(0, 0.5) inputs of the cell tests, from a seeded generator.
struct CellInputs {
  std::mt19937 rng;
  std::normal_distribution<float> nd{0.0f, 0.5f};
  explicit CellInputs(unsigned seed) : rng(seed) {}
  std::vector<float> fill(int64_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng);
    return v;
  }
};

// ---- LSTM cell against a plain double-precision cell ---------------------------------------
static void test_lstm() {
  const int64_t V = 50, E = 7, H = 20, R = 6;  // H not a multiple of 16: padded lanes
  CellInputs in(1);
  auto fill = [&](int64_t n) { return in.fill(n); };
  auto emb = fill(V * E), wih = fill(4 * H * E), whh = fill(4 * H * H), bias = fill(4 * H),
       wout = fill(V * H), bout = fill(V), h0 = fill(R * H), c0 = fill(R * H);
  const LSTMWeightsView w{emb.data(), wih.data(), whh.data(), bias.data(),
                          wout.data(), bout.data(), V, E, H};
  const PackedLSTM p(w);
  BlockWorkspace ws(p, kBlockRows);
  load_state(p, ws, R, h0.data(), c0.data());
  const int64_t tok[R] = {0, 49, 3, 3, 17, 25};
  lstm_block(p, ws, R, tok);
  double worst = 0;
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t i = 0; i < H; ++i) {
      double gate[4];
      for (int k = 0; k < 4; ++k) {
        const int64_t row = k * H + i;
        double a = bias[row];
        for (int64_t e = 0; e < E; ++e) a += double(wih[row * E + e]) * emb[tok[r] * E + e];
        for (int64_t j = 0; j < H; ++j) a += double(whh[row * H + j]) * h0[r * H + j];
        gate[k] = a;
      }
      auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
      const double c = sig(gate[1]) * c0[r * H + i] + sig(gate[0]) * std::tanh(gate[2]);
      const double h = sig(gate[3]) * std::tanh(c);
      worst = std::max(worst, std::fabs(c - ws.cell(p, r)[i]));
      worst = std::max(worst, std::fabs(h - ws.h(p, r)[i]));
    }
    for (int64_t i = H; i < p.Hp; ++i)
      EXPECT(ws.h(p, r)[i] == 0.0f && ws.cell(p, r)[i] == 0.0f, "padding lane %" PRId64
             " of row %" PRId64 " is not 0", i, r);
  }
  std::printf("lstm cell: max |error| %.3g\n", worst);
  EXPECT(worst < 2e-6, "lstm cell error %.3g", worst);
}

// ---- GRU cell against a plain double-precision nn.GRU step -----------------------------------
static void test_gru() {
  const int64_t V = 50, E = 7, H = 20, R = 6;  // H not a multiple of 16: padded lanes
  CellInputs in(2);
  auto fill = [&](int64_t n) { return in.fill(n); };
  // torch layout (r, z, n); kernel bias [b_ir + b_hr, b_iz + b_hz, b_in, b_hn]
  auto emb = fill(V * E), wih = fill(3 * H * E), whh = fill(3 * H * H), bias = fill(4 * H),
       wout = fill(V * H), bout = fill(V), h0 = fill(R * H);
  LSTMWeightsView w{emb.data(), wih.data(), whh.data(), bias.data(),
                    wout.data(), bout.data(), V, E, H};
  w.cell = kCellGRU;
  const PackedRNN p(w);
  BlockWorkspace ws(p, kBlockRows);
  load_state(p, ws, R, h0.data(), nullptr);
  const int64_t tok[R] = {0, 49, 3, 3, 17, 25};
  cell_block<GruCell>(p, ws, R, tok);
  double worst = 0;
  auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t i = 0; i < H; ++i) {
      double gx[3], gh[3];
      for (int k = 0; k < 3; ++k) {
        const int64_t row = k * H + i;
        double a = 0, b = 0;
        for (int64_t e = 0; e < E; ++e) a += double(wih[row * E + e]) * emb[tok[r] * E + e];
        for (int64_t j = 0; j < H; ++j) b += double(whh[row * H + j]) * h0[r * H + j];
        gx[k] = a;
        gh[k] = b;
      }
      const double rg = sig(gx[0] + gh[0] + bias[i]);
      const double zg = sig(gx[1] + gh[1] + bias[H + i]);
      const double n = std::tanh(gx[2] + bias[2 * H + i] + rg * (gh[2] + bias[3 * H + i]));
      const double h = (1 - zg) * n + zg * h0[r * H + i];
      worst = std::max(worst, std::fabs(h - ws.h(p, r)[i]));
    }
    for (int64_t i = H; i < p.Hp; ++i)
      EXPECT(ws.h(p, r)[i] == 0.0f, "padding lane %" PRId64 " of row %" PRId64 " is not 0", i,
             r);
  }
  std::printf("gru cell: max |error| %.3g\n", worst);
  EXPECT(worst < 2e-6, "gru cell error %.3g", worst);
}

// ---- fixture: same tokens as the reference backend ------------------------------------------
static void expect_same(const std::vector<int64_t>& got, const std::vector<int64_t>& want,
                        const char* what) {
  EXPECT(got.size() == want.size(), "%s: size %zu != %zu", what, got.size(), want.size());
  int64_t diff = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) diff += got[i] != want[i];
  EXPECT(diff == 0, "%s: %" PRId64 " of %zu tokens differ", what, diff, want.size());
}

static void test_fixture(const char* path, bool threads_only) {
  Fixture f;
  if (!load_fixture(path, f)) {
    EXPECT(false, "fixture %s unreadable", path);
    return;
  }
  const LSTMWeightsView w = f.view();
  const std::vector<int64_t> x = ints(f.rows["x"], 0);
  EXPECT(static_cast<int64_t>(x.size()) == f.B * f.T, "x size");
  for (const char* key : {"rollout", "rollout_t"}) {
    const auto& r = f.rows[key];
    const uint64_t seed = std::stoull(r[0]);
    const float temp = static_cast<float>(std::stod(r[1]));
    std::vector<int64_t> out((f.T - 1) * f.N * f.B * f.T, -1);
    for (int nt : {1, 2, 3}) {
      std::fill(out.begin(), out.end(), -1);
      rollout_core(w, x.data(), f.B, f.T, f.N, f.start, seed, temp, out.data(), nt);
      if (threads_only) {
        static std::vector<int64_t> first;
        if (nt == 1) first = out;
        else expect_same(out, first, "rollout across thread counts");
      } else {
        expect_same(out, ints(r, 2), key);
      }
    }
  }
  if (threads_only) return;
  {
    const auto& r = f.rows["sample"];
    std::vector<int64_t> out(f.B * f.T);
    sample_core(w, nullptr, f.B, 0, f.T, f.start, std::stoull(r[0]),
                static_cast<uint32_t>(std::stoll(r[2])), static_cast<float>(std::stod(r[1])),
                out.data(), 2);
    expect_same(out, ints(r, 3), "sample");
  }
  {
    const auto& r = f.rows["sample_prefix"];
    const int64_t P = 2;
    const std::vector<int64_t> all = ints(r, 3);
    const std::vector<int64_t> prefix(all.begin(), all.begin() + f.B * P);
    const std::vector<int64_t> want(all.begin() + f.B * P, all.end());
    std::vector<int64_t> out(f.B * f.T);
    sample_core(w, prefix.data(), f.B, P, f.T, f.start, std::stoull(r[0]),
                static_cast<uint32_t>(std::stoll(r[2])), static_cast<float>(std::stod(r[1])),
                out.data(), 1);
    expect_same(out, want, "sample_prefix");
  }
  {  // decode: T steps from the start token reproduce sample()
    const auto& r = f.rows["sample"];
    std::vector<int64_t> tok(f.B, f.start), nxt(f.B), got;
    std::vector<float> h(f.B * f.H, 0.0f), c(h), h2(h), c2(h);
    std::vector<int64_t> seq(f.B * f.T);
    for (int64_t s = 0; s < f.T; ++s) {
      decode_core(w, tok.data(), h.data(), c.data(), f.B, std::stoull(r[0]),
                  static_cast<uint32_t>(s), 0, 0, 1.0f, nxt.data(), h2.data(), c2.data(), 2);
      for (int64_t b = 0; b < f.B; ++b) seq[b * f.T + s] = nxt[b];
      tok.swap(nxt), h.swap(h2), c.swap(c2);
    }
    expect_same(seq, ints(r, 3), "decode loop");
  }
}

// ---- conv + ReLU + max-pool backward against the dense backward in double precision -----
// E = 20 (not a multiple of 16: the scalar tails), widths 1, 3 and T, zeros in the gradient
// (rows whose maximum was <= 0), 1 and 3 threads (the same bits).
static void test_dpool() {
  const int64_t B = 5, T = 9, E = 20, G = 3;
  const int64_t width[G] = {1, 3, 9}, filters[G] = {4, 7, 3};
  CellInputs in(3);
  std::vector<std::vector<float>> w(G);
  std::vector<const float*> wp(G);
  int64_t F = 0;
  for (int64_t g = 0; g < G; ++g) {
    w[g] = in.fill(filters[g] * E * width[g]);
    wp[g] = w[g].data();
    F += filters[g];
  }
  const std::vector<float> emb = in.fill(B * T * E);
  std::vector<float> grad = in.fill(B * F);
  std::vector<int64_t> argmax(B * F);
  std::mt19937 rng(4);
  for (int64_t b = 0; b < B; ++b) {
    int64_t j = 0;
    for (int64_t g = 0; g < G; ++g)
      for (int64_t f = 0; f < filters[g]; ++f, ++j) {
        argmax[b * F + j] = static_cast<int64_t>(rng() % (T - width[g] + 1));
        if ((b + j) % 4 == 0) grad[b * F + j] = 0.0f;
      }
  }
  std::vector<std::vector<float>> gw1, gw3;
  std::vector<float> ge1, ge3;
  for (int threads : {1, 3}) {
    std::vector<std::vector<float>> gw(G);
    std::vector<float*> gwp(G);
    for (int64_t g = 0; g < G; ++g) {
      gw[g].assign(filters[g] * E * width[g], -1.0f);
      gwp[g] = gw[g].data();
    }
    std::vector<float> ge(B * T * E, -1.0f);
    std::vector<std::vector<float>> gb(G);
    std::vector<float*> gbp(G);
    for (int64_t g = 0; g < G; ++g) {
      gb[g].assign(filters[g], -1.0f);
      gbp[g] = gb[g].data();
    }
    const ConvPoolGradView v{wp.data(), width, filters, G, B, T, E, emb.data(), grad.data(),
                             argmax.data(), ge.data(), gwp.data(), gbp.data()};
    conv_pool_backward_core(v, threads);
    for (int64_t g = 0, j = 0; g < G; ++g)
      for (int64_t f = 0; f < filters[g]; ++f, ++j) {
        double want = 0;
        for (int64_t b = 0; b < B; ++b) want += grad[b * F + j];
        EXPECT(std::fabs(want - gb[g][f]) < 1e-5, "dpool: bias gradient %" PRId64 " off", j);
      }
    (threads == 1 ? gw1 : gw3) = gw;
    (threads == 1 ? ge1 : ge3) = ge;
  }
  double worst = 0;
  std::vector<double> want_e(B * T * E, 0.0);
  int64_t j0 = 0;
  for (int64_t g = 0; g < G; ++g) {
    const int64_t k = width[g];
    for (int64_t f = 0; f < filters[g]; ++f) {
      const int64_t j = j0 + f;
      for (int64_t e = 0; e < E; ++e)
        for (int64_t o = 0; o < k; ++o) {
          double dw = 0;
          for (int64_t b = 0; b < B; ++b) {
            const int64_t p = argmax[b * F + j];
            dw += double(grad[b * F + j]) * emb[(b * T + p + o) * E + e];
            want_e[(b * T + p + o) * E + e] += double(grad[b * F + j]) * w[g][(f * E + e) * k + o];
          }
          worst = std::max(worst, std::fabs(dw - gw1[g][(f * E + e) * k + o]));
        }
    }
    j0 += filters[g];
    EXPECT(gw1[g] == gw3[g], "dpool: group %" PRId64 " weight gradient differs at 3 threads", g);
  }
  for (int64_t i = 0; i < B * T * E; ++i) worst = std::max(worst, std::fabs(want_e[i] - ge1[i]));
  EXPECT(ge1 == ge3, "dpool: input gradient differs at 3 threads");
  std::printf("dpool: max |error| %.3g\n", worst);
  EXPECT(worst < 1e-5, "dpool error %.3g", worst);
}

// ---- conv + ReLU + max-pool forward against double precision ----------------------------
// B = 7 (a partial row block on every path), widths 1, 3 and T, filter counts that leave a
// partial panel (5, 19, 33), one group whose windows are all negative (value 0); 1 and 3
// threads (the same bits). The argmax is checked where the best two windows are apart.
static void test_dconv() {
  const int64_t B = 7, T = 9, E = 20, G = 3;
  const int64_t width[G] = {1, 3, 9}, filters[G] = {5, 19, 33};
  CellInputs in(6);
  std::vector<std::vector<float>> w(G), bias(G);
  std::vector<const float*> wp(G), bp(G);
  int64_t F = 0;
  for (int64_t g = 0; g < G; ++g) {
    w[g] = in.fill(filters[g] * E * width[g]);
    bias[g] = in.fill(filters[g]);
    if (g == 1) bias[g].assign(filters[g], -1000.0f);  // every window negative
    wp[g] = w[g].data(), bp[g] = bias[g].data();
    F += filters[g];
  }
  const std::vector<float> emb = in.fill(B * T * E);
  std::vector<float> v1, v3;
  std::vector<int64_t> a1, a3;
  for (int threads : {1, 3}) {
    std::vector<float> val(B * F, -1.0f);
    std::vector<int64_t> arg(B * F, -1);
    const ConvPoolFwdView v{wp.data(), bp.data(), width, filters, G,         B,
                            T,         E,         emb.data(), val.data(), arg.data()};
    conv_pool_forward_core(v, threads);
    (threads == 1 ? v1 : v3) = val;
    (threads == 1 ? a1 : a3) = arg;
  }
  EXPECT(v1 == v3 && a1 == a3, "dconv: 3 threads give other bits");
  double worst = 0;
  int64_t checked = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t j = 0;
    for (int64_t g = 0; g < G; ++g) {
      const int64_t k = width[g];
      for (int64_t f = 0; f < filters[g]; ++f, ++j) {
        double best = -1e300, second = -1e300;
        int64_t at = -1;
        for (int64_t p = 0; p + k <= T; ++p) {
          double y = bias[g][f];
          for (int64_t e = 0; e < E; ++e)
            for (int64_t o = 0; o < k; ++o)
              y += double(w[g][(f * E + e) * k + o]) * emb[(b * T + p + o) * E + e];
          if (y > best) second = best, best = y, at = p;
          else if (y > second) second = y;
        }
        worst = std::max(worst, std::fabs(std::max(best, 0.0) - v1[b * F + j]));
        if (best - second > 1e-3) {
          EXPECT(a1[b * F + j] == at, "dconv: argmax of row %" PRId64 " filter %" PRId64, b, j);
          ++checked;
        }
      }
    }
  }
  std::printf("dconv: max |error| %.3g, %" PRId64 " argmaxes checked\n", worst, checked);
  EXPECT(worst < 1e-4, "dconv error %.3g", worst);
  EXPECT(checked > B * F / 2, "dconv: too few clear argmaxes (%" PRId64 ")", checked);
}

// ---- unpacked GEMM against double precision --------------------------------------------
// Shapes with every tail: R not a multiple of the microkernel's rows, K over two k blocks
// and not a multiple of one, N not a multiple of the panel width, row strides wider than the
// rows; each init (the row bias, the column bias, C itself), and 1 and 3 threads (the same
// bits). R = 1,030: enough rows that B is packed into panels first (the same sums).
static void test_gemm_nn_rows(int64_t R) {
  const int64_t K = 300, N = 77, lda = K + 3, ldb = N + 5, ldc = N + 2;
  CellInputs in(5);
  const std::vector<float> A = in.fill(R * lda), B = in.fill(K * ldb), bias = in.fill(R);
  const std::vector<float> cbias = in.fill(N), C0 = in.fill(R * ldc);
  double worst = 0;
  for (int mode : {0, 1, 2}) {  // row bias, column bias, accumulate
    const bool accumulate = mode == 2;
    std::vector<float> c1, c3;
    for (int threads : {1, 3}) {
      std::vector<float> C = C0;
      const GemmNNView g{A.data(), lda, B.data(), ldb, C.data(), ldc, R, K, N,
                         mode == 0 ? bias.data() : nullptr, accumulate,
                         mode == 1 ? cbias.data() : nullptr};
      gemm_nn_core(g, threads);
      (threads == 1 ? c1 : c3) = C;
    }
    EXPECT(c1 == c3, "gemm_nn (init mode %d): 3 threads give other bits", mode);
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t c = 0; c < ldc; ++c) {
        if (c >= N) {  // the padding columns of C are never written
          EXPECT(c1[r * ldc + c] == C0[r * ldc + c], "gemm_nn wrote C[%" PRId64 ", %" PRId64
                 "] beyond N", r, c);
          continue;
        }
        double want = mode == 2 ? C0[r * ldc + c] : mode == 1 ? cbias[c] : bias[r];
        for (int64_t k = 0; k < K; ++k) want += double(A[r * lda + k]) * B[k * ldb + c];
        worst = std::max(worst, std::fabs(want - c1[r * ldc + c]));
      }
    }
  }
  std::printf("gemm_nn (R = %" PRId64 "): max |error| %.3g\n", R, worst);
  EXPECT(worst < 1e-4, "gemm_nn error %.3g", worst);
}

static void test_gemm_nn() {
  for (int64_t R : {23, 1030}) test_gemm_nn_rows(R);
}

// ---- fused output layer + log-softmax + NLL against double precision --------------------
// N over two row chunks and not a multiple of one, V over two vocabulary blocks and not a
// multiple of one, H not a multiple of any vector width; signed row weights; forward-only
// and gradient calls agree on the nll; 1 and 3 threads give the same bits.
static void test_lnll() {
  const int64_t N = 75, H = 13, V = 600;
  CellInputs in(7);
  const std::vector<float> h = in.fill(N * H), W = in.fill(V * H), b = in.fill(V);
  const std::vector<float> w = in.fill(N);
  std::vector<int64_t> y(N);
  for (int64_t r = 0; r < N; ++r) y[r] = (r * 37 + 11) % V;
  std::vector<float> nll1, nll3, gh1, gh3, gw1, gw3, gb1, gb3, fwd(N);
  for (int threads : {1, 3}) {
    std::vector<float> nll(N), gh(N * H), gw(V * H), gb(V);
    const LinearNLLView v{h.data(), W.data(), b.data(), y.data(), w.data(), N, H, V,
                          nll.data(), gh.data(), gw.data(), gb.data()};
    linear_nll_core(v, threads);
    (threads == 1 ? nll1 : nll3) = nll;
    (threads == 1 ? gh1 : gh3) = gh;
    (threads == 1 ? gw1 : gw3) = gw;
    (threads == 1 ? gb1 : gb3) = gb;
  }
  EXPECT(nll1 == nll3 && gh1 == gh3 && gw1 == gw3 && gb1 == gb3,
         "lnll: 3 threads give other bits");
  const LinearNLLView f{h.data(), W.data(), b.data(), y.data(), nullptr, N, H, V,
                        fwd.data(), nullptr, nullptr, nullptr};
  linear_nll_core(f, 2);
  EXPECT(fwd == nll1, "lnll: the forward-only nll differs from the gradient call's");
  std::vector<double> gw(V * H, 0.0), gb(V, 0.0), z(V);
  double worst_nll = 0, worst_gh = 0, worst_gw = 0;
  for (int64_t r = 0; r < N; ++r) {
    double m = -1e300, s = 0;
    for (int64_t c = 0; c < V; ++c) {
      z[c] = b[c];
      for (int64_t k = 0; k < H; ++k) z[c] += double(W[c * H + k]) * h[r * H + k];
      m = std::max(m, z[c]);
    }
    for (int64_t c = 0; c < V; ++c) s += std::exp(z[c] - m);
    const double lse = m + std::log(s);
    worst_nll = std::max(worst_nll, std::fabs(lse - z[y[r]] - nll1[r]));
    std::vector<double> gh(H, 0.0);
    for (int64_t c = 0; c < V; ++c) {
      const double d = w[r] * (std::exp(z[c] - lse) - (c == y[r] ? 1.0 : 0.0));
      gb[c] += d;
      for (int64_t k = 0; k < H; ++k) {
        gh[k] += d * W[c * H + k];
        gw[c * H + k] += d * h[r * H + k];
      }
    }
    for (int64_t k = 0; k < H; ++k)
      worst_gh = std::max(worst_gh, std::fabs(gh[k] - gh1[r * H + k]));
  }
  for (int64_t c = 0; c < V; ++c) {
    worst_gw = std::max(worst_gw, std::fabs(gb[c] - gb1[c]));
    for (int64_t k = 0; k < H; ++k)
      worst_gw = std::max(worst_gw, std::fabs(gw[c * H + k] - gw1[c * H + k]));
  }
  std::printf("lnll: max |error| nll %.3g, grad_h %.3g, grad_weight/bias %.3g\n", worst_nll,
              worst_gh, worst_gw);
  EXPECT(worst_nll < 1e-4 && worst_gh < 1e-5 && worst_gw < 1e-5, "lnll error");
}

// ---- the finite-value guard's check ----------------------------------------------------
// A bad value at every offset of a 131-float array (whole vectors and a tail), each kind:
// NaN, +-inf, +-2^64; the largest float below 2^64 and denormals pass; the index is that of
// the first bad array at 1 and 3 threads, across 65,536-float blocks.
static void test_finite() {
  const float below = std::nextafter(18446744073709551616.0f, 0.0f);
  const float kinds[] = {std::nanf(""), INFINITY, -INFINITY, 18446744073709551616.0f,
                         -18446744073709551616.0f};
  std::vector<float> a(131, 1.0f);
  a[3] = below, a[4] = -below, a[5] = 1e-45f;
  for (int threads : {1, 3}) {
    const float* one[] = {a.data()};
    const int64_t n131[] = {131};
    EXPECT(first_non_finite_core(one, n131, 1, threads) == -1, "a clean array flagged");
    for (float bad : kinds) {
      for (int64_t i = 0; i < 131; ++i) {
        std::vector<float> b = a;
        b[i] = bad;
        const float* arrays[] = {a.data(), b.data(), b.data()};
        const int64_t sizes[] = {131, 131, 131};
        EXPECT(first_non_finite_core(arrays, sizes, 3, threads) == 1,
               "bad value %g at %" PRId64 " not found first in array 1", bad, i);
      }
    }
    std::vector<float> big(200000, 0.5f);
    big[150000] = kinds[0];
    const float* arrays[] = {a.data(), a.data(), big.data()};
    const int64_t sizes[] = {131, 131, 200000};
    EXPECT(first_non_finite_core(arrays, sizes, 3, threads) == 2, "NaN in block 3 missed");
  }
}

// This binary's ISA path must be runnable here; ctest counts exit 77 as skipped.
static bool cpu_runs_this_path() {
#if defined(__x86_64__) && SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX512
  return __builtin_cpu_supports("x86-64-v4");
#elif defined(__x86_64__) && SEQGAN_ISA_LEVEL == SEQGAN_ISA_AVX2
  return __builtin_cpu_supports("x86-64-v3");
#else
  return true;
#endif
}

// ---- scoring's pooling: the whole-table op against the pass-by-pass fold ------------------
// score_fold_pool_core (slices emb . w_all per pass, at the narrowest and a wide pass) gives
// the same bits as score_pool_core on the table gemm_nn builds, for rollout completions from
// logical row row0 and extra whole rows; both match a double-precision reference.
static void test_score() {
  const int64_t V = 37, T = 9, E = 5, G = 3, B = 3, N = 2, row0 = 5;
  std::vector<int64_t> width{1, 3, 9}, filters{4, 20, 3}, fpad(G), off(G), fpoff(G);
  int64_t Kp = 0, fp_total = 0, F = 0;
  for (int64_t g = 0; g < G; ++g) {
    fpad[g] = (filters[g] + 15) / 16 * 16, off[g] = Kp, fpoff[g] = fp_total;
    Kp += width[g] * fpad[g], fp_total += fpad[g], F += filters[g];
  }
  CellInputs in(4);
  const std::vector<float> emb = in.fill(V * E);
  std::vector<float> w_all = in.fill(E * Kp), bias = in.fill(fp_total);
  for (int64_t g = 0; g < G; ++g)  // padding columns are zero
    for (int64_t c = filters[g]; c < fpad[g]; ++c) {
      bias[fpoff[g] + c] = 0.0f;
      for (int64_t e = 0; e < E; ++e)
        for (int64_t o = 0; o < width[g]; ++o) w_all[e * Kp + off[g] + o * fpad[g] + c] = 0.0f;
    }
  std::vector<float> table(V * Kp);
  gemm_nn_core(GemmNNView{emb.data(), E, w_all.data(), Kp, table.data(), Kp, V, E, Kp,
                          nullptr, false}, 2);
  std::mt19937 rng(5);
  std::vector<int64_t> x(B * T), extra(2 * T);
  for (auto& v : x) v = static_cast<int64_t>(rng() % V);
  for (auto& v : extra) v = static_cast<int64_t>(rng() % V);
  const int64_t M = (T - 1) * N * B - row0;
  std::vector<int64_t> tok(M * T);
  for (int64_t i = 0; i < M; ++i) {
    const int64_t m = row0 + i, t = m / (N * B) + 1, b = m % B;
    for (int64_t p = 0; p < T; ++p)
      tok[i * T + p] = p < t ? x[b * T + p] : static_cast<int64_t>(rng() % V);
  }
  const ConvTableView d{table.data(), bias.data(), width.data(), filters.data(), fpad.data(),
                        off.data(), fpoff.data(), G, V, Kp, fp_total};
  std::vector<float> want((M + 2) * F, -1.0f);
  score_pool_core(d, ScoreRowsView{tok.data(), row0, M, T, x.data(), N, B, extra.data(), 2,
                                   want.data()}, 3);
  double worst = 0;
  for (int64_t i = 0; i < M + 2; ++i) {
    const int64_t* r = i < M ? &tok[i * T] : &extra[(i - M) * T];
    for (int64_t g = 0, j = 0; g < G; j += filters[g], ++g)
      for (int64_t f = 0; f < filters[g]; ++f) {
        double best = 0;  // relu(max)
        for (int64_t p = 0; p + width[g] <= T; ++p) {
          double s = bias[fpoff[g] + f];
          for (int64_t o = 0; o < width[g]; ++o)
            for (int64_t e = 0; e < E; ++e)
              s += double(emb[r[p + o] * E + e]) * w_all[e * Kp + off[g] + o * fpad[g] + f];
          best = std::max(best, s);
        }
        worst = std::max(worst, std::fabs(best - want[i * F + j + f]));
      }
  }
  EXPECT(worst < 1e-4, "score: whole-table pooling off the double reference by %g", worst);
  for (int64_t pass_bytes : {int64_t{1}, int64_t{1} << 20}) {  // 16-column passes; one each
    std::vector<float> scratch(score_fold_scratch_floats(d, E, pass_bytes), NAN);
    std::vector<float> got((M + 2) * F, -1.0f);
    ConvTableView dn = d;
    dn.table = nullptr;
    score_fold_pool_core(ScoreFoldView{dn, emb.data(), w_all.data(), E, pass_bytes,
                                       scratch.data()},
                         ScoreRowsView{tok.data(), row0, M, T, x.data(), N, B, extra.data(), 2,
                                       got.data()}, 2);
    EXPECT(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0,
           "score: the fold at pass_bytes %" PRId64 " differs from the whole table's bits",
           pass_bytes);
  }
}

int main(int argc, char** argv) {
  if (!cpu_runs_this_path()) {
    std::printf("skipped: this CPU cannot run the %s path\n", SEQGAN_STR(SEQGAN_ISA));
    return 77;
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s philox|exp|log|sampler|lstm|gru|dpool|dconv|gemm_nn|lnll|finite|score|fixture|threads [fixture]\n",
                 argv[0]);
    return 2;
  }
  const std::string which = argv[1];
  const char* fixture = argc > 2 ? argv[2] : "tests/cpp/fixture.txt";
  if (which == "philox") test_philox();
  else if (which == "exp") test_exp();
  else if (which == "log") test_log();
  else if (which == "sampler") test_sampler();
  else if (which == "lstm") test_lstm();
  else if (which == "gru") test_gru();
  else if (which == "dpool") test_dpool();
  else if (which == "gemm_nn") test_gemm_nn();
  else if (which == "dconv") test_dconv();
  else if (which == "lnll") test_lnll();
  else if (which == "finite") test_finite();
  else if (which == "score") test_score();
  else if (which == "fixture") test_fixture(fixture, false);
  else if (which == "threads") test_fixture(fixture, true);
  else {
    std::fprintf(stderr, "unknown case %s\n", which.c_str());
    return 2;
  }
  std::printf("%s [%s]: %s\n", which.c_str(), SEQGAN_STR(SEQGAN_ISA), g_failures ? "FAILED" : "ok");
  return g_failures ? 1 : 0;
}
