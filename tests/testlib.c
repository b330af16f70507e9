#include "tests/testlib.h"
#include <criterion/hooks.h>
#include "data/synthetic.h"
#include <unistd.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

H5File *fx_open(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", FIXTURE_DIR, name);
    H5File *f = h5_open(path);
    cr_assert(f, "fixture file: %s (run `make fixtures` to regenerate)", hyp_last_error());
    return f;
}

bool fx_has(H5File *f, const char *group, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", group, name);
    return h5_exists(f, p);
}

Tensor *fx_tensor(Ctx *c, H5File *f, const char *group, const char *name, bool requires_grad) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", group, name);
    Tensor *t = h5_read_tensor(c, f, p);
    cr_assert(t, "%s", hyp_last_error());
    t->requires_grad = requires_grad;
    return t;
}

double rel_err(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) || isnan(want[i]) || isinf(got[i])) return INFINITY;
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

void *tensor_host_copy(const Tensor *t) {
    void *h = hyp_malloc(tensor_bytes(t));
    tensor_to_host(t, h);
    return h;
}

int fx_attr_int(H5File *f, const char *g, const char *attr) {
    double v;
    cr_assert(h5_read_attr_f64(f, g, attr, &v) == 0, "%s: attribute %s: %s", g, attr, hyp_last_error());
    return (int)v;
}

void expect_fixture(const Tensor *got, H5File *f, const char *group, const char *name, double tol) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", group, name);
    int nd, sh[HYP_MAX_DIMS];
    float *want = h5_read_f32(f, p, &nd, sh);
    cr_assert(want, "%s", hyp_last_error());
    cr_assert(got, "%s: no tensor produced (gradient never reached this input?)", p);
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)sh[i];
    cr_assert_eq(n, tensor_numel(got), "%s: %zu elements expected, got %zu", p, n, tensor_numel(got));
    float *g = tensor_host_copy(got);
    double e = rel_err(g, want, n);
    double wn = 0;
    for (size_t i = 0; i < n; i++) wn += fabs(want[i]);
    free(g);
    free(want);
    cr_assert(wn > 0, "%s: the fixture is all zeros (never test on zeros)", p);
    cr_assert(e <= tol, "%s on %s: relative error %.3g > %.1g", p, device_name(got->device), e, tol);
}

void expect_close(const Tensor *got, const Tensor *want, double tol, const char *what) {
    cr_assert_eq(tensor_numel(got), tensor_numel(want), "%s: element counts differ", what);
    float *g = tensor_host_copy(got), *w = tensor_host_copy(want);
    double e = rel_err(g, w, tensor_numel(got));
    free(g);
    free(w);
    cr_assert(e <= tol, "%s: relative error %.3g > %.1g", what, e, tol);
}

Tensor *tensor_from_floats(Ctx *c, const float *host, int ndim, const int *shape, bool requires_grad) {
    Tensor *t = tensor_new(c, HYP_F32, ndim, shape);
    tensor_from_host(t, host);
    t->requires_grad = requires_grad;
    return t;
}

Tensor *tensor_rand(Ctx *c, int ndim, const int *shape, float lo, float hi, uint64_t seed, bool requires_grad) {
    Tensor *t = tensor_new(c, HYP_F32, ndim, shape);
    size_t n = tensor_numel(t);
    float *h = hyp_malloc(n * sizeof(float));
    fill_uniform(h, n, lo, hi, seed);
    tensor_from_host(t, h);
    free(h);
    t->requires_grad = requires_grad;
    return t;
}

float *read_all_params(const char *path, size_t *n_out) {
    H5File *f = h5_open(path);
    cr_assert_not_null(f, "%s", hyp_last_error());
    char **names;
    int n = h5_list(f, "/params", &names);
    cr_assert(n > 0, "%s: no /params", path);
    size_t total = 0;
    float *all = NULL;
    for (int i = 0; i < n; i++) {
        char ds[512];
        snprintf(ds, sizeof ds, "/params/%s", names[i]);
        int nd, sh[HYP_MAX_DIMS];
        float *v = h5_read_f32(f, ds, &nd, sh);
        cr_assert_not_null(v, "%s", hyp_last_error());
        size_t m = 1;
        for (int k = 0; k < nd; k++) m *= (size_t)sh[k];
        all = hyp_realloc(all, (total + m) * sizeof(float));
        memcpy(all + total, v, m * sizeof(float));
        total += m;
        free(v);
        free(names[i]);
    }
    free(names);
    h5_close(f);
    *n_out = total;
    return all;
}

void make_synth_task(char *dir, size_t n, const char *prefix, int n_train, int n_docs, int n_queries) {
    snprintf(dir, n, "%s_XXXXXX", prefix);
    cr_assert_not_null(mkdtemp(dir));
    SynthOptions o = synth_default();
    o.n_train = n_train;
    o.n_docs = n_docs;
    o.n_val = n_queries;
    o.n_test = n_queries;
    char d[256];
    snprintf(d, sizeof d, "%s/data", dir);
    cr_assert_eq(synth_write(d, &o), 0, "%s", hyp_last_error());
}

void expect_gradcheck(GradFn f, Tensor **inputs, int n_in, void *user, const GradcheckOpts *o, const char *what) {
    char report[256];
    bool ok = gradcheck(f, inputs, n_in, user, o, report, sizeof report);
    cr_assert(ok, "gradcheck %s: %s", what, report);
}

// Skipped tests (the CUDA variants on a machine without a GPU) are counted out loud.
// With HYP_TEST_STATS set, the totals are appended there for scripts/run_tests.sh.
ReportHook(POST_ALL)(struct criterion_global_stats *stats) {
    const char *path = getenv("HYP_TEST_STATS");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f) {
        fprintf(f, "%zu %zu %zu %zu\n", stats->tests_passed, stats->tests_failed, stats->tests_crashed,
                stats->tests_skipped);
        fclose(f);
    }
    if (stats->tests_skipped)
        fprintf(stderr, "[SKIP] %zu test(s) skipped: %s (run with --verbose for the list)\n",
                stats->tests_skipped, hyp_cuda_available() ? "see --verbose" : hyp_cuda_why_unavailable());
}

bool hyp_require_gpu(void) {
    const char *e = getenv("HYP_REQUIRE_GPU");
    return e && e[0] && strcmp(e, "0") != 0;
}
