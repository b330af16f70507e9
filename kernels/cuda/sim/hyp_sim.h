// hyp_sim.h: the CUDA simulator's own C interface (kernels/cuda/sim/), for tests and
// tools: the report of the last failed launch and counters of what the runtime did.
// The CUDA surface itself (cudaMalloc, kernels, cuBLAS) is in include/*.h and simt.h.
#ifndef HYP_SIM_H
#define HYP_SIM_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct HypSimStats {
    uint64_t launches;        // kernel launches that ran
    uint64_t launch_errors;   // launches refused (bad configuration) or failed (divergence)
    uint64_t copies_h2d, copies_d2h, copies_d2d;   // cudaMemcpy* calls by direction
    uint64_t bytes_h2d, bytes_d2h;
    uint64_t gemms;           // cuBLAS / cuBLASLt products
    size_t bytes_allocated;   // device bytes live now
    size_t peak_allocated;    // high-water mark of bytes_allocated
} HypSimStats;

// Counters since the start of the process (or the last reset).
HypSimStats hyp_sim_stats(void);
void hyp_sim_reset_stats(void);
// The message of the last launch that failed (divergent barrier, shuffle with an exited
// lane, bad launch configuration, ...), or "" when none has. Cleared by
// hyp_sim_clear_report().
const char *hyp_sim_last_report(void);
void hyp_sim_clear_report(void);
// When quiet, failed launches are not also printed to stderr (for tests that provoke them).
void hyp_sim_set_quiet(int quiet);

#ifdef __cplusplus
}
#endif
#endif
