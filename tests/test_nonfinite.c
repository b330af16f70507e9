// test_nonfinite.c: issue 12.6, NaN never passes: hyp_expf is defined for NaN/inf (and
// unchanged, bit for bit, for finite inputs: the CPU and CUDA kernels share it), and
// exhaustive search refuses non-finite q-net scores instead of ranking them silently.
#include "tests/testlib.h"
#include "kernels/elementwise.h"
#include "search/exhaustive.h"
#include <math.h>
#include <string.h>

// The formula before issue 12 (no NaN guard), to check finite inputs are bit-identical.
static float expf_before(float x) {
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float n = rintf(x * 1.44269504088896341f);
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    float e = fmaf(p, r * r, r) + 1.0f;
    union hyp_fbits s;
    s.i = ((int32_t)n + 127) << 23;
    return e * s.f;
}

// Issue 12.6: exp of NaN was a negative left shift (UBSan) and some number; now NaN.
Test(nonfinite, expf_nan_and_inf_defined_finite_inputs_unchanged) {
    cr_assert(isnan(hyp_expf(NAN)));
    cr_assert(isnan(hyp_expf(-NAN)));
    cr_assert_eq(hyp_expf(INFINITY), expf_before(88.0f));
    cr_assert_eq(hyp_expf(-INFINITY), expf_before(-87.0f));
    cr_assert(hyp_expf(-INFINITY) > 0);
    // every 251st float bit pattern over the whole finite range, plus the clamp edges
    for (uint64_t u = 0; u < (1ull << 32); u += 251) {
        union { uint32_t u; float f; } v = {(uint32_t)u};
        if (!isfinite(v.f)) continue;
        float a = hyp_expf(v.f), b = expf_before(v.f);
        cr_assert(!memcmp(&a, &b, 4), "x = %a: %a vs %a", v.f, a, b);
    }
    const float edge[] = {-87.0f, 88.0f, nextafterf(-87.0f, 0), nextafterf(88.0f, 0), -87.5f, 88.5f, 0.0f, -0.0f};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        float a = hyp_expf(edge[i]), b = expf_before(edge[i]);
        cr_assert(!memcmp(&a, &b, 4), "x = %a", edge[i]);
    }
}

static const float X[12] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f, 1.1f, 1.2f};   // (3, 4)

// Search with NaN weights printed score 0 for every document: a non-finite q-net score is
// now an error naming the query and the document.
Test(nonfinite, exhaustive_search_refuses_non_finite_scores) {
    int d = 4;
    DocStore *s = docstore_from_memory(X, 3, d, (const char *[]){"d0", "d1", "d2"}, STORE_F32);
    float W0[16], b0[4], W1[4];
    for (int i = 0; i < 16; i++) W0[i] = (float)(i % 5) * 0.1f - 0.2f;
    for (int i = 0; i < 4; i++) { b0[i] = 0.01f * (float)i; W1[i] = 0.5f - 0.25f * (float)i; }
    QNetHost q = {.B = 1, .layers = 1, .dim = d, .eps = 1e-5f, .W = {W0, W1}, .b = {b0}, .owned = false};
    SearchResult r[1] = {{0}};
    cr_assert_eq(exhaustive_search(s, &q, (const char *[]){"q1"}, &(ExhaustiveOptions){.k = 3}, r), 0, "%s",
                 hyp_last_error());
    cr_assert_eq(r[0].n, 3);
    search_result_free(&r[0]);
    W1[2] = NAN;
    cr_assert_neq(exhaustive_search(s, &q, (const char *[]){"q1"}, &(ExhaustiveOptions){.k = 3}, r), 0);
    cr_assert(strstr(hyp_last_error(), "query 'q1': the q-net scored document 'd0' as nan"), "%s", hyp_last_error());
    docstore_free(s);
}
