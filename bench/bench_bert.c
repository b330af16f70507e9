// bench_bert: one BERT forward+backward step on the CPU (MiniLM-L6 config by default,
// batch 32 x 128 tokens) against PyTorch (transformers BertModel) on the same machine,
// config, batch and thread count, timed in the same run: prints both and the ratio
// ours/PyTorch (target <= 1.0). Without python3+torch only our time is printed.
// Usage: bench_bert [layers hidden heads ffn batch seq reps]
#include "model/bert.h"
#include "autograd/gradcheck.h"
#include "kernels/elementwise.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int v[7] = {6, 384, 12, 1536, 32, 128, 3};
    for (int i = 1; i < argc && i <= 7; i++) v[i - 1] = atoi(argv[i]);
    int layers = v[0], hidden = v[1], heads = v[2], ffn = v[3], B = v[4], T = v[5], reps = v[6];
    int threads = omp_get_max_threads();
    BertConfig cfg = bert_base_config();
    cfg.layers = layers; cfg.hidden = hidden; cfg.heads = heads; cfg.ffn = ffn;
    cfg.dropout = 0.0f; cfg.pooler = false;
    ParamSet *ps = paramset_new(HYP_CPU);
    Bert bert;
    bert_register(&bert, ps, "", &cfg);
    paramset_finalize(ps);
    bert_init(&bert, 1);
    Ctx *c = ctx_new(HYP_CPU);
    c->training = true;
    int32_t *ids = hyp_malloc((size_t)B * T * sizeof(int32_t)), *mask = hyp_malloc((size_t)B * T * sizeof(int32_t));
    for (int i = 0; i < B * T; i++) {
        ids[i] = 1 + (int)(hyp_philox_uniform(5, 0, i) * 30000);
        mask[i] = !(i / T >= B / 2 && i % T >= T * 3 / 4);
    }
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        paramset_zero_grad(ps);
        if (r == reps && profile_enabled()) memset(&hyp_profile, 0, sizeof hyp_profile);   // last rep only
        profile_mark();
        double t0 = hyp_now();
        Tensor *ti = tensor_wrap(c, HYP_I32, ids, HYP_SHAPE(B, T)), *tm = tensor_wrap(c, HYP_I32, mask, HYP_SHAPE(B, T));
        Tensor *h = bert_forward(c, &bert, ti, tm);
        backward(c, op_sum(c, h));
        double t = hyp_now() - t0;
        ctx_reset(c);
        if (r > 0 && t < best) best = t;
    }
    printf("bert fwd+bwd  layers %d hidden %d heads %d ffn %d  batch %d x %d tokens  threads %d\n",
           layers, hidden, heads, ffn, B, T, threads);
    printf("  ours     %8.1f ms  (%.0f tokens/s)\n", best * 1e3, B * T / best);
    if (profile_enabled()) profile_report(stdout);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 bench/bench_bert_torch.py %d %d %d %d %d %d %d %d 2>/dev/null",
             layers, hidden, heads, ffn, B, T, threads, reps);
    FILE *p = popen(cmd, "r");
    double torch_ms = 0;
    char line[256];
    while (p && fgets(line, sizeof line, p)) sscanf(line, "torch_ms %lf", &torch_ms);
    if (p) pclose(p);
    if (torch_ms > 0)
        printf("  pytorch  %8.1f ms  ratio ours/pytorch %.3f (target <= 1.0)\n", torch_ms, best * 1e3 / torch_ms);
    else
        printf("  pytorch  unavailable (python3 with torch and transformers not found)\n");
    ctx_free(c);
    bert_free(&bert);
    paramset_free(ps);
    free(ids);
    free(mask);
    return 0;
}
