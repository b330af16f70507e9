// plan.h: the memory planner of `hyp train --plan` (DESIGN §1 "will it fit?").
//
// The model, its AdamW state and two optimizer steps at the config's worst-case shapes
// (batch_size queries x (1 + num_negatives) passages, query_max_len / doc_max_len tokens,
// grad_accum micro-batches) run through the trainer's own model and loss code on the meta
// backend (kernels/meta_backend.c): no arithmetic, no GPU, no data files. What the device
// would hold is what that code allocates. With real = true the same steps run on the real
// backend with synthetic ids (tests compare the two).
#ifndef HYP_PLAN_H
#define HYP_PLAN_H
#include <stdio.h>
#include "autograd/tensor.h"

typedef struct PlanOptions {
    const char *config_path;     // INI file
    const char *const *sets;     // --set section.key=value, in order
    int n_sets;
    Device device;               // the device planned for
    bool real;                   // run on the real backend instead of the meta one
} PlanOptions;

typedef struct PlanReport {
    Device device;
    char precision[16];          // train.precision when the config has the key, else fp32
    char kind[16];               // hypencoder | biencoder
    int batch, items, q_len, d_len, grad_accum;
    size_t n_params;             // parameters (floats)
    size_t params, grads, optim; // bytes: fp32 parameters, their gradients, AdamW m and v
    size_t act_peak;             // activation arena: most bytes of blocks held (the first step,
                                 // whose blocks are outgrown mid-step, included)
    size_t act_steady;           // activation arena: bytes handed out per step (later steps'
                                 // single block)
    size_t workspace;            // the rest: small device buffers, and on CUDA the cuBLASLt
                                 // workspace and the kernels' scratch (modelled by the meta backend)
    size_t peak;                 // per rank: the most bytes allocated at once + the CUDA scratch
    size_t device_high_water;    // real runs on CUDA: the most bytes hyp_cuda_alloc held during
                                 // the run, above what was held before it (0 otherwise)
} PlanReport;

// 0, or -1 with hyp_last_error() (a bad config, a device this build lacks).
int plan_run(const PlanOptions *o, PlanReport *r);
// The plan and the same two steps run for real on o->device (random weights, random ids):
// prints both and exits non-zero when the device's high-water mark (CUDA) or the real arena
// (CPU) exceeds the plan by more than 5%. For a GPU check; CI checks it on the simulator.
int plan_check(const PlanOptions *o, FILE *f);
// The breakdown, then the line
// "plan: peak 61.2 GiB per rank (device cuda, precision bf16, batch 64x9, query 32, passage 196)".
void plan_print(FILE *f, const PlanReport *r);

#endif
