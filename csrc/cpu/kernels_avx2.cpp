// The fused CPU core compiled for AVX2 + FMA (x86-64-v3); chosen at run time by
// csrc/cpu/isa.cpp.
#include "cpu/kernels_prelude.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define SEQGAN_ISA avx2
#define SEQGAN_ISA_LEVEL SEQGAN_ISA_AVX2
#include "cpu/kernels_table.h"
#pragma GCC pop_options
#else
namespace seqgan::avx2 { const CoreKernels* const kTable = nullptr; }
#endif
