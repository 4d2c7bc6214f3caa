// OpenMP helpers shared by the fused cores (torch-free).
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace seqgan {

// An op's thread count: num_threads, or OpenMP's default when <= 0 (1 without OpenMP).
inline int resolve_threads(int num_threads) {
#ifdef _OPENMP
  return num_threads > 0 ? num_threads : omp_get_max_threads();
#else
  (void)num_threads;
  return 1;
#endif
}

// Static work split inside an OpenMP parallel region: the calling thread's share [lo, hi) of n
// items, contiguous and in thread order; the whole range without OpenMP.
inline void this_thread_share(int64_t n, int64_t* lo, int64_t* hi) {
  int64_t nt = 1, id = 0;
#ifdef _OPENMP
  nt = omp_get_num_threads();
  id = omp_get_thread_num();
#endif
  *lo = n * id / nt;
  *hi = n * (id + 1) / nt;
}

}  // namespace seqgan
