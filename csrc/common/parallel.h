// Static work split inside an OpenMP parallel region (torch-free): the calling thread's share
// [lo, hi) of n items, contiguous and in thread order; the whole range without OpenMP.
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace seqgan {

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
