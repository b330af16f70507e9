// bench_train: one Hypencoder training step (forward, Margin-MSE + in-batch CE, backward,
// clipping, AdamW) on the CPU against the PyTorch twin on the same configuration, batch
// shape and threads, timed in the same run. Default: MiniLM-sized BERT (6 layers, 384
// hidden, 12 heads, 1536 FFN), 2-layer q-net, 8 queries x 8 passages, 32 / 128 tokens.
// Target (issue 6): our step at most 0.8x PyTorch's time.
#include "train/trainer.h"
#include "train/optim.h"
#include "kernels/elementwise.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int v[10] = {6, 384, 12, 1536, 2, 8, 8, 32, 128, 3};
    for (int i = 1; i < argc && i <= 10; i++) v[i - 1] = atoi(argv[i]);
    int layers = v[0], hidden = v[1], heads = v[2], ffn = v[3], L = v[4], B = v[5], n = v[6], qlen = v[7],
        dlen = v[8], reps = v[9], threads = omp_get_max_threads();
    HypencoderConfig hc = hypencoder_config_default(L);
    hc.bert.layers = layers;
    hc.bert.hidden = hidden;
    hc.bert.heads = heads;
    hc.bert.ffn = ffn;
    hc.bert.dropout = 0.1f;
    hc.bert.pooler = false;
    TrainModel m = {.hypencoder = true, .ps = paramset_new(HYP_CPU)};
    hypencoder_register(&m.hyp, m.ps, &hc);
    paramset_finalize(m.ps);
    hypencoder_init(&m.hyp, 1);
    AdamWConfig ac = adamw_config_default();
    AdamW *opt = adamw_new(m.ps, &ac);
    TrainBatch b = {.n_queries = B, .n_items = n, .q_len = qlen, .d_len = dlen};
    b.q_ids = hyp_malloc((size_t)B * qlen * sizeof(int32_t));
    b.q_mask = hyp_malloc((size_t)B * qlen * sizeof(int32_t));
    b.d_ids = hyp_malloc((size_t)B * n * dlen * sizeof(int32_t));
    b.d_mask = hyp_malloc((size_t)B * n * dlen * sizeof(int32_t));
    b.scores = hyp_malloc((size_t)B * n * sizeof(float));
    for (int i = 0; i < B * qlen; i++) { b.q_ids[i] = 1 + (int)(hyp_philox_uniform(1, 0, i) * 30000); b.q_mask[i] = 1; }
    for (int i = 0; i < B * n * dlen; i++) { b.d_ids[i] = 1 + (int)(hyp_philox_uniform(2, 0, i) * 30000); b.d_mask[i] = 1; }
    for (int i = 0; i < B * n; i++) b.scores[i] = 10 * hyp_philox_uniform(3, 0, i);
    Ctx *c = ctx_new(HYP_CPU);
    c->training = true;
    // As hyp train does (train.flush_denormals, default true); BENCH_KEEP_DENORMALS=1 shows
    // the cost of not flushing (the twin then keeps them too).
    bool keep_denormals = getenv("BENCH_KEEP_DENORMALS") != NULL;
    hyp_cpu_flush_denormals(!keep_denormals);
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        if (r == reps && profile_enabled()) memset(&hyp_profile, 0, sizeof hyp_profile);   // last rep only
        profile_mark();
        double t0 = hyp_now();
        paramset_zero_grad(m.ps);
        StepLosses l = train_forward(c, &m, &b, 1, 1);
        backward(c, l.total);
        OptimStats st;
        optim_step(opt, m.ps, 2e-5, &st);
        ctx_reset(c);
        double t = hyp_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    printf("hypencoder train step: BERT %d x %d (%d heads, FFN %d), %d-layer q-net, %d queries x %d passages, %d/%d tokens, %d threads\n",
           layers, hidden, heads, ffn, L, B, n, qlen, dlen, threads);
    printf("  ours     %8.1f ms  %6.1f queries/s\n", best * 1e3, B / best);
    if (profile_enabled()) profile_report(stdout);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 bench/bench_train_torch.py %d %d %d %d %d %d %d %d %d %d %d 2>/dev/null",
             layers, hidden, heads, ffn, L, B, n, qlen, dlen, threads, reps);
    FILE *p = popen(cmd, "r");
    double torch_ms = 0;
    char line[256];
    while (p && fgets(line, sizeof line, p)) sscanf(line, "torch_ms %lf", &torch_ms);
    if (p) pclose(p);
    if (torch_ms > 0)
        printf("  pytorch  %8.1f ms  %6.1f queries/s  ratio ours/pytorch %.3f (target <= 0.8)\n", torch_ms,
               B / (torch_ms * 1e-3), best * 1e3 / torch_ms);
    else
        printf("  pytorch  unavailable (python3 with torch and transformers not found)\n");
    return 0;
}
