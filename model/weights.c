// weights.c: the named tensor set, dtype conversion, the safetensors reader/writer and the
// file dispatcher. The torch.save (zip + pickle) reader lives in torchbin.c.
#include "model/weights.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HYP_HAVE_JANSSON
#include <jansson.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "weights.c assumes a little-endian host (safetensors and torch data are little-endian)"
#endif

struct WBuf { int refs; };            // 64-byte header before the floats (see weights_alloc)

static const struct { const char *name; size_t size; } DT[WDT_COUNT] = {
    [WDT_F32] = {"F32", 4}, [WDT_F16] = {"F16", 2}, [WDT_BF16] = {"BF16", 2}, [WDT_F64] = {"F64", 8},
    [WDT_I64] = {"I64", 8}, [WDT_I32] = {"I32", 4}, [WDT_I16] = {"I16", 2}, [WDT_I8] = {"I8", 1},
    [WDT_U8] = {"U8", 1}, [WDT_BOOL] = {"BOOL", 1},
};
const char *wdtype_name(WDType t) { return (unsigned)t < WDT_COUNT ? DT[t].name : "?"; }
size_t wdtype_size(WDType t) { return (unsigned)t < WDT_COUNT ? DT[t].size : 0; }

// ------------------------------------------------------------------ conversion to fp32
static float half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    if (e == 0) {
        if (m == 0) bits = s;
        else {                                  // subnormal: renormalise
            e = 127 - 15 + 1;
            while (!(m & 0x400)) { m <<= 1; e--; }
            m &= 0x3ff;
            bits = s | (e << 23) | (m << 13);
        }
    } else if (e == 31) bits = s | 0x7f800000u | (m << 13);   // inf / nan
    else bits = s | ((e + 127 - 15) << 23) | (m << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// Convert n elements of dtype t at src (any alignment, little-endian) to fp32.
void weights_convert(float *dst, const uint8_t *src, WDType t, size_t n) {
    switch (t) {
    case WDT_F32: memcpy(dst, src, n * 4); break;
    case WDT_F16: for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, src + 2 * i, 2); dst[i] = half_to_float(h); } break;
    case WDT_BF16: for (size_t i = 0; i < n; i++) {
            uint16_t h; memcpy(&h, src + 2 * i, 2);
            uint32_t b = (uint32_t)h << 16; memcpy(&dst[i], &b, 4);
        } break;
    case WDT_F64: for (size_t i = 0; i < n; i++) { double d; memcpy(&d, src + 8 * i, 8); dst[i] = (float)d; } break;
    case WDT_I64: for (size_t i = 0; i < n; i++) { int64_t v; memcpy(&v, src + 8 * i, 8); dst[i] = (float)v; } break;
    case WDT_I32: for (size_t i = 0; i < n; i++) { int32_t v; memcpy(&v, src + 4 * i, 4); dst[i] = (float)v; } break;
    case WDT_I16: for (size_t i = 0; i < n; i++) { int16_t v; memcpy(&v, src + 2 * i, 2); dst[i] = (float)v; } break;
    case WDT_I8: for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)src[i]; break;
    case WDT_U8: for (size_t i = 0; i < n; i++) dst[i] = (float)src[i]; break;
    case WDT_BOOL: for (size_t i = 0; i < n; i++) dst[i] = src[i] ? 1.f : 0.f; break;
    default: HYP_FATAL("bad dtype %d", (int)t);
    }
}

// ------------------------------------------------------------------ the set
static WBuf *wbuf_of(float *data) { return (WBuf *)((char *)data - 64); }
// Buffers are allocated with a 64-byte header so the floats stay 64-byte aligned.
float *weights_alloc(size_t numel) {
    char *p = NULL;
    size_t bytes = 64 + (numel ? numel : 1) * sizeof(float);
    if (posix_memalign((void **)&p, 64, bytes)) HYP_FATAL("out of memory (%zu bytes)", bytes);
    ((WBuf *)p)->refs = 1;
    return (float *)(p + 64);
}
static void wbuf_release(float *data) {
    if (!data) return;
    WBuf *b = wbuf_of(data);
    if (--b->refs == 0) free(b);
}

WeightSet *weights_new(void) { return hyp_calloc(1, sizeof(WeightSet)); }

void weights_free(WeightSet *ws) {
    if (!ws) return;
    for (int i = 0; i < ws->n; i++) {
        free(ws->v[i].name);
        free(ws->v[i].alias_of);
        wbuf_release(ws->v[i].data);
    }
    free(ws->v);
    free(ws->slots);
    free(ws->metadata_json);
    free(ws);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}
static void rehash(WeightSet *ws) {
    int ns = 16;
    while (ns < 2 * ws->n + 2) ns *= 2;
    free(ws->slots);
    ws->slots = hyp_malloc((size_t)ns * sizeof(int));
    ws->nslots = ns;
    for (int i = 0; i < ns; i++) ws->slots[i] = -1;
    for (int i = 0; i < ws->n; i++) {
        size_t h = hash_str(ws->v[i].name) & (size_t)(ns - 1);
        while (ws->slots[h] >= 0) h = (h + 1) & (size_t)(ns - 1);
        ws->slots[h] = i;
    }
}
int weights_index(const WeightSet *ws, const char *name) {
    if (!ws || !ws->nslots) return -1;
    size_t h = hash_str(name) & (size_t)(ws->nslots - 1);
    for (int s; (s = ws->slots[h]) >= 0; h = (h + 1) & (size_t)(ws->nslots - 1))
        if (!strcmp(ws->v[s].name, name)) return s;
    return -1;
}
NamedTensor *weights_get(const WeightSet *ws, const char *name) {
    int i = weights_index(ws, name);
    return i < 0 ? NULL : &ws->v[i];
}

static NamedTensor *push(WeightSet *ws, const char *name) {
    if (weights_index(ws, name) >= 0) { hyp_set_error("%s: duplicate tensor name", name); return NULL; }
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? 2 * ws->cap : 32;
        ws->v = hyp_realloc(ws->v, (size_t)ws->cap * sizeof(NamedTensor));
    }
    NamedTensor *t = &ws->v[ws->n++];
    memset(t, 0, sizeof *t);
    t->name = hyp_strdup(name);
    if (2 * ws->n + 2 > ws->nslots) rehash(ws);
    else {
        size_t h = hash_str(name) & (size_t)(ws->nslots - 1);
        while (ws->slots[h] >= 0) h = (h + 1) & (size_t)(ws->nslots - 1);
        ws->slots[h] = ws->n - 1;
    }
    return t;
}

NamedTensor *weights_add(WeightSet *ws, const char *name, WDType stored, int ndim, const int *shape, float *data) {
    HYP_CHECK(ndim >= 0 && ndim <= HYP_MAX_DIMS, "weights_add: rank %d", ndim);
    NamedTensor *t = push(ws, name);
    if (!t) { wbuf_release(data); return NULL; }
    t->stored = stored;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) { t->shape[i] = shape[i]; t->numel *= (size_t)shape[i]; }
    t->data = data;
    t->buf = wbuf_of(data);
    return t;
}

NamedTensor *weights_add_alias(WeightSet *ws, const char *name, const char *target) {
    int j = weights_index(ws, target);
    HYP_CHECK(j >= 0, "weights_add_alias: no tensor %s", target);
    NamedTensor *t = push(ws, name);
    if (!t) return NULL;
    NamedTensor *src = &ws->v[j];      // re-fetch after push (v may have moved)
    t->stored = src->stored;
    t->ndim = src->ndim;
    memcpy(t->shape, src->shape, sizeof t->shape);
    t->numel = src->numel;
    t->data = src->data;
    t->buf = src->buf;
    t->buf->refs++;
    t->alias_of = hyp_strdup(src->alias_of ? src->alias_of : src->name);
    return t;
}

bool weights_remove(WeightSet *ws, const char *name) {
    int i = weights_index(ws, name);
    if (i < 0) return false;
    free(ws->v[i].name);
    free(ws->v[i].alias_of);
    wbuf_release(ws->v[i].data);
    memmove(&ws->v[i], &ws->v[i + 1], (size_t)(ws->n - i - 1) * sizeof(NamedTensor));
    ws->n--;
    rehash(ws);
    return true;
}

bool weights_rename(WeightSet *ws, const char *name, const char *new_name) {
    int i = weights_index(ws, name);
    if (i < 0) { hyp_set_error("%s: no such tensor", name); return false; }
    if (!strcmp(name, new_name)) return true;
    if (weights_index(ws, new_name) >= 0) { hyp_set_error("%s: cannot rename %s: name exists", new_name, name); return false; }
    free(ws->v[i].name);
    ws->v[i].name = hyp_strdup(new_name);
    rehash(ws);
    return true;
}

size_t weights_numel_unique(const WeightSet *ws) {
    size_t n = 0;
    for (int i = 0; i < ws->n; i++)
        if (!ws->v[i].alias_of) n += ws->v[i].numel;
    return n;
}

bool weights_same_data(const NamedTensor *a, const NamedTensor *b) {
    if (a->ndim != b->ndim || a->numel != b->numel) return false;
    for (int i = 0; i < a->ndim; i++) if (a->shape[i] != b->shape[i]) return false;
    return a->data == b->data || !memcmp(a->data, b->data, a->numel * sizeof(float));
}

// ------------------------------------------------------------------ files
// Map a whole file read-only (len 0 files give a NULL map). 0 or -1 + error.
int weights_map_file(const char *path, const uint8_t **map, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) { hyp_set_error("%s: cannot open: %s", path, strerror(errno)); return -1; }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        hyp_set_error("%s: not a regular file", path);
        return -1;
    }
    *len = (size_t)st.st_size;
    *map = NULL;
    if (*len) {
        void *m = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) { close(fd); hyp_set_error("%s: cannot map: %s", path, strerror(errno)); return -1; }
        *map = m;
    }
    close(fd);
    return 0;
}
void weights_unmap_file(const uint8_t *map, size_t len) {
    if (map) munmap((void *)map, len);
}

// A pickle of protocol 0 or 1 (no PROTO opcode): text-like opcodes, ending in STOP ('.').
// Legacy torch.save with pickle_protocol=0/1, or a plain pickle.dump of a state dict.
static bool looks_like_old_pickle(const uint8_t *m, size_t len) {
    if (len < 2) return false;
    size_t e = len;
    while (e > 0 && (m[e - 1] == '\n' || m[e - 1] == '\r')) e--;
    if (e == 0 || m[e - 1] != '.') return false;
    // first opcodes of such pickles: MARK '(', EMPTY_DICT '}', EMPTY_LIST ']', GLOBAL 'c',
    // LONG 'L' (legacy torch.save's magic number), INT 'I', NONE 'N', DICT/LIST via MARK
    return strchr("(}]cLIN", m[0]) != NULL && m[0] != 0;
}

WeightSet *weights_read(const char *path) {
    const uint8_t *m;
    size_t len;
    if (weights_map_file(path, &m, &len)) return NULL;
    WeightSet *ws;
    if (len >= 4 && !memcmp(m, "PK\3\4", 4)) ws = torchbin_read_mem(m, len, path, 0);
    else if (len >= 2 && m[0] == 0x80 && m[1] <= 5) {
        hyp_set_error("%s: a legacy (pre-zip, PyTorch < 1.6 `_use_new_zipfile_serialization=False`) torch.save "
                      "file: not supported; re-save it with a current PyTorch or convert it to safetensors", path);
        ws = NULL;
    } else if (!(len >= 9 && m[8] == '{') && looks_like_old_pickle(m, len)) {   // byte 8 '{': a safetensors header
        hyp_set_error("%s: found a protocol-0/1 pickle (a legacy torch.save or a plain pickle.dump, first byte '%c'); "
                      "expected safetensors or a zip-format torch.save: re-save it with a current PyTorch "
                      "(torch.save(state_dict, path)) or convert it to safetensors", path, m[0]);
        ws = NULL;
    } else ws = safetensors_read_mem(m, len, path);
    weights_unmap_file(m, len);
    return ws;
}

int weights_check_finite(const WeightSet *ws, const char *label) {
    for (int i = 0; i < ws->n; i++) {
        const NamedTensor *t = &ws->v[i];
        if (t->alias_of) continue;
        size_t count, k = hyp_find_nonfinite(t->data, t->numel, &count);
        if (k == t->numel) continue;
        hyp_set_error("%s: %s: %zu non-finite value%s (first: %g at flat index %zu of %zu); expected finite weights",
                      label, t->name, count, count == 1 ? "" : "s", t->data[k], k, t->numel);
        return -1;
    }
    return 0;
}

WeightSet *safetensors_read(const char *path) {
    const uint8_t *m;
    size_t len;
    if (weights_map_file(path, &m, &len)) return NULL;
    WeightSet *ws = safetensors_read_mem(m, len, path);
    weights_unmap_file(m, len);
    return ws;
}

// ------------------------------------------------------------------ safetensors
#define ST_MAX_HEADER (100u << 20)     // the safetensors crate's limit

#ifdef HYP_HAVE_JANSSON
typedef struct { const char *name; int64_t begin, end; } StRange;
static int cmp_range(const void *a, const void *b) {
    const StRange *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int parse_dtype(const char *s, WDType *t) {
    for (int i = 0; i < WDT_COUNT; i++)
        if (!strcmp(s, DT[i].name)) { *t = (WDType)i; return 0; }
    return -1;
}

WeightSet *safetensors_read_mem(const void *buf, size_t len, const char *label) {
    const uint8_t *p = buf;
    if (len < 8) { hyp_set_error("%s: file too short (%zu bytes) for a safetensors header", label, len); return NULL; }
    uint64_t hlen;
    memcpy(&hlen, p, 8);
    if (hlen == 0 || hlen > len - 8) {
        hyp_set_error("%s: header length %llu does not fit the file (%zu bytes): truncated or not a safetensors file",
                      label, (unsigned long long)hlen, len);
        return NULL;
    }
    if (hlen > ST_MAX_HEADER) { hyp_set_error("%s: header length %llu over the 100 MB limit", label, (unsigned long long)hlen); return NULL; }
    if (p[8] != '{') { hyp_set_error("%s: header does not start with '{': not a safetensors file", label); return NULL; }
    const uint8_t *data = p + 8 + hlen;
    size_t dlen = len - 8 - (size_t)hlen;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) { hyp_set_error("%s: header: bad JSON at byte %d: %s", label, jerr.position, jerr.text); return NULL; }
    WeightSet *ws = NULL;
    StRange *rg = NULL;
    if (!json_is_object(root)) { hyp_set_error("%s: header: not a JSON object", label); goto fail; }
    size_t nt = json_object_size(root);
    rg = hyp_calloc(nt + 1, sizeof *rg);
    int nr = 0;
    const char *key;
    json_t *val;
    // Pass 1: validate every entry and its byte range.
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) { hyp_set_error("%s: __metadata__: not an object", label); goto fail; }
            const char *mk; json_t *mv;
            json_object_foreach(val, mk, mv)
                if (!json_is_string(mv)) { hyp_set_error("%s: __metadata__: %s: value is not a string", label, mk); goto fail; }
            continue;
        }
        if (!*key) { hyp_set_error("%s: header: empty tensor name", label); goto fail; }
        if (!json_is_object(val)) { hyp_set_error("%s: %s: entry is not an object", label, key); goto fail; }
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"), *jo = json_object_get(val, "data_offsets");
        WDType dt;
        if (!json_is_string(jd)) { hyp_set_error("%s: %s: missing or non-string dtype", label, key); goto fail; }
        if (parse_dtype(json_string_value(jd), &dt)) { hyp_set_error("%s: %s: unsupported dtype %s", label, key, json_string_value(jd)); goto fail; }
        if (!json_is_array(js)) { hyp_set_error("%s: %s: missing or non-array shape", label, key); goto fail; }
        if (json_array_size(js) > HYP_MAX_DIMS) { hyp_set_error("%s: %s: rank %zu (at most %d supported)", label, key, json_array_size(js), HYP_MAX_DIMS); goto fail; }
        size_t numel = 1;
        for (size_t i = 0; i < json_array_size(js); i++) {
            json_t *d = json_array_get(js, i);
            if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > INT32_MAX) {
                hyp_set_error("%s: %s: shape[%zu] is not an integer in [0, 2^31)", label, key, i); goto fail;
            }
            if (__builtin_mul_overflow(numel, (size_t)json_integer_value(d), &numel)) { hyp_set_error("%s: %s: shape overflows", label, key); goto fail; }
        }
        if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) || !json_is_integer(json_array_get(jo, 1))) {
            hyp_set_error("%s: %s: data_offsets must be [begin, end]", label, key); goto fail;
        }
        int64_t b = json_integer_value(json_array_get(jo, 0)), e = json_integer_value(json_array_get(jo, 1));
        if (b < 0 || e < b || (uint64_t)e > dlen) {
            hyp_set_error("%s: %s: data_offsets [%lld, %lld] outside the data section (%zu bytes)%s", label, key,
                          (long long)b, (long long)e, dlen, (uint64_t)e > dlen ? ": truncated file?" : ""); goto fail;
        }
        size_t nbytes;
        if (__builtin_mul_overflow(numel, DT[dt].size, &nbytes) || nbytes != (size_t)(e - b)) {
            hyp_set_error("%s: %s: data_offsets span %lld bytes but shape x %s needs %zu", label, key,
                          (long long)(e - b), DT[dt].name, numel * DT[dt].size); goto fail;
        }
        rg[nr++] = (StRange){key, b, e};
    }
    // Pass 2: ranges must tile the data section exactly (no overlap, no gap, nothing after).
    qsort(rg, (size_t)nr, sizeof *rg, cmp_range);
    int64_t at = 0;
    for (int i = 0; i < nr; i++) {
        if (rg[i].begin != at) {
            if (rg[i].begin < at) hyp_set_error("%s: %s: data overlaps tensor %s", label, rg[i].name, rg[i - 1].name);
            else hyp_set_error("%s: %s: %lld unused bytes before its data", label, rg[i].name, (long long)(rg[i].begin - at));
            goto fail;
        }
        at = rg[i].end;
    }
    if ((uint64_t)at != dlen) { hyp_set_error("%s: %llu trailing bytes after the last tensor", label, (unsigned long long)(dlen - (uint64_t)at)); goto fail; }
    // Pass 3: convert, in header order.
    ws = weights_new();
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) { ws->metadata_json = json_dumps(val, JSON_COMPACT); continue; }
        WDType dt = WDT_F32;
        parse_dtype(json_string_value(json_object_get(val, "dtype")), &dt);
        json_t *js = json_object_get(val, "shape");
        int nd = (int)json_array_size(js), sh[HYP_MAX_DIMS] = {0};
        size_t numel = 1;
        for (int i = 0; i < nd; i++) { sh[i] = (int)json_integer_value(json_array_get(js, (size_t)i)); numel *= (size_t)sh[i]; }
        int64_t b = json_integer_value(json_array_get(json_object_get(val, "data_offsets"), 0));
        float *f = weights_alloc(numel);
        weights_convert(f, data + b, dt, numel);
        if (!weights_add(ws, key, dt, nd, sh, f)) { hyp_set_error("%s: %s: duplicate tensor name", label, key); goto fail; }
    }
    free(rg);
    json_decref(root);
    return ws;
fail:
    free(rg);
    json_decref(root);
    weights_free(ws);
    return NULL;
}

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

int safetensors_write(const WeightSet *ws, const char *path, const char *const *meta) {
    json_t *root = json_object(), *md = json_object();
    json_object_set_new(md, "format", json_string("pt"));
    for (int i = 0; meta && meta[i] && meta[i + 1]; i += 2) json_object_set_new(md, meta[i], json_string(meta[i + 1]));
    json_object_set_new(root, "__metadata__", md);
    uint64_t off = 0;
    for (int i = 0; i < ws->n; i++) {
        const NamedTensor *t = &ws->v[i];
        json_t *e = json_object(), *sh = json_array(), *of = json_array();
        json_object_set_new(e, "dtype", json_string("F32"));
        for (int d = 0; d < t->ndim; d++) json_array_append_new(sh, json_integer(t->shape[d]));
        json_object_set_new(e, "shape", sh);
        json_array_append_new(of, json_integer((json_int_t)off));
        off += t->numel * 4;
        json_array_append_new(of, json_integer((json_int_t)off));
        json_object_set_new(e, "data_offsets", of);
        json_object_set_new(root, t->name, e);
    }
    char *hdr = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!hdr) { hyp_set_error("%s: cannot encode the safetensors header", path); return -1; }
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
    size_t plen = strlen(path) + 5;
    char *tmp = hyp_malloc(plen);
    snprintf(tmp, plen, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int rc = -1;
    if (!f) { hyp_set_error("%s: cannot create: %s", tmp, strerror(errno)); goto out; }
    uint64_t n8 = padded;
    int bad = write_all(f, &n8, 8) || write_all(f, hdr, hl);
    for (size_t i = hl; i < padded && !bad; i++) bad = fputc(' ', f) == EOF;
    for (int i = 0; i < ws->n && !bad; i++) bad = write_all(f, ws->v[i].data, ws->v[i].numel * 4);
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad) { hyp_set_error("%s: write failed: %s", tmp, strerror(errno)); unlink(tmp); goto out; }
    if (rename(tmp, path)) { hyp_set_error("%s: cannot rename %s: %s", path, tmp, strerror(errno)); unlink(tmp); goto out; }
    rc = 0;
out:
    free(tmp);
    free(hdr);
    return rc;
}
#else
WeightSet *safetensors_read_mem(const void *buf, size_t len, const char *label) {
    (void)buf; (void)len;
    hyp_set_error("%s: safetensors needs jansson (rebuild with libjansson-dev installed)", label);
    return NULL;
}
int safetensors_write(const WeightSet *ws, const char *path, const char *const *meta) {
    (void)ws; (void)meta;
    hyp_set_error("%s: safetensors needs jansson (rebuild with libjansson-dev installed)", path);
    return -1;
}
#endif
