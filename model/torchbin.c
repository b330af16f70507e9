// torchbin.c: a small strict reader for what `torch.save(state_dict)` writes.
//
// The file is a zip archive of stored (uncompressed) entries:
//   <prefix>/data.pkl       the pickled (Ordered)dict  name -> tensor
//   <prefix>/data/<key>     one raw little-endian storage per key
//   <prefix>/byteorder      "little" (absent in older files)
//   <prefix>/version, .format_version, .storage_alignment, .data/serialization_id  (ignored)
// The pickle runs on a VM that knows only the opcodes torch emits and only the globals a
// state dict needs (collections.OrderedDict, torch._utils._rebuild_tensor_v2 /
// _rebuild_parameter, torch.<T>Storage); anything else is an error, never executed.
// Memory is bounded by the input: objects <= pickle bytes, converted tensors <= 8x the file.
#include "model/weights.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

// ------------------------------------------------------------------ little helpers
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static uint32_t crc_table[256];
static void crc_init(void) {
    if (crc_table[1]) return;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}
static uint32_t crc32_of(const uint8_t *p, size_t n) {
    crc_init();
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

// ------------------------------------------------------------------ zip
typedef struct {
    char *name;
    uint64_t off, size;     // data offset and (stored) size
    uint32_t crc;
    uint16_t method, flags;
    bool crc_ok;            // verified once
} ZipEntry;

typedef struct {
    const uint8_t *p;
    size_t len;
    const char *label;
    ZipEntry *e;
    size_t n;
    unsigned flags;
} Zip;

static int cmp_entry(const void *a, const void *b) { return strcmp(((const ZipEntry *)a)->name, ((const ZipEntry *)b)->name); }

static void zip_free(Zip *z) {
    for (size_t i = 0; i < z->n; i++) free(z->e[i].name);
    free(z->e);
}

static int zip_open(Zip *z) {
    const uint8_t *p = z->p;
    size_t len = z->len;
    if (len < 22) { hyp_set_error("%s: too short for a zip archive (truncated?)", z->label); return -1; }
    size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0, eocd = SIZE_MAX;
    for (size_t i = len - 22 + 1; i-- > lo;)
        if (rd32(p + i) == 0x06054b50 && i + 22 + rd16(p + i + 20) == len) { eocd = i; break; }
    if (eocd == SIZE_MAX) { hyp_set_error("%s: no zip end-of-central-directory record (truncated or not a torch.save file)", z->label); return -1; }
    uint64_t n = rd16(p + eocd + 10), cd_size = rd32(p + eocd + 12), cd_off = rd32(p + eocd + 16);
    if (rd16(p + eocd + 4) != 0 || rd16(p + eocd + 6) != 0) { hyp_set_error("%s: multi-disk zip archives are not supported", z->label); return -1; }
    if (eocd >= 20 && rd32(p + eocd - 20) == 0x07064b50) {      // zip64 locator
        uint64_t z64 = rd64(p + eocd - 20 + 8);
        if (z64 > eocd - 20 || eocd - 20 - z64 < 56 || rd32(p + z64) != 0x06064b50) {
            hyp_set_error("%s: bad zip64 end-of-central-directory record", z->label); return -1;
        }
        n = rd64(p + z64 + 32);
        cd_size = rd64(p + z64 + 40);
        cd_off = rd64(p + z64 + 48);
    }
    if (cd_off > len || cd_size > len - cd_off) { hyp_set_error("%s: zip central directory outside the file (truncated?)", z->label); return -1; }
    if (n > cd_size / 46) { hyp_set_error("%s: zip central directory too small for %llu entries", z->label, (unsigned long long)n); return -1; }
    z->e = hyp_calloc(n ? n : 1, sizeof(ZipEntry));
    const uint8_t *c = p + cd_off, *end = p + cd_off + cd_size;
    for (uint64_t i = 0; i < n; i++) {
        if (end - c < 46 || rd32(c) != 0x02014b50) { hyp_set_error("%s: zip central directory entry %llu is corrupt", z->label, (unsigned long long)i); return -1; }
        uint16_t flags = rd16(c + 8), method = rd16(c + 10), nl = rd16(c + 28), xl = rd16(c + 30), cl = rd16(c + 32);
        uint64_t csize = rd32(c + 20), usize = rd32(c + 24), lho = rd32(c + 42);
        if ((size_t)(end - c) < 46u + nl + xl + cl) { hyp_set_error("%s: zip central directory entry %llu is truncated", z->label, (unsigned long long)i); return -1; }
        if (memchr(c + 46, 0, nl)) { hyp_set_error("%s: zip entry %llu: NUL byte in its name", z->label, (unsigned long long)i); return -1; }
        ZipEntry *e = &z->e[z->n++];
        e->name = hyp_malloc((size_t)nl + 1);
        memcpy(e->name, c + 46, nl);
        e->name[nl] = 0;
        // zip64 extra field: the 0xFFFFFFFF fields, in order usize, csize, offset
        for (const uint8_t *x = c + 46 + nl, *xe = x + xl; xe - x >= 4;) {
            uint16_t id = rd16(x), sz = rd16(x + 2);
            if (xe - x - 4 < sz) break;
            if (id == 1) {
                const uint8_t *q = x + 4, *qe = q + sz;
                if (usize == 0xFFFFFFFFu) { if (qe - q < 8) break; usize = rd64(q); q += 8; }
                if (csize == 0xFFFFFFFFu) { if (qe - q < 8) break; csize = rd64(q); q += 8; }
                if (lho == 0xFFFFFFFFu) { if (qe - q < 8) break; lho = rd64(q); q += 8; }
            }
            x += 4 + sz;
        }
        e->method = method;
        e->flags = flags;
        e->crc = rd32(c + 16);
        e->size = csize;
        if (lho > len || len - lho < 30 || rd32(p + lho) != 0x04034b50) {
            hyp_set_error("%s: %s: bad zip local header (truncated or corrupt file)", z->label, e->name); return -1;
        }
        uint64_t doff = lho + 30 + rd16(p + lho + 26) + rd16(p + lho + 28);
        if (doff > len || csize > len - doff) { hyp_set_error("%s: %s: entry data beyond the end of the file (truncated?)", z->label, e->name); return -1; }
        if (method == 0 && csize != usize) { hyp_set_error("%s: %s: stored entry with different sizes", z->label, e->name); return -1; }
        e->off = doff;
        c += 46 + nl + xl + cl;
    }
    qsort(z->e, z->n, sizeof(ZipEntry), cmp_entry);
    for (size_t i = 1; i < z->n; i++)
        if (!strcmp(z->e[i].name, z->e[i - 1].name)) { hyp_set_error("%s: %s: duplicate zip entry", z->label, z->e[i].name); return -1; }
    return 0;
}

static ZipEntry *zip_find(Zip *z, const char *name) {
    ZipEntry key = {.name = (char *)name};
    return bsearch(&key, z->e, z->n, sizeof(ZipEntry), cmp_entry);
}

// Bytes of a usable (stored, CRC-checked) entry, or NULL + error.
static const uint8_t *zip_data(Zip *z, ZipEntry *e) {
    if (e->flags & 1) { hyp_set_error("%s: %s: encrypted zip entry", z->label, e->name); return NULL; }
    if (e->method != 0) {
        hyp_set_error("%s: %s: compressed zip entry (method %u): only stored entries, as torch.save writes them, are supported",
                      z->label, e->name, e->method);
        return NULL;
    }
    if (!e->crc_ok && !(z->flags & TORCHBIN_NO_CRC)) {
        if (crc32_of(z->p + e->off, e->size) != e->crc) { hyp_set_error("%s: %s: CRC-32 mismatch (corrupt file)", z->label, e->name); return NULL; }
        e->crc_ok = true;
    }
    return z->p + e->off;
}

// ------------------------------------------------------------------ pickle objects
typedef enum { PV_NONE, PV_BOOL, PV_INT, PV_FLOAT, PV_STR, PV_TUPLE, PV_LIST, PV_DICT, PV_GLOBAL, PV_STORAGE, PV_TENSOR } PType;
typedef enum {
    G_ODICT, G_REBUILD_V2, G_REBUILD_PARAM,
    G_FLOAT_ST, G_HALF_ST, G_BF16_ST, G_DOUBLE_ST, G_LONG_ST, G_INT_ST, G_SHORT_ST, G_CHAR_ST, G_BYTE_ST, G_BOOL_ST, G_UNTYPED_ST,
} GlobalId;
static const struct { const char *mod, *name; GlobalId id; WDType dt; } GLOBALS[] = {
    {"collections", "OrderedDict", G_ODICT, 0},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, 0},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM, 0},
    {"torch", "FloatStorage", G_FLOAT_ST, WDT_F32},
    {"torch", "HalfStorage", G_HALF_ST, WDT_F16},
    {"torch", "BFloat16Storage", G_BF16_ST, WDT_BF16},
    {"torch", "DoubleStorage", G_DOUBLE_ST, WDT_F64},
    {"torch", "LongStorage", G_LONG_ST, WDT_I64},
    {"torch", "IntStorage", G_INT_ST, WDT_I32},
    {"torch", "ShortStorage", G_SHORT_ST, WDT_I16},
    {"torch", "CharStorage", G_CHAR_ST, WDT_I8},
    {"torch", "ByteStorage", G_BYTE_ST, WDT_U8},
    {"torch", "BoolStorage", G_BOOL_ST, WDT_BOOL},
    {"torch", "UntypedStorage", G_UNTYPED_ST, WDT_U8},
    {"torch.storage", "UntypedStorage", G_UNTYPED_ST, WDT_U8},
};
#define N_GLOBALS (sizeof GLOBALS / sizeof GLOBALS[0])
static bool is_storage_global(int g) { return g >= G_FLOAT_ST; }

typedef struct PObj PObj;
struct PObj {
    PType t;
    union {
        bool b;
        int64_t i;
        double f;
        struct { char *s; size_t len; } str;
        struct { PObj **v; size_t n, cap; } seq;      // tuple, list; dict: key, value, key, value...
        int global;                                  // index into GLOBALS
        struct { ZipEntry *entry; WDType dt; size_t numel; } st;
        struct {
            PObj *storage;
            int64_t offset;
            int ndim;
            int64_t size[HYP_MAX_DIMS], stride[HYP_MAX_DIMS];
            int first;                               // index in the result of the first name, -1
        } tn;
    } u;
};

typedef struct {
    Zip *zip;
    const char *label, *prefix;
    const uint8_t *pk;                               // the pickle
    size_t pkn, pos, op_pos;
    PObj **objs; size_t nobj, capobj;                // everything allocated (freed at the end)
    PObj **stack; size_t sp, capstack;
    size_t *marks; size_t nmarks, capmarks;
    PObj **memo; size_t capmemo, nmemo;
    size_t nitems;                                   // container items, all containers
} VM;

// Hostile-pickle limits (a BERT-base state dict needs ~3k objects; these allow ~250k tensors):
// they bound the VM's memory to a few hundred MB whatever the input.
#define PK_MAX_OBJECTS ((size_t)4 << 20)
#define PK_MAX_STACK ((size_t)4 << 20)
#define PK_MAX_ITEMS ((size_t)16 << 20)

static PObj *newobj(VM *m, PType t) {
    if (m->nobj == m->capobj) { m->capobj = m->capobj ? 2 * m->capobj : 256; m->objs = hyp_realloc(m->objs, m->capobj * sizeof(PObj *)); }
    PObj *o = hyp_calloc(1, sizeof(PObj));
    o->t = t;
    m->objs[m->nobj++] = o;
    return o;
}
static void vm_free(VM *m) {
    for (size_t i = 0; i < m->nobj; i++) {
        PObj *o = m->objs[i];
        if (o->t == PV_STR) free(o->u.str.s);
        if (o->t == PV_TUPLE || o->t == PV_LIST || o->t == PV_DICT) free(o->u.seq.v);
        free(o);
    }
    free(m->objs);
    free(m->stack);
    free(m->marks);
    free(m->memo);
}

static void seq_push(VM *m, PObj *o, PObj *x) {
    m->nitems++;
    if (o->u.seq.n == o->u.seq.cap) { o->u.seq.cap = o->u.seq.cap ? 2 * o->u.seq.cap : 4; o->u.seq.v = hyp_realloc(o->u.seq.v, o->u.seq.cap * sizeof(PObj *)); }
    o->u.seq.v[o->u.seq.n++] = x;
}

#define PK_ERR(...) do { pk_err(m, __VA_ARGS__); return -1; } while (0)
__attribute__((format(printf, 2, 3)))
static void pk_err(VM *m, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hyp_set_error("%s: %s/data.pkl: byte %zu: %s", m->label, m->prefix, m->op_pos, msg);
}

static int push(VM *m, PObj *o) {
    if (m->sp == m->capstack) { m->capstack = m->capstack ? 2 * m->capstack : 64; m->stack = hyp_realloc(m->stack, m->capstack * sizeof(PObj *)); }
    m->stack[m->sp++] = o;
    return 0;
}
static PObj *pop(VM *m) {
    size_t floor = m->nmarks ? m->marks[m->nmarks - 1] : 0;
    if (m->sp <= floor) return NULL;
    return m->stack[--m->sp];
}
static PObj *top(VM *m) {
    size_t floor = m->nmarks ? m->marks[m->nmarks - 1] : 0;
    return m->sp > floor ? m->stack[m->sp - 1] : NULL;
}
// Pop back to the last MARK; returns the index of the first item above it (items stay in
// m->stack[k .. sp) until the caller sets sp = k).
static int pop_mark(VM *m, size_t *k) {
    if (!m->nmarks) return -1;
    *k = m->marks[--m->nmarks];
    return 0;
}
static const uint8_t *take(VM *m, size_t n) {
    if (m->pkn - m->pos < n) return NULL;
    const uint8_t *p = m->pk + m->pos;
    m->pos += n;
    return p;
}
static int memo_put(VM *m, uint64_t idx, PObj *o) {
    if (!o) PK_ERR("memo store on an empty stack");
    if (idx > 2 * m->nobj + 1024) PK_ERR("memo index %llu out of range", (unsigned long long)idx);
    if (idx >= m->capmemo) {
        size_t nc = m->capmemo ? m->capmemo : 64;
        while (nc <= idx) nc *= 2;
        m->memo = hyp_realloc(m->memo, nc * sizeof(PObj *));
        memset(m->memo + m->capmemo, 0, (nc - m->capmemo) * sizeof(PObj *));
        m->capmemo = nc;
    }
    m->memo[idx] = o;
    if (idx >= m->nmemo) m->nmemo = idx + 1;
    return 0;
}
static int memo_get(VM *m, uint64_t idx) {
    if (idx >= m->capmemo || !m->memo[idx]) PK_ERR("memo index %llu was never stored", (unsigned long long)idx);
    return push(m, m->memo[idx]);
}

static const char *type_name(PType t) {
    static const char *n[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict", "global", "storage", "tensor"};
    return n[t];
}

static int as_int(VM *m, PObj *o, const char *what, int64_t *out) {
    if (!o || (o->t != PV_INT && o->t != PV_BOOL)) { pk_err(m, "%s: expected an int, got %s", what, o ? type_name(o->t) : "nothing"); return -1; }
    *out = o->t == PV_INT ? o->u.i : o->u.b;
    return 0;
}

// persistent_load(('storage', StorageType, key, location, numel))
static int do_persid(VM *m, PObj *pid) {
    if (!pid || pid->t != PV_TUPLE || pid->u.seq.n != 5) PK_ERR("persistent id is not a 5-tuple ('storage', type, key, location, numel)");
    PObj **v = pid->u.seq.v;
    if (v[0]->t != PV_STR || strcmp(v[0]->u.str.s, "storage")) PK_ERR("persistent id does not start with 'storage'");
    if (v[1]->t != PV_GLOBAL || !is_storage_global(GLOBALS[v[1]->u.global].id)) PK_ERR("persistent id: not a storage type");
    if (v[2]->t != PV_STR || !v[2]->u.str.len || v[2]->u.str.len > 256 || strchr(v[2]->u.str.s, '/')) PK_ERR("persistent id: bad storage key");
    if (v[3]->t != PV_STR) PK_ERR("persistent id: location is not a string");
    int64_t numel;
    if (as_int(m, v[4], "storage numel", &numel)) return -1;
    WDType dt = GLOBALS[v[1]->u.global].dt;
    char name[600];
    snprintf(name, sizeof name, "%s/data/%s", m->prefix, v[2]->u.str.s);
    ZipEntry *e = zip_find(m->zip, name);
    if (!e) PK_ERR("storage %s: no zip entry %s (truncated archive?)", v[2]->u.str.s, name);
    size_t es = wdtype_size(dt);
    if (numel < 0 || (uint64_t)numel > e->size / es || (uint64_t)numel * es != e->size)
        PK_ERR("storage %s: %lld elements of %s do not match its %llu bytes", v[2]->u.str.s, (long long)numel, wdtype_name(dt), (unsigned long long)e->size);
    if (!zip_data(m->zip, e)) return -1;
    PObj *o = newobj(m, PV_STORAGE);
    o->u.st.entry = e;
    o->u.st.dt = dt;
    o->u.st.numel = (size_t)numel;
    return push(m, o);
}

static int int_tuple(VM *m, PObj *o, const char *what, int64_t *out, int *n) {
    if (!o || o->t != PV_TUPLE) PK_ERR("%s is not a tuple", what);
    if (o->u.seq.n > HYP_MAX_DIMS) PK_ERR("%s has %zu dims (at most %d supported)", what, o->u.seq.n, HYP_MAX_DIMS);
    *n = (int)o->u.seq.n;
    for (int i = 0; i < *n; i++) if (as_int(m, o->u.seq.v[i], what, &out[i])) return -1;
    return 0;
}

static int do_reduce(VM *m) {
    PObj *args = pop(m), *fn = pop(m);
    if (!args || !fn) PK_ERR("REDUCE on a short stack");
    if (fn->t != PV_GLOBAL) PK_ERR("REDUCE: calling a %s", type_name(fn->t));
    if (args->t != PV_TUPLE) PK_ERR("REDUCE: arguments are not a tuple");
    PObj **a = args->u.seq.v;
    size_t na = args->u.seq.n;
    switch (GLOBALS[fn->u.global].id) {
    case G_ODICT:
        if (na != 0) PK_ERR("OrderedDict called with arguments");
        return push(m, newobj(m, PV_DICT));
    case G_REBUILD_PARAM:
        if (na != 3 || a[0]->t != PV_TENSOR) PK_ERR("_rebuild_parameter: expected (tensor, requires_grad, hooks)");
        return push(m, a[0]);
    case G_REBUILD_V2: {
        if (na != 6 && na != 7) PK_ERR("_rebuild_tensor_v2: %zu arguments (expected 6 or 7)", na);
        if (a[0]->t != PV_STORAGE) PK_ERR("_rebuild_tensor_v2: first argument is not a storage");
        if (a[5]->t != PV_DICT || a[5]->u.seq.n) PK_ERR("_rebuild_tensor_v2: tensor with backward hooks");
        if (na == 7 && a[6]->t != PV_NONE && a[6]->t != PV_DICT) PK_ERR("_rebuild_tensor_v2: bad metadata");
        PObj *o = newobj(m, PV_TENSOR);
        o->u.tn.storage = a[0];
        o->u.tn.first = -1;
        int ns, nst;
        if (as_int(m, a[1], "storage offset", &o->u.tn.offset)) return -1;
        if (int_tuple(m, a[2], "size", o->u.tn.size, &ns) || int_tuple(m, a[3], "stride", o->u.tn.stride, &nst)) return -1;
        if (ns != nst) PK_ERR("tensor size has %d dims, stride %d", ns, nst);
        o->u.tn.ndim = ns;
        // bounds: offset + sum((size_i - 1) * stride_i) < storage numel, or an empty tensor
        uint64_t numel = 1, last = (uint64_t)o->u.tn.offset;
        if (o->u.tn.offset < 0) PK_ERR("negative storage offset");
        for (int i = 0; i < ns; i++) {
            int64_t s = o->u.tn.size[i], st = o->u.tn.stride[i];
            if (s < 0 || s > INT32_MAX || st < 0 || st > (int64_t)1 << 48) PK_ERR("tensor size/stride out of range");
            if (s && numel > ((uint64_t)1 << 48) / (uint64_t)s) PK_ERR("tensor too large");
            numel *= (uint64_t)s;
            if (s > 0) last += (uint64_t)(s - 1) * (uint64_t)st;
            if (last > (uint64_t)1 << 62) PK_ERR("tensor view out of range");
        }
        if (numel > 0 && last >= a[0]->u.st.numel)
            PK_ERR("tensor view (offset %lld) reaches element %llu of a storage of %zu", (long long)o->u.tn.offset,
                   (unsigned long long)last, a[0]->u.st.numel);
        return push(m, o);
    }
    default:
        PK_ERR("REDUCE: %s.%s cannot be called", GLOBALS[fn->u.global].mod, GLOBALS[fn->u.global].name);
    }
}

static int read_line(VM *m, char *out, size_t cap) {
    const uint8_t *nl = memchr(m->pk + m->pos, '\n', m->pkn - m->pos);
    if (!nl) PK_ERR("unterminated GLOBAL");
    size_t n = (size_t)(nl - (m->pk + m->pos));
    if (n >= cap) n = cap - 1;                        // long names are refused below anyway
    memcpy(out, m->pk + m->pos, n);
    out[n] = 0;
    for (size_t i = 0; i < n; i++) if (out[i] < 0x20 || out[i] > 0x7e) out[i] = '?';
    m->pos = (size_t)(nl - m->pk) + 1;
    return 0;
}

static int do_global(VM *m, const char *mod, const char *name) {
    for (size_t i = 0; i < N_GLOBALS; i++)
        if (!strcmp(GLOBALS[i].mod, mod) && !strcmp(GLOBALS[i].name, name)) {
            PObj *o = newobj(m, PV_GLOBAL);
            o->u.global = (int)i;
            return push(m, o);
        }
    PK_ERR("unsupported global %s.%s in data.pkl (only a plain state dict of tensors is accepted)", mod, name);
}

static int new_str(VM *m, uint64_t n) {
    const uint8_t *s = take(m, n);
    if (!s) PK_ERR("string runs past the end of data.pkl");
    PObj *o = newobj(m, PV_STR);
    o->u.str.s = hyp_malloc(n + 1);
    memcpy(o->u.str.s, s, n);
    o->u.str.s[n] = 0;
    o->u.str.len = n;
    return push(m, o);
}

// Run the pickle; *result gets the STOP value. Long by design: one flat switch over the
// opcodes, each case a few lines (splitting it would only scatter the opcode table).
static int vm_run(VM *m, PObj **result) {
    for (;;) {
        m->op_pos = m->pos;
        if (m->nobj > PK_MAX_OBJECTS || m->sp > PK_MAX_STACK || m->nitems > PK_MAX_ITEMS)
            PK_ERR("more objects than any state dict needs (hostile file?)");
        const uint8_t *op = take(m, 1);
        if (!op) PK_ERR("data.pkl ends without STOP (truncated?)");
        const uint8_t *a;
        PObj *o, *x;
        size_t k;
        switch (*op) {
        case 0x80:                                                    // PROTO
            if (!(a = take(m, 1))) PK_ERR("truncated");
            if (*a > 5) PK_ERR("pickle protocol %d", *a);
            break;
        case 0x95: if (!take(m, 8)) PK_ERR("truncated"); break;      // FRAME (transparent)
        case '.':                                                     // STOP
            if (!(*result = pop(m))) PK_ERR("STOP on an empty stack");
            return 0;
        case '(':                                                     // MARK
            if (m->nmarks == m->capmarks) { m->capmarks = m->capmarks ? 2 * m->capmarks : 16; m->marks = hyp_realloc(m->marks, m->capmarks * sizeof(size_t)); }
            m->marks[m->nmarks++] = m->sp;
            break;
        case '}': push(m, newobj(m, PV_DICT)); break;                // EMPTY_DICT
        case ']': push(m, newobj(m, PV_LIST)); break;                // EMPTY_LIST
        case ')': push(m, newobj(m, PV_TUPLE)); break;               // EMPTY_TUPLE
        case 'N': push(m, newobj(m, PV_NONE)); break;
        case 0x88: case 0x89: o = newobj(m, PV_BOOL); o->u.b = *op == 0x88; push(m, o); break;
        case 't': case 'l': case 'd':                                 // TUPLE, LIST, DICT (from MARK)
            if (pop_mark(m, &k)) PK_ERR("TUPLE/LIST/DICT without MARK");
            o = newobj(m, *op == 't' ? PV_TUPLE : *op == 'l' ? PV_LIST : PV_DICT);
            if (*op == 'd' && (m->sp - k) % 2) PK_ERR("DICT with an odd number of items");
            for (size_t i = k; i < m->sp; i++) seq_push(m, o, m->stack[i]);
            m->sp = k;
            push(m, o);
            break;
        case 0x85: case 0x86: case 0x87: {                            // TUPLE1..3
            int n = *op - 0x84;
            o = newobj(m, PV_TUPLE);
            PObj *it[3];
            for (int i = n - 1; i >= 0; i--) if (!(it[i] = pop(m))) PK_ERR("TUPLE%d on a short stack", n);
            for (int i = 0; i < n; i++) seq_push(m, o, it[i]);
            push(m, o);
            break;
        }
        case 'X': if (!(a = take(m, 4))) PK_ERR("truncated"); if (new_str(m, rd32(a))) return -1; break;
        case 0x8c: if (!(a = take(m, 1))) PK_ERR("truncated"); if (new_str(m, *a)) return -1; break;
        case 0x8d: if (!(a = take(m, 8))) PK_ERR("truncated"); if (new_str(m, rd64(a))) return -1; break;
        case 'J': if (!(a = take(m, 4))) PK_ERR("truncated"); o = newobj(m, PV_INT); o->u.i = (int32_t)rd32(a); push(m, o); break;
        case 'K': if (!(a = take(m, 1))) PK_ERR("truncated"); o = newobj(m, PV_INT); o->u.i = *a; push(m, o); break;
        case 'M': if (!(a = take(m, 2))) PK_ERR("truncated"); o = newobj(m, PV_INT); o->u.i = rd16(a); push(m, o); break;
        case 0x8a: {                                                  // LONG1
            if (!(a = take(m, 1))) PK_ERR("truncated");
            unsigned n = *a;
            if (n > 8) PK_ERR("integer of %u bytes is too large", n);
            const uint8_t *b = take(m, n);
            if (!b) PK_ERR("truncated");
            uint64_t v = 0;
            for (unsigned i = 0; i < n; i++) v |= (uint64_t)b[i] << (8 * i);
            if (n && n < 8 && (b[n - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * n);   // sign-extend
            o = newobj(m, PV_INT);
            memcpy(&o->u.i, &v, 8);
            push(m, o);
            break;
        }
        case 'G': {                                                   // BINFLOAT (big-endian)
            if (!(a = take(m, 8))) PK_ERR("truncated");
            uint64_t v = 0;
            for (int i = 0; i < 8; i++) v = v << 8 | a[i];
            o = newobj(m, PV_FLOAT);
            memcpy(&o->u.f, &v, 8);
            push(m, o);
            break;
        }
        case 'c': {                                                   // GLOBAL "mod\nname\n"
            char mod[128], name[128];
            if (read_line(m, mod, sizeof mod) || read_line(m, name, sizeof name)) return -1;
            if (do_global(m, mod, name)) return -1;
            break;
        }
        case 0x93: {                                                  // STACK_GLOBAL
            PObj *nm = pop(m), *md = pop(m);
            if (!nm || !md || nm->t != PV_STR || md->t != PV_STR) PK_ERR("STACK_GLOBAL needs two strings");
            char mod[128], name[128];
            snprintf(mod, sizeof mod, "%.*s", (int)(md->u.str.len < 120 ? md->u.str.len : 120), md->u.str.s);
            snprintf(name, sizeof name, "%.*s", (int)(nm->u.str.len < 120 ? nm->u.str.len : 120), nm->u.str.s);
            for (char *p = mod; *p; p++) if (*p < 0x20 || *p > 0x7e) *p = '?';
            for (char *p = name; *p; p++) if (*p < 0x20 || *p > 0x7e) *p = '?';
            if (do_global(m, mod, name)) return -1;
            break;
        }
        case 'Q': if (do_persid(m, pop(m))) return -1; break;        // BINPERSID
        case 'R': if (do_reduce(m)) return -1; break;                 // REDUCE
        case 'b': {                                                   // BUILD
            PObj *state = pop(m);
            o = top(m);
            if (!state || !o) PK_ERR("BUILD on a short stack");
            if (o->t != PV_DICT) PK_ERR("BUILD on a %s (only OrderedDict state is accepted)", type_name(o->t));
            if (state->t != PV_DICT && state->t != PV_NONE && state->t != PV_TUPLE) PK_ERR("BUILD with a %s state", type_name(state->t));
            break;                                                    // the _metadata state is ignored
        }
        case 's': {                                                   // SETITEM
            PObj *v = pop(m), *kk = pop(m);
            o = top(m);
            if (!v || !kk || !o) PK_ERR("SETITEM on a short stack");
            if (o->t != PV_DICT) PK_ERR("SETITEM on a %s", type_name(o->t));
            seq_push(m, o, kk);
            seq_push(m, o, v);
            break;
        }
        case 'u': {                                                   // SETITEMS
            if (pop_mark(m, &k)) PK_ERR("SETITEMS without MARK");
            if (k == 0 || (m->nmarks && m->marks[m->nmarks - 1] >= k)) PK_ERR("SETITEMS without a dict");
            o = m->stack[k - 1];
            if (o->t != PV_DICT) PK_ERR("SETITEMS on a %s", type_name(o->t));
            if ((m->sp - k) % 2) PK_ERR("SETITEMS with an odd number of items");
            for (size_t i = k; i < m->sp; i++) seq_push(m, o, m->stack[i]);
            m->sp = k;
            break;
        }
        case 'a': {                                                   // APPEND
            x = pop(m);
            o = top(m);
            if (!x || !o) PK_ERR("APPEND on a short stack");
            if (o->t != PV_LIST) PK_ERR("APPEND on a %s", type_name(o->t));
            seq_push(m, o, x);
            break;
        }
        case 'e': {                                                   // APPENDS
            if (pop_mark(m, &k)) PK_ERR("APPENDS without MARK");
            if (k == 0 || (m->nmarks && m->marks[m->nmarks - 1] >= k)) PK_ERR("APPENDS without a list");
            o = m->stack[k - 1];
            if (o->t != PV_LIST) PK_ERR("APPENDS on a %s", type_name(o->t));
            for (size_t i = k; i < m->sp; i++) seq_push(m, o, m->stack[i]);
            m->sp = k;
            break;
        }
        case 'q': if (!(a = take(m, 1))) PK_ERR("truncated"); if (memo_put(m, *a, top(m))) return -1; break;
        case 'r': if (!(a = take(m, 4))) PK_ERR("truncated"); if (memo_put(m, rd32(a), top(m))) return -1; break;
        case 0x94: if (memo_put(m, m->nmemo, top(m))) return -1; break;   // MEMOIZE
        case 'h': if (!(a = take(m, 1))) PK_ERR("truncated"); if (memo_get(m, *a)) return -1; break;
        case 'j': if (!(a = take(m, 4))) PK_ERR("truncated"); if (memo_get(m, rd32(a))) return -1; break;
        case '0': if (!pop(m)) PK_ERR("POP on an empty stack"); break;
        case '1': if (pop_mark(m, &k)) PK_ERR("POP_MARK without MARK"); m->sp = k; break;
        case '2': if (!(o = top(m))) PK_ERR("DUP on an empty stack"); push(m, o); break;
        default:
            PK_ERR("unsupported pickle opcode 0x%02x (only what torch.save writes for a state dict is accepted)", *op);
        }
    }
}

// ------------------------------------------------------------------ tensors out of views
typedef struct { PObj **slot; size_t cap; } ViewMap;     // dedup identical storage views

static uint64_t view_hash(const PObj *t) {
    uint64_t h = (uint64_t)(uintptr_t)t->u.tn.storage->u.st.entry * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t)t->u.tn.storage->u.st.dt + 0x1234567ull * (uint64_t)t->u.tn.offset;
    for (int i = 0; i < t->u.tn.ndim; i++) h = (h ^ (uint64_t)t->u.tn.size[i]) * 1099511628211ull ^ (uint64_t)t->u.tn.stride[i];
    return h ^ (uint64_t)t->u.tn.ndim;
}
static bool view_eq(const PObj *a, const PObj *b) {
    if (a->u.tn.storage->u.st.entry != b->u.tn.storage->u.st.entry || a->u.tn.storage->u.st.dt != b->u.tn.storage->u.st.dt ||
        a->u.tn.offset != b->u.tn.offset || a->u.tn.ndim != b->u.tn.ndim) return false;
    for (int i = 0; i < a->u.tn.ndim; i++)
        if (a->u.tn.size[i] != b->u.tn.size[i] || a->u.tn.stride[i] != b->u.tn.stride[i]) return false;
    return true;
}

static float *materialize(Zip *z, const PObj *t, size_t numel) {
    const PObj *st = t->u.tn.storage;
    WDType dt = st->u.st.dt;
    size_t es = wdtype_size(dt);
    const uint8_t *base = z->p + st->u.st.entry->off;
    float *f = weights_alloc(numel);
    if (!numel) return f;
    int nd = t->u.tn.ndim;
    // contiguous (row-major) ?
    bool contig = true;
    int64_t want = 1;
    for (int i = nd - 1; i >= 0; i--) {
        if (t->u.tn.size[i] != 1 && t->u.tn.stride[i] != want) contig = false;
        want *= t->u.tn.size[i];
    }
    if (contig) { weights_convert(f, base + (size_t)t->u.tn.offset * es, dt, numel); return f; }
    int64_t sz[HYP_MAX_DIMS] = {1, 1, 1, 1}, sd[HYP_MAX_DIMS] = {0, 0, 0, 0};
    for (int i = 0; i < nd; i++) { sz[HYP_MAX_DIMS - nd + i] = t->u.tn.size[i]; sd[HYP_MAX_DIMS - nd + i] = t->u.tn.stride[i]; }
    size_t k = 0;
    for (int64_t i0 = 0; i0 < sz[0]; i0++)
        for (int64_t i1 = 0; i1 < sz[1]; i1++)
            for (int64_t i2 = 0; i2 < sz[2]; i2++)
                for (int64_t i3 = 0; i3 < sz[3]; i3++) {
                    size_t e = (size_t)(t->u.tn.offset + i0 * sd[0] + i1 * sd[1] + i2 * sd[2] + i3 * sd[3]);
                    weights_convert(&f[k++], base + e * es, dt, 1);
                }
    return f;
}

WeightSet *torchbin_read_mem(const void *buf, size_t len, const char *label, unsigned flags) {
    Zip z = {.p = buf, .len = len, .label = label, .flags = flags};
    VM m = {.zip = &z, .label = label};
    WeightSet *ws = NULL;
    ViewMap vm = {0};
    char prefix[300] = "";
    if (zip_open(&z)) goto fail;
    // exactly one <prefix>/data.pkl
    ZipEntry *pkl = NULL;
    for (size_t i = 0; i < z.n; i++) {
        const char *nm = z.e[i].name, *sl = strchr(nm, '/');
        if (sl && !strcmp(sl, "/data.pkl")) {
            if (pkl) { hyp_set_error("%s: two data.pkl entries (%s, %s)", label, pkl->name, nm); goto fail; }
            pkl = &z.e[i];
        }
    }
    if (!pkl) { hyp_set_error("%s: no <archive>/data.pkl entry: not a torch.save file", label); goto fail; }
    size_t pl = strlen(pkl->name) - strlen("/data.pkl");
    if (pl >= sizeof prefix) { hyp_set_error("%s: archive name too long", label); goto fail; }
    memcpy(prefix, pkl->name, pl);
    prefix[pl] = 0;
    m.prefix = prefix;
    char bo[sizeof prefix + 16];
    snprintf(bo, sizeof bo, "%s/byteorder", prefix);
    ZipEntry *boe = zip_find(&z, bo);
    if (boe) {
        const uint8_t *b = zip_data(&z, boe);
        if (!b) goto fail;
        if (boe->size != 6 || memcmp(b, "little", 6)) { hyp_set_error("%s: %s: only little-endian archives are supported", label, bo); goto fail; }
    }
    if (!(m.pk = zip_data(&z, pkl))) goto fail;
    m.pkn = pkl->size;
    PObj *res = NULL;
    if (vm_run(&m, &res)) goto fail;
    if (res->t != PV_DICT) { hyp_set_error("%s: %s/data.pkl: top-level object is a %s, not a state dict", label, prefix, type_name(res->t)); goto fail; }
    // Convert. Memory cap: converted floats <= 8x the file (+1 MB).
    size_t budget = len * 8 + (1u << 20), used = 0;
    ws = weights_new();
    size_t np = res->u.seq.n / 2;
    vm.cap = 16;
    while (vm.cap < 2 * np + 2) vm.cap *= 2;
    vm.slot = hyp_calloc(vm.cap, sizeof(PObj *));
    for (size_t i = 0; i < np; i++) {
        PObj *k = res->u.seq.v[2 * i], *v = res->u.seq.v[2 * i + 1];
        if (k->t != PV_STR) { hyp_set_error("%s: %s/data.pkl: state dict key %zu is a %s, not a string", label, prefix, i, type_name(k->t)); goto fail; }
        const char *name = k->u.str.s;
        if (!k->u.str.len || strlen(name) != k->u.str.len) { hyp_set_error("%s: state dict key %zu: empty or NUL in the name", label, i); goto fail; }
        if (v->t != PV_TENSOR) {
            hyp_set_error("%s: %s: value is a %s, not a tensor (only a plain state dict is accepted, not a full training checkpoint)",
                          label, name, type_name(v->t));
            goto fail;
        }
        if (weights_index(ws, name) >= 0) { hyp_set_error("%s: %s: duplicate key in the state dict", label, name); goto fail; }
        if (v->u.tn.first >= 0) { weights_add_alias(ws, name, ws->v[v->u.tn.first].name); continue; }
        size_t h = view_hash(v) & (vm.cap - 1);
        PObj *same = NULL;
        for (; vm.slot[h]; h = (h + 1) & (vm.cap - 1))
            if (view_eq(vm.slot[h], v)) { same = vm.slot[h]; break; }
        if (same) { v->u.tn.first = same->u.tn.first; weights_add_alias(ws, name, ws->v[same->u.tn.first].name); continue; }
        size_t numel = 1;
        int sh[HYP_MAX_DIMS];
        for (int d = 0; d < v->u.tn.ndim; d++) { numel *= (size_t)v->u.tn.size[d]; sh[d] = (int)v->u.tn.size[d]; }
        if (numel > budget / 4 || (used += numel * 4) > budget) {
            hyp_set_error("%s: %s: tensor views add up to more than 8x the file size (hostile file?)", label, name);
            goto fail;
        }
        float *f = materialize(&z, v, numel);
        if (!weights_add(ws, name, v->u.tn.storage->u.st.dt, v->u.tn.ndim, sh, f)) goto fail;
        v->u.tn.first = ws->n - 1;
        vm.slot[h] = v;
    }
    free(vm.slot);
    vm_free(&m);
    zip_free(&z);
    return ws;
fail:
    free(vm.slot);
    vm_free(&m);
    zip_free(&z);
    weights_free(ws);
    return NULL;
}

WeightSet *torchbin_read(const char *path) {
    const uint8_t *p;
    size_t len;
    if (weights_map_file(path, &p, &len)) return NULL;
    WeightSet *ws = torchbin_read_mem(p, len, path, 0);
    weights_unmap_file(p, len);
    return ws;
}
