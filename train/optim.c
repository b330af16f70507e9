// optim.c: AdamW, global-norm clipping and LR schedules (see optim.h).
#include "train/optim.h"
#include "kernels/kernels.h"
#include "kernels/elementwise.h"
#include <limits.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- schedules
static const char *const SCHED_NAMES[] = {"constant_with_warmup", "linear", "constant"};

int sched_parse(const char *name, SchedKind *out) {
    for (int k = 0; k < 3; k++)
        if (!strcmp(name, SCHED_NAMES[k])) { *out = (SchedKind)k; return 0; }
    return -1;
}
const char *sched_name(SchedKind k) {
    return (unsigned)k < 3 ? SCHED_NAMES[k] : "?";
}

// transformers' lr lambdas, in the same double arithmetic.
double lr_at(const LRSchedule *s, long done) {
    const long W = s->warmup_steps, T = s->max_steps;
    double f = 1.0;
    switch (s->kind) {
    case SCHED_CONSTANT:
        f = 1.0;
        break;
    case SCHED_CONSTANT_WITH_WARMUP:
        f = done < W ? (double)done / (W > 1 ? (double)W : 1.0) : 1.0;
        break;
    case SCHED_LINEAR:
        if (done < W) f = (double)done / (double)(W > 1 ? W : 1);
        else {
            f = (double)(T - done) / (double)(T - W > 1 ? T - W : 1);
            if (f < 0.0) f = 0.0;
        }
        break;
    }
    return s->lr * f;
}

// ---------------------------------------------------------------- AdamW
AdamWConfig adamw_config_default(void) {
    return (AdamWConfig){.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0,
                         .max_grad_norm = 1.0, .decay_all = false};
}

// HF's forbidden name patterns, searched in the lowercased name: "bias", "layernorm",
// "rmsnorm", "(^|\.)norm($|\.)", "_norm($|\.)".
bool adamw_param_decays(const char *name) {
    size_t n = strlen(name);
    char *l = hyp_malloc(n + 1);
    for (size_t i = 0; i <= n; i++) l[i] = (char)tolower((unsigned char)name[i]);
    bool nodecay = strstr(l, "bias") || strstr(l, "layernorm") || strstr(l, "rmsnorm");
    for (const char *p = l; !nodecay && (p = strstr(p, "norm")); p++) {
        const char end = p[4];
        const bool end_ok = end == 0 || end == '.';
        if (end_ok && (p == l || p[-1] == '.' || p[-1] == '_')) nodecay = true;
    }
    free(l);
    return !nodecay;
}

bool adamw_param_is_encoder(const char *name) {
    // Hypencoder / BE-Base: "query_encoder.transformer.*", "passage_encoder.transformer.*";
    // the hyperhead is "query_encoder.<anything else>"; a plain BERT has neither prefix.
    return strstr(name, "transformer.") != NULL || strncmp(name, "query_encoder.", 14) != 0;
}

AdamW *adamw_new(const ParamSet *ps, const AdamWConfig *cfg) {
    HYP_CHECK(ps->finalized, "adamw_new: the parameter set is not finalized");
    const Backend *be = backend_get(ps->device);
    AdamW *o = hyp_calloc(1, sizeof *o);
    o->cfg = *cfg;
    o->device = ps->device;
    o->numel = ps->numel;
    size_t bytes = ps->numel * sizeof(float);
    o->m = be->alloc(bytes);
    o->v = be->alloc(bytes);
    be->memset0(o->m, bytes);
    be->memset0(o->v, bytes);
    o->norm_buf = be->alloc(sizeof(float));
    o->guard = be->alloc(sizeof(HypClipState));
    be->memset0(o->guard, sizeof(HypClipState));
    // Runs of consecutive parameters sharing a decay flag (one run without weight decay).
    o->run_off = hyp_malloc((size_t)(ps->n + 1) * sizeof(size_t));
    o->run_len = hyp_malloc((size_t)(ps->n + 1) * sizeof(size_t));
    o->run_decay = hyp_malloc((size_t)(ps->n + 1) * sizeof(bool));
    o->run_lr_mult = hyp_malloc((size_t)(ps->n + 1) * sizeof(double));
    o->run_frozen = hyp_malloc((size_t)(ps->n + 1) * sizeof(bool));
    const double head = cfg->head_lr_mult > 0 ? cfg->head_lr_mult : 1.0;
    size_t off = 0;
    for (int i = 0; i < ps->n; i++) {
        const Tensor *p = ps->params[i];
        const size_t len = tensor_numel(p);
        const bool d = cfg->decay_all || adamw_param_decays(p->name);
        const double mult = adamw_param_is_encoder(p->name) ? 1.0 : head;
        const bool frozen = !p->requires_grad;
        const int r = o->n_runs - 1;
        if (r >= 0 && o->run_decay[r] == d && o->run_lr_mult[r] == mult && o->run_frozen[r] == frozen) o->run_len[r] += len;
        else {
            o->run_off[o->n_runs] = off;
            o->run_len[o->n_runs] = len;
            o->run_decay[o->n_runs] = d;
            o->run_lr_mult[o->n_runs] = mult;
            o->run_frozen[o->n_runs] = frozen;
            o->n_runs++;
        }
        off += len;
    }
    HYP_CHECK(off == ps->numel, "adamw_new: parameter sizes add up to %zu, the set holds %zu", off, ps->numel);
    return o;
}

void adamw_free(AdamW *o) {
    if (!o) return;
    const Backend *be = backend_get(o->device);
    be->free(o->m);
    be->free(o->v);
    be->free(o->norm_buf);
    be->free(o->guard);
    free(o->run_off);
    free(o->run_len);
    free(o->run_decay);
    free(o->run_lr_mult);
    free(o->run_frozen);
    free(o);
}

float optim_clip_coef(double grad_norm, double max_norm) {
    // torch: clip_coef = max_norm / (total_norm + 1e-6) on an fp32 tensor, clamped to 1; the
    // formula the device computes for optim_step_async (kernels/elementwise.h).
    return hyp_clip_coef((float)grad_norm, max_norm);
}

double optim_grad_norm(const ParamSet *ps, float *scratch) {
    const Backend *be = backend_get(ps->device);
    float *buf = scratch ? scratch : be->alloc(sizeof(float));
    float ss;
    KERNEL(be, sum_squares, "sum_squares")(buf, ps->grad, (long)ps->numel);
    be->synchronize();
    be->copy(&ss, buf, sizeof(float), COPY_D2H);
    if (!scratch) be->free(buf);
    // sqrt of the fp32 sum of squares, rounded to fp32 like torch's fp32 norm
    return (double)(float)sqrt((double)ss);
}

OptimStatus optim_step(AdamW *o, ParamSet *ps, double lr, OptimStats *stats) {
    HYP_CHECK(ps->numel == o->numel && ps->device == o->device,
              "optim_step: the optimizer was made for another parameter set (%zu vs %zu floats)", o->numel, ps->numel);
    const double norm = optim_grad_norm(ps, o->norm_buf);
    const float coef = optim_clip_coef(norm, o->cfg.max_grad_norm);
    if (stats) *stats = (OptimStats){.grad_norm = norm, .clip_coef = coef, .lr = lr};
    if (!isfinite(norm) || !isfinite(lr) || !isfinite(coef)) return OPTIM_NONFINITE;
    const Backend *be = backend_get(ps->device);
    const int64_t t = o->step + 1;
    const double bc1 = 1.0 - pow(o->cfg.beta1, (double)t), bc2 = 1.0 - pow(o->cfg.beta2, (double)t);
    for (int r = 0; r < o->n_runs; r++) {
        if (o->run_frozen[r]) continue;   // fixed weights: no update, moments stay 0
        const size_t off = o->run_off[r];
        KERNEL(be, adamw_step, "adamw_step")(ps->data + off, ps->grad + off, o->m + off, o->v + off,
                                             (long)o->run_len[r], lr * o->run_lr_mult[r], o->cfg.beta1, o->cfg.beta2, o->cfg.eps,
                                             o->run_decay[r] ? o->cfg.weight_decay : 0.0, bc1, bc2, coef);
    }
    o->step = t;
    paramset_touch(ps);   // the parameters' bf16 copy is remade before the next bf16 GEMM
    return OPTIM_OK;
}

OptimStatus optim_step_async(AdamW *o, ParamSet *ps, double lr, const float *check, long n_check) {
    HYP_CHECK(ps->numel == o->numel && ps->device == o->device,
              "optim_step_async: the optimizer was made for another parameter set (%zu vs %zu floats)", o->numel, ps->numel);
    if (!isfinite(lr)) return OPTIM_NONFINITE;
    const Backend *be = backend_get(ps->device);
    const int64_t t = o->step + 1;
    KERNEL(be, sum_squares, "sum_squares")(o->norm_buf, ps->grad, (long)ps->numel);
    KERNEL(be, clip_coef, "clip_coef")(o->guard, o->norm_buf, check, n_check, o->cfg.max_grad_norm,
                                       t < INT32_MAX ? (int32_t)t : INT32_MAX, true);
    const double bc1 = 1.0 - pow(o->cfg.beta1, (double)t), bc2 = 1.0 - pow(o->cfg.beta2, (double)t);
    for (int r = 0; r < o->n_runs; r++) {
        if (o->run_frozen[r]) continue;
        const size_t off = o->run_off[r];
        KERNEL(be, adamw_step_dev, "adamw_step_dev")(ps->data + off, ps->grad + off, o->m + off, o->v + off,
                                                     (long)o->run_len[r], lr * o->run_lr_mult[r], o->cfg.beta1, o->cfg.beta2, o->cfg.eps,
                                                     o->run_decay[r] ? o->cfg.weight_decay : 0.0, bc1, bc2,
                                                     &o->guard->coef);
    }
    o->step = t;
    o->last_lr = lr;
    paramset_touch(ps);
    return OPTIM_OK;
}

OptimStatus optim_guard_read(AdamW *o, OptimStats *stats, int64_t *bad_step) {
    const Backend *be = backend_get(o->device);
    HypClipState g;
    be->synchronize();
    be->copy(&g, o->guard, sizeof g, COPY_D2H);
    if (stats) *stats = (OptimStats){.grad_norm = (double)g.norm, .clip_coef = g.coef, .lr = o->last_lr};
    if (bad_step) *bad_step = g.bad_step;
    if (g.bad_step == 0 && !isnan(g.coef)) return OPTIM_OK;
    if (g.bad_step > 0) o->step = g.bad_step - 1;
    be->memset0(o->guard, sizeof(HypClipState));   // clear the latch
    return OPTIM_NONFINITE;
}
