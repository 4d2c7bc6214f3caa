// Run-time choice of the fused CPU core's instruction-set path (torch-free). The extension
// carries an avx512, an avx2 and a baseline copy of the core (kernels_<isa>.cpp); the best
// one this CPU and OS support is used unless SEQGAN_FAST_ISA, or set_active_isa(), forces a
// lower one (tests and benchmarks run every path on one machine that way).
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "common/api.h"

namespace seqgan {
namespace {

const char* const kNames[] = {"baseline", "avx2", "avx512"};

const CoreKernels* table_for(int rank) {
  switch (rank) {
    case 2: return avx512::kTable;
    case 1: return avx2::kTable;
    default: return baseline::kTable;
  }
}

int best_rank() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  // GCC's checks include the OS's support for the wider register state (XGETBV).
  if (avx512::kTable && __builtin_cpu_supports("x86-64-v4")) return 2;
  if (avx2::kTable && __builtin_cpu_supports("x86-64-v3")) return 1;
#endif
  return 0;
}

std::atomic<const CoreKernels*> g_active{nullptr};
std::mutex g_init;
std::string g_env_error;

// The path `name` names, or nullptr with *error set.
const CoreKernels* resolve(const char* name, const char** error) {
  static thread_local std::string message;
  if (name == nullptr || *name == '\0' || std::strcmp(name, "auto") == 0)
    return table_for(best_rank());
  const int rank = isa_rank(name);
  if (rank < 0) {
    message = std::string("unknown CPU ISA path '") + name +
              "': expected one of avx512, avx2, baseline, auto";
    *error = message.c_str();
    return nullptr;
  }
  if (rank > best_rank()) {
    message = std::string("CPU ISA path '") + name + "' cannot run on this CPU (best: " +
              kNames[best_rank()] + ")";
    *error = message.c_str();
    return nullptr;
  }
  return table_for(rank);
}

}  // namespace

int isa_rank(const char* name) {
  for (int r = 0; r < 3; ++r)
    if (name && std::strcmp(name, kNames[r]) == 0) return r;
  return -1;
}

const char* best_supported_isa() { return kNames[best_rank()]; }

const CoreKernels* active_kernels(const char** error) {
  const CoreKernels* k = g_active.load(std::memory_order_acquire);
  if (k) return k;
  std::lock_guard<std::mutex> lock(g_init);
  k = g_active.load(std::memory_order_relaxed);
  if (k) return k;
  const char* err = nullptr;
  k = resolve(std::getenv("SEQGAN_FAST_ISA"), &err);
  if (!k) {
    g_env_error = std::string("SEQGAN_FAST_ISA: ") + err;
    *error = g_env_error.c_str();
    return nullptr;
  }
  g_active.store(k, std::memory_order_release);
  return k;
}

const char* set_active_isa(const char* name, const char** error) {
  const CoreKernels* k = resolve(name, error);
  if (!k) return nullptr;
  const char* env_error = nullptr;
  const CoreKernels* before = active_kernels(&env_error);  // a bad variable is replaced
  std::lock_guard<std::mutex> lock(g_init);
  g_active.store(k, std::memory_order_release);
  return before ? before->isa : "auto";
}

}  // namespace seqgan
