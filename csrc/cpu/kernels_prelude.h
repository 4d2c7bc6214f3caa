// Included first by each csrc/cpu/kernels_<isa>.cpp, before its `#pragma GCC target`: every
// system header the core uses, so that their inline functions and templates are defined
// (and merged by the linker) for the baseline target only. Only the core's own functions,
// each path's in its own namespace, are compiled for the wider instruction set.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/api.h"
#include "common/parallel.h"  // namespace seqgan, not a path's: compiled for the baseline
