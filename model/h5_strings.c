// h5_strings.c: string datasets and integer attributes (see h5_strings.h).
#include "model/h5_strings.h"
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

static hid_t open_file(const char *path, bool rw) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, rw ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) hyp_set_error("%s: cannot open as HDF5", path);
    return f;
}

static hid_t str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static int write_str_ds(const char *path, const char *dset, const char *const *strs, size_t n, bool scalar) {
    hid_t f = open_file(path, true);
    if (f < 0) return -1;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hsize_t dims[1] = {n};
    hid_t sp = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
    hid_t t = str_type();
    hid_t d = H5Dcreate2(f, dset, t, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    int rc = -1;
    if (d >= 0) {
        rc = (n == 0 && !scalar) ? 0 : (H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, strs) < 0 ? -1 : 0);
        H5Dclose(d);
    }
    H5Tclose(t);
    H5Sclose(sp);
    H5Pclose(lcpl);
    if (H5Fclose(f) < 0) rc = -1;
    if (rc) hyp_set_error("%s: %s: cannot write string dataset", path, dset);
    return rc;
}

int h5s_write_strings(const char *path, const char *dset, const char *const *strs, size_t n) {
    return write_str_ds(path, dset, strs, n, false);
}
int h5s_write_string(const char *path, const char *dset, const char *s) {
    const char *v[1] = {s};
    return write_str_ds(path, dset, v, 1, true);
}

int h5s_write_attr_int(const char *path, const char *obj, const char *attr, int64_t v) {
    hid_t f = open_file(path, true);
    if (f < 0) return -1;
    int rc = -1;
    if (strcmp(obj, "/") && H5Lexists(f, obj, H5P_DEFAULT) <= 0) {
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t g = H5Gcreate2(f, obj, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Pclose(lcpl);
        if (g < 0) goto out;
        H5Gclose(g);
    }
    if (H5Aexists_by_name(f, obj, attr, H5P_DEFAULT) > 0) H5Adelete_by_name(f, obj, attr, H5P_DEFAULT);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(f, obj, attr, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        rc = H5Awrite(a, H5T_NATIVE_INT64, &v) < 0 ? -1 : 0;
        H5Aclose(a);
    }
    H5Sclose(s);
out:
    if (H5Fclose(f) < 0) rc = -1;
    if (rc) hyp_set_error("%s: %s: cannot write attribute %s", path, obj, attr);
    return rc;
}

char **h5s_read_strings(const char *path, const char *dset, size_t *n) {
    hid_t f = open_file(path, false);
    if (f < 0) return NULL;
    char **out = NULL;
    *n = 0;
    if (H5Lexists(f, dset, H5P_DEFAULT) <= 0) { hyp_set_error("%s: %s: not found", path, dset); H5Fclose(f); return NULL; }
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    if (d < 0) { hyp_set_error("%s: %s: not a dataset", path, dset); H5Fclose(f); return NULL; }
    hid_t ft = H5Dget_type(d), sp = H5Dget_space(d);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[1] = {1};
    if (H5Tget_class(ft) != H5T_STRING || !H5Tis_variable_str(ft) || nd > 1) {
        hyp_set_error("%s: %s: not a 1-D variable-length string dataset", path, dset);
        goto done;
    }
    if (nd == 1) H5Sget_simple_extent_dims(sp, dims, NULL);
    char **raw = hyp_calloc(dims[0] ? dims[0] : 1, sizeof(char *));
    hid_t mt = str_type();
    if (dims[0] && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
        hyp_set_error("%s: %s: cannot read strings", path, dset);
        free(raw);
        H5Tclose(mt);
        goto done;
    }
    out = hyp_calloc(dims[0] ? dims[0] : 1, sizeof(char *));
    for (hsize_t i = 0; i < dims[0]; i++) out[i] = hyp_strdup(raw[i] ? raw[i] : "");
    if (dims[0]) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
    free(raw);
    H5Tclose(mt);
    *n = (size_t)dims[0];
done:
    H5Tclose(ft);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return out;
}

char *h5s_read_string(const char *path, const char *dset) {
    size_t n;
    char **v = h5s_read_strings(path, dset, &n);
    if (!v) return NULL;
    if (n != 1) { h5s_free_strings(v, n); hyp_set_error("%s: %s: expected one string, found %zu", path, dset, n); return NULL; }
    char *s = v[0];
    free(v);
    return s;
}

int h5s_read_attr_int(const char *path, const char *obj, const char *attr, int64_t *v) {
    hid_t f = open_file(path, false);
    if (f < 0) return -1;
    int rc = 1;
    if (H5Lexists(f, obj, H5P_DEFAULT) > 0 || !strcmp(obj, "/")) {
        if (H5Aexists_by_name(f, obj, attr, H5P_DEFAULT) > 0) {
            hid_t a = H5Aopen_by_name(f, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
            rc = H5Aread(a, H5T_NATIVE_INT64, v) < 0 ? -1 : 0;
            H5Aclose(a);
            if (rc) hyp_set_error("%s: %s: cannot read attribute %s", path, obj, attr);
        }
    }
    H5Fclose(f);
    return rc;
}

void h5s_free_strings(char **v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}
