#include "autograd/h5io.h"
#include <hdf5.h>
#include <string.h>
#include <stdlib.h>

struct H5File {
    hid_t id;
    char *path;
};

static void quiet_errors(void) {
    static bool done;
    if (!done) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); done = true; }
}

H5File *h5_open(const char *path) {
    quiet_errors();
    hid_t id = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) { hyp_set_error("%s: cannot open as HDF5 (missing, unreadable or not an HDF5 file)", path); return NULL; }
    H5File *f = hyp_calloc(1, sizeof *f);
    f->id = id;
    f->path = hyp_strdup(path);
    return f;
}
H5File *h5_create(const char *path) {
    quiet_errors();
    hid_t id = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (id < 0) { hyp_set_error("%s: cannot create HDF5 file", path); return NULL; }
    H5File *f = hyp_calloc(1, sizeof *f);
    f->id = id;
    f->path = hyp_strdup(path);
    return f;
}
void h5_close(H5File *f) {
    if (!f) return;
    H5Fclose(f->id);
    free(f->path);
    free(f);
}
const char *h5_path(const H5File *f) { return f->path; }

bool h5_exists(H5File *f, const char *name) {
    // H5Lexists needs each intermediate link to exist, so walk the path.
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char keep = *p;
            *p = 0;
            if (H5Lexists(f->id, buf, H5P_DEFAULT) <= 0) return false;
            if (!keep) return true;
            *p = keep;
        }
    }
}

typedef struct { char **v; int n, cap; } NameList;
static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *op) {
    (void)g; (void)info;
    NameList *l = op;
    if (l->n == l->cap) { l->cap = l->cap ? 2 * l->cap : 16; l->v = hyp_realloc(l->v, l->cap * sizeof(char *)); }
    l->v[l->n++] = hyp_strdup(name);
    return 0;
}
int h5_list(H5File *f, const char *group, char ***names) {
    if (!h5_exists(f, group)) { hyp_set_error("%s: group %s not found", f->path, group); return -1; }
    NameList l = {0};
    if (H5Literate_by_name(f->id, group, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &l, H5P_DEFAULT) < 0) {
        hyp_set_error("%s: cannot list %s", f->path, group);
        return -1;
    }
    *names = l.v;
    return l.n;
}

static hid_t open_dataset(H5File *f, const char *name) {
    if (!h5_exists(f, name)) { hyp_set_error("%s: dataset %s not found", f->path, name); return -1; }
    hid_t d = H5Dopen2(f->id, name, H5P_DEFAULT);
    if (d < 0) hyp_set_error("%s: %s is not a dataset", f->path, name);
    return d;
}

int h5_shape(H5File *f, const char *name, int shape[HYP_MAX_DIMS]) {
    hid_t d = open_dataset(f, name);
    if (d < 0) return -1;
    hid_t s = H5Dget_space(d);
    int nd = H5Sget_simple_extent_ndims(s);
    hsize_t dims[H5S_MAX_RANK];
    int rc = nd;
    if (nd < 0 || nd > HYP_MAX_DIMS) {
        hyp_set_error("%s: %s has rank %d (at most %d supported)", f->path, name, nd, HYP_MAX_DIMS);
        rc = -1;
    } else {
        H5Sget_simple_extent_dims(s, dims, NULL);
        for (int i = 0; i < nd; i++) {
            if (dims[i] > (hsize_t)INT32_MAX) { hyp_set_error("%s: %s dim %d too large", f->path, name, i); rc = -1; }
            shape[i] = (int)dims[i];
        }
        if (nd == 0) { shape[0] = 1; rc = 1; }   // scalars read as (1,)
    }
    H5Sclose(s);
    H5Dclose(d);
    return rc;
}

static void *read_any(H5File *f, const char *name, hid_t memtype, size_t esize, int *ndim, int shape[HYP_MAX_DIMS]) {
    int sh[HYP_MAX_DIMS];
    int nd = h5_shape(f, name, sh);
    if (nd < 0) return NULL;
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)sh[i];
    void *buf = hyp_malloc(n * esize);
    hid_t d = H5Dopen2(f->id, name, H5P_DEFAULT);
    herr_t rc = H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(d);
    if (rc < 0) {
        free(buf);
        hyp_set_error("%s: cannot read %s (truncated file or incompatible type)", f->path, name);
        return NULL;
    }
    if (ndim) *ndim = nd;
    if (shape) memcpy(shape, sh, sizeof sh);
    return buf;
}
float *h5_read_f32(H5File *f, const char *name, int *ndim, int shape[HYP_MAX_DIMS]) {
    return read_any(f, name, H5T_NATIVE_FLOAT, sizeof(float), ndim, shape);
}
int32_t *h5_read_i32(H5File *f, const char *name, int *ndim, int shape[HYP_MAX_DIMS]) {
    return read_any(f, name, H5T_NATIVE_INT32, sizeof(int32_t), ndim, shape);
}
int h5_read_f32_into(H5File *f, const char *name, float *dst, size_t n) {
    int sh[HYP_MAX_DIMS];
    int nd = h5_shape(f, name, sh);
    if (nd < 0) return -1;
    size_t m = 1;
    for (int i = 0; i < nd; i++) m *= (size_t)sh[i];
    if (m != n) { hyp_set_error("%s: %s has %zu elements, expected %zu", f->path, name, m, n); return -1; }
    hid_t d = H5Dopen2(f->id, name, H5P_DEFAULT);
    herr_t rc = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst);
    H5Dclose(d);
    if (rc < 0) { hyp_set_error("%s: cannot read %s", f->path, name); return -1; }
    return 0;
}

static int write_any(H5File *f, const char *name, hid_t type, const void *data, int ndim, const int *shape) {
    hsize_t dims[HYP_MAX_DIMS];
    for (int i = 0; i < ndim; i++) dims[i] = (hsize_t)shape[i];
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t s = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(f->id, name, type, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    int rc = -1;
    if (d >= 0) {
        rc = H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ? -1 : 0;
        H5Dclose(d);
    }
    H5Sclose(s);
    H5Pclose(lcpl);
    if (rc) hyp_set_error("%s: cannot write dataset %s", f->path, name);
    return rc;
}
int h5_write_f32(H5File *f, const char *name, const float *data, int ndim, const int *shape) {
    return write_any(f, name, H5T_NATIVE_FLOAT, data, ndim, shape);
}
int h5_write_i32(H5File *f, const char *name, const int32_t *data, int ndim, const int *shape) {
    return write_any(f, name, H5T_NATIVE_INT32, data, ndim, shape);
}

int h5_read_attr_f64(H5File *f, const char *obj, const char *attr, double *out) {
    if (H5Aexists_by_name(f->id, obj, attr, H5P_DEFAULT) <= 0) {
        hyp_set_error("%s: attribute %s on %s not found", f->path, attr, obj);
        return -1;
    }
    hid_t a = H5Aopen_by_name(f->id, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = H5Aread(a, H5T_NATIVE_DOUBLE, out);
    H5Aclose(a);
    if (rc < 0) { hyp_set_error("%s: cannot read attribute %s", f->path, attr); return -1; }
    return 0;
}
int h5_write_attr_f64(H5File *f, const char *obj, const char *attr, double v) {
    hid_t s = H5Screate(H5S_SCALAR);
    if (H5Aexists_by_name(f->id, obj, attr, H5P_DEFAULT) > 0) H5Adelete_by_name(f->id, obj, attr, H5P_DEFAULT);
    hid_t a = H5Acreate_by_name(f->id, obj, attr, H5T_NATIVE_DOUBLE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &v) < 0 ? -1 : 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
    if (rc) hyp_set_error("%s: cannot write attribute %s", f->path, attr);
    return rc;
}

Tensor *h5_read_tensor(Ctx *c, H5File *f, const char *name) {
    int nd = 0, sh[HYP_MAX_DIMS];
    hid_t d = open_dataset(f, name);
    if (d < 0) return NULL;
    hid_t t = H5Dget_type(d);
    bool is_int = H5Tget_class(t) == H5T_INTEGER;
    H5Tclose(t);
    H5Dclose(d);
    void *host = is_int ? (void *)h5_read_i32(f, name, &nd, sh) : (void *)h5_read_f32(f, name, &nd, sh);
    if (!host) return NULL;
    Tensor *x = tensor_new(c, is_int ? HYP_I32 : HYP_F32, nd, sh);
    tensor_from_host(x, host);
    free(host);
    return x;
}

int h5_load_params(H5File *f, const char *group, ParamSet *ps, bool allow_missing) {
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->params[i];
        char name[512];
        snprintf(name, sizeof name, "%s/%s", group, t->name);
        if (!h5_exists(f, name)) {
            if (allow_missing) continue;
            hyp_set_error("%s: parameter %s missing", f->path, name);
            return -1;
        }
        int sh[HYP_MAX_DIMS], nd = h5_shape(f, name, sh);
        bool ok = nd == t->ndim;
        for (int d = 0; ok && d < nd; d++) ok = sh[d] == t->shape[d];
        if (!ok) {
            char want[64];
            hyp_set_error("%s: parameter %s has the wrong shape (model expects %s)", f->path, name,
                          shape_str(t, want, sizeof want));
            return -1;
        }
        size_t n = tensor_numel(t);
        float *host = t->device == HYP_CPU ? t->data : hyp_malloc(n * sizeof(float));
        int rc = h5_read_f32_into(f, name, host, n);
        if (t->device != HYP_CPU) {
            if (rc == 0) tensor_from_host(t, host);
            free(host);
        }
        if (rc) return -1;
    }
    return 0;
}

int h5_save_params(H5File *f, const char *group, const ParamSet *ps) {
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->params[i];
        char name[512];
        snprintf(name, sizeof name, "%s/%s", group, t->name);
        float *host = t->device == HYP_CPU ? t->data : hyp_malloc(tensor_bytes(t));
        if (t->device != HYP_CPU) tensor_to_host(t, host);
        int rc = h5_write_f32(f, name, host, t->ndim, t->shape);
        if (t->device != HYP_CPU) free(host);
        if (rc) return -1;
    }
    return 0;
}
