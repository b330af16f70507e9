// store.c: document embeddings from HDF5 in blocks (search/store.h).
#include "search/store.h"
#include "autograd/h5io.h"
#include "kernels/elementwise.h"   // hyp_f32_to_bf16 / hyp_bf16_to_f32
#include "kernels/kernels.h"
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct DocStore {
    char *path;
    long n;
    int dim;
    char **ids;            // (n)
    StoreDType dtype;
    bool streaming;
    void *data;            // (n, dim) in dtype when in memory
    hid_t file, dset;      // streaming only
    long *slots;           // id hash: open addressing, index or -1
    long nslots;
    void *dev;             // (n, dim) resident copy on dev_device in dev_dtype, or NULL
    Device dev_device;
    StoreDType dev_dtype;
};

// ---------------------------------------------------------------- fp16
uint16_t store_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));  // inf / NaN
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);    // rounds to >= 65520: inf
    if (ax < 0x38800000u) {                                      // subnormal half (or zero)
        // value = ax as float; half subnormal unit is 2^-24
        float a;
        memcpy(&a, &ax, 4);
        float q = a * 16777216.0f;                               // in units of 2^-24, exact
        uint32_t r = (uint32_t)q;
        float frac = q - (float)r;
        if (frac > 0.5f || (frac == 0.5f && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t e = (ax >> 23) - 127 + 15, m = ax & 0x7fffffu;
    uint32_t h = (e << 10) | (m >> 13), rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;   // carry into the exponent is correct
    return (uint16_t)(sign | h);
}

float store_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        float v = (float)m * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (e == 31) x = sign | 0x7f800000u | (m << 13);
    else x = sign | ((e - 15 + 127) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

const char *store_dtype_name(StoreDType t) { return t == STORE_F16 ? "fp16" : t == STORE_BF16 ? "bf16" : "fp32"; }
int store_dtype_parse(const char *s, StoreDType *out) {
    if (!strcmp(s, "fp32") || !strcmp(s, "f32") || !strcmp(s, "float32")) *out = STORE_F32;
    else if (!strcmp(s, "fp16") || !strcmp(s, "f16") || !strcmp(s, "float16")) *out = STORE_F16;
    else if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16")) *out = STORE_BF16;
    else return -1;
    return 0;
}
static size_t elt_size(StoreDType t) { return t == STORE_F32 ? 4 : 2; }

static void to_storage(StoreDType t, void *dst, const float *src, size_t n) {
    if (t == STORE_F32) { memcpy(dst, src, n * 4); return; }
    uint16_t *d = dst;
    if (t == STORE_F16) for (size_t i = 0; i < n; i++) d[i] = store_f32_to_f16(src[i]);
    else for (size_t i = 0; i < n; i++) d[i] = hyp_f32_to_bf16(src[i]);
}
static void from_storage(StoreDType t, float *dst, const void *src, size_t n) {
    if (t == STORE_F32) { memcpy(dst, src, n * 4); return; }
    const uint16_t *s = src;
    if (t == STORE_F16) for (size_t i = 0; i < n; i++) dst[i] = store_f16_to_f32(s[i]);
    else for (size_t i = 0; i < n; i++) dst[i] = hyp_bf16_to_f32(s[i]);
}

// ---------------------------------------------------------------- id hash
static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}
// Returns the later index of the first duplicate id found (the earlier in *first), or -1.
static long build_hash(DocStore *s, long *first) {
    long ns = 16;
    while (ns < 2 * s->n) ns *= 2;
    s->nslots = ns;
    s->slots = hyp_malloc((size_t)ns * sizeof(long));
    for (long i = 0; i < ns; i++) s->slots[i] = -1;
    long dup = -1;
    for (long i = 0; i < s->n; i++) {
        uint64_t h = hash_str(s->ids[i]) & (uint64_t)(ns - 1);
        while (s->slots[h] >= 0) {
            if (!strcmp(s->ids[s->slots[h]], s->ids[i])) break;   // duplicate id: keep the first
            h = (h + 1) & (uint64_t)(ns - 1);
        }
        if (s->slots[h] < 0) s->slots[h] = i;
        else if (dup < 0) { dup = i; if (first) *first = s->slots[h]; }
    }
    return dup;
}
long docstore_find(const DocStore *s, const char *id) {
    uint64_t h = hash_str(id) & (uint64_t)(s->nslots - 1);
    while (s->slots[h] >= 0) {
        if (!strcmp(s->ids[s->slots[h]], id)) return s->slots[h];
        h = (h + 1) & (uint64_t)(s->nslots - 1);
    }
    return -1;
}

// ---------------------------------------------------------------- HDF5 blocks
static int read_hslab(DocStore *s, long start, long n, float *dst) {
    hsize_t off[2] = {(hsize_t)start, 0}, cnt[2] = {(hsize_t)n, (hsize_t)s->dim};
    hid_t fs = H5Dget_space(s->dset);
    hid_t ms = H5Screate_simple(2, cnt, NULL);
    int rc = 0;
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0 ||
        H5Dread(s->dset, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, dst) < 0) {
        hyp_set_error("%s: /embeddings: cannot read rows %ld..%ld", s->path, start, start + n);
        rc = -1;
    }
    H5Sclose(ms);
    H5Sclose(fs);
    if (rc == 0) {
        // A NaN vector scores NaN against every query (ranked last, silently): refuse it.
        size_t total = (size_t)n * s->dim, bad = hyp_find_nonfinite(dst, total, NULL);
        if (bad < total) {
            long row = start + (long)(bad / (size_t)s->dim);
            hyp_set_error("%s: /embeddings: row %ld (document '%s') has a non-finite value (%g at column %zu); "
                          "expected finite vectors (re-encode the corpus)", s->path, row, s->ids[row], dst[bad],
                          bad % (size_t)s->dim);
            rc = -1;
        }
    }
    return rc;
}

DocStore *docstore_open(const char *path, const DocStoreOptions *o) {
    DocStoreOptions opt = o ? *o : (DocStoreOptions){0};
    if (opt.block_rows <= 0) opt.block_rows = 16384;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, R_OK)) { hyp_set_error("%s: cannot open (missing or unreadable)", path); return NULL; }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) { hyp_set_error("%s: not an HDF5 file", path); return NULL; }
    if (H5Lexists(f, "/embeddings", H5P_DEFAULT) <= 0) {
        hyp_set_error("%s: /embeddings: not found (expected the output of `hyp encode`)", path);
        H5Fclose(f);
        return NULL;
    }
    hid_t d = H5Dopen2(f, "/embeddings", H5P_DEFAULT);
    if (d < 0) { hyp_set_error("%s: /embeddings: not a dataset", path); H5Fclose(f); return NULL; }
    hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[2] = {0, 0};
    H5T_class_t cls = H5Tget_class(ty);
    size_t tsize = H5Tget_size(ty);
    H5Tclose(ty);
    if (nd == 2) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    const char *problem = NULL;
    char found[160];
    if (nd != 2 || cls != H5T_FLOAT) {
        const char *cn = cls == H5T_INTEGER ? "integer" : cls == H5T_FLOAT ? "float" : cls == H5T_STRING ? "string"
                       : cls == H5T_COMPOUND ? "compound" : "non-numeric";
        snprintf(found, sizeof found, "found a rank-%d %zu-byte %s dataset", nd, tsize, cn);
        problem = found;
    } else if (dims[1] == 0 || dims[1] > 65536) {
        snprintf(found, sizeof found, "found dimension d = %llu (expected 1..65536)", (unsigned long long)dims[1]);
        problem = found;
    } else if (dims[0] > 2147483647ull) {
        snprintf(found, sizeof found, "found %llu rows (at most 2^31-1)", (unsigned long long)dims[0]);
        problem = found;
    }
    if (problem) {
        hyp_set_error("%s: /embeddings: expected a 2-D float dataset (N, d) as `hyp encode` writes; %s", path, problem);
        H5Dclose(d);
        H5Fclose(f);
        return NULL;
    }
    DocStore *s = hyp_calloc(1, sizeof *s);
    s->path = hyp_strdup(path);
    s->n = (long)dims[0];
    s->dim = (int)dims[1];
    s->file = f;
    s->dset = d;
    s->streaming = opt.streaming;
    s->dtype = opt.streaming ? STORE_F32 : opt.dtype;
    size_t nids = 0;
    H5File *hf = h5_open(path);
    s->ids = hf ? h5_read_strings(hf, "/ids", &nids) : NULL;
    h5_close(hf);
    if (!s->ids) { docstore_free(s); return NULL; }
    if ((long)nids != s->n) {
        hyp_set_error("%s: /ids has %zu entries but /embeddings has %ld rows", path, nids, s->n);
        h5_free_strings(s->ids, nids);
        s->ids = NULL;
        docstore_free(s);
        return NULL;
    }
    for (long i = 0; i < s->n; i++) {
        const char *why = hyp_id_problem(s->ids[i]);
        if (why) {
            hyp_set_error("%s: /ids[%ld]: id '%s' %s", path, i, s->ids[i], why);
            docstore_free(s);
            return NULL;
        }
    }
    long first = -1, dup = build_hash(s, &first);
    if (dup >= 0) {
        hyp_set_error("%s: /ids[%ld]: duplicate id '%s' (also /ids[%ld]); expected one row per document", path, dup,
                      s->ids[dup], first);
        docstore_free(s);
        return NULL;
    }
    if (!s->streaming) {
        size_t es = elt_size(s->dtype);
        s->data = hyp_malloc((size_t)(s->n ? s->n : 1) * s->dim * es);
        float *blk = s->dtype == STORE_F32 ? NULL : hyp_malloc((size_t)opt.block_rows * s->dim * sizeof(float));
        double t0 = hyp_now(), last = t0;
        for (long r = 0; r < s->n; r += opt.block_rows) {
            long m = s->n - r < opt.block_rows ? s->n - r : opt.block_rows;
            char *dst = (char *)s->data + (size_t)r * s->dim * es;
            float *buf = blk ? blk : (float *)dst;
            if (read_hslab(s, r, m, buf)) { free(blk); docstore_free(s); return NULL; }
            if (blk) to_storage(s->dtype, dst, blk, (size_t)m * s->dim);
            double now = hyp_now();
            if (opt.progress && (now - last > 2.0 || r + m == s->n)) {
                fprintf(stderr, "\rload: %ld/%ld documents (%s) | %.0f docs/s   ", r + m, s->n,
                        store_dtype_name(s->dtype), (r + m) / (now - t0 > 0 ? now - t0 : 1e-9));
                if (r + m == s->n) fputc('\n', stderr);
                last = now;
            }
        }
        free(blk);
        H5Dclose(s->dset);
        H5Fclose(s->file);
        s->dset = s->file = -1;
    }
    return s;
}

DocStore *docstore_from_memory(const float *x, long n, int dim, const char *const *ids, StoreDType dtype) {
    DocStore *s = hyp_calloc(1, sizeof *s);
    s->path = hyp_strdup("(memory)");
    s->n = n;
    s->dim = dim;
    s->dtype = dtype;
    s->file = s->dset = -1;
    s->ids = hyp_malloc((size_t)(n ? n : 1) * sizeof(char *));
    for (long i = 0; i < n; i++) {
        if (ids) s->ids[i] = hyp_strdup(ids[i]);
        else {
            char b[32];
            snprintf(b, sizeof b, "%ld", i);
            s->ids[i] = hyp_strdup(b);
        }
    }
    build_hash(s, NULL);
    s->data = hyp_malloc((size_t)(n ? n : 1) * dim * elt_size(dtype));
    to_storage(dtype, s->data, x, (size_t)n * dim);
    return s;
}

void docstore_free(DocStore *s) {
    if (!s) return;
    if (s->dset >= 0 && s->dset) H5Dclose(s->dset);
    if (s->file >= 0 && s->file) H5Fclose(s->file);
    if (s->ids) h5_free_strings(s->ids, (size_t)s->n);
    docstore_device_free(s);
    free(s->data);
    free(s->slots);
    free(s->path);
    free(s);
}

long docstore_n(const DocStore *s) { return s->n; }
int docstore_dim(const DocStore *s) { return s->dim; }
const char *docstore_id(const DocStore *s, long i) { return s->ids[i]; }
const char *docstore_path(const DocStore *s) { return s->path; }
bool docstore_streaming(const DocStore *s) { return s->streaming; }
StoreDType docstore_dtype(const DocStore *s) { return s->dtype; }
const float *docstore_f32(const DocStore *s) {
    return !s->streaming && s->dtype == STORE_F32 ? (const float *)s->data : NULL;
}

int docstore_rows(DocStore *s, long start, long n, float *dst) {
    if (start < 0 || n < 0 || start + n > s->n) {
        hyp_set_error("%s: rows %ld..%ld outside 0..%ld", s->path, start, start + n, s->n);
        return -1;
    }
    if (n == 0) return 0;
    if (s->streaming) {
        int rc;
#pragma omp critical(hyp_docstore_hdf5)
        rc = read_hslab(s, start, n, dst);
        return rc;
    }
    size_t es = elt_size(s->dtype);
    const char *src = (const char *)s->data + (size_t)start * s->dim * es;
    size_t total = (size_t)n * s->dim;
    if (s->dtype == STORE_F32 || total < 65536) { from_storage(s->dtype, dst, src, total); return 0; }
#pragma omp parallel for schedule(static)
    for (long r = 0; r < n; r++)
        from_storage(s->dtype, dst + (size_t)r * s->dim, src + (size_t)r * s->dim * es, (size_t)s->dim);
    return 0;
}

int docstore_gather(DocStore *s, const int32_t *idx, long n, float *dst) {
    for (long i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= s->n) {
            hyp_set_error("%s: document index %d outside 0..%ld", s->path, idx[i], s->n);
            return -1;
        }
    if (s->streaming) {
        for (long i = 0; i < n; i++)
            if (docstore_rows(s, idx[i], 1, dst + (size_t)i * s->dim)) return -1;
        return 0;
    }
    size_t es = elt_size(s->dtype);
#pragma omp parallel for schedule(static) if (n * s->dim > (1L << 21))
    for (long i = 0; i < n; i++)
        from_storage(s->dtype, dst + (size_t)i * s->dim, (const char *)s->data + (size_t)idx[i] * s->dim * es,
                     (size_t)s->dim);
    return 0;
}

int docstore_write(const char *path, const float *x, long n, int dim, const char *const *ids) {
    if (n > INT32_MAX) { hyp_set_error("%s: %ld documents (at most 2^31)", path, n); return -1; }
    H5File *f = h5_begin(path);
    if (!f) return -1;
    h5_write_f32(f, "/embeddings", x, 2, (int[]){(int)n, dim});
    char **own = NULL;
    if (!ids) {
        own = hyp_malloc((size_t)(n ? n : 1) * sizeof(char *));
        for (long i = 0; i < n; i++) {
            char b[32];
            snprintf(b, sizeof b, "%ld", i);
            own[i] = hyp_strdup(b);
        }
        ids = (const char *const *)own;
    }
    h5_write_strings(f, "/ids", ids, (size_t)n);
    if (own) h5_free_strings(own, (size_t)n);
    return h5_commit(f);
}

// ---------------------------------------------------------------- device residency
void docstore_device_free(DocStore *s) {
    if (s && s->dev) backend_get(s->dev_device)->free(s->dev);
    if (s) s->dev = NULL;
}

const void *docstore_device(DocStore *s, Device dev, StoreDType dt) {
    if (dev == HYP_CPU) return docstore_f32(s);
    if (dt != STORE_F32 && dt != STORE_BF16) {
        hyp_set_error("%s: documents can be resident on the GPU as fp32 or bf16, not %s", s->path, store_dtype_name(dt));
        return NULL;
    }
    if (s->dev && s->dev_device == dev && s->dev_dtype == dt) return s->dev;
    docstore_device_free(s);
    const Backend *be = backend_get(dev);
    size_t es = dt == STORE_F32 ? sizeof(float) : sizeof(uint16_t), d = (size_t)s->dim;
    void *m = be->alloc((size_t)(s->n ? s->n : 1) * d * es);
    if (!s->streaming && s->dtype == dt) {   // the same bits as in memory: one copy
        be->copy(m, s->data, (size_t)s->n * d * es, COPY_H2D);
    } else {
        // Blocks as fp32 through a host buffer; bf16 rounds on the device (f32_to_bf16, RNE as the store).
        long rows = s->n < 16384 ? (s->n ? s->n : 1) : 16384;
        float *h = hyp_malloc((size_t)rows * d * sizeof(float));   // (rows, dim)
        float *stage = dt == STORE_BF16 ? be->alloc((size_t)rows * d * sizeof(float)) : NULL;
        int rc = 0;
        for (long r = 0; r < s->n && !rc; r += rows) {
            long n = s->n - r < rows ? s->n - r : rows;
            if ((rc = docstore_rows(s, r, n, h))) break;
            if (dt == STORE_F32) {
                be->copy((float *)m + (size_t)r * d, h, (size_t)n * d * sizeof(float), COPY_H2D);
            } else {
                be->copy(stage, h, (size_t)n * d * sizeof(float), COPY_H2D);
                be->f32_to_bf16((uint16_t *)m + (size_t)r * d, stage, (long)((size_t)n * d));
            }
        }
        free(h);
        if (stage) be->free(stage);
        if (rc) { be->free(m); return NULL; }
    }
    s->dev = m;
    s->dev_device = dev;
    s->dev_dtype = dt;
    return m;
}
