// test_store_read.c: issue 12 on the search side: the embeddings store refuses ids that
// break the TREC format, duplicate ids, non-finite vectors and non-float datasets (each
// message says what was found and what was expected).
#include "tests/testlib.h"
#include "search/store.h"
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_path[128];
static const char *tmp_h5(void) {
    snprintf(g_path, sizeof g_path, "/tmp/hyp_store_read_%d_%ld.h5", (int)getpid(), random());
    return g_path;
}

static void expect_open_error(const char *path, const char *a, const char *b) {
    for (int streaming = 0; streaming < 2; streaming++) {
        DocStore *s = docstore_open(path, &(DocStoreOptions){.streaming = streaming});
        cr_assert_null(s, "streaming=%d: opened", streaming);
        cr_assert(strstr(hyp_last_error(), path) && strstr(hyp_last_error(), a) && (!b || strstr(hyp_last_error(), b)),
                  "streaming=%d: '%s' should mention '%s' and '%s'", streaming, hyp_last_error(), a, b ? b : "");
    }
}

static const float X[12] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f, 1.1f, 1.2f};   // (3, 4)

Test(store_read, ids_with_whitespace_or_duplicates_are_refused) {
    const char *p = tmp_h5();
    const char *spaced[3] = {"d0", "a b", "d2"};
    cr_assert_eq(docstore_write(p, X, 3, 4, spaced), 0, "%s", hyp_last_error());
    expect_open_error(p, "/ids[1]: id 'a b' contains whitespace", NULL);
    const char *dup[3] = {"d0", "d1", "d0"};
    cr_assert_eq(docstore_write(p, X, 3, 4, dup), 0, "%s", hyp_last_error());
    expect_open_error(p, "/ids[2]: duplicate id 'd0' (also /ids[0])", NULL);
    const char *ok[3] = {"d0", "d1", "d2"};
    cr_assert_eq(docstore_write(p, X, 3, 4, ok), 0, "%s", hyp_last_error());
    DocStore *s = docstore_open(p, NULL);
    cr_assert(s, "%s", hyp_last_error());
    cr_assert_eq(docstore_find(s, "d2"), 2);
    docstore_free(s);
    unlink(p);
}

Test(store_read, non_finite_vectors_are_refused) {
    const char *p = tmp_h5();
    float x[12];
    memcpy(x, X, sizeof x);
    x[6] = NAN;   // row 1, column 2
    cr_assert_eq(docstore_write(p, x, 3, 4, (const char *[]){"d0", "d1", "d2"}), 0, "%s", hyp_last_error());
    DocStore *s = docstore_open(p, NULL);
    cr_assert_null(s);
    cr_assert(strstr(hyp_last_error(), "row 1 (document 'd1') has a non-finite value (nan at column 2)"), "%s",
              hyp_last_error());
    s = docstore_open(p, &(DocStoreOptions){.dtype = STORE_F16});
    cr_assert_null(s);
    s = docstore_open(p, &(DocStoreOptions){.streaming = true});   // opening reads no vectors
    cr_assert(s, "%s", hyp_last_error());
    float out[12];
    cr_assert_eq(docstore_rows(s, 0, 1, out), 0, "%s", hyp_last_error());
    cr_assert_neq(docstore_rows(s, 0, 3, out), 0);
    cr_assert(strstr(hyp_last_error(), "document 'd1'"), "%s", hyp_last_error());
    docstore_free(s);
    unlink(p);
}

// An int32 /embeddings said "expected a 2-D float dataset, got rank 2".
Test(store_read, wrong_dataset_type_says_what_was_found) {
    const char *p = tmp_h5();
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {3, 4};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(f, "/embeddings", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int v[12] = {0};
    H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    H5Sclose(sp);
    hid_t st = H5Tcopy(H5T_C_S1);   // /ids: three variable-length strings, as hyp encode writes them
    H5Tset_size(st, H5T_VARIABLE);
    hsize_t n[1] = {3};
    sp = H5Screate_simple(1, n, NULL);
    d = H5Dcreate2(f, "/ids", st, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *ids[3] = {"d0", "d1", "d2"};
    cr_assert(H5Dwrite(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(st);
    H5Fclose(f);
    expect_open_error(p, "expected a 2-D float dataset (N, d)", "found a rank-2 4-byte integer dataset");
    unlink(p);
}
