// gradcheck.h: finite-difference check of every op's backward (CPU, fp32 forward,
// fp64 accumulation of the probe). The probe is L = sum(out * r) for a fixed random r.
#ifndef HYP_GRADCHECK_H
#define HYP_GRADCHECK_H
#include "autograd/ops.h"
#include "autograd/init.h"   // fill_uniform for the probes (and the tests)

// Builds the op's output from its inputs; called many times on a scratch context.
typedef Tensor *(*GradFn)(Ctx *c, Tensor **inputs, void *user);

typedef struct GradcheckOpts {
    double eps;          // central-difference step (default 1e-2)
    double rtol, atol;   // pass if |analytic - numeric| <= atol + rtol * max(|a|, |n|)
    int max_per_input;   // elements probed per input (default 64; all if the input is smaller)
    uint64_t seed;
} GradcheckOpts;

// Checks d L / d inputs[i] for every f32 input with requires_grad. Returns true when all
// probed elements pass; otherwise writes the worst offender into report.
bool gradcheck(GradFn f, Tensor **inputs, int n_in, void *user, const GradcheckOpts *opts,
               char *report, size_t report_len);

#endif
