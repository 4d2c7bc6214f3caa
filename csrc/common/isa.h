// Which instruction set the fused CPU core is being compiled for in this translation unit.
//
// The extension carries every path: csrc/cpu/kernels_{avx512,avx2,baseline}.cpp each include
// the core headers once, under `#pragma GCC target(...)`, with SEQGAN_ISA (the namespace the
// copy lives in, so the three copies never meet at link time) and SEQGAN_ISA_LEVEL set. GCC
// does not update __AVX2__ / __AVX512F__ under that pragma in C++, hence a macro of our own.
// Built alone (tests/cpp, or any other includer), the level follows the compiler's flags.
#pragma once

#define SEQGAN_ISA_BASELINE 0  // x86-64 (SSE2) or any other CPU: portable vector code
#define SEQGAN_ISA_AVX2 1      // x86-64-v3: AVX2 + FMA, 16 ymm registers
#define SEQGAN_ISA_AVX512 2    // x86-64-v4: AVX-512 F/BW/CD/DQ/VL, 32 zmm registers

#ifndef SEQGAN_ISA_LEVEL
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
    defined(__AVX512VL__)
#define SEQGAN_ISA_LEVEL SEQGAN_ISA_AVX512
#elif defined(__AVX2__) && defined(__FMA__)
#define SEQGAN_ISA_LEVEL SEQGAN_ISA_AVX2
#else
#define SEQGAN_ISA_LEVEL SEQGAN_ISA_BASELINE
#endif
#endif

#ifndef SEQGAN_ISA
#define SEQGAN_ISA native
#endif
