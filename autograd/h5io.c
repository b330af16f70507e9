#include "autograd/h5io.h"
#include "autograd/atomic.h"
#include "autograd/fault.h"
#include <hdf5.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct H5File {
    hid_t id;
    char *path;      // the name errors use: the final PATH of an atomic output
    char *tmp;       // atomic output (h5_begin): the temporary being written; else NULL
    bool writable;   // h5_create / h5_begin
    bool failed;     // a write failed: later writes are skipped, h5_commit aborts
};

// A failed H5Fclose leaves a half-destroyed file object in HDF5's ID table (HDF5 1.10:
// the close callback fails and the ID stays); touching it again, which HDF5's own atexit
// cleanup does, crashes (rc 139). So HDF5's atexit is replaced by ours, which skips the
// library shutdown once a close has failed here, or when any file is still open at exit
// (a failed close elsewhere; every output we commit has been closed, so nothing is lost).
static bool g_poisoned;
static void h5io_term(void) {
    if (!g_poisoned && H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_FILE) == 0) H5close();
}
__attribute__((constructor)) static void h5io_init(void) {
    H5dont_atexit();
    atexit(h5io_term);
}

static void quiet_errors(void) {
    static bool done;
    if (!done) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); done = true; }
}

// The errno behind the HDF5 error on the default stack (HDF5's POSIX driver records
// "errno = N" in its message), or 0. Call right after the failing HDF5 call.
static herr_t find_errno(unsigned n, const H5E_error2_t *e, void *u) {
    (void)n;
    const char *p = e->desc ? strstr(e->desc, "errno = ") : NULL;
    if (p && atoi(p + 8) > 0) { *(int *)u = atoi(p + 8); return 1; }
    return 0;
}
static herr_t first_desc(unsigned n, const H5E_error2_t *e, void *u) {
    (void)n;
    if (e->desc && *e->desc) { snprintf(u, 160, "%s", e->desc); return 1; }
    return 0;
}
// "strerror (errno N)" of the failing HDF5 call (injected: that errno), else HDF5's own
// innermost message.
#define WHY_MAX 200
static const char *h5_reason(int injected, char *buf, size_t n) {
    int e = injected;
    if (!e) H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, find_errno, &e);
    if (e) return atomic_errstr(e, buf, n);
    char d[160] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_desc, d);
    snprintf(buf, n, "HDF5: %s", d[0] ? d : "unknown error");
    return buf;
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

// Create (truncate) `file` for writing; errors name `label`. Strong close degree: H5Fclose
// also closes any object an error path left open, so no handle outlives the file.
static H5File *create_file(const char *file, const char *label) {
    quiet_errors();
    char why[200];
    int inj = fault_check(FAULT_CREATE, label);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    hid_t id = inj ? -1 : H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (id < 0) h5_reason(inj, why, sizeof why);
    H5Pclose(fapl);
    if (id < 0) {
        if (strcmp(file, label)) hyp_set_error("%s: cannot create %s: %s", label, file, why);
        else hyp_set_error("%s: cannot create HDF5 file: %s", file, why);
        return NULL;
    }
    H5File *f = hyp_calloc(1, sizeof *f);
    f->id = id;
    f->path = hyp_strdup(label);
    f->writable = true;
    return f;
}
H5File *h5_create(const char *path) { return create_file(path, path); }

H5File *h5_begin(const char *path) {
    char *tmp = atomic_tmp_path(path);
    if (atomic_tmp_clear(tmp)) { free(tmp); return NULL; }
    H5File *f = create_file(tmp, path);
    if (!f) { free(tmp); return NULL; }
    f->tmp = tmp;
    return f;
}

// Flush (writable files) and close; 0 or -1 with the error set (naming f->path). The
// handle is released whatever happens; a temporary is released of its disk space.
static int close_file(H5File *f, bool flush) {
    char why[200];
    int rc = 0;
    int *fdp = NULL;
    int fd = -1;
    if (f->writable && H5Fget_vfd_handle(f->id, H5P_DEFAULT, (void **)&fdp) >= 0 && fdp) fd = *fdp;
    if (flush) {
        int inj = fault_check(FAULT_FLUSH, f->path);
        if (inj || H5Fflush(f->id, H5F_SCOPE_LOCAL) < 0) {
            hyp_set_error("%s: cannot flush %s: %s", f->path, f->tmp ? f->tmp : "the file", h5_reason(inj, why, sizeof why));
            rc = -1;
        }
    }
    int inj = f->writable ? fault_check(FAULT_CLOSE, f->path) : 0;
    if (inj && !rc) {
        hyp_set_error("%s: cannot close %s: %s", f->path, f->tmp ? f->tmp : "the file", atomic_errstr(inj, why, sizeof why));
        rc = -1;
    }
    if (H5Fclose(f->id) < 0) {
        if (!rc) hyp_set_error("%s: cannot close %s: %s", f->path, f->tmp ? f->tmp : "the file", h5_reason(0, why, sizeof why));
        rc = -1;
        g_poisoned = true;
        // The half-closed file keeps its descriptor: give its blocks back (the temporary
        // is unlinked below), so a retry has the space this attempt used.
        if (f->tmp && fd >= 0 && ftruncate(fd, 0)) { /* best effort */ }
    }
    return rc;
}

static void free_file(H5File *f) {
    free(f->path);
    free(f->tmp);
    free(f);
}

int h5_close(H5File *f) {
    if (!f) return 0;
    if (f->tmp) { h5_abort(f); return -1; }   // an atomic output is finished with h5_commit
    int rc = close_file(f, false);
    free_file(f);
    return rc;
}

void h5_abort(H5File *f) {
    if (!f) return;
    char *keep = hyp_strdup(hyp_last_error());   // the failure that led here
    close_file(f, false);
    if (f->tmp) unlink(f->tmp);
    hyp_set_error("%s", keep);
    free(keep);
    free_file(f);
}

int h5_commit(H5File *f) {
    if (!f) return -1;
    if (f->failed) { h5_abort(f); return -1; }
    int rc = close_file(f, true);
    if (rc) {
        unlink(f->tmp);
    } else {
        rc = atomic_commit(f->tmp, f->path);
    }
    free_file(f);
    return rc;
}

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
        hyp_set_error("%s: cannot list %s (a damaged file?)", f->path, group);
        for (int i = 0; i < l.n; i++) free(l.v[i]);   // the names listed before the damage
        free(l.v);
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
int64_t *h5_read_i64(H5File *f, const char *name, int *ndim, int shape[HYP_MAX_DIMS]) {
    return read_any(f, name, H5T_NATIVE_INT64, sizeof(int64_t), ndim, shape);
}
static hid_t vlen_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

char **h5_read_strings(H5File *f, const char *name, size_t *n) {
    *n = 0;
    if (!h5_exists(f, name)) { hyp_set_error("%s: %s: not found", f->path, name); return NULL; }
    hid_t d = H5Dopen2(f->id, name, H5P_DEFAULT);
    if (d < 0) { hyp_set_error("%s: %s: not a dataset", f->path, name); return NULL; }
    hid_t ft = H5Dget_type(d), sp = H5Dget_space(d);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[1] = {1};
    char **out = NULL;
    if (H5Tget_class(ft) != H5T_STRING || H5Tis_variable_str(ft) <= 0 || nd > 1) {
        hyp_set_error("%s: %s: not a 1-D variable-length string dataset", f->path, name);
    } else {
        if (nd == 1) H5Sget_simple_extent_dims(sp, dims, NULL);
        char **raw = hyp_calloc(dims[0] ? dims[0] : 1, sizeof(char *));
        hid_t mt = vlen_str_type();
        if (dims[0] && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
            hyp_set_error("%s: %s: cannot read strings", f->path, name);
        } else {
            out = hyp_calloc(dims[0] ? dims[0] : 1, sizeof(char *));
            for (hsize_t i = 0; i < dims[0]; i++) out[i] = hyp_strdup(raw[i] ? raw[i] : "");
            if (dims[0]) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
            *n = (size_t)dims[0];
        }
        free(raw);
        H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Sclose(sp);
    H5Dclose(d);
    return out;
}

char *h5_read_string(H5File *f, const char *name) {
    size_t n;
    char **v = h5_read_strings(f, name, &n);
    if (!v) return NULL;
    if (n != 1) {
        h5_free_strings(v, n);
        hyp_set_error("%s: %s: expected one string, found %zu", f->path, name, n);
        return NULL;
    }
    char *s = v[0];
    free(v);
    return s;
}

void h5_free_strings(char **v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
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

// ---------------------------------------------------------------- writing
// Every writer: skipped once the file has failed (the first error stays), asks the fault
// hook, and on failure records "path: what: reason (errno N)" and marks the file failed.
static int write_begin(H5File *f, int *inj, char *why) {
    why[0] = 0;
    if (f->failed) return -1;
    *inj = fault_check(FAULT_WRITE, f->path);
    if (*inj) atomic_errstr(*inj, why, WHY_MAX);
    return 0;
}
// r < 0: the call failed; the first failure's reason goes to why (HDF5 clears its error
// stack at the next API call, so right away). Returns r < 0.
static bool failed(int64_t r, char *why) {
    if (r < 0 && !why[0]) h5_reason(0, why, WHY_MAX);
    return r < 0;
}
static int write_end(H5File *f, const char *why, const char *what, const char *name) {
    if (!why[0]) return 0;
    hyp_set_error("%s: cannot write %s %s: %s", f->path, what, name, why);
    f->failed = true;
    return -1;
}

static hid_t lcpl_parents(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    return lcpl;
}

// A dataset of file type ftype (scalar when ndim < 0) from memory of type mtype.
static int write_dataset(H5File *f, const char *name, hid_t ftype, hid_t mtype, const void *data, int ndim,
                         const int *shape) {
    int inj;
    char why[WHY_MAX];
    if (write_begin(f, &inj, why)) return -1;
    if (!inj) {
        hsize_t dims[HYP_MAX_DIMS];
        size_t n = 1;
        for (int i = 0; i < ndim; i++) n *= (size_t)(dims[i] = (hsize_t)shape[i]);
        hid_t lcpl = lcpl_parents();
        hid_t s = ndim < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
        hid_t d = H5Dcreate2(f->id, name, ftype, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (!failed(d, why)) {
            if (n) failed(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), why);
            failed(H5Dclose(d), why);
        }
        H5Sclose(s);
        H5Pclose(lcpl);
    }
    return write_end(f, why, "dataset", name);
}
int h5_write_f32(H5File *f, const char *name, const float *data, int ndim, const int *shape) {
    return write_dataset(f, name, H5T_NATIVE_FLOAT, H5T_NATIVE_FLOAT, data, ndim, shape);
}
int h5_write_i32(H5File *f, const char *name, const int32_t *data, int ndim, const int *shape) {
    return write_dataset(f, name, H5T_NATIVE_INT32, H5T_NATIVE_INT32, data, ndim, shape);
}
int h5_write_i64(H5File *f, const char *name, const int64_t *data, int ndim, const int *shape) {
    return write_dataset(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, data, ndim, shape);
}

static hid_t utf8_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}
int h5_write_strings(H5File *f, const char *name, const char *const *strs, size_t n) {
    if (n > (size_t)INT32_MAX) { hyp_set_error("%s: %s: %zu strings (at most 2^31)", f->path, name, n); f->failed = true; return -1; }
    hid_t t = utf8_type();
    int rc = write_dataset(f, name, t, t, strs, 1, (int[]){(int)n});
    H5Tclose(t);
    return rc;
}
int h5_write_string(H5File *f, const char *name, const char *s) {
    hid_t t = utf8_type();
    const char *v[1] = {s};
    int rc = write_dataset(f, name, t, t, v, -1, NULL);
    H5Tclose(t);
    return rc;
}

// A scalar attribute on obj ("/" or a path; a missing group is created with its parents),
// replacing one of the same name.
static int write_attr(H5File *f, const char *obj, const char *attr, hid_t ftype, hid_t mtype, const void *v) {
    int inj;
    char why[WHY_MAX];
    if (write_begin(f, &inj, why)) return -1;
    if (!inj && strcmp(obj, "/") && !h5_exists(f, obj)) {
        hid_t lcpl = lcpl_parents();
        hid_t g = H5Gcreate2(f->id, obj, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Pclose(lcpl);
        if (!failed(g, why)) failed(H5Gclose(g), why);
    }
    if (!why[0] && H5Aexists_by_name(f->id, obj, attr, H5P_DEFAULT) > 0)
        failed(H5Adelete_by_name(f->id, obj, attr, H5P_DEFAULT), why);
    if (!why[0]) {
        hid_t s = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate_by_name(f->id, obj, attr, ftype, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (!failed(a, why)) {
            failed(H5Awrite(a, mtype, v), why);
            failed(H5Aclose(a), why);
        }
        H5Sclose(s);
    }
    char what[600];
    snprintf(what, sizeof what, "%s%s%s", obj, strcmp(obj, "/") ? "/" : "", attr);
    return write_end(f, why, "attribute", what);
}
int h5_write_attr_f64(H5File *f, const char *obj, const char *attr, double v) {
    return write_attr(f, obj, attr, H5T_NATIVE_DOUBLE, H5T_NATIVE_DOUBLE, &v);
}
int h5_write_attr_i64(H5File *f, const char *obj, const char *attr, int64_t v) {
    return write_attr(f, obj, attr, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}
int h5_write_attr_u64(H5File *f, const char *obj, const char *attr, uint64_t v) {
    return write_attr(f, obj, attr, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}
int h5_write_attr_str(H5File *f, const char *obj, const char *attr, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    int rc = write_attr(f, obj, attr, t, t, v);
    H5Tclose(t);
    return rc;
}

static int read_attr(H5File *f, const char *obj, const char *attr, hid_t memtype, void *out) {
    if (H5Aexists_by_name(f->id, obj, attr, H5P_DEFAULT) <= 0) {
        hyp_set_error("%s: attribute %s on %s not found", f->path, attr, obj);
        return -1;
    }
    hid_t a = H5Aopen_by_name(f->id, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Aread(a, memtype, out);
    if (a >= 0) H5Aclose(a);
    if (rc < 0) { hyp_set_error("%s: cannot read attribute %s", f->path, attr); return -1; }
    return 0;
}
bool h5_has_attr(H5File *f, const char *obj, const char *attr) {
    return (!strcmp(obj, "/") || h5_exists(f, obj)) && H5Aexists_by_name(f->id, obj, attr, H5P_DEFAULT) > 0;
}
int h5_read_attr_f64(H5File *f, const char *obj, const char *attr, double *out) {
    return read_attr(f, obj, attr, H5T_NATIVE_DOUBLE, out);
}
int h5_read_attr_i64(H5File *f, const char *obj, const char *attr, int64_t *out) {
    return read_attr(f, obj, attr, H5T_NATIVE_INT64, out);
}
int h5_read_attr_u64(H5File *f, const char *obj, const char *attr, uint64_t *out) {
    return read_attr(f, obj, attr, H5T_NATIVE_UINT64, out);
}
int h5_read_attr_str(H5File *f, const char *obj, const char *attr, char *buf, size_t cap) {
    if (H5Aexists_by_name(f->id, obj, attr, H5P_DEFAULT) <= 0) {
        hyp_set_error("%s: attribute %s on %s not found", f->path, attr, obj);
        return -1;
    }
    hid_t a = H5Aopen_by_name(f->id, obj, attr, H5P_DEFAULT, H5P_DEFAULT), t = H5Aget_type(a);
    int rc = -1;
    if (H5Tget_class(t) != H5T_STRING) {
        hyp_set_error("%s: attribute %s on %s is not a string", f->path, attr, obj);
    } else if (H5Tis_variable_str(t) > 0) {   // h5py's default for str values
        char *v = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));   // h5py writes UTF-8; HDF5 converts no character sets
        if (H5Aread(a, mt, &v) >= 0 && v && strlen(v) < cap) { strcpy(buf, v); rc = 0; }
        if (v) H5free_memory(v);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(t);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n + 1);
        H5Tset_cset(mt, H5Tget_cset(t));
        char *v = hyp_calloc(n + 2, 1);
        if (H5Aread(a, mt, v) >= 0 && strlen(v) < cap) { strcpy(buf, v); rc = 0; }
        free(v);
        H5Tclose(mt);
    }
    if (rc && H5Tget_class(t) == H5T_STRING) hyp_set_error("%s: cannot read string attribute %s on %s (or longer than %zu)", f->path, attr, obj, cap - 1);
    H5Tclose(t);
    H5Aclose(a);
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

