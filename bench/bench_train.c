// bench_train: one Hypencoder training step (forward, Margin-MSE + in-batch CE, backward,
// clipping, AdamW) against the PyTorch twin on the same configuration, batch shape and
// threads, timed in the same run (the ratio is computed from both). Default: MiniLM-sized
// BERT (6 layers, 384 hidden, 12 heads, 1536 FFN), 2-layer q-net, 8 queries x 8 passages,
// 32 / 128 tokens, on the CPU. Target (issue 6): our step at most 0.8x PyTorch's time.
//
//   bench_train [layers hidden heads ffn qnet B n qlen dlen reps] [--cuda] [--precision fp32|tf32|bf16]
//               [--recompute]   (train.recompute = act: GELU recomputed in backward, as the shipped
//                                paper configs run; bitwise the same step, less memory)
//
// --cuda (issue 16): e.g. `bench_train 12 768 12 3072 6 64 9 32 196 5 --cuda --precision bf16`,
// the bert-base Hypencoder at the paper's batch; prints ms/step, queries/s, tokens/s, MFU and
// peak memory of both; target on an H100/H200: ours <= 0.67x the twin's time, MFU >= 50%.
// Both run dropout 0.1; the twin uses SDPA attention, HF's BertModel with its pooler, tf32
// and bf16 autocast as the authors' HF Trainer did (bench/bench_train_torch.py).
// The twin's python: $HYP_PYTHON, else .venv-oracles/bin/python (scripts/setup.sh --oracles),
// else python3.
#include "train/trainer.h"
#include "train/optim.h"
#include "train/flops.h"
#include "kernels/elementwise.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *twin_python(void) {
    const char *e = getenv("HYP_PYTHON");
    if (e && e[0]) return e;
    if (access(".venv-oracles/bin/python", X_OK) == 0) return ".venv-oracles/bin/python";
    return "python3";
}

int main(int argc, char **argv) {
    int v[10] = {6, 384, 12, 1536, 2, 8, 8, 32, 128, 3}, nv = 0;
    Device dev = HYP_CPU;
    const char *precision = "fp32";
    bool recompute = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cuda")) dev = HYP_CUDA;
        else if (!strcmp(argv[i], "--recompute")) recompute = true;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) precision = argv[++i];
        else if (nv < 10) v[nv++] = atoi(argv[i]);
    }
    if (strcmp(precision, "fp32") && strcmp(precision, "tf32") && strcmp(precision, "bf16")) {
        fprintf(stderr, "bench_train: --precision %s (fp32, tf32 or bf16)\n", precision);
        return 1;
    }
    if (dev == HYP_CUDA && !hyp_cuda_available()) {
        fprintf(stderr, "bench_train: --cuda: %s\n", hyp_cuda_why_unavailable());
        return 1;
    }
    int layers = v[0], hidden = v[1], heads = v[2], ffn = v[3], L = v[4], B = v[5], n = v[6], qlen = v[7],
        dlen = v[8], reps = v[9], threads = omp_get_max_threads();
    HypencoderConfig hc = hypencoder_config_default(L);
    hc.bert.layers = layers;
    hc.bert.hidden = hidden;
    hc.bert.heads = heads;
    hc.bert.ffn = ffn;
    hc.bert.dropout = 0.1f;
    hc.bert.pooler = false;
    hc.bert.recompute_act = recompute;
    TrainModel m = {.hypencoder = true, .ps = paramset_new(dev)};
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
    Ctx *c = ctx_new(dev);
    c->training = true;
    c->matmul_precision = !strcmp(precision, "bf16") ? HYP_MATMUL_BF16
                          : !strcmp(precision, "tf32") ? HYP_MATMUL_TF32 : HYP_MATMUL_F32;
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
        backend_get(dev)->synchronize();
        double t = hyp_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    // Device memory: parameters + gradients + AdamW m, v + the activation arena's most bytes held.
    size_t act_held;
    arena_peak(c->act, NULL, &act_held);
    const double ours_gib = ((double)m.ps->numel * 16 + (double)act_held) / (1 << 30);
    const StepShape shape = {layers, hidden, ffn, L, B, n, qlen, dlen, true, false};
    const double flops = step_flops(&shape), tokens = step_tokens(&shape);
    char peak_what[320];
    const double peak = device_peak_flops(dev, c->matmul_precision, peak_what, sizeof peak_what);
    printf("hypencoder train step on %s (%s): BERT %d x %d (%d heads, FFN %d), %d-layer q-net, %d queries x %d passages, "
           "%d/%d tokens, dropout 0.1%s, %d threads\n", device_name(dev), precision, layers, hidden, heads, ffn, L, B, n,
           qlen, dlen, recompute ? ", GELU recomputed" : "", threads);
    printf("  MFU against %s\n", peak > 0 ? peak_what : "(no peak known for this device)");
    printf("  ours     %8.1f ms  %7.1f queries/s  %9.0f tokens/s", best * 1e3, B / best, tokens / best);
    if (peak > 0) printf("  MFU %5.1f%%", 100 * flops / best / peak);
    printf("  peak %.2f GiB\n", ours_gib);
    if (profile_enabled()) profile_report(stdout);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s bench/bench_train_torch.py %d %d %d %d %d %d %d %d %d %d %d %s %s 2>/dev/null",
             twin_python(), layers, hidden, heads, ffn, L, B, n, qlen, dlen, threads, reps, device_name(dev), precision);
    FILE *p = popen(cmd, "r");
    double torch_ms = 0, torch_peak = 0;
    char line[256];
    while (p && fgets(line, sizeof line, p)) {
        sscanf(line, "torch_ms %lf", &torch_ms);
        sscanf(line, "torch_peak_bytes %lf", &torch_peak);
    }
    if (p) pclose(p);
    const double target = dev == HYP_CUDA ? 0.67 : 0.8;
    if (torch_ms > 0) {
        const double ts = torch_ms * 1e-3;
        printf("  pytorch  %8.1f ms  %7.1f queries/s  %9.0f tokens/s", torch_ms, B / ts, tokens / ts);
        if (peak > 0) printf("  MFU %5.1f%%", 100 * flops / ts / peak);
        if (torch_peak > 0) printf("  peak %.2f GiB", torch_peak / (1 << 30));
        printf("\n  ratio ours/pytorch %.3f (target <= %.2f)\n", best / ts, target);
    } else {
        printf("  pytorch  unavailable (%s could not run bench/bench_train_torch.py: no torch/transformers? "
               "scripts/setup.sh --oracles, or set HYP_PYTHON)\n", twin_python());
    }
    return 0;
}
