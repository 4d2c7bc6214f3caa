// The fused CPU core compiled for AVX-512 (x86-64-v4); chosen at run time by csrc/cpu/isa.cpp.
#include "cpu/kernels_prelude.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define SEQGAN_ISA avx512
#define SEQGAN_ISA_LEVEL SEQGAN_ISA_AVX512
#include "cpu/kernels_table.h"
#pragma GCC pop_options
#else
namespace seqgan::avx512 { const CoreKernels* const kTable = nullptr; }
#endif
