// The fused CPU core for the build's baseline target (x86-64: SSE2; or any other CPU): the
// path every machine can run.
#include "cpu/kernels_prelude.h"

#define SEQGAN_ISA baseline
#define SEQGAN_ISA_LEVEL SEQGAN_ISA_BASELINE
#include "cpu/kernels_table.h"
