// Core machinery: arenas, parameter sets, the tape, HDF5 I/O and its error paths.
#include "tests/testlib.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Test(arena, grows_in_blocks_and_reset_keeps_one) {
    Arena *a = arena_new(HYP_CPU, 1024);
    char *p = arena_alloc(a, 100), *q = arena_alloc(a, 5000), *r = arena_alloc(a, 600);
    cr_assert(p && q && r);
    cr_assert_eq((uintptr_t)p % 256, 0);
    cr_assert_eq((uintptr_t)q % 256, 0);
    memset(q, 1, 5000);            // all of it is writable
    memset(p, 2, 100);
    cr_assert_eq(q[4999], 1);
    size_t hw = a->high_water;
    cr_assert_geq(hw, 100 + 5000 + 600);
    arena_reset(a);
    cr_assert_geq(a->block_size, hw, "after reset one block holds the whole step");
    char *s = arena_alloc(a, hw - 512);
    cr_assert_not_null(s);
    cr_assert_eq(arena_blocks(a), 1, "steady state: a single block");
    arena_free(a);
}

Test(paramset, contiguous_and_named) {
    ParamSet *ps = paramset_new(HYP_CPU);
    Tensor *w = paramset_add(ps, "encoder.layer.0.dense.weight", HYP_SHAPE(3, 4));
    Tensor *b = paramset_add(ps, "encoder.layer.0.dense.bias", HYP_SHAPE(3));
    paramset_finalize(ps);
    cr_assert_eq(ps->numel, 15);
    cr_assert_eq((float *)w->data, ps->data);
    cr_assert_eq((float *)b->data, ps->data + 12);
    cr_assert_eq((float *)b->grad->data, ps->grad + 12);
    cr_assert_eq(paramset_get(ps, "encoder.layer.0.dense.bias"), b);
    cr_assert_null(paramset_get(ps, "nope"));
    paramset_free(ps);
}

Test(paramset, duplicate_name_is_fatal, .exit_code = 2) {
    ParamSet *ps = paramset_new(HYP_CPU);
    paramset_add(ps, "w", HYP_SHAPE(2));
    paramset_add(ps, "w", HYP_SHAPE(2));
}

// Parameter gradients accumulate over two backward passes until zero_grad.
Test(tape, parameter_grads_accumulate_and_zero) {
    ParamSet *ps = paramset_new(HYP_CPU);
    Tensor *w = paramset_add(ps, "w", HYP_SHAPE(2, 3));
    paramset_finalize(ps);
    fill_uniform(w->data, 6, -1, 1, 5);
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *x = tensor_rand(c, HYP_SHAPE(4, 3), -1, 1, 6, false);
    Tensor *gy = tensor_rand(c, HYP_SHAPE(4, 2), -1, 1, 7, false);
    backward_from(c, op_linear(c, x, w, NULL), gy);
    float g1[6];
    memcpy(g1, ps->grad, sizeof g1);
    backward_from(c, op_linear(c, x, w, NULL), gy);
    for (int i = 0; i < 6; i++) cr_assert_float_eq(ps->grad[i], 2 * g1[i], 1e-6);
    paramset_zero_grad(ps);
    for (int i = 0; i < 6; i++) cr_assert_eq(ps->grad[i], 0.0f);
    ctx_free(c);
    paramset_free(ps);
}

Test(tape, no_grad_records_nothing) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *x = tensor_rand(c, HYP_SHAPE(3, 3), -1, 1, 1, true);
    no_grad_begin(c);
    Tensor *y = op_matmul(c, x, x, false, true);
    no_grad_end(c);
    cr_assert_eq(c->tape->n, 0);
    cr_assert(!y->requires_grad);
    op_matmul(c, x, x, false, true);
    cr_assert_eq(c->tape->n, 1);
    ctx_reset(c);
    cr_assert_eq(c->tape->n, 0);
    ctx_free(c);
}

// One tensor used as both operands gets the sum of both gradients: d(x x^T) .
Test(tape, shared_input_accumulates) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *x = tensor_rand(c, HYP_SHAPE(3, 4), -1, 1, 2, true);
    Tensor *gy = tensor_rand(c, HYP_SHAPE(3, 3), -1, 1, 3, false);
    backward_from(c, op_matmul(c, x, x, false, true), gy);
    const float *X = x->data, *G = gy->data, *gx = x->grad->data;
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) {
            double want = 0;   // dL/dx[i,k] = sum_j G[i,j] x[j,k] + G[j,i] x[j,k]
            for (int j = 0; j < 3; j++) want += (G[i * 3 + j] + G[j * 3 + i]) * X[j * 4 + k];
            cr_assert_float_eq(gx[i * 4 + k], want, 1e-5);
        }
    ctx_free(c);
}

Test(h5io, roundtrip_and_listing) {
    char path[] = "/tmp/hyp_h5_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    H5File *f = h5_create(path);
    cr_assert_not_null(f, "%s", hyp_last_error());
    float v[6] = {1, 2, 3, 4, 5, 6.5f};
    int32_t iv[3] = {7, -8, 9};
    cr_assert_eq(h5_write_f32(f, "/params/a.weight", v, HYP_SHAPE(2, 3)), 0);
    cr_assert_eq(h5_write_i32(f, "/params/ids", iv, HYP_SHAPE(3)), 0);
    cr_assert_eq(h5_write_attr_f64(f, "/", "step", 1200), 0);
    h5_close(f);
    f = h5_open(path);
    cr_assert_not_null(f);
    char **names;
    int n = h5_list(f, "/params", &names);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(names[0], "a.weight");
    cr_assert_str_eq(names[1], "ids");
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    int nd, sh[4];
    float *r = h5_read_f32(f, "/params/a.weight", &nd, sh);
    cr_assert_eq(nd, 2);
    cr_assert_eq(sh[1], 3);
    cr_assert_eq(memcmp(r, v, sizeof v), 0);
    free(r);
    double step;
    cr_assert_eq(h5_read_attr_f64(f, "/", "step", &step), 0);
    cr_assert_eq(step, 1200);
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *t = h5_read_tensor(c, f, "/params/ids");
    cr_assert_eq(t->dtype, HYP_I32);
    cr_assert_eq(tensor_i32(t)[1], -8);
    cr_assert_null(h5_read_tensor(c, f, "/params/missing"));
    cr_assert(strstr(hyp_last_error(), "/params/missing"), "error names the dataset: %s", hyp_last_error());
    cr_assert(strstr(hyp_last_error(), path), "error names the file: %s", hyp_last_error());
    ctx_free(c);
    h5_close(f);
    unlink(path);
}

Test(h5io, bad_files_give_one_clear_error) {
    cr_assert_null(h5_open("/nonexistent/x.h5"));
    cr_assert(strstr(hyp_last_error(), "/nonexistent/x.h5"));
    // A text file and a truncated HDF5 file.
    char path[] = "/tmp/hyp_h5bad_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_eq(write(fd, "not hdf5\n", 9), 9);
    close(fd);
    cr_assert_null(h5_open(path));
    cr_assert(strstr(hyp_last_error(), path));
    H5File *f = h5_create(path);
    float big[4096];
    fill_uniform(big, 4096, -1, 1, 1);
    h5_write_f32(f, "/x", big, HYP_SHAPE(4096));
    h5_close(f);
    cr_assert_eq(truncate(path, 3000), 0);
    f = h5_open(path);
    if (f) {   // the superblock may survive: then the read must fail cleanly
        int nd, sh[4];
        cr_assert_null(h5_read_f32(f, "/x", &nd, sh));
        h5_close(f);
    }
    cr_assert(strstr(hyp_last_error(), path), "%s", hyp_last_error());
    unlink(path);
}

Test(tensor, shape_helpers) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *t = tensor_zeros(c, HYP_F32, HYP_SHAPE(2, 1, 5));
    char buf[64];
    cr_assert_str_eq(shape_str(t, buf, sizeof buf), "[2, 1, 5]");
    cr_assert_eq(tensor_numel(t), 10);
    cr_assert_eq(dims_prod(t, 1, 3), 5);
    for (int i = 0; i < 10; i++) cr_assert_eq(tensor_f32(t)[i], 0.0f);
    ctx_free(c);
}

// Every op has a registry entry with a name and a backward (a hole would be a NULL call
// during backward); the table's length is checked at compile time (tape.c).
Test(autograd, every_op_has_a_name_and_a_backward) {
    const int bad = tape_registry_check();
    cr_assert_eq(bad, -1, "op %d has no registry entry (name and backward) in autograd/tape.c", bad);
}

// Every backend table is complete; the check fires on a missing slot, attention's included.
Test(autograd, backend_tables_are_complete) {
    cr_assert_eq(backend_check(&hyp_cpu_backend), 0, "%s", hyp_last_error());
#ifdef HYP_HAVE_CUDA
    cr_assert_eq(backend_check(&hyp_cuda_backend), 0, "%s", hyp_last_error());
#endif
    Backend b = hyp_cpu_backend;
    b.softmax_bwd = NULL;
    cr_assert_eq(backend_check(&b), -1);
    cr_assert(strstr(hyp_last_error(), "softmax_bwd is NULL"), "%s", hyp_last_error());
    b = hyp_cpu_backend;
    b.attention_bwd = NULL;
    cr_assert_eq(backend_check(&b), -1);
    cr_assert(strstr(hyp_last_error(), "attention_bwd is NULL"), "%s", hyp_last_error());
}
