// plan.c: `hyp train --plan` (train/plan.h). The planner measures, it does not model: the
// parameter set, AdamW and the training step are the trainer's own code (model registration,
// train_forward, backward, optim_step_async), run on the meta backend, so any change to an
// op's saved tensors (e.g. flash attention saving log-sum-exp instead of probabilities) shows
// up in the plan by itself. Two steps run: the first outgrows the activation arena's blocks
// mid-step (its peak), the second runs in the one block arena_reset sized to fit.
#include "train/plan.h"
#include "train/config.h"
#include "train/losses.h"
#include "train/optim.h"
#include "train/trainer.h"
#include "autograd/tape.h"
#include "kernels/kernels.h"
#include <stdlib.h>
#include <string.h>
#ifdef HYP_HAVE_CUDA
#include "kernels/cuda/cuda_kernels.h"
#endif

static double gib(size_t b) { return (double)b / (1024.0 * 1024.0 * 1024.0); }

// A batch at the config's longest lengths; real ids (in range, a padded tail) so that the
// real-backend run of the tests computes on valid data.
static void plan_batch(TrainBatch *b, int B, int n, int ql, int dl, int V) {
    memset(b, 0, sizeof *b);
    b->n_queries = B, b->n_items = n, b->q_len = ql, b->d_len = dl;
    size_t qn = (size_t)B * ql, dn = (size_t)B * n * dl;
    b->q_ids = hyp_malloc(qn * sizeof(int32_t));
    b->q_mask = hyp_malloc(qn * sizeof(int32_t));
    b->d_ids = hyp_malloc(dn * sizeof(int32_t));
    b->d_mask = hyp_malloc(dn * sizeof(int32_t));
    b->scores = hyp_malloc((size_t)B * n * sizeof(float));
    for (size_t i = 0; i < qn; i++) {
        b->q_mask[i] = (int)(i % ql) < ql - (int)(i / ql % 3);   // some rows padded at the end
        b->q_ids[i] = b->q_mask[i] ? (int32_t)(1 + i * 7 % (V - 1)) : 0;
    }
    for (size_t i = 0; i < dn; i++) {
        b->d_mask[i] = (int)(i % dl) < dl - (int)(i / dl % 5);
        b->d_ids[i] = b->d_mask[i] ? (int32_t)(1 + i * 13 % (V - 1)) : 0;
    }
    for (int i = 0; i < B * n; i++) b->scores[i] = (float)(i % n == 0 ? 10 : i % 7);
}

static void plan_batch_free(TrainBatch *b) {
    free(b->q_ids); free(b->q_mask); free(b->d_ids); free(b->d_mask); free(b->scores);
}

int plan_run(const PlanOptions *o, PlanReport *r) {
    memset(r, 0, sizeof *r);
#ifdef HYP_HAVE_CUDA
    const size_t held_before = o->real && o->device == HYP_CUDA ? hyp_cuda_mem_reset_high_water() : 0;
#endif
    Config cfg;
    config_init(&cfg);
    if (!o->config_path) { hyp_set_error("--plan needs --config"); return -1; }
    if (config_parse_file(&cfg, o->config_path)) return -1;
    for (int i = 0; i < o->n_sets; i++)
        if (config_set(&cfg, o->sets[i])) return -1;
    if (config_check(&cfg)) return -1;
    const bool hyp = !strcmp(cfg.model.kind, "hypencoder");
    if (!hyp && strcmp(cfg.model.kind, "biencoder")) {
        hyp_set_error("model.kind = %s (hypencoder or biencoder)", cfg.model.kind);
        return -1;
    }
    if (o->device == HYP_CUDA && !o->real && !strstr(hyp_backends_compiled(), "cuda")) {
        hyp_set_error("--plan --cuda: %s", hyp_cuda_why_unavailable());
        return -1;
    }
    static const char *const PREC[] = {[HYP_MATMUL_F32] = "fp32", [HYP_MATMUL_BF16] = "bf16", [HYP_MATMUL_TF32] = "tf32"};
    snprintf(r->precision, sizeof r->precision, "%s", PREC[config_precision(&cfg, o->device)]);   // auto resolved
    snprintf(r->kind, sizeof r->kind, "%s", cfg.model.kind);
    r->device = o->device;
    r->batch = cfg.train.batch_size;
    r->items = 1 + cfg.data.num_negatives;
    r->q_len = cfg.data.query_max_len;
    r->d_len = cfg.data.doc_max_len;
    r->grad_accum = cfg.train.grad_accum > 0 ? cfg.train.grad_accum : 1;

    if (!o->real) backend_meta_enable(o->device);
    const Backend *be = backend_get(o->device);
    BertConfig bc = config_bert(&cfg);
    TrainModel m = {.hypencoder = hyp, .ps = paramset_new(o->device)};
    Pooling pool = POOL_CLS;
    pooling_parse(cfg.model.pooling, &pool);
    if (hyp) {
        HypencoderConfig hc = hypencoder_config_default(cfg.model.qnet_layers);
        hc.bert = bc;
        hc.shared_encoder = cfg.model.shared_encoder;
        hc.pooling = pool;
        hypencoder_register(&m.hyp, m.ps, &hc);
    } else {
        biencoder_register(&m.be, m.ps, &bc, cfg.model.shared_encoder);
        m.be.pooling = pool;
    }
    paramset_finalize(m.ps);
    if (o->real) {
        if (hyp) hypencoder_init(&m.hyp, (uint64_t)cfg.train.seed);
        else biencoder_init(&m.be, (uint64_t)cfg.train.seed);
    }
    AdamWConfig ac = adamw_config_default();
    ac.max_grad_norm = cfg.train.max_grad_norm;
    AdamW *adam = adamw_new(m.ps, &ac);
    r->n_params = m.ps->numel;
    r->params = r->grads = m.ps->numel * sizeof(float);
    r->optim = 2 * m.ps->numel * sizeof(float);

    Ctx *c = ctx_new(o->device);
    c->training = true;
    c->seed = (uint64_t)cfg.train.seed;
    c->matmul_precision = config_precision(&cfg, o->device);   // as the trainer: bf16 reads the
    c->params = m.ps;                                           // parameters' bf16 copy (counted)
    const int k = r->grad_accum;
    float *losses = be->alloc((size_t)k * 3 * sizeof(float));   // (k, 3) as the trainer's StepValues
    TrainBatch b;
    plan_batch(&b, r->batch, r->items, r->q_len, r->d_len, bc.vocab_size);
    for (int step = 0; step < 2; step++) {   // as train_run's loop, without the data-parallel parts
        paramset_zero_grad(m.ps);
        for (int micro = 0; micro < k; micro++) {
            StepLosses l = train_forward(c, &m, &b, (float)cfg.train.margin_mse_weight, (float)cfg.train.ce_weight);
            be->copy(losses + micro * 3 + 0, l.total->data, sizeof(float), COPY_D2D);
            be->copy(losses + micro * 3 + 1, l.mmse->data, sizeof(float), COPY_D2D);
            be->copy(losses + micro * 3 + 2, l.ce->data, sizeof(float), COPY_D2D);
            backward(c, k > 1 ? op_scale(c, l.total, 1.0f / k) : l.total);
            ctx_reset(c);
        }
        optim_step_async(adam, m.ps, cfg.train.lr, losses, 3L * k);
    }
    be->synchronize();
    arena_peak(c->act, &r->act_steady, &r->act_peak);
    size_t counted = r->params + r->grads + r->optim + r->act_peak;
    if (!o->real) {
        MetaMemory mm = backend_meta_memory();
        r->peak = mm.peak + mm.workspace;
        r->workspace = r->peak > counted ? r->peak - counted : 0;
    } else {
        r->peak = counted;   // the real run counts what the planner can compare: no workspace
    }
    plan_batch_free(&b);
    be->free(losses);
    ctx_free(c);
    adamw_free(adam);
    if (hyp) hypencoder_free(&m.hyp);
    else biencoder_free(&m.be);
    paramset_free(m.ps);
    if (!o->real) backend_meta_disable();
#ifdef HYP_HAVE_CUDA
    if (o->real && o->device == HYP_CUDA) r->device_high_water = hyp_cuda_mem_high_water() - held_before;
#endif
    return 0;
}

int plan_check(const PlanOptions *o, FILE *f) {
    PlanReport plan, real;
    PlanOptions ro = *o;
    ro.real = true;
    if (plan_run(o, &plan) || plan_run(&ro, &real)) return -1;
    plan_print(f, &plan);
    const bool cuda = o->device == HYP_CUDA;
    const size_t measured = cuda ? real.device_high_water : real.act_peak;
    const size_t planned = cuda ? plan.peak : plan.act_peak;
    const double ratio = planned ? (double)measured / (double)planned : 0;
    fprintf(f, "plan check: %s %.2f GiB measured, %.2f GiB planned (ratio %.3f)\n",
            cuda ? "device high-water (hyp_cuda_alloc)" : "activation arena", gib(measured), gib(planned), ratio);
    if (ratio > 1.05) {
        hyp_set_error("the real step needs %.2f GiB, %.1f%% over the plan's %.2f GiB", gib(measured),
                      100 * (ratio - 1), gib(planned));
        return -1;
    }
    return 0;
}

void plan_print(FILE *f, const PlanReport *r) {
    fprintf(f, "plan: %s, %zu parameters, %d micro-batch%s per step\n", r->kind, r->n_params, r->grad_accum,
            r->grad_accum == 1 ? "" : "es");
    fprintf(f, "  parameters (fp32)    %8.2f GiB\n", gib(r->params));
    fprintf(f, "  gradients (fp32)     %8.2f GiB\n", gib(r->grads));
    fprintf(f, "  AdamW state (m, v)   %8.2f GiB\n", gib(r->optim));
    fprintf(f, "  activations          %8.2f GiB  (first step; later steps %.2f GiB)\n", gib(r->act_peak),
            gib(r->act_steady));
    fprintf(f, "  workspace            %8.2f GiB  (GEMM workspace and scratch, bf16 copies, loss buffers)\n",
            gib(r->workspace));
    fprintf(f, "plan: peak %.1f GiB per rank (device %s, precision %s, batch %dx%d, query %d, passage %d)\n",
            gib(r->peak), device_name(r->device), r->precision, r->batch, r->items, r->q_len, r->d_len);
}
