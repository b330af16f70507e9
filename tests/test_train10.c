// Ten training steps of a tiny Hypencoder (dropout off, the twin's batches, AdamW, global-norm
// clipping, HF constant-with-warmup) give the PyTorch twin's losses within 1e-4 relative at
// every step (tests/fixtures/fx_train10.py); with train.precision = bf16, the losses of the
// same steps under PyTorch's CPU autocast with SDPA (fx_autocast.py) within 1e-2, or within
// twice bf16's own effect on that step's loss where that is larger: the distance between the
// fp32 twin and autocast, which grows along the trajectory (0.1% at step 1, up to 1.9% on CE
// by step 7) as two runs that round differently part. At step 1, before any update, the bf16
// loss must be much closer to autocast's than fp32's is (the emulation rounds what autocast
// rounds); from step 2 on, ours and the fp32 twin are measured equally far from autocast
// (the trajectories are chaotic at bf16's resolution), so no closer-than-fp32 claim is made there.
#include "tests/testlib.h"
#include "train/trainer.h"
#include "train/optim.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double attr(H5File *f, const char *name) {
    double v;
    cr_assert(h5_read_attr_f64(f, "/train10", name, &v) == 0, "%s", hyp_last_error());
    return v;
}

static int32_t *ids(H5File *f, int s, const char *name, int *rows, int *cols) {
    char p[128];
    snprintf(p, sizeof p, "/train10/batch%d/%s", s, name);
    int nd, sh[4];
    int32_t *v = h5_read_i32(f, p, &nd, sh);
    cr_assert(v && nd == 2, "%s", hyp_last_error());
    *rows = sh[0];
    *cols = sh[1];
    return v;
}

static void run_train10(Device dev, MatmulPrecision prec) {
    H5File *f = fx_open("train10.h5");
    BertConfig bc = bert_base_config();
    bc.vocab_size = (int)attr(f, "vocab");
    bc.hidden = (int)attr(f, "hidden");
    bc.layers = (int)attr(f, "bert_layers");
    bc.heads = (int)attr(f, "heads");
    bc.ffn = (int)attr(f, "ffn");
    bc.max_positions = (int)attr(f, "max_pos");
    bc.dropout = 0.0f;
    bc.pooler = true;
    HypencoderConfig hc = hypencoder_config_default((int)attr(f, "qnet_layers"));
    hc.bert = bc;
    TrainModel m = {.hypencoder = true, .ps = paramset_new(dev)};
    hypencoder_register(&m.hyp, m.ps, &hc);
    paramset_finalize(m.ps);
    cr_assert_eq(h5_load_params(f, "/train10/params", m.ps, false), 0, "%s", hyp_last_error());
    AdamWConfig ac = adamw_config_default();
    ac.max_grad_norm = attr(f, "max_grad_norm");
    AdamW *opt = adamw_new(m.ps, &ac);
    LRSchedule sched = {.kind = SCHED_CONSTANT_WITH_WARMUP, .lr = attr(f, "lr"), .warmup_steps = (long)attr(f, "warmup"),
                        .max_steps = 10};
    int nd, sh[4];
    const bool bf16 = prec == HYP_MATMUL_BF16;
    H5File *fw = bf16 ? fx_open("autocast.h5") : f;
    float *want = h5_read_f32(fw, "/train10/losses", &nd, sh);
    float *fp32 = h5_read_f32(f, "/train10/losses", &nd, sh);   // the fp32 twin's
    cr_assert(want && fp32, "%s", hyp_last_error());
    double off_ours = 0, off_fp32 = 0;   // bf16: summed distance to autocast, ours and fp32's
    double first_ours = 0, first_fp32 = 0;   // the same for the first step (no training yet)
    if (fw != f) h5_close(fw);
    const double tol = bf16 ? TOL_BF16 : TOL_E2E;
    int steps = (int)attr(f, "steps");
    Ctx *c = ctx_new(dev);
    c->training = true;
    c->matmul_precision = prec;
    c->params = m.ps;   // as the trainer does: bf16 GEMMs read the per-step weight copy
    for (int s = 0; s < steps; s++) {
        TrainBatch b = {0};
        int rows, cols;
        b.q_ids = ids(f, s, "q_ids", &b.n_queries, &b.q_len);
        b.q_mask = ids(f, s, "q_mask", &rows, &cols);
        b.d_ids = ids(f, s, "d_ids", &rows, &b.d_len);
        b.d_mask = ids(f, s, "d_mask", &rows, &cols);
        b.n_items = rows / b.n_queries;
        char p[128];
        snprintf(p, sizeof p, "/train10/batch%d/teacher", s);
        b.scores = h5_read_f32(f, p, NULL, NULL);
        paramset_zero_grad(m.ps);
        StepLosses l = train_forward(c, &m, &b, 1.0f, 1.0f);
        float got[3];
        tensor_to_host(l.total, &got[0]);
        tensor_to_host(l.mmse, &got[1]);
        tensor_to_host(l.ce, &got[2]);
        for (int k = 0; k < 3; k++) {
            const double w = want[s * 3 + k], noise = bf16 ? 2 * fabs(fp32[s * 3 + k] - w) : 0;
            const double t = fmax(tol * fabs(w), noise);
            cr_assert(fabs(got[k] - w) <= t, "step %d loss %d on %s: %.7g vs twin %.7g (allowed %.3g)", s + 1, k,
                      device_name(dev), got[k], w, t);
        }
        if (s == 0) first_ours = fabs(got[0] - want[0]), first_fp32 = fabs(fp32[0] - want[0]);
        off_ours += fabs(got[0] - want[s * 3]);
        off_fp32 += fabs(fp32[s * 3] - want[s * 3]);
        backward(c, l.total);
        OptimStats st;
        cr_assert_eq(optim_step(opt, m.ps, lr_at(&sched, opt->step), &st), OPTIM_OK);
        ctx_reset(c);
        free(b.q_ids); free(b.q_mask); free(b.d_ids); free(b.d_mask); free(b.scores);
    }
    // The emulation rounds what autocast rounds: its losses follow autocast's, not fp32's.
    fprintf(stderr, "train10 %s %s: total-loss distance to the oracle, step 1 %.4g (fp32 twin %.4g), all steps %.4g "
            "(fp32 twin %.4g)\n", device_name(dev), bf16 ? "bf16" : "fp32", first_ours, first_fp32, off_ours, off_fp32);
    if (bf16) {
        cr_assert_lt(first_ours, 0.5 * first_fp32, "step 1: bf16 loss %.3g from autocast's, fp32's %.3g", first_ours,
                     first_fp32);
    }
    free(want);
    free(fp32);
    ctx_free(c);
    adamw_free(opt);
    hypencoder_free(&m.hyp);
    paramset_free(m.ps);
    h5_close(f);
}

Test(train10, losses_match_twin_cpu) { run_train10(HYP_CPU, HYP_MATMUL_F32); }
Test(train10, losses_match_twin_cuda) { RUN_ON_CUDA_OR_SKIP(); run_train10(HYP_CUDA, HYP_MATMUL_F32); }
Test(train10, autocast_bf16_cpu) { run_train10(HYP_CPU, HYP_MATMUL_BF16); }
Test(train10, autocast_bf16_cuda) { RUN_ON_CUDA_OR_SKIP(); run_train10(HYP_CUDA, HYP_MATMUL_BF16); }
