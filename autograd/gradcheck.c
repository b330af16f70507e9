#include "autograd/gradcheck.h"
#include "kernels/elementwise.h"
#include <math.h>
#include <string.h>
#include <stdlib.h>

// L = sum(out * r), accumulated in double.
static double probe(GradFn f, Tensor **inputs, void *user, const float *r) {
    Ctx *c = ctx_new(HYP_CPU);
    no_grad_begin(c);
    Tensor *out = f(c, inputs, user);
    double s = 0;
    const float *o = out->data;
    for (size_t i = 0; i < tensor_numel(out); i++) s += (double)o[i] * r[i];
    ctx_free(c);
    return s;
}

bool gradcheck(GradFn f, Tensor **inputs, int n_in, void *user, const GradcheckOpts *opts,
               char *report, size_t report_len) {
    GradcheckOpts o = opts ? *opts : (GradcheckOpts){0};
    if (o.eps == 0) o.eps = 1e-2;
    if (o.rtol == 0) o.rtol = 2e-2;
    if (o.atol == 0) o.atol = 1e-3;
    if (o.max_per_input == 0) o.max_per_input = 64;
    for (int i = 0; i < n_in; i++)
        HYP_CHECK(inputs[i]->device == HYP_CPU, "gradcheck runs on the CPU");

    // Analytic gradients.
    Ctx *c = ctx_new(HYP_CPU);
    for (int i = 0; i < n_in; i++) inputs[i]->grad = NULL;
    Tensor *out = f(c, inputs, user);
    size_t nout = tensor_numel(out);
    float *r = hyp_malloc(nout * sizeof(float));
    fill_uniform(r, nout, -1.0f, 1.0f, o.seed + 7777);
    Tensor *rt = tensor_new(c, HYP_F32, out->ndim, out->shape);
    memcpy(rt->data, r, nout * sizeof(float));
    backward_from(c, out, rt);

    bool ok = true;
    double worst = 0;
    if (report && report_len) report[0] = 0;
    for (int i = 0; i < n_in; i++) {
        Tensor *x = inputs[i];
        if (!x->requires_grad || x->dtype != HYP_F32) continue;
        size_t n = tensor_numel(x);
        float *xd = x->data;
        const float *g = x->grad ? (const float *)x->grad->data : NULL;
        size_t probes = n < (size_t)o.max_per_input ? n : (size_t)o.max_per_input;
        for (size_t k = 0; k < probes; k++) {
            size_t j = probes == n ? k : (size_t)(hyp_philox_uniform(o.seed + 99 + i, 0, k) * n) % n;
            float keep = xd[j];
            xd[j] = keep + (float)o.eps;
            double lp = probe(f, inputs, user, r);
            xd[j] = keep - (float)o.eps;
            double lm = probe(f, inputs, user, r);
            xd[j] = keep;
            // Divide by the step actually taken in fp32.
            double h = (double)(float)(keep + (float)o.eps) - (double)(float)(keep - (float)o.eps);
            double num = (lp - lm) / h;
            double ana = g ? g[j] : 0.0;
            double err = fabs(ana - num);
            double bound = o.atol + o.rtol * fmax(fabs(ana), fabs(num));
            if (!(err <= bound)) {
                ok = false;
                if (err - bound > worst || isnan(err)) {
                    worst = err - bound;
                    if (report)
                        snprintf(report, report_len, "input %d element %zu: analytic %.6g, numeric %.6g", i, j, ana, num);
                }
            }
        }
    }
    free(r);
    for (int i = 0; i < n_in; i++) inputs[i]->grad = NULL;   // grads lived in c
    ctx_free(c);
    return ok;
}
