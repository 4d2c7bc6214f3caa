// What the ctest binaries share: the EXPECT macro, and the fixture: weights made from a hash (no RNG library
// differences), and the tokens the reference backend drew for them (fixture.txt, written by
// make_fixture.py).
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/api.h"

// Failure counter and check macro of the ctest binaries: a failed check prints where and
// why, and the binary exits non-zero at the end.
static int g_failures = 0;
#define EXPECT(cond, ...)                                          \
  do {                                                             \
    if (!(cond)) {                                                 \
      ++g_failures;                                                \
      std::fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                           \
      std::fprintf(stderr, "\n");                                  \
    }                                                              \
  } while (0)

static uint32_t hash32(uint32_t x) {
  x = (x ^ (x >> 16)) * 0x45D9F3Bu;
  x = (x ^ (x >> 16)) * 0x45D9F3Bu;
  return x ^ (x >> 16);
}
static std::vector<float> hashed(uint32_t salt, int64_t n, float scale) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t k = hash32(salt * 1000003u + static_cast<uint32_t>(i)) >> 8;
    v[i] = (static_cast<float>(k) / 8388608.0f - 1.0f) * scale;
  }
  return v;
}

struct Fixture {
  int64_t V = 0, E = 0, H = 0, B = 0, N = 0, T = 0, start = 0;
  std::map<std::string, std::vector<std::string>> rows;
  std::vector<float> emb, wih, whh, bias, wout, bout;
  seqgan::LSTMWeightsView view() const {
    return {emb.data(), wih.data(), whh.data(), bias.data(), wout.data(), bout.data(), V, E, H};
  }
};

static bool load_fixture(const char* path, Fixture& f) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "cannot open fixture %s\n", path);
    return false;
  }
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::string key, tok;
    ss >> key;
    while (ss >> tok) f.rows[key].push_back(tok);
  }
  const auto& d = f.rows["dims"];
  if (d.size() != 7) return false;
  f.V = std::stoll(d[0]), f.E = std::stoll(d[1]), f.H = std::stoll(d[2]), f.B = std::stoll(d[3]);
  f.N = std::stoll(d[4]), f.T = std::stoll(d[5]), f.start = std::stoll(d[6]);
  f.emb = hashed(1, f.V * f.E, 1.0f);
  f.wih = hashed(2, 4 * f.H * f.E, 0.5f);
  f.whh = hashed(3, 4 * f.H * f.H, 0.5f);
  f.bias = hashed(4, 4 * f.H, 0.5f);
  f.wout = hashed(5, f.V * f.H, 2.0f);
  f.bout = hashed(6, f.V, 0.5f);
  return true;
}

static std::vector<int64_t> ints(const std::vector<std::string>& v, size_t from) {
  std::vector<int64_t> out;
  for (size_t i = from; i < v.size(); ++i) out.push_back(std::stoll(v[i]));
  return out;
}

