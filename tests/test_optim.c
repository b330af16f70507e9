// test_optim.c: AdamW + clipping + LR schedules against PyTorch/transformers (fixture
// tests/fixtures/optim_adamw.h5 from fx_optim.py), clipping semantics, non-finite
// gradients, HF's weight-decay grouping. The parity tests run on CUDA too when present.
#include "tests/testlib.h"
#include "train/optim.h"
#include "kernels/kernels.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FX "optim_adamw.h5"
#define STEPS 10

// The fixture's parameters, in registration order (fx_optim.py PARAMS).
static ParamSet *fx_params(Device dev) {
    ParamSet *ps = paramset_new(dev);
    paramset_add(ps, "enc.weight", HYP_SHAPE(3, 4));
    paramset_add(ps, "enc.bias", HYP_SHAPE(4));
    paramset_add(ps, "enc.LayerNorm.weight", HYP_SHAPE(4));
    paramset_add(ps, "head.proj", HYP_SHAPE(2, 3, 2));
    paramset_finalize(ps);
    return ps;
}

typedef struct { const char *name; SchedKind kind; } FxCase;
static const FxCase CASES[] = {
    {"warmup_clip", SCHED_CONSTANT_WITH_WARMUP},
    {"linear_wd", SCHED_LINEAR},
    {"constant_noclip", SCHED_CONSTANT},
};

static double attr(H5File *f, const char *obj, const char *name) {
    double v;
    cr_assert(h5_read_attr_f64(f, obj, name, &v) == 0, "%s", hyp_last_error());
    return v;
}

// Relative error of a device buffer slice against a host reference.
static double dev_rel_err(Device dev, const float *d, const float *want, size_t n) {
    float *h = hyp_malloc(n * sizeof(float));
    backend_get(dev)->synchronize();
    backend_get(dev)->copy(h, d, n * sizeof(float), COPY_D2H);
    double e = rel_err(h, want, n);
    free(h);
    return e;
}

static void run_fixture_case(Device dev, const FxCase *cs) {
    H5File *f = fx_open(FX);
    char grp[256], ds[512];
    snprintf(grp, sizeof grp, "/%s", cs->name);
    ParamSet *ps = fx_params(dev);
    snprintf(ds, sizeof ds, "%s/params", grp);
    cr_assert(h5_load_params(f, ds, ps, false) == 0, "%s", hyp_last_error());

    AdamWConfig cfg = adamw_config_default();
    cfg.beta1 = attr(f, grp, "beta1");
    cfg.beta2 = attr(f, grp, "beta2");
    cfg.eps = attr(f, grp, "eps");
    cfg.weight_decay = attr(f, grp, "weight_decay");
    cfg.max_grad_norm = attr(f, grp, "max_grad_norm");
    LRSchedule sched = {.kind = cs->kind, .lr = attr(f, grp, "lr"), .warmup_steps = (long)attr(f, grp, "warmup"),
                        .max_steps = (long)attr(f, grp, "max_steps")};
    AdamW *opt = adamw_new(ps, &cfg);

    int nd, sh[HYP_MAX_DIMS];
    snprintf(ds, sizeof ds, "%s/lrs", grp);
    float *lrs = h5_read_f32(f, ds, &nd, sh);
    snprintf(ds, sizeof ds, "%s/norms", grp);
    float *norms = h5_read_f32(f, ds, &nd, sh);
    cr_assert(lrs && norms, "%s", hyp_last_error());
    float *grads[4], *after[4];
    for (int i = 0; i < ps->n; i++) {
        snprintf(ds, sizeof ds, "%s/grads/%s", grp, ps->params[i]->name);
        grads[i] = h5_read_f32(f, ds, &nd, sh);
        snprintf(ds, sizeof ds, "%s/after/%s", grp, ps->params[i]->name);
        after[i] = h5_read_f32(f, ds, &nd, sh);
        cr_assert(grads[i] && after[i], "%s", hyp_last_error());
    }
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < ps->n; i++) {
            size_t n = tensor_numel(ps->params[i]);
            tensor_from_host(ps->params[i]->grad, grads[i] + (size_t)t * n);
        }
        double lr = lr_at(&sched, (long)opt->step);
        cr_assert((float)lr == lrs[t], "%s step %d: lr %.9g, transformers %.9g", cs->name, t + 1, lr, lrs[t]);
        OptimStats st;
        cr_assert_eq(optim_step(opt, ps, lr, &st), OPTIM_OK, "%s step %d: not OK", cs->name, t + 1);
        cr_assert(fabs(st.grad_norm - norms[t]) <= 1e-6 * norms[t], "%s step %d: grad norm %.9g, torch %.9g",
                  cs->name, t + 1, st.grad_norm, norms[t]);
        for (int i = 0; i < ps->n; i++) {
            size_t n = tensor_numel(ps->params[i]);
            double e = dev_rel_err(dev, tensor_f32(ps->params[i]), after[i] + (size_t)t * n, n);
            cr_assert(e <= 1e-6, "%s on %s, step %d, %s: relative error %.3g vs torch > 1e-6", cs->name,
                      device_name(dev), t + 1, ps->params[i]->name, e);
        }
    }
    cr_assert_eq(opt->step, STEPS);
    for (int i = 0; i < ps->n; i++) {
        size_t off = (size_t)(tensor_f32(ps->params[i]) - ps->data), n = tensor_numel(ps->params[i]);
        const char *st[2] = {"m", "v"};
        float *buf[2] = {opt->m, opt->v};
        for (int k = 0; k < 2; k++) {
            snprintf(ds, sizeof ds, "%s/%s/%s", grp, st[k], ps->params[i]->name);
            float *want = h5_read_f32(f, ds, &nd, sh);
            cr_assert(want, "%s", hyp_last_error());
            double e = dev_rel_err(dev, buf[k] + off, want, n);
            cr_assert(e <= 1e-6, "%s on %s: %s of %s: relative error %.3g vs torch", cs->name, device_name(dev),
                      st[k], ps->params[i]->name, e);
            free(want);
        }
        free(grads[i]);
        free(after[i]);
    }
    free(lrs);
    free(norms);
    adamw_free(opt);
    paramset_free(ps);
    h5_close(f);
}

Test(optim, torch_parity_warmup_clip) { run_fixture_case(HYP_CPU, &CASES[0]); }
Test(optim, torch_parity_linear_weight_decay) { run_fixture_case(HYP_CPU, &CASES[1]); }
Test(optim, torch_parity_constant_noclip) { run_fixture_case(HYP_CPU, &CASES[2]); }
Test(optim, torch_parity_cuda) {
    RUN_ON_CUDA_OR_SKIP();
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) run_fixture_case(HYP_CUDA, &CASES[k]);
}

// ---------------------------------------------------------------- schedules
Test(optim, schedules_match_transformers) {
    H5File *f = fx_open(FX);
    const struct { const char *name; SchedKind kind; } S[] = {
        {"paper", SCHED_CONSTANT_WITH_WARMUP}, {"cww_nowarmup", SCHED_CONSTANT_WITH_WARMUP},
        {"linear", SCHED_LINEAR}, {"linear_nowarmup", SCHED_LINEAR}, {"linear_tiny", SCHED_LINEAR}};
    for (size_t k = 0; k < sizeof S / sizeof S[0]; k++) {
        char grp[128], ds[256];
        snprintf(grp, sizeof grp, "/schedules/%s", S[k].name);
        LRSchedule s = {.kind = S[k].kind, .lr = attr(f, grp, "lr"), .warmup_steps = (long)attr(f, grp, "warmup"),
                        .max_steps = (long)attr(f, grp, "max_steps")};
        int nd, sh[HYP_MAX_DIMS];
        snprintf(ds, sizeof ds, "%s/done", grp);
        int32_t *done = h5_read_i32(f, ds, &nd, sh);
        snprintf(ds, sizeof ds, "%s/lrs", grp);
        float *lrs = h5_read_f32(f, ds, &nd, sh);
        cr_assert(done && lrs, "%s", hyp_last_error());
        for (int i = 0; i < sh[0]; i++)
            cr_assert((float)lr_at(&s, done[i]) == lrs[i], "%s: lr after %d steps %.9g, transformers %.9g",
                      S[k].name, done[i], lr_at(&s, done[i]), lrs[i]);
        free(done);
        free(lrs);
    }
    h5_close(f);
}

Test(optim, schedule_values) {
    LRSchedule paper = {SCHED_CONSTANT_WITH_WARMUP, 2e-5, 6000, 1000000};
    cr_assert_eq(lr_at(&paper, 0), 0.0, "HF: the first update runs with lr 0");
    cr_assert(fabs(lr_at(&paper, 3000) - 1e-5) < 1e-20);
    cr_assert_eq(lr_at(&paper, 6000), 2e-5);
    cr_assert_eq(lr_at(&paper, 999999), 2e-5);
    LRSchedule lin = {SCHED_LINEAR, 1.0, 10, 110};
    cr_assert_eq(lr_at(&lin, 5), 0.5);
    cr_assert_eq(lr_at(&lin, 10), 1.0);
    cr_assert_eq(lr_at(&lin, 60), 0.5);
    cr_assert_eq(lr_at(&lin, 110), 0.0);
    cr_assert_eq(lr_at(&lin, 500), 0.0, "past max_steps the lr stays 0");
    LRSchedule c = {SCHED_CONSTANT, 3e-4, 100, 10};
    cr_assert_eq(lr_at(&c, 0), 3e-4, "constant ignores warmup");
    SchedKind k;
    cr_assert(sched_parse("linear", &k) == 0 && k == SCHED_LINEAR);
    cr_assert(sched_parse("constant_with_warmup", &k) == 0 && k == SCHED_CONSTANT_WITH_WARMUP);
    cr_assert(sched_parse("constant", &k) == 0 && k == SCHED_CONSTANT);
    cr_assert(sched_parse("cosine", &k) == -1);
    cr_assert_str_eq(sched_name(SCHED_LINEAR), "linear");
}

// ---------------------------------------------------------------- clipping
static ParamSet *small_set(Device dev, const float *p, const float *g) {
    ParamSet *ps = paramset_new(dev);
    paramset_add(ps, "a.weight", HYP_SHAPE(2, 3));
    paramset_add(ps, "a.bias", HYP_SHAPE(3));
    paramset_finalize(ps);
    backend_get(dev)->copy(ps->data, p, 9 * sizeof(float), COPY_H2D);
    backend_get(dev)->copy(ps->grad, g, 9 * sizeof(float), COPY_H2D);
    return ps;
}

Test(optim, clipping_semantics) {
    float p[9] = {0.5f, -1, 2, 0.25f, -0.75f, 1.5f, 0.1f, -0.2f, 0.3f};
    float g[9] = {3, 4, 0, 0, 0, 0, 0, 0, 12};   // norm 13
    ParamSet *ps = small_set(HYP_CPU, p, g);
    cr_assert_eq(optim_grad_norm(ps, NULL), 13.0);
    cr_assert_eq(optim_clip_coef(13.0, 1.0), 1.0f / (13.0f + 1e-6f));
    cr_assert_eq(optim_clip_coef(0.5, 1.0), 1.0f, "below max_norm: no clipping");
    cr_assert_eq(optim_clip_coef(13.0, 0.0), 1.0f, "max_norm 0: clipping off");
    // A clipped step equals an unclipped step on the pre-scaled gradient.
    AdamWConfig cfg = adamw_config_default();
    AdamW *o = adamw_new(ps, &cfg);
    OptimStats st;
    cr_assert_eq(optim_step(o, ps, 1e-2, &st), OPTIM_OK);
    cr_assert_eq(st.grad_norm, 13.0);
    cr_assert_eq(st.clip_coef, 1.0f / (13.0f + 1e-6f));
    cr_assert(memcmp(ps->grad, g, sizeof g) == 0, "optim_step must not modify the gradients");
    float g2[9];
    for (int i = 0; i < 9; i++) g2[i] = g[i] * st.clip_coef;
    ParamSet *ps2 = small_set(HYP_CPU, p, g2);
    cfg.max_grad_norm = 0;
    AdamW *o2 = adamw_new(ps2, &cfg);
    cr_assert_eq(optim_step(o2, ps2, 1e-2, &st), OPTIM_OK);
    cr_assert_eq(st.clip_coef, 1.0f);
    cr_assert(memcmp(ps->data, ps2->data, sizeof p) == 0, "clipping = scaling the gradient by the coefficient");
    cr_assert(memcmp(o->m, o2->m, sizeof p) == 0 && memcmp(o->v, o2->v, sizeof p) == 0);
    adamw_free(o);
    adamw_free(o2);
    paramset_free(ps);
    paramset_free(ps2);
}

// ---------------------------------------------------------------- non-finite gradients
static void check_nonfinite(Device dev) {
    float p[9] = {0.5f, -1, 2, 0.25f, -0.75f, 1.5f, 0.1f, -0.2f, 0.3f};
    float g[9] = {0.1f, 0.2f, -0.3f, 0.4f, 0.5f, -0.6f, 0.7f, 0.8f, 0.9f};
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++) {
        ParamSet *ps = small_set(dev, p, g);
        AdamWConfig cfg = adamw_config_default();
        AdamW *o = adamw_new(ps, &cfg);
        OptimStats st;
        cr_assert_eq(optim_step(o, ps, 1e-3, &st), OPTIM_OK);
        float before[9], m0[9], v0[9], after[9], m1[9], v1[9];
        const Backend *be = backend_get(dev);
        be->copy(before, ps->data, sizeof before, COPY_D2H);
        be->copy(m0, o->m, sizeof m0, COPY_D2H);
        be->copy(v0, o->v, sizeof v0, COPY_D2H);
        float gb[9];
        memcpy(gb, g, sizeof g);
        gb[7] = bad[b];
        be->copy(ps->grad, gb, sizeof gb, COPY_H2D);
        cr_assert_eq(optim_step(o, ps, 1e-3, &st), OPTIM_NONFINITE, "a %g gradient must be reported", bad[b]);
        cr_assert(!isfinite(st.grad_norm));
        be->copy(after, ps->data, sizeof after, COPY_D2H);
        be->copy(m1, o->m, sizeof m1, COPY_D2H);
        be->copy(v1, o->v, sizeof v1, COPY_D2H);
        cr_assert(!memcmp(before, after, sizeof after) && !memcmp(m0, m1, sizeof m1) && !memcmp(v0, v1, sizeof v1),
                  "a non-finite step must leave parameters and moments untouched");
        cr_assert_eq(o->step, 1, "a non-finite step does not count");
        // skip: zero the gradient and go on
        paramset_zero_grad(ps);
        be->copy(ps->grad, g, sizeof g, COPY_H2D);
        cr_assert_eq(optim_step(o, ps, NAN, &st), OPTIM_NONFINITE, "a NaN lr is reported too");
        cr_assert_eq(optim_step(o, ps, 1e-3, &st), OPTIM_OK);
        cr_assert_eq(o->step, 2);
        adamw_free(o);
        paramset_free(ps);
    }
}
Test(optim, nonfinite_gradient_changes_nothing) { check_nonfinite(HYP_CPU); }
Test(optim, nonfinite_gradient_changes_nothing_cuda) {
    RUN_ON_CUDA_OR_SKIP();
    check_nonfinite(HYP_CUDA);
}

// ---------------------------------------------------------------- decided on the device
// optim_step_async gives optim_step's parameters and moments bit for bit (clipping active on
// some steps, not on others), and optim_guard_read reports optim_step's norm and coefficient.
static void check_async_matches(Device dev) {
    float p[9] = {0.5f, -1, 2, 0.25f, -0.75f, 1.5f, 0.1f, -0.2f, 0.3f};
    float g[9] = {3, 4, 0, 0.1f, -0.2f, 0, 0.5f, 0, 1.2f};
    ParamSet *a = small_set(dev, p, g), *b = small_set(dev, p, g);
    AdamWConfig cfg = adamw_config_default();
    cfg.weight_decay = 0.01;
    AdamW *oa = adamw_new(a, &cfg), *ob = adamw_new(b, &cfg);
    const Backend *be = backend_get(dev);
    float *loss = be->alloc(2 * sizeof(float));
    const float lv[2] = {0.75f, 1.5f};
    be->copy(loss, lv, sizeof lv, COPY_H2D);
    for (int t = 0; t < 5; t++) {
        float gt[9];
        for (int i = 0; i < 9; i++) gt[i] = g[i] * (t % 2 ? 0.05f : 1.0f);   // norm above, then below 1
        be->copy(a->grad, gt, sizeof gt, COPY_H2D);
        be->copy(b->grad, gt, sizeof gt, COPY_H2D);
        OptimStats sa, sb;
        cr_assert_eq(optim_step(oa, a, 1e-2 * (t + 1), &sa), OPTIM_OK);
        cr_assert_eq(optim_step_async(ob, b, 1e-2 * (t + 1), loss, 2), OPTIM_OK);
        cr_assert_eq(optim_guard_read(ob, &sb, NULL), OPTIM_OK);
        cr_assert(sa.grad_norm == sb.grad_norm && sa.clip_coef == sb.clip_coef && sa.lr == sb.lr,
                  "step %d: norm %.9g/%.9g coef %.9g/%.9g", t, sa.grad_norm, sb.grad_norm, (double)sa.clip_coef,
                  (double)sb.clip_coef);
        cr_assert_eq(oa->step, ob->step);
    }
    float pa[9], pb[9], ma[9], mb[9], va[9], vb[9];
    be->copy(pa, a->data, sizeof pa, COPY_D2H);
    be->copy(pb, b->data, sizeof pb, COPY_D2H);
    be->copy(ma, oa->m, sizeof ma, COPY_D2H);
    be->copy(mb, ob->m, sizeof mb, COPY_D2H);
    be->copy(va, oa->v, sizeof va, COPY_D2H);
    be->copy(vb, ob->v, sizeof vb, COPY_D2H);
    cr_assert(!memcmp(pa, pb, sizeof pa) && !memcmp(ma, mb, sizeof ma) && !memcmp(va, vb, sizeof va),
              "optim_step_async must give optim_step's parameters and moments bit for bit");
    be->free(loss);
    adamw_free(oa);
    adamw_free(ob);
    paramset_free(a);
    paramset_free(b);
}
Test(optim, async_step_matches_sync) { check_async_matches(HYP_CPU); }
Test(optim, async_step_matches_sync_cuda) {
    RUN_ON_CUDA_OR_SKIP();
    check_async_matches(HYP_CUDA);
}

// A non-finite gradient or loss seen on the device: that update and every later one are
// skipped (the state latches), optim_guard_read reports the first one and puts o->step back.
static void check_async_nonfinite(Device dev) {
    float p[9] = {0.5f, -1, 2, 0.25f, -0.75f, 1.5f, 0.1f, -0.2f, 0.3f};
    float g[9] = {0.1f, 0.2f, -0.3f, 0.4f, 0.5f, -0.6f, 0.7f, 0.8f, 0.9f};
    const Backend *be = backend_get(dev);
    for (int bad_loss = 0; bad_loss < 2; bad_loss++) {
        ParamSet *ps = small_set(dev, p, g);
        AdamWConfig cfg = adamw_config_default();
        AdamW *o = adamw_new(ps, &cfg);
        float *loss = be->alloc(3 * sizeof(float));
        const float good[3] = {1, 2, 3}, nan_loss[3] = {1, NAN, 3};
        be->copy(loss, good, sizeof good, COPY_H2D);
        cr_assert_eq(optim_step_async(o, ps, 1e-3, loss, 3), OPTIM_OK);                  // step 1: applied
        float before[9], m0[9], after[9], m1[9];
        be->copy(before, ps->data, sizeof before, COPY_D2H);
        be->copy(m0, o->m, sizeof m0, COPY_D2H);
        float gb[9];
        memcpy(gb, g, sizeof g);
        if (bad_loss) be->copy(loss, nan_loss, sizeof nan_loss, COPY_H2D);
        else gb[4] = INFINITY;
        be->copy(ps->grad, gb, sizeof gb, COPY_H2D);
        cr_assert_eq(optim_step_async(o, ps, 1e-3, loss, 3), OPTIM_OK);                  // step 2: bad
        be->copy(loss, good, sizeof good, COPY_H2D);
        be->copy(ps->grad, g, sizeof g, COPY_H2D);
        cr_assert_eq(optim_step_async(o, ps, 1e-3, loss, 3), OPTIM_OK);                  // step 3: latched
        cr_assert_eq(o->step, 3);
        be->copy(after, ps->data, sizeof after, COPY_D2H);
        be->copy(m1, o->m, sizeof m1, COPY_D2H);
        cr_assert(!memcmp(before, after, sizeof after) && !memcmp(m0, m1, sizeof m1),
                  "updates from the non-finite step on must not be applied (%s)", bad_loss ? "loss" : "gradient");
        int64_t bad_step = 0;
        OptimStats st;
        cr_assert_eq(optim_guard_read(o, &st, &bad_step), OPTIM_NONFINITE);
        cr_assert_eq(bad_step, 2, "the first non-finite update is reported: %ld", (long)bad_step);
        cr_assert_eq(o->step, 1, "o->step is put back to the state's step");
        // the latch is cleared: the next update applies and counts
        cr_assert_eq(optim_step_async(o, ps, 1e-3, loss, 3), OPTIM_OK);
        cr_assert_eq(optim_guard_read(o, &st, &bad_step), OPTIM_OK);
        cr_assert_eq(o->step, 2);
        be->copy(after, ps->data, sizeof after, COPY_D2H);
        cr_assert(memcmp(before, after, sizeof after), "after the read, updates apply again");
        cr_assert_eq(optim_step_async(o, ps, NAN, loss, 3), OPTIM_NONFINITE, "a NaN lr is reported at once");
        cr_assert_eq(o->step, 2);
        be->free(loss);
        adamw_free(o);
        paramset_free(ps);
    }
}
Test(optim, async_nonfinite_latches) { check_async_nonfinite(HYP_CPU); }
Test(optim, async_nonfinite_latches_cuda) {
    RUN_ON_CUDA_OR_SKIP();
    check_async_nonfinite(HYP_CUDA);
}

// ---------------------------------------------------------------- weight-decay groups
Test(optim, hf_weight_decay_grouping) {
    const char *no[] = {"enc.bias", "embeddings.LayerNorm.weight", "encoder.layer.0.attention.output.LayerNorm.bias",
                        "bias_query_embeddings.0", "model.norm.weight", "final_norm", "x.rmsnorm.w", "BIAS"};
    const char *yes[] = {"enc.weight", "embeddings.word_embeddings.weight", "hyper_base_matrices.0", "normal.weight",
                         "x.enorm.weight", "weight_hyper_projection.1.weight"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) cr_assert(!adamw_param_decays(no[i]), "%s decays", no[i]);
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) cr_assert(adamw_param_decays(yes[i]), "%s does not decay", yes[i]);
    // decoupled decay: with a zero gradient only p *= 1 - lr*wd acts (m = v = 0, update 0)
    float p[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, g[9] = {0};
    ParamSet *ps = small_set(HYP_CPU, p, g);
    AdamWConfig cfg = adamw_config_default();
    cfg.weight_decay = 0.5;
    AdamW *o = adamw_new(ps, &cfg);
    cr_assert_eq(o->n_runs, 2);
    cr_assert_eq(optim_step(o, ps, 0.1, NULL), OPTIM_OK);
    for (int i = 0; i < 6; i++) cr_assert_eq(ps->data[i], p[i] * 0.95f, "a.weight[%d] = %g", i, ps->data[i]);
    for (int i = 6; i < 9; i++) cr_assert_eq(ps->data[i], p[i], "a.bias gets no weight decay");
    adamw_free(o);
    cfg.decay_all = true;
    o = adamw_new(ps, &cfg);
    cr_assert_eq(o->n_runs, 1);
    adamw_free(o);
    paramset_free(ps);
}

// Gradient accumulation as documented in optim.h: k micro-batches whose losses are divided
// by k accumulate to the mean gradient; one optim_step then equals the step on that mean.
Test(optim, grad_accumulation_is_mean) {
    float p[9] = {0.5f, -1, 2, 0.25f, -0.75f, 1.5f, 0.1f, -0.2f, 0.3f};
    float g1[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, g2[9] = {-3, 1, 0.5f, 2, -1, 0.25f, 4, -2, 1}, mean[9];
    for (int i = 0; i < 9; i++) mean[i] = 0.5f * g1[i] + 0.5f * g2[i];
    ParamSet *a = small_set(HYP_CPU, p, mean), *b = small_set(HYP_CPU, p, g1);
    for (int i = 0; i < 9; i++) b->grad[i] = 0.5f * g1[i];    // backward of loss1 / 2
    for (int i = 0; i < 9; i++) b->grad[i] += 0.5f * g2[i];   // backward of loss2 / 2 accumulates
    AdamWConfig cfg = adamw_config_default();
    AdamW *oa = adamw_new(a, &cfg), *ob = adamw_new(b, &cfg);
    OptimStats sa, sb;
    optim_step(oa, a, 1e-3, &sa);
    optim_step(ob, b, 1e-3, &sb);
    cr_assert_eq(sa.grad_norm, sb.grad_norm);
    cr_assert(!memcmp(a->data, b->data, sizeof p));
    adamw_free(oa);
    adamw_free(ob);
    paramset_free(a);
    paramset_free(b);
}
