#include <cuda_runtime.h>
#include <nccl.h>
// ncclAvg (2.10+) and non-blocking communicators (2.14+) are used by train/comm_nccl.c.
int main(void) {
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    int v = 0;
    ncclGetVersion(&v);
    cudaStream_t s = cudaStreamLegacy;
    ncclResult_t (*volatile init)(ncclComm_t *, int, ncclUniqueId, int, ncclConfig_t *) = ncclCommInitRankConfig;
    return (int)ncclAvg + cfg.blocking + (v < 0) + (s == 0) + (init == 0);
}
