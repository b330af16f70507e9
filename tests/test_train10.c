// Ten training steps of a tiny Hypencoder (dropout off, the twin's batches, AdamW, global-norm
// clipping, HF constant-with-warmup) give the PyTorch twin's losses within 1e-4 relative at
// every step (tests/fixtures/fx_train10.py).
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

static void run_train10(Device dev) {
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
    float *want = h5_read_f32(f, "/train10/losses", &nd, sh);
    int steps = (int)attr(f, "steps");
    Ctx *c = ctx_new(dev);
    c->training = true;
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
        for (int k = 0; k < 3; k++)
            cr_assert(fabs(got[k] - want[s * 3 + k]) <= TOL_E2E * fabs(want[s * 3 + k]),
                      "step %d loss %d on %s: %.7g vs twin %.7g", s + 1, k, device_name(dev), got[k], want[s * 3 + k]);
        backward(c, l.total);
        OptimStats st;
        cr_assert_eq(optim_step(opt, m.ps, lr_at(&sched, opt->step), &st), OPTIM_OK);
        ctx_reset(c);
        free(b.q_ids); free(b.q_mask); free(b.d_ids); free(b.d_mask); free(b.scores);
    }
    free(want);
    ctx_free(c);
    adamw_free(opt);
    hypencoder_free(&m.hyp);
    paramset_free(m.ps);
    h5_close(f);
}

Test(train10, losses_match_twin_cpu) { run_train10(HYP_CPU); }
Test(train10, losses_match_twin_cuda) { RUN_ON_CUDA_OR_SKIP(); run_train10(HYP_CUDA); }
