// matmul and linear: PyTorch fixtures (CPU and CUDA) and finite differences.
#include "tests/testlib.h"
#include <stdlib.h>

static void run_matmul_fixtures(Device dev) {
    H5File *f = fx_open("ops_matmul.h5");
    char **names;
    int n = h5_list(f, "/matmul", &names);
    cr_assert(n > 0, "%s", hyp_last_error());
    for (int i = 0; i < n; i++) {
        char g[256];
        snprintf(g, sizeof g, "/matmul/%s", names[i]);
        double ta, tb;
        cr_assert(h5_read_attr_f64(f, g, "ta", &ta) == 0 && h5_read_attr_f64(f, g, "tb", &tb) == 0);
        Ctx *c = ctx_new(dev);
        Tensor *a = fx_tensor(c, f, g, "a", true), *b = fx_tensor(c, f, g, "b", true);
        Tensor *y = op_matmul(c, a, b, ta != 0, tb != 0);
        expect_fixture(y, f, g, "y", TOL_OP);
        backward_from(c, y, fx_tensor(c, f, g, "gy", false));
        expect_fixture(a->grad, f, g, "g_a", TOL_OP);
        expect_fixture(b->grad, f, g, "g_b", TOL_OP);
        ctx_free(c);
        free(names[i]);
    }
    free(names);
    h5_close(f);
}

static void run_linear_fixtures(Device dev) {
    H5File *f = fx_open("ops_matmul.h5");
    char **names;
    int n = h5_list(f, "/linear", &names);
    cr_assert(n > 0, "%s", hyp_last_error());
    for (int i = 0; i < n; i++) {
        char g[256];
        snprintf(g, sizeof g, "/linear/%s", names[i]);
        Ctx *c = ctx_new(dev);
        Tensor *x = fx_tensor(c, f, g, "x", true), *w = fx_tensor(c, f, g, "w", true);
        Tensor *b = fx_has(f, g, "b") ? fx_tensor(c, f, g, "b", true) : NULL;
        Tensor *y = op_linear(c, x, w, b);
        expect_fixture(y, f, g, "y", TOL_OP);
        backward_from(c, y, fx_tensor(c, f, g, "gy", false));
        expect_fixture(x->grad, f, g, "g_x", TOL_OP);
        expect_fixture(w->grad, f, g, "g_w", TOL_OP);
        if (b) expect_fixture(b->grad, f, g, "g_b", TOL_OP);
        ctx_free(c);
        free(names[i]);
    }
    free(names);
    h5_close(f);
}

Test(matmul, fixtures_cpu) { run_matmul_fixtures(HYP_CPU); }
Test(matmul, fixtures_cuda) { RUN_ON_CUDA_OR_SKIP(); run_matmul_fixtures(HYP_CUDA); }
Test(linear, fixtures_cpu) { run_linear_fixtures(HYP_CPU); }
Test(linear, fixtures_cuda) { RUN_ON_CUDA_OR_SKIP(); run_linear_fixtures(HYP_CUDA); }

// ---- finite differences
typedef struct { bool ta, tb; } MMArgs;
static Tensor *mm_fn(Ctx *c, Tensor **in, void *u) {
    MMArgs *a = u;
    return op_matmul(c, in[0], in[1], a->ta, a->tb);
}
Test(matmul, gradcheck) {
    struct { int na, sa[4], nb, sb[4]; bool ta, tb; } cases[] = {
        {2, {3, 4}, 2, {4, 5}, false, false},
        {3, {2, 4, 3}, 3, {2, 5, 4}, true, true},
        {2, {3, 4}, 3, {2, 4, 2}, false, false},     // broadcast a
        {3, {2, 3, 4}, 2, {5, 4}, false, true},      // broadcast b
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Ctx *c = ctx_new(HYP_CPU);
        Tensor *in[2] = {tensor_rand(c, cases[i].na, cases[i].sa, -1, 1, 10 + i, true),
                         tensor_rand(c, cases[i].nb, cases[i].sb, -1, 1, 20 + i, true)};
        MMArgs args = {cases[i].ta, cases[i].tb};
        expect_gradcheck(mm_fn, in, 2, &args, NULL, "matmul");
        ctx_free(c);
    }
}

static Tensor *lin_fn(Ctx *c, Tensor **in, void *u) { return op_linear(c, in[0], in[1], u ? in[2] : NULL); }
Test(linear, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[3] = {tensor_rand(c, HYP_SHAPE(2, 3, 5), -1, 1, 1, true),
                     tensor_rand(c, HYP_SHAPE(4, 5), -1, 1, 2, true),
                     tensor_rand(c, HYP_SHAPE(4), -1, 1, 3, true)};
    expect_gradcheck(lin_fn, in, 3, (void *)1, NULL, "linear");
    expect_gradcheck(lin_fn, in, 2, NULL, NULL, "linear without bias");
    ctx_free(c);
}

// A mismatch names the op and the shapes, and exits with status 2.
Test(matmul, shape_error_names_op, .exit_code = 2) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *a = tensor_rand(c, HYP_SHAPE(2, 3), -1, 1, 1, false);
    Tensor *b = tensor_rand(c, HYP_SHAPE(4, 5), -1, 1, 2, false);
    op_matmul(c, a, b, false, false);
}

// OpenBLAS 0.3.21 falls back to SSE3 "Prescott" kernels on CPUs it does not know; the CPU
// backend re-executes with OPENBLAS_CORETYPE set (kernels/cpu/cpu_backend.c). This process
// is such an executable, so on any AVX2 machine its GEMMs must not run the fallback.
char *openblas_get_corename(void) __attribute__((weak));
Test(cpu_backend, openblas_uses_the_cpus_vector_kernels) {
    if (!openblas_get_corename) cr_skip_test("BLAS is not OpenBLAS");
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) cr_skip_test("CPU without AVX2");
    cr_expect_str_neq(openblas_get_corename(), "Prescott", "OpenBLAS runs its SSE3 fallback kernels");
}
