// The body of each csrc/cpu/kernels_<isa>.cpp: this path's copy of the fused core and the
// table of its entry points. Expects SEQGAN_ISA and SEQGAN_ISA_LEVEL defined (and the
// target pragma in force) by the includer.
#include "common/generate.h"
#include "common/dconv.h"
#include "common/dpool.h"
#include "common/finite.h"
#include "common/gemm_nn.h"
#include "common/highway_head.h"
#include "common/lnll.h"
#include "common/score.h"

namespace seqgan {
namespace SEQGAN_ISA {

#define SEQGAN_STR2(x) #x
#define SEQGAN_STR(x) SEQGAN_STR2(x)
static const CoreKernels kKernels = {SEQGAN_STR(SEQGAN_ISA), &decode_core, &sample_core,
                                     &rollout_core, &score_pool_core,
                                     &score_fold_pool_core,
                                     &conv_pool_backward_core, &gemm_nn_core,
                                     &conv_pool_forward_core, &linear_nll_core,
                                     &first_non_finite_core, &highway_head_core};
#undef SEQGAN_STR
#undef SEQGAN_STR2
extern const CoreKernels* const kTable;
const CoreKernels* const kTable = &kKernels;

}  // namespace SEQGAN_ISA
}  // namespace seqgan
