// Hypencoder parity with the PyTorch twin of the reference (tests/fixtures/hypencoder_twin.py,
// fixtures from tests/fixtures/fx_hypencoder.py): generated q-net weights and biases, scores,
// in-batch scores, both losses and every parameter gradient, for a tiny configuration (full
// tensors) and for a 768-wide 6-layer q-net on a tiny BERT (parameters generated here from
// the shared Philox recipe, compared through compact signatures). Plus q-net scoring
// consistency, the reference's initialisation distributions, hyperhead parameter counts,
// a finite-difference check of hyperhead + q-net + losses, and the attention-scale option.
#include "tests/testlib.h"
#include "model/hypencoder.h"
#include "train/losses.h"
#include "kernels/elementwise.h"   // hyp_philox_uniform: the generator the fixtures mirror
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FX_FILE "hypencoder_tiny.h5"

static double gattr(H5File *f, const char *group, const char *name) {
    double v;
    cr_assert(h5_read_attr_f64(f, group, name, &v) == 0, "%s", hyp_last_error());
    return v;
}

static HypencoderConfig fixture_config(H5File *f, const char *g) {
    HypencoderConfig cfg = hypencoder_config_default((int)gattr(f, g, "qnet_layers"));
    BertConfig *b = &cfg.bert;
    b->vocab_size = (int)gattr(f, g, "vocab_size");
    b->hidden = (int)gattr(f, g, "hidden");
    b->layers = (int)gattr(f, g, "layers");
    b->heads = (int)gattr(f, g, "heads");
    b->ffn = (int)gattr(f, g, "ffn");
    b->max_positions = (int)gattr(f, g, "max_positions");
    b->type_vocab_size = (int)gattr(f, g, "type_vocab_size");
    b->ln_eps = (float)gattr(f, g, "ln_eps");
    b->pad_token_id = 0;
    b->dropout = 0.0f;
    b->pooler = true;
    cfg.ln_eps = (float)gattr(f, g, "hyper_ln_eps");
    cfg.shared_encoder = true;
    cfg.scale = HYPER_SCALE_OUT_DIM;
    return cfg;
}

// One training objective on B queries with n items each (positive first), as training
// computes it: docs (B*n) -> (B, n, d); own-item scores; in-batch scores of the positives.
typedef struct {
    QNet q;
    Tensor *docs, *scores, *S, *mse, *ce, *total;
} Step;

static Step run_step(Ctx *c, const Hypencoder *m, Tensor *q_ids, Tensor *q_mask, Tensor *d_ids, Tensor *d_mask,
                     const float *teacher, int B, int n) {
    Step s;
    int d = m->head.dim;
    s.q = hypencoder_queries(c, m, q_ids, q_mask);
    s.docs = hypencoder_docs(c, m, d_ids, d_mask);                                  // (B*n, d)
    Tensor *Dn = op_reshape(c, s.docs, HYP_SHAPE(B, n, d));
    s.scores = qnet_score(c, &s.q, Dn);                                             // (B, n)
    Tensor *P = op_reshape(c, op_slice(c, Dn, 1, 0, 1), HYP_SHAPE(B, d));           // positives
    s.S = qnet_score_shared(c, &s.q, P);                                            // (B, B)
    s.mse = loss_margin_mse(c, s.scores, teacher);
    s.ce = loss_inbatch_ce(c, s.S);
    s.total = op_add(c, s.mse, s.ce);
    return s;
}

// Gradients that are exactly zero in exact arithmetic: a key bias adds Q.b to every score of
// a softmax row, which softmax ignores (hyperhead key projections and BERT's attention
// keys). Both sides hold only rounding noise, so the fixture's value says nothing; instead
// the C gradient must be noise-sized next to the gradient of the same projection's weight
// (a backward that fails to cancel, e.g. a wrong softmax or bias-reduction gradient, gives
// a bias gradient comparable to the weight's).
static bool is_zero_in_exact_arithmetic(const char *name) {
    return (strstr(name, "key_projections.") && strstr(name, ".bias")) || strstr(name, "attention.self.key.bias");
}

static double host_norm(const Tensor *t) {
    float *h = tensor_host_copy(t);
    double s = 0;
    for (size_t i = 0; i < tensor_numel(t); i++) s += (double)h[i] * h[i];
    free(h);
    return sqrt(s);
}

static void expect_noise_gradient(const ParamSet *ps, const Tensor *p) {
    char wname[256];
    size_t len = strlen(p->name);
    snprintf(wname, sizeof wname, "%.*sweight", (int)(len - strlen("bias")), p->name);
    const Tensor *w = paramset_get(ps, wname);
    cr_assert(w && w->grad, "%s: no weight %s", p->name, wname);
    double gb = p->grad ? host_norm(p->grad) : 0, gw = host_norm(w->grad);
    cr_assert(gw > 0, "%s has no gradient", wname);
    cr_assert(gb <= 1e-4 * gw, "%s: ||grad|| = %.3g is not rounding noise next to ||grad %s|| = %.3g", p->name, gb,
              wname, gw);
}

// ---------------------------------------------------------------- tiny fixture, full tensors
static void run_tiny_parity(Device dev, const char *group) {
    H5File *f = fx_open(FX_FILE);
    char g[64], sub[96];
    snprintf(g, sizeof g, "/%s", group);
    HypencoderConfig cfg = fixture_config(f, g);
    int B = (int)gattr(f, g, "B"), n = (int)gattr(f, g, "n");
    ParamSet *ps = paramset_new(dev);
    Hypencoder m;
    hypencoder_register(&m, ps, &cfg);
    paramset_finalize(ps);
    snprintf(sub, sizeof sub, "%s/params", g);
    cr_assert_eq(h5_load_params(f, sub, ps, false), 0, "%s", hyp_last_error());

    Ctx *c = ctx_new(dev);
    Tensor *q_ids = fx_tensor(c, f, g, "q_ids", false), *q_mask = fx_tensor(c, f, g, "q_mask", false);
    Tensor *d_ids = fx_tensor(c, f, g, "d_ids", false), *d_mask = fx_tensor(c, f, g, "d_mask", false);
    snprintf(sub, sizeof sub, "%s/teacher", g);
    int nd, sh[HYP_MAX_DIMS];
    float *teacher = h5_read_f32(f, sub, &nd, sh);
    cr_assert(teacher && nd == 2 && sh[0] == B && sh[1] == n, "%s", hyp_last_error());

    Step s = run_step(c, &m, q_ids, q_mask, d_ids, d_mask, teacher, B, n);
    cr_assert_eq(s.q.layers, cfg.qnet_layers);
    char name[32];
    snprintf(sub, sizeof sub, "%s/W", g);
    for (int i = 0; i <= s.q.layers; i++) {
        snprintf(name, sizeof name, "%d", i);
        expect_fixture(s.q.W[i], f, sub, name, TOL_E2E);
    }
    snprintf(sub, sizeof sub, "%s/b", g);
    for (int j = 0; j < s.q.layers; j++) {
        snprintf(name, sizeof name, "%d", j);
        expect_fixture(s.q.b[j], f, sub, name, TOL_E2E);
    }
    expect_fixture(s.docs, f, g, "docs", TOL_E2E);
    expect_fixture(s.scores, f, g, "scores", TOL_E2E);
    expect_fixture(s.S, f, g, "S", TOL_E2E);
    expect_fixture(s.mse, f, g, "mse", TOL_E2E);
    expect_fixture(s.ce, f, g, "ce", TOL_E2E);
    expect_fixture(s.total, f, g, "total", TOL_E2E);

    backward(c, s.total);
    snprintf(sub, sizeof sub, "%s/grads", g);
    int checked = 0;
    for (int i = 0; i < ps->n; i++) {
        Tensor *p = ps->params[i];
        if (strstr(p->name, ".pooler.")) {   // unused by the Hypencoder: no gradient anywhere
            cr_assert(!fx_has(f, sub, p->name), "%s: the twin has a pooler gradient", p->name);
            continue;
        }
        cr_assert(fx_has(f, sub, p->name), "%s: no gradient fixture", p->name);
        if (is_zero_in_exact_arithmetic(p->name))
            expect_noise_gradient(ps, p);
        else
            expect_fixture(p->grad, f, sub, p->name, TOL_E2E);
        checked++;
    }
    cr_assert_eq(checked, ps->n - 2, "every parameter but the pooler's is checked");
    free(teacher);
    ctx_free(c);
    hypencoder_free(&m);
    paramset_free(ps);
    h5_close(f);
}

Test(hypencoder, tiny_parity_l2_cpu) { run_tiny_parity(HYP_CPU, "l2"); }
Test(hypencoder, tiny_parity_l3_cpu) { run_tiny_parity(HYP_CPU, "l3"); }
Test(hypencoder, tiny_parity_l2_cuda) { RUN_ON_CUDA_OR_SKIP(); run_tiny_parity(HYP_CUDA, "l2"); }
Test(hypencoder, tiny_parity_l3_cuda) { RUN_ON_CUDA_OR_SKIP(); run_tiny_parity(HYP_CUDA, "l3"); }

// ---------------------------------------------------------------- the shared generator
// fx_hypencoder.py reimplements hyp_philox_uniform / fill_uniform in numpy; the 768-wide
// parity depends on both producing the same bits.
Test(hypencoder, philox_twin_bit_exact) {
    H5File *f = fx_open(FX_FILE);
    int nd, sh_s[HYP_MAX_DIMS], sh_i[HYP_MAX_DIMS], sh_v[HYP_MAX_DIMS], sh_f[HYP_MAX_DIMS];
    int32_t *seeds = h5_read_i32(f, "/philox/seeds", &nd, sh_s), *idx = h5_read_i32(f, "/philox/idx", &nd, sh_i);
    float *vals = h5_read_f32(f, "/philox/values", &nd, sh_v), *fill = h5_read_f32(f, "/philox/fill", &nd, sh_f);
    cr_assert(seeds && idx && vals && fill, "%s", hyp_last_error());
    int ns = sh_s[0] / 2, ni = sh_i[0] / 2;
    cr_assert_eq(sh_v[0], ns);
    cr_assert_eq(sh_v[1], ni);
    for (int s = 0; s < ns; s++)
        for (int k = 0; k < ni; k++) {
            uint64_t seed = (uint64_t)(uint32_t)seeds[2 * s] | (uint64_t)(uint32_t)seeds[2 * s + 1] << 32;
            uint64_t i = (uint64_t)(uint32_t)idx[2 * k] | (uint64_t)(uint32_t)idx[2 * k + 1] << 32;
            float got = hyp_philox_uniform(seed, 0, i), want = vals[s * ni + k];
            cr_assert(memcmp(&got, &want, sizeof got) == 0, "philox(seed %#llx, idx %#llx) = %.9g, numpy %.9g",
                      (unsigned long long)seed, (unsigned long long)i, got, want);
        }
    float *x = hyp_malloc(sh_f[0] * sizeof(float));
    fill_uniform(x, sh_f[0], -0.75f, 1.25f, 4242);
    cr_assert(memcmp(x, fill, sh_f[0] * sizeof(float)) == 0, "fill_uniform differs from its numpy twin");
    free(x);
    free(seeds);
    free(idx);
    free(vals);
    free(fill);
    h5_close(f);
}

// ---------------------------------------------------------------- 768-wide, 6-layer q-net
// Recipe shared with fx_hypencoder.py (keep in step): parameter i in registration order is
// fill_uniform(numel, lo, hi, WIDE_SEED + i) with (lo, hi) from wide_recipe (dyadic bounds).
#define WIDE_SEED 20250
#define PROJ_SEED 9001
#define SAMPLE_SEED_GRAD 5000
#define SAMPLE_SEED_W 6000
#define SAMPLE_SEED_B 7000
#define N_PROJ 3
#define N_SAMPLES 64
#define SIG_LEN (1 + N_PROJ + N_SAMPLES)

static void wide_recipe(const Tensor *p, float *lo, float *hi) {
    const char *name = p->name;
    size_t len = strlen(name);
    bool is_weight = len >= 6 && strcmp(name + len - 6, "weight") == 0;
    float a;
    if (strstr(name, "LayerNorm.weight")) {
        *lo = 0.5f, *hi = 1.5f;
        return;
    }
    if (strstr(name, "weight_hyper_projection")) a = is_weight ? 0x1p-9f : 0x1p-6f;
    else if (strstr(name, "weight_query_embeddings")) a = p->shape[1] > 1 ? 4.0f : 0.125f;
    else if (strstr(name, "bias_query_embeddings")) a = 0.125f;
    else if (strstr(name, "hyper_base_matrices")) a = 0x1p-5f;
    else if (strstr(name, "hyper_base_vectors")) a = 0.125f;
    else if (strstr(name, "embeddings.")) a = 0.5f;
    else if (p->ndim == 2) {
        int q = 1;
        while ((long)q * q < p->shape[1]) q *= 2;   // smallest power of two >= sqrt(fan_in)
        a = 1.0f / (float)q;
    } else a = 0.0625f;
    *lo = -a, *hi = a;
}

static uint32_t fnv1a32(const char *s) {
    uint32_t h = 0x811C9DC5u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x01000193u;
    return h;
}

typedef struct {
    float *R[N_PROJ];   // projection streams: R_k[i] = fill_uniform(-1, 1, PROJ_SEED + k)[i]
    size_t n;
} Projections;

// Signature of n host floats: ||G||, <G, R_k>, G at 64 Philox-chosen positions (double).
static void signature(const float *g, size_t n, const Projections *pr, uint64_t sample_seed, double *sig,
                      double *rnorm) {
    cr_assert(n <= pr->n, "signature of %zu elements, projections hold %zu", n, pr->n);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    sig[0] = sqrt(s);
    for (int k = 0; k < N_PROJ; k++) {
        double p = 0, r2 = 0;
        for (size_t i = 0; i < n; i++) {
            p += (double)g[i] * pr->R[k][i];
            r2 += (double)pr->R[k][i] * pr->R[k][i];
        }
        sig[1 + k] = p;
        rnorm[k] = sqrt(r2);
    }
    for (int j = 0; j < N_SAMPLES; j++) {
        // u = k / 2^24 exactly; k * n < 2^53, so the product and its floor are exact.
        size_t pos = (size_t)((double)hyp_philox_uniform(sample_seed, 0, (uint64_t)j) * (double)n);
        sig[1 + N_PROJ + j] = g[pos];
    }
}

// Compare the signature of the C tensor with the oracle's. The full-tensor criterion of
// DESIGN §4 is ||e|| <= tol ||G|| with e = got - want; each part is checked at that scale:
//  * norm: | ||got|| - ||want|| | <= ||e|| (triangle inequality), so <= tol ||want|| is
//    implied by the full criterion exactly.
//  * projection: <e, R_k> with R_k independent of e (a separate Philox stream) has standard
//    deviation ||e|| ||R_k|| / sqrt(n); a bound of 6 such deviations at ||e|| = tol ||want||
//    is a 6-sigma test (false alarm < 2e-9) and ~sqrt(n) times sharper than the
//    Cauchy-Schwarz bound tol ||want|| ||R_k||, so it sees errors the norm cannot (a
//    transposed or permuted tensor has the same norm but a different projection).
//  * samples: E ||e_S||^2 = (64 / n) ||e||^2 over the random positions; a factor 4 on its
//    square root covers the chi fluctuation and errors concentrated in half of the entries
//    (unused embedding rows have zero gradient). Samples pin the layout element by element.
static void expect_signature(const float *g, size_t n, const Projections *pr, uint64_t sample_seed, H5File *f,
                             const char *path, const char *what) {
    int nd, sh[HYP_MAX_DIMS];
    float *want = h5_read_f32(f, path, &nd, sh);
    cr_assert(want && nd == 1 && sh[0] == SIG_LEN, "%s: %s", what, hyp_last_error());
    double sig[SIG_LEN], rn[N_PROJ], tol = TOL_E2E, wn = want[0];
    signature(g, n, pr, sample_seed, sig, rn);
    cr_assert(wn > 0, "%s: the oracle tensor is all zeros", what);
    cr_assert(isfinite(sig[0]), "%s: non-finite values", what);
    cr_assert(fabs(sig[0] - wn) <= tol * wn, "%s: ||G|| = %.7g, oracle %.7g (rel %.3g > %.1g)", what, sig[0], wn,
              fabs(sig[0] - wn) / wn, tol);
    for (int k = 0; k < N_PROJ; k++) {
        double bound = 6.0 * tol * wn * rn[k] / sqrt((double)n), d = fabs(sig[1 + k] - want[1 + k]);
        cr_assert(d <= bound, "%s: <G, R_%d> = %.7g, oracle %.7g (|diff| %.3g > %.3g)", what, k, sig[1 + k],
                  want[1 + k], d, bound);
    }
    double e2 = 0;
    for (int j = 0; j < N_SAMPLES; j++) {
        double d = sig[1 + N_PROJ + j] - want[1 + N_PROJ + j];
        e2 += d * d;
    }
    double bound = 4.0 * tol * wn * sqrt((double)N_SAMPLES / (double)n);
    cr_assert(sqrt(e2) <= bound, "%s: sampled entries differ by %.3g > %.3g", what, sqrt(e2), bound);
    free(want);
}

static void expect_signature_t(const Tensor *t, const Projections *pr, uint64_t sample_seed, H5File *f,
                               const char *path, const char *what) {
    float *h = tensor_host_copy(t);
    expect_signature(h, tensor_numel(t), pr, sample_seed, f, path, what);
    free(h);
}

static void run_wide_parity(Device dev) {
    H5File *f = fx_open(FX_FILE);
    const char *g = "/wide6";
    HypencoderConfig cfg = fixture_config(f, g);
    cr_assert_eq(cfg.qnet_layers, 6);
    cr_assert_eq(cfg.bert.hidden, 768);
    int B = (int)gattr(f, g, "B"), n = (int)gattr(f, g, "n");
    ParamSet *ps = paramset_new(dev);
    Hypencoder m;
    hypencoder_register(&m, ps, &cfg);
    paramset_finalize(ps);

    // Same order, same names as the twin (its recipe seeds depend on the index).
    int nd, sh[HYP_MAX_DIMS];
    int32_t *hash = h5_read_i32(f, "/wide6/name_hash", &nd, sh);
    cr_assert(hash, "%s", hyp_last_error());
    cr_assert_eq(sh[0], ps->n, "the twin has %d parameters, C registers %d", sh[0], ps->n);
    size_t maxn = 0;
    for (int i = 0; i < ps->n; i++) {
        Tensor *p = ps->params[i];
        cr_assert_eq((uint32_t)hash[i], fnv1a32(p->name), "parameter %d (%s) is not the twin's", i, p->name);
        size_t k = tensor_numel(p);
        float lo, hi, *h = hyp_malloc(k * sizeof(float));
        wide_recipe(p, &lo, &hi);
        fill_uniform(h, k, lo, hi, WIDE_SEED + (uint64_t)i);
        tensor_from_host(p, h);
        free(h);
        if (k > maxn) maxn = k;
    }
    free(hash);
    size_t gen_w = (size_t)B * cfg.bert.hidden * cfg.bert.hidden;   // a generated hidden weight
    Projections pr = {.n = maxn > gen_w ? maxn : gen_w};
    for (int k = 0; k < N_PROJ; k++) {
        pr.R[k] = hyp_malloc(pr.n * sizeof(float));
        fill_uniform(pr.R[k], pr.n, -1.0f, 1.0f, PROJ_SEED + k);
    }

    Ctx *c = ctx_new(dev);
    Tensor *q_ids = fx_tensor(c, f, g, "q_ids", false), *q_mask = fx_tensor(c, f, g, "q_mask", false);
    Tensor *d_ids = fx_tensor(c, f, g, "d_ids", false), *d_mask = fx_tensor(c, f, g, "d_mask", false);
    float *teacher = h5_read_f32(f, "/wide6/teacher", &nd, sh);
    cr_assert(teacher && sh[0] == B && sh[1] == n, "%s", hyp_last_error());
    Step s = run_step(c, &m, q_ids, q_mask, d_ids, d_mask, teacher, B, n);
    expect_fixture(s.scores, f, g, "scores", TOL_E2E);
    expect_fixture(s.S, f, g, "S", TOL_E2E);
    expect_fixture(s.mse, f, g, "mse", TOL_E2E);
    expect_fixture(s.ce, f, g, "ce", TOL_E2E);
    expect_fixture(s.total, f, g, "total", TOL_E2E);
    char path[320], what[320];
    for (int i = 0; i <= s.q.layers; i++) {
        snprintf(path, sizeof path, "/wide6/sig/W/%d", i);
        snprintf(what, sizeof what, "wide W[%d] on %s", i, device_name(dev));
        expect_signature_t(s.q.W[i], &pr, SAMPLE_SEED_W + i, f, path, what);
    }
    for (int j = 0; j < s.q.layers; j++) {
        snprintf(path, sizeof path, "/wide6/sig/b/%d", j);
        snprintf(what, sizeof what, "wide b[%d] on %s", j, device_name(dev));
        expect_signature_t(s.q.b[j], &pr, SAMPLE_SEED_B + j, f, path, what);
    }

    backward(c, s.total);
    int checked = 0;
    for (int i = 0; i < ps->n; i++) {
        Tensor *p = ps->params[i];
        snprintf(path, sizeof path, "/wide6/sig/grads/%s", p->name);
        if (strstr(p->name, ".pooler.")) {
            cr_assert(!h5_exists(f, path), "%s: the twin has a pooler gradient", p->name);
            continue;
        }
        cr_assert(h5_exists(f, path), "%s: no gradient signature", p->name);
        if (is_zero_in_exact_arithmetic(p->name)) {
            expect_noise_gradient(ps, p);
        } else {
            snprintf(what, sizeof what, "wide grad %s on %s", p->name, device_name(dev));
            expect_signature_t(p->grad, &pr, SAMPLE_SEED_GRAD + (uint64_t)i, f, path, what);
        }
        checked++;
    }
    cr_assert_eq(checked, ps->n - 2, "every parameter but the pooler's is checked");
    for (int k = 0; k < N_PROJ; k++) free(pr.R[k]);
    free(teacher);
    ctx_free(c);
    hypencoder_free(&m);
    paramset_free(ps);
    h5_close(f);
}

Test(hypencoder, wide6_parity_cpu) { run_wide_parity(HYP_CPU); }
Test(hypencoder, wide6_parity_cuda) { RUN_ON_CUDA_OR_SKIP(); run_wide_parity(HYP_CUDA); }

// ---------------------------------------------------------------- q-net scoring
// A random batch of q-nets (leaf tensors, so gradients can be compared).
static QNet random_qnet(Ctx *c, int B, int L, int d, uint64_t seed) {
    QNet q = {.B = B, .layers = L, .dim = d, .eps = 1e-5f};
    float a = 1.5f / sqrtf((float)d);
    for (int i = 0; i <= L; i++)
        q.W[i] = tensor_rand(c, HYP_SHAPE(B, i < L ? d : 1, d), -a, a, seed + i, true);
    for (int j = 0; j < L; j++) q.b[j] = tensor_rand(c, HYP_SHAPE(B, d), -0.5f, 0.5f, seed + 100 + j, true);
    return q;
}

// Shared documents (N, d) give the same scores and gradients as the same documents repeated
// for every query (B, N, d); the shared documents' gradient is the sum over queries.
Test(hypencoder, qnet_shared_equals_repeated) {
    int B = 3, N = 5, d = 24, L = 3;
    Ctx *c = ctx_new(HYP_CPU);
    QNet q = random_qnet(c, B, L, d, 11);
    Tensor *X = tensor_rand(c, HYP_SHAPE(N, d), -1, 1, 12, true);
    float *rep = hyp_malloc((size_t)B * N * d * sizeof(float));
    for (int b = 0; b < B; b++) memcpy(rep + (size_t)b * N * d, X->data, (size_t)N * d * sizeof(float));
    Tensor *Xr = tensor_from_floats(c, rep, HYP_SHAPE(B, N, d), true);
    free(rep);
    Tensor *s1 = qnet_score_shared(c, &q, X), *gy = tensor_rand(c, HYP_SHAPE(B, N), -1, 1, 13, false);
    cr_assert(s1->ndim == 2 && s1->shape[0] == B && s1->shape[1] == N);
    backward_from(c, s1, gy);
    Tensor *gW[QNET_MAX_LAYERS + 1], *gb[QNET_MAX_LAYERS];
    for (int i = 0; i <= L; i++) gW[i] = q.W[i]->grad, q.W[i]->grad = NULL;
    for (int j = 0; j < L; j++) gb[j] = q.b[j]->grad, q.b[j]->grad = NULL;
    Tensor *s2 = qnet_score(c, &q, Xr);
    expect_close(s1, s2, 1e-6, "shared vs repeated scores");
    backward_from(c, s2, gy);
    for (int i = 0; i <= L; i++) expect_close(gW[i], q.W[i]->grad, 1e-6, "dW shared vs repeated");
    for (int j = 0; j < L; j++) expect_close(gb[j], q.b[j]->grad, 1e-6, "db shared vs repeated");
    float *gr = tensor_host_copy(Xr->grad), *gx = tensor_host_copy(X->grad);
    double num = 0, den = 0;
    for (int i = 0; i < N * d; i++) {
        double s = 0;
        for (int b = 0; b < B; b++) s += gr[(size_t)b * N * d + i];
        num += (s - gx[i]) * (s - gx[i]);
        den += s * s;
    }
    cr_assert(den > 0 && sqrt(num / den) <= 1e-6, "dX shared != sum of repeated: %.3g", sqrt(num / den));
    free(gr);
    free(gx);
    ctx_free(c);
}

// One query's q-net over N documents at once equals scoring them one at a time.
Test(hypencoder, qnet_batch_equals_one_at_a_time) {
    int N = 7, d = 32, L = 4;
    Ctx *c = ctx_new(HYP_CPU);
    no_grad_begin(c);
    QNet q = random_qnet(c, 1, L, d, 21);
    Tensor *X = tensor_rand(c, HYP_SHAPE(1, N, d), -1, 1, 22, false);
    float *all = tensor_host_copy(qnet_score(c, &q, X));
    float *shared = tensor_host_copy(qnet_score_shared(c, &q, op_reshape(c, X, HYP_SHAPE(N, d))));
    double scale = 0;
    for (int k = 0; k < N; k++) scale = fmax(scale, fabs(all[k]));
    cr_assert(scale > 0.1, "scores are trivially small");
    for (int k = 0; k < N; k++) {
        Tensor *one = tensor_from_floats(c, tensor_f32(X) + (size_t)k * d, HYP_SHAPE(1, 1, d), false);
        float s = tensor_f32(qnet_score(c, &q, one))[0];
        cr_assert(fabsf(s - all[k]) <= 1e-6 * scale, "doc %d: alone %.9g, in batch %.9g", k, s, all[k]);
        cr_assert(fabsf(s - shared[k]) <= 1e-6 * scale, "doc %d: alone %.9g, shared %.9g", k, s, shared[k]);
    }
    free(all);
    free(shared);
    ctx_free(c);
}

// ---------------------------------------------------------------- initialisation
static BertConfig small_bert_768(void) {
    // A registration-sized BERT with the hyperhead's width; never run.
    return (BertConfig){.vocab_size = 4, .hidden = 768, .layers = 1, .heads = 12, .ffn = 4, .max_positions = 4,
                        .type_vocab_size = 2, .ln_eps = 1e-12f, .pad_token_id = 0, .pooler = false};
}

typedef struct { double mean, std, kurt, maxabs; size_t zeros, n; } Moments;
static Moments moments(const Tensor *t) {
    const float *x = t->data;
    Moments m = {.n = tensor_numel(t)};
    double s = 0;
    for (size_t i = 0; i < m.n; i++) s += x[i];
    m.mean = s / m.n;
    double s2 = 0, s4 = 0;
    for (size_t i = 0; i < m.n; i++) {
        double d = x[i] - m.mean;
        s2 += d * d;
        s4 += d * d * d * d;
        m.maxabs = fmax(m.maxabs, fabs(x[i]));
        m.zeros += x[i] == 0.0f;
    }
    m.std = sqrt(s2 / m.n);
    m.kurt = s2 > 0 ? (s4 / m.n) / (m.std * m.std * m.std * m.std) : 0;
    return m;
}

// Normal(0, sigma): sample std within 5 standard errors (1/sqrt(2n) relative), mean within
// 5 sigma/sqrt(n), kurtosis near 3 (a uniform has 1.8) for large tensors.
static void expect_normal(const Tensor *t, double sigma) {
    Moments m = moments(t);
    double se = 5.0 / sqrt(2.0 * m.n);
    cr_assert(fabs(m.std / sigma - 1) <= se, "%s: std %.6g, expected %.6g (+-%.2g%%)", t->name, m.std, sigma, 100 * se);
    cr_assert(fabs(m.mean) <= 5 * sigma / sqrt((double)m.n), "%s: mean %.3g", t->name, m.mean);
    if (m.n >= 10000) cr_assert(fabs(m.kurt - 3) < 0.1, "%s: kurtosis %.3f is not a normal's", t->name, m.kurt);
}

// U(-a, a): within the bound, reaching it, std a/sqrt(3) within 5 standard errors.
static void expect_uniform(const Tensor *t, double a) {
    Moments m = moments(t);
    double sigma = a / sqrt(3.0), se = 5.0 * sqrt(0.8 / (4.0 * m.n));   // Var(s^2)/s^4 = (k-1)/n, k = 1.8
    cr_assert(m.maxabs <= a, "%s: |x| = %.7g exceeds %.7g", t->name, m.maxabs, a);
    cr_assert(m.maxabs >= a * (1 - 20.0 / m.n), "%s: max |x| %.7g does not reach %.7g", t->name, m.maxabs, a);
    cr_assert(fabs(m.std / sigma - 1) <= se, "%s: std %.6g, expected %.6g", t->name, m.std, sigma);
    cr_assert(fabs(m.mean) <= 5 * sigma / sqrt((double)m.n), "%s: mean %.3g", t->name, m.mean);
}

static void expect_zero(const Tensor *t) {
    Moments m = moments(t);
    cr_assert_eq(m.zeros, m.n, "%s: %zu of %zu entries are zero, expected all", t->name, m.zeros, m.n);
}

Test(hypencoder, init_distributions) {
    HypencoderConfig cfg = hypencoder_config_default(2);
    cfg.bert = small_bert_768();
    ParamSet *ps = paramset_new(HYP_CPU);
    Hypencoder m;
    hypencoder_register(&m, ps, &cfg);
    paramset_finalize(ps);
    hypencoder_init(&m, 5);
    const HyperHead *h = &m.head;
    double d = 768, bound = 1.0 / sqrt(d);
    cr_assert_eq(h->n_w, 3);
    cr_assert_eq(h->n_b, 2);
    for (int i = 0; i < h->n_w; i++) {
        expect_normal(h->base_mat[i], sqrt(2.0 / d));          // sqrt(2/768) = 0.051031
        expect_normal(h->w_query[i], 10.0);
        expect_normal(h->w_proj_w[i], 1.0 / (d * d));          // 1/768^2 = 1.6954e-6
        expect_zero(h->w_proj_b[i]);
    }
    for (int j = 0; j < h->n_b; j++) {
        expect_zero(h->base_vec[j]);
        expect_normal(h->b_query[j], 10.0);
        expect_uniform(h->b_proj_w[j], bound);                 // nn.Linear default, kept
        expect_uniform(h->b_proj_b[j], bound);
    }
    for (int k = 0; k < h->n_w + h->n_b; k++) {
        expect_uniform(h->key_w[k], bound);
        expect_uniform(h->val_w[k], bound);
        if (k < h->n_w) {
            expect_zero(h->key_b[k]);
            expect_zero(h->val_b[k]);
        } else {   // the "oversight": biases of the bias projections keep the default init
            expect_uniform(h->key_b[k], bound);
            expect_uniform(h->val_b[k], bound);
        }
    }
    // Every tensor draws its own stream: no two share values.
    const Tensor *distinct[] = {h->base_mat[0], h->base_mat[1], h->w_query[0], h->w_query[1], h->key_w[0],
                                h->key_w[1], h->val_w[0], h->b_proj_w[0], h->b_proj_w[1]};
    int nd = sizeof distinct / sizeof *distinct;
    for (int a = 0; a < nd; a++)
        for (int b = a + 1; b < nd; b++) {
            const float *x = distinct[a]->data, *y = distinct[b]->data;
            double sx = moments(distinct[a]).std, sy = moments(distinct[b]).std, dot = 0;
            for (int i = 0; i < 768; i++) dot += (double)x[i] * y[i];
            double corr = dot / (768 * sx * sy);
            cr_assert(fabs(corr) < 0.2, "%s and %s are correlated (%.3f): same random stream?", distinct[a]->name,
                      distinct[b]->name, corr);
        }
    hypencoder_free(&m);
    paramset_free(ps);
}

// Hyperhead size per the reference (§4): 2(L*589,824 + 768) + 2L*768 + (6L+3)*590,592.
Test(hypencoder, hyperhead_parameter_counts) {
    const int Ls[] = {2, 4, 6, 8};
    const size_t want[] = {11222784, 20672256, 30121728, 39571200};
    for (int t = 0; t < 4; t++) {
        int L = Ls[t];
        HypencoderConfig cfg = hypencoder_config_default(L);
        cfg.bert = small_bert_768();
        ParamSet *ps = paramset_new(HYP_CPU);
        Hypencoder m;
        hypencoder_register(&m, ps, &cfg);
        size_t head = 0;
        for (int i = 0; i < ps->n; i++)
            if (strncmp(ps->params[i]->name, "query_encoder.transformer.", 26) != 0)
                head += tensor_numel(ps->params[i]);
        size_t formula = 2 * ((size_t)L * 589824 + 768) + 2 * (size_t)L * 768 + (6 * (size_t)L + 3) * 590592;
        cr_assert_eq(formula, want[t]);
        cr_assert_eq(head, want[t], "L=%d: %zu hyperhead parameters, reference %zu", L, head, want[t]);
        char name[128];
        snprintf(name, sizeof name, "query_encoder.key_projections.%d.weight", 2 * L);
        cr_assert_not_null(paramset_get(ps, name));
        snprintf(name, sizeof name, "query_encoder.value_projections.%d.bias", 2 * L + 1);
        cr_assert_null(paramset_get(ps, name));
        snprintf(name, sizeof name, "query_encoder.hyper_base_matrices.%d", L);
        const Tensor *last = paramset_get(ps, name);
        cr_assert(last && last->ndim == 3 && last->shape[0] == 1 && last->shape[1] == 1 && last->shape[2] == 768);
        const Tensor *bv = paramset_get(ps, "query_encoder.hyper_base_vectors.0");
        cr_assert(bv && bv->ndim == 2 && bv->shape[0] == 1 && bv->shape[1] == 768, "base vectors are (1, 768)");
        const Tensor *bq = paramset_get(ps, "query_encoder.bias_query_embeddings.0");
        cr_assert(bq && bq->ndim == 3 && bq->shape[1] == 1 && bq->shape[2] == 768);
        hypencoder_free(&m);
        paramset_free(ps);
    }
}

// ---------------------------------------------------------------- small hyperhead (d = 8)
typedef struct {
    Hypencoder *m;
    Tensor *mask;
    const float *teacher;
    int B, n;
} SmallArgs;

static void small_model(Hypencoder *m, ParamSet *ps, HyperScale scale) {
    HypencoderConfig cfg = hypencoder_config_default(2);
    cfg.bert = (BertConfig){.vocab_size = 4, .hidden = 8, .layers = 1, .heads = 2, .ffn = 4, .max_positions = 4,
                            .type_vocab_size = 2, .ln_eps = 1e-12f, .pad_token_id = 0};
    cfg.scale = scale;
    hypencoder_register(m, ps, &cfg);
    paramset_finalize(ps);
    // O(1) activations, unsaturated attention: every parameter U(-a, a), seeds by index.
    for (int i = 0; i < ps->n; i++) {
        Tensor *p = ps->params[i];
        float a = strstr(p->name, "query_embeddings") ? 0.7f : strstr(p->name, "hyper_base") ? 0.2f : 0.5f;
        fill_uniform(p->data, tensor_numel(p), -a, a, 300 + i);
    }
}

static Tensor *small_mask(Ctx *c) {
    Tensor *mask = tensor_new(c, HYP_I32, HYP_SHAPE(2, 5));
    tensor_from_host(mask, (int32_t[]){1, 1, 1, 1, 1, 1, 1, 0, 0, 0});
    return mask;
}

// in: H (B, T, d), docs (B*n, d), then parameters substituted into a copy of the model.
static Tensor *small_loss(Ctx *c, Tensor **in, void *u) {
    SmallArgs *a = u;
    Hypencoder m = *a->m;
    HyperHead *h = &m.head;
    int L = h->n_b;
    h->w_query[0] = in[2];
    h->w_query[L] = in[3];
    h->b_query[1] = in[4];
    h->key_w[h->n_w] = in[5];
    h->val_b[0] = in[6];
    h->w_proj_w[L] = in[7];
    h->b_proj_b[1] = in[8];
    h->base_mat[1] = in[9];
    h->base_vec[0] = in[10];
    QNet q = hyperhead_forward(c, &m, in[0], a->mask);
    int d = h->dim;
    Tensor *Dn = op_reshape(c, in[1], HYP_SHAPE(a->B, a->n, d));
    Tensor *scores = qnet_score(c, &q, Dn);
    Tensor *P = op_reshape(c, op_slice(c, Dn, 1, 0, 1), HYP_SHAPE(a->B, d));
    return op_add(c, loss_margin_mse(c, scores, a->teacher), loss_inbatch_ce(c, qnet_score_shared(c, &q, P)));
}

static Tensor *leaf_copy(Ctx *c, const Tensor *p) {
    Tensor *t = tensor_from_floats(c, p->data, p->ndim, p->shape, true);
    return t;
}

Test(hypencoder, hyperhead_qnet_loss_gradcheck) {
    ParamSet *ps = paramset_new(HYP_CPU);
    Hypencoder m;
    small_model(&m, ps, HYPER_SCALE_OUT_DIM);
    const HyperHead *h = &m.head;
    int L = h->n_b;
    Ctx *c = ctx_new(HYP_CPU);
    float teacher[6] = {1.0f, -0.5f, 0.25f, 0.5f, 1.5f, -1.0f};
    SmallArgs args = {&m, small_mask(c), teacher, 2, 3};
    Tensor *in[11] = {
        tensor_rand(c, HYP_SHAPE(2, 5, 8), -1.5f, 1.5f, 31, true),   // H (query token states)
        tensor_rand(c, HYP_SHAPE(6, 8), -1.5f, 1.5f, 32, true),      // document vectors
        leaf_copy(c, h->w_query[0]), leaf_copy(c, h->w_query[L]), leaf_copy(c, h->b_query[1]),
        leaf_copy(c, h->key_w[h->n_w]), leaf_copy(c, h->val_b[0]), leaf_copy(c, h->w_proj_w[L]),
        leaf_copy(c, h->b_proj_b[1]), leaf_copy(c, h->base_mat[1]), leaf_copy(c, h->base_vec[0]),
    };
    // Step 1e-3, not the default 1e-2: at d = 8 a ReLU'd attention row has few positive
    // entries, and a 1e-2 step on a value bias crosses a ReLU kink (central differences
    // then average two slopes). At 1e-3 the fp32 rounding of the O(1) loss contributes
    // ~1e-4 to the numeric derivative, well inside atol.
    GradcheckOpts o = {.eps = 1e-3, .rtol = 2e-2, .atol = 1e-3, .max_per_input = 24, .seed = 5};
    expect_gradcheck(small_loss, in, 11, &args, &o, "hyperhead + q-net + margin-MSE + in-batch CE");
    ctx_free(c);
    hypencoder_free(&m);
    paramset_free(ps);
}

// The paper's sqrt(h) scale (HYPER_SCALE_HIDDEN) only changes the unscaled attentions of
// the reference: the output-layer weight and the biases; hidden weights (out = dim) agree.
Test(hypencoder, scale_option_changes_only_out_dim_one) {
    ParamSet *ps = paramset_new(HYP_CPU);
    Hypencoder m;
    small_model(&m, ps, HYPER_SCALE_OUT_DIM);
    Ctx *c = ctx_new(HYP_CPU);
    no_grad_begin(c);
    Tensor *H = tensor_rand(c, HYP_SHAPE(2, 5, 8), -1.5f, 1.5f, 41, false), *mask = small_mask(c);
    QNet a = hyperhead_forward(c, &m, H, mask);
    m.cfg.scale = HYPER_SCALE_HIDDEN;
    QNet b = hyperhead_forward(c, &m, H, mask);
    int L = m.head.n_b;
    for (int i = 0; i < L; i++) {
        float *x = tensor_host_copy(a.W[i]), *y = tensor_host_copy(b.W[i]);
        cr_assert(memcmp(x, y, tensor_bytes(a.W[i])) == 0, "hidden weight %d depends on the scale option", i);
        free(x);
        free(y);
    }
    float *x = tensor_host_copy(a.W[L]), *y = tensor_host_copy(b.W[L]);
    cr_assert(rel_err(x, y, tensor_numel(a.W[L])) > 1e-3, "output-layer weight ignores the scale option");
    free(x);
    free(y);
    for (int j = 0; j < L; j++) {
        x = tensor_host_copy(a.b[j]), y = tensor_host_copy(b.b[j]);
        cr_assert(rel_err(x, y, tensor_numel(a.b[j])) > 1e-3, "bias %d ignores the scale option", j);
        free(x);
        free(y);
    }
    ctx_free(c);
    hypencoder_free(&m);
    paramset_free(ps);
}
