// test_flops.c: the step log's FLOP count (train/flops.c) against a hand count, and the peak.
#include "tests/testlib.h"
#include "train/flops.h"
#include <math.h>
#include <string.h>

Test(flops, bert_base_hypencoder_step) {
    // The paper's per-device batch: 64 queries x (1 + 7) passages, 32 / 196 tokens, BERT-base,
    // a 6-layer q-net, in-batch negatives.
    StepShape s = {12, 768, 3072, 6, 64, 8, 32, 196, true, false};
    const double h = 768, L = 12;
    const double lin = 2 * (4 * h * h + 2 * h * 3072) * L;            // 170 MFLOP a token
    const double q = 64.0 * 32 * (lin + 4 * 32 * h * L), d = 512.0 * 196 * (lin + 4 * 196 * h * L);
    // q-net pairs: each query's 8 passages (Margin-MSE) and the batch's 64 positives (in-batch CE)
    const double qnet = (512.0 + 64.0 * 64) * (2 * h * h * 6 + 2 * h);
    // hyperhead: 7 matrices + 6 biases, each a key and value projection of the 32 query tokens;
    // attention and output projection for 6 * 768 + 1 + 6 output rows
    const double head = 64.0 * (13 * 32 * 4 * h * h + (6 * h + 7) * (4 * h * 32 + 2 * h * h));
    const double want = 3 * (q + d + head + qnet);
    cr_assert(fabs(step_flops(&s) - want) / want < 1e-12, "%g vs %g", step_flops(&s), want);
    cr_assert(step_tokens(&s) == 64.0 * 32 + 512.0 * 196);
    // the usual 6 N T estimate (N = 85M linear parameters) is within a few % of it: attention adds
    const double six_nt = 6.0 * (lin / 2) * step_tokens(&s);
    cr_assert(step_flops(&s) > six_nt && step_flops(&s) < 1.2 * six_nt, "%g vs 6NT %g", step_flops(&s), six_nt);
    StepShape fz = s;
    fz.frozen_encoder = true;   // queries' BERT forward only; the head and q-net forward + backward
    cr_assert(fabs(step_flops(&fz) - (q + 3 * (head + qnet))) / want < 1e-12);
    StepShape be = s;
    be.qnet_layers = 0;   // BE-Base: a dot product a pair
    cr_assert(step_flops(&be) < step_flops(&s));
}

Test(flops, cpu_peak_is_measured) {
    char what[320];
    const double p = device_peak_flops(HYP_CPU, HYP_MATMUL_F32, what, sizeof what);
    cr_assert(p > 1e8 && p < 1e14, "a CPU sgemm rate of %g FLOP/s", p);
    cr_assert(strstr(what, "measured"), "%s", what);
}
