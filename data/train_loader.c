// train_loader.c: memory-mapped batch loader over a pretokenized shard (train_data.h).
#include "data/train_data.h"
#include "autograd/util.h"
#include "kernels/elementwise.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HYP_HAVE_JANSSON
#include <jansson.h>
#endif

enum { M_QUERIES, M_QOFF, M_ITEMS, M_IOFF, M_RITEMS, M_SCORES, M_N };
static const char *const MAP_NAMES[M_N] __attribute__((unused)) = {"queries.bin", "query_offsets.bin", "items.bin",
                                           "item_offsets.bin", "row_items.bin", "scores.bin"};

typedef struct {
    void *p;        // NULL for an empty file
    size_t size;
    char *path;
} Map;

struct Loader {
    char *dir;
    LoaderOptions o;
    LoaderInfo info;
    Map m[M_N];
    const int32_t *queries;    // (query_tokens)
    const uint64_t *qoff;      // (rows + 1)
    const int32_t *items;      // (item_tokens)
    const uint64_t *ioff;      // (items + 1)
    const uint64_t *ritems;    // (rows + 1)
    const float *scores;       // (items)
    uint64_t query_tokens, item_tokens;
    int stored_qmax, stored_dmax;
    uint32_t *usable;          // (rows_usable) shard rows with enough items
    uint32_t *perm;            // (rows_usable) this epoch's order: indices into usable
    uint64_t perm_epoch;
    bool perm_valid;
    uint32_t *neg;             // (num_negatives) scratch for Floyd's sampling
    LoaderState st;
};

LoaderOptions loader_options_default(void) {
    LoaderOptions o = {0};
    o.seed = 42;
    o.batch_size = 64;
    o.num_negatives = 7;
    o.rank = 0;
    o.world_size = 1;
    o.drop_last = true;
    return o;
}

void train_batch_free(TrainBatch *b) {
    if (!b) return;
    free(b->q_ids);
    free(b->q_mask);
    free(b->d_ids);
    free(b->d_mask);
    free(b->scores);
    free(b->rows);
    free(b->items);
    memset(b, 0, sizeof *b);
}

// ---------------------------------------------------------------- randomness
// 64 random bits for (seed, c0, c1, c2): one Philox4x32-10 block, key = seed.
static uint64_t philox64(uint64_t seed, uint32_t c0, uint32_t c1, uint64_t c2) {
    uint32_t ctr[4] = {c0, c1, (uint32_t)c2, (uint32_t)(c2 >> 32)};
    hyp_philox4x32(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
    return (uint64_t)ctr[0] | (uint64_t)ctr[1] << 32;
}
// Uniform integer in [0, n) (Lemire's multiply-shift; bias < n / 2^64).
static uint64_t below(uint64_t r, uint64_t n) { return (uint64_t)(((unsigned __int128)r * n) >> 64); }

// Counter layouts (disjoint by the top bit of word 1):
//   permutation of epoch e, swap at position i:  (i, 0, e)
//   negative draw j of (row, step):              (j, 0x80000000 | row, step)
static void build_perm(Loader *l, uint64_t epoch) {
    uint64_t n = (uint64_t)l->info.rows_usable;
    for (uint64_t i = 0; i < n; i++) l->perm[i] = (uint32_t)i;
    for (uint64_t i = n; i-- > 1;) {   // Fisher-Yates, i = n-1 .. 1
        uint64_t j = below(philox64(l->o.seed, (uint32_t)i, 0u, epoch), i + 1);
        uint32_t t = l->perm[i];
        l->perm[i] = l->perm[j];
        l->perm[j] = t;
    }
    l->perm_epoch = epoch;
    l->perm_valid = true;
}

// k distinct values of [0, m), uniform without replacement (Floyd), from (seed, step, row).
static void sample_negatives(const Loader *l, uint32_t row, uint64_t step, uint32_t m, int k, uint32_t *out) {
    int n = 0;
    for (uint32_t j = m - (uint32_t)k; j < m; j++) {
        uint32_t t = (uint32_t)below(philox64(l->o.seed, j, 0x80000000u | row, step), (uint64_t)j + 1);
        bool seen = false;
        for (int a = 0; a < n; a++)
            if (out[a] == t) { seen = true; break; }
        out[n++] = seen ? j : t;
    }
}

// ---------------------------------------------------------------- open
static void unmap_all(Loader *l) {
    for (int i = 0; i < M_N; i++) {
        if (l->m[i].p) munmap(l->m[i].p, l->m[i].size);
        free(l->m[i].path);
    }
}

void loader_close(Loader *l) {
    if (!l) return;
    unmap_all(l);
    free(l->dir);
    free(l->usable);
    free(l->perm);
    free(l->neg);
    free(l);
}

#ifdef HYP_HAVE_JANSSON
static int map_file(Loader *l, int which, uint64_t expect) {
    Map *m = &l->m[which];
    size_t n = strlen(l->dir) + strlen(MAP_NAMES[which]) + 2;
    m->path = hyp_malloc(n);
    snprintf(m->path, n, "%s/%s", l->dir, MAP_NAMES[which]);
    int fd = open(m->path, O_RDONLY);
    if (fd < 0) { hyp_set_error("%s: cannot open: %s", m->path, strerror(errno)); return -1; }
    struct stat sb;
    if (fstat(fd, &sb) != 0) { hyp_set_error("%s: cannot stat: %s", m->path, strerror(errno)); close(fd); return -1; }
    if ((uint64_t)sb.st_size != expect) {
        hyp_set_error("%s: %lld bytes, but meta.json implies %llu (truncated, or from another pretokenize run)",
                      m->path, (long long)sb.st_size, (unsigned long long)expect);
        close(fd);
        return -1;
    }
    m->size = (size_t)sb.st_size;
    if (m->size) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) { hyp_set_error("%s: mmap failed: %s", m->path, strerror(errno)); close(fd); return -1; }
        m->p = p;
        if (which == M_ITEMS || which == M_IOFF || which == M_SCORES) madvise(p, m->size, MADV_RANDOM);
    }
    close(fd);
    return 0;
}

static int meta_int(json_t *meta, const char *path, const char *key, long long lo, long long hi, long long *out) {
    json_t *v = json_object_get(meta, key);
    if (!v || !json_is_integer(v)) { hyp_set_error("%s: missing or non-integer \"%s\"", path, key); return -1; }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) { hyp_set_error("%s: \"%s\" = %lld is out of range [%lld, %lld]", path, key, x, lo, hi); return -1; }
    *out = x;
    return 0;
}
#endif

#ifdef HYP_HAVE_JANSSON
// meta.json's counts, as the shard files' sizes and offsets must agree with them.
typedef struct { long long rows, items, qtok, itok, qmax, dmax; } MetaCounts;

// meta.json: format, version, counts, special ids, the vocabulary's checksum and casing,
// into l->info and *mc. 0 or -1 + error naming the file and key.
static int read_meta(Loader *l, const char *mpath, MetaCounts *mc) {
    json_error_t err;
    json_t *meta = json_load_file(mpath, 0, &err);
    if (!meta) {
        if (access(mpath, F_OK) != 0) hyp_set_error("%s: missing (not a pretokenized shard directory?)", mpath);
        else hyp_set_error("%s:%d: invalid JSON: %s", mpath, err.line, err.text);
        return -1;
    }
    int rc = -1;
    long long vocab, pad, cls, sep, ver;
    json_t *fmt = json_object_get(meta, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), PRETOK_FORMAT)) {
        hyp_set_error("%s: \"format\" is not \"%s\" (not a pretokenized shard directory)", mpath, PRETOK_FORMAT);
        goto out;
    }
    if (meta_int(meta, mpath, "version", 0, 1LL << 30, &ver)) goto out;
    if (ver != PRETOK_VERSION) {
        hyp_set_error("%s: format version %lld, this build reads version %d (pretokenize again)", mpath, ver, PRETOK_VERSION);
        goto out;
    }
    json_t *bo = json_object_get(meta, "byte_order");
    if (bo && (!json_is_string(bo) || strcmp(json_string_value(bo), "little"))) {
        hyp_set_error("%s: byte_order is not \"little\"", mpath);
        goto out;
    }
    const long long BIG = 1LL << 50;
    if (meta_int(meta, mpath, "rows", 0, INT32_MAX, &mc->rows) || meta_int(meta, mpath, "items", 0, BIG, &mc->items) ||
        meta_int(meta, mpath, "query_tokens", 0, BIG, &mc->qtok) || meta_int(meta, mpath, "item_tokens", 0, BIG, &mc->itok) ||
        meta_int(meta, mpath, "query_max_len", 2, 1 << 20, &mc->qmax) ||
        meta_int(meta, mpath, "doc_max_len", 2, 1 << 20, &mc->dmax) ||
        meta_int(meta, mpath, "vocab_size", 1, INT32_MAX, &vocab) || meta_int(meta, mpath, "pad_id", 0, vocab - 1, &pad) ||
        meta_int(meta, mpath, "cls_id", 0, vocab - 1, &cls) || meta_int(meta, mpath, "sep_id", 0, vocab - 1, &sep))
        goto out;
    json_t *ck = json_object_get(meta, "vocab_checksum");
    char *end = NULL;
    if (!json_is_string(ck) || (l->info.vocab_checksum = strtoull(json_string_value(ck), &end, 16), *end) ||
        strlen(json_string_value(ck)) != 16) {
        hyp_set_error("%s: missing or malformed \"vocab_checksum\"", mpath);
        goto out;
    }
    l->info.lowercase = json_is_true(json_object_get(meta, "lowercase"));
    l->info.rows = (long)mc->rows;
    l->info.items = (long)mc->items;
    l->info.vocab_size = (int)vocab;
    l->info.pad_id = (int32_t)pad;
    l->info.cls_id = (int32_t)cls;
    l->info.sep_id = (int32_t)sep;
    rc = 0;
out:
    json_decref(meta);
    return rc;
}

// The shard was made with the model's own vocabulary and casing. 0 or -1.
static int check_tokenizer(const Loader *l, const Tokenizer *tok, const char *mpath) {
    if (train_vocab_checksum(tok) != l->info.vocab_checksum || tok_vocab_size(tok) != l->info.vocab_size) {
        hyp_set_error("%s: the shard was pretokenized with another vocabulary (checksum %016llx, this model's %016llx)",
                      mpath, (unsigned long long)l->info.vocab_checksum, (unsigned long long)train_vocab_checksum(tok));
        return -1;
    }
    if (tok_lowercase(tok) != l->info.lowercase) {
        hyp_set_error("%s: the shard was pretokenized %s, the model's tokenizer is %s", mpath,
                      l->info.lowercase ? "lowercased" : "cased", tok_lowercase(tok) ? "lowercased" : "cased");
        return -1;
    }
    return 0;
}

// First and last offsets of the mapped files against meta.json, then every row's query and
// item range (O(rows); item offsets are checked as items are read); l->usable gets the rows
// with at least `need` items. Returns their count, or -1 + error.
static long check_rows(Loader *l, const MetaCounts *mc, uint64_t need) {
    const long long rows = mc->rows;
    const struct { const uint64_t *off; long long n, last; int file; } ends[] = {
        {l->qoff, rows, mc->qtok, M_QOFF}, {l->ritems, rows, mc->items, M_RITEMS}, {l->ioff, mc->items, mc->itok, M_IOFF}};
    for (int e = 0; e < 3; e++)
        if (ends[e].off[0] != 0 || ends[e].off[ends[e].n] != (uint64_t)ends[e].last) {
            hyp_set_error("%s: first/last offsets (%llu, %llu) disagree with meta.json (0, %lld)", l->m[ends[e].file].path,
                          (unsigned long long)ends[e].off[0], (unsigned long long)ends[e].off[ends[e].n], ends[e].last);
            return -1;
        }
    l->usable = hyp_malloc(((size_t)rows + 1) * sizeof(uint32_t));
    long nu = 0;
    for (long long r = 0; r < rows; r++) {
        uint64_t q0 = l->qoff[r], q1 = l->qoff[r + 1], i0 = l->ritems[r], i1 = l->ritems[r + 1];
        if (q1 < q0 || q1 - q0 < 1 || q1 - q0 > (uint64_t)mc->qmax) {
            hyp_set_error("%s: row %lld: query offsets %llu..%llu are invalid (length must be 1..%lld)", l->m[M_QOFF].path,
                          r, (unsigned long long)q0, (unsigned long long)q1, mc->qmax);
            return -1;
        }
        if (i1 < i0 || i1 == i0) {
            hyp_set_error("%s: row %lld: item range %llu..%llu is invalid", l->m[M_RITEMS].path, r,
                          (unsigned long long)i0, (unsigned long long)i1);
            return -1;
        }
        if (i1 - i0 >= need) l->usable[nu++] = (uint32_t)r;
    }
    return nu;
}
#endif

Loader *loader_open(const char *dir, const LoaderOptions *o) {
#ifndef HYP_HAVE_JANSSON
    (void)o;
    hyp_set_error("%s: reading meta.json needs jansson (rebuild with libjansson-dev)", dir);
    return NULL;
#else
    if (o->batch_size < 1 || o->num_negatives < 0 || o->world_size < 1 || o->rank < 0 || o->rank >= o->world_size ||
        o->query_max_len < 0 || o->doc_max_len < 0 || o->query_max_len == 1 || o->doc_max_len == 1) {
        hyp_set_error("%s: bad loader options (batch_size %d, num_negatives %d, rank %d of %d, max lens %d/%d)", dir,
                      o->batch_size, o->num_negatives, o->rank, o->world_size, o->query_max_len, o->doc_max_len);
        return NULL;
    }
    Loader *l = hyp_calloc(1, sizeof *l);
    l->dir = hyp_strdup(dir);
    l->o = *o;
    size_t pn = strlen(dir) + 16;
    char *mpath = hyp_malloc(pn);
    snprintf(mpath, pn, "%s/meta.json", dir);
    MetaCounts mc;
    if (read_meta(l, mpath, &mc)) goto fail;
    l->stored_qmax = (int)mc.qmax;
    l->stored_dmax = (int)mc.dmax;
    l->info.query_max_len = o->query_max_len && o->query_max_len < mc.qmax ? o->query_max_len : (int)mc.qmax;
    l->info.doc_max_len = o->doc_max_len && o->doc_max_len < mc.dmax ? o->doc_max_len : (int)mc.dmax;
    l->query_tokens = (uint64_t)mc.qtok;
    l->item_tokens = (uint64_t)mc.itok;
    if (o->check_tok && check_tokenizer(l, o->check_tok, mpath)) goto fail;
    uint64_t expect[M_N] = {4 * (uint64_t)mc.qtok, 8 * ((uint64_t)mc.rows + 1), 4 * (uint64_t)mc.itok,
                            8 * ((uint64_t)mc.items + 1), 8 * ((uint64_t)mc.rows + 1), 4 * (uint64_t)mc.items};
    for (int i = 0; i < M_N; i++)
        if (map_file(l, i, expect[i])) goto fail;
    l->queries = l->m[M_QUERIES].p;
    l->qoff = l->m[M_QOFF].p;
    l->items = l->m[M_ITEMS].p;
    l->ioff = l->m[M_IOFF].p;
    l->ritems = l->m[M_RITEMS].p;
    l->scores = l->m[M_SCORES].p;
    const uint64_t need = 1 + (uint64_t)o->num_negatives;
    const long nu = check_rows(l, &mc, need);
    if (nu < 0) goto fail;
    l->info.rows_usable = nu;
    l->info.rows_short = (long)mc.rows - nu;
    uint64_t G = (uint64_t)o->batch_size * (uint64_t)o->world_size;
    l->info.batches_per_epoch = (long)(o->drop_last ? (uint64_t)nu / G : ((uint64_t)nu + G - 1) / G);
    if (l->info.batches_per_epoch == 0) {
        hyp_set_error("%s: %ld of %lld rows have >= %llu items (1 positive + %d negatives); %s", dir, nu, mc.rows,
                      (unsigned long long)need, o->num_negatives,
                      nu ? "fewer than one global batch (batch_size x world_size) with drop_last" : "nothing to train on");
        goto fail;
    }
    l->perm = hyp_malloc(((size_t)nu + 1) * sizeof(uint32_t));
    l->neg = hyp_malloc(((size_t)o->num_negatives + 1) * sizeof(uint32_t));
    l->st.rows = (uint64_t)nu;
    l->st.global_batch = G;
    free(mpath);
    return l;
fail:
    free(mpath);
    loader_close(l);
    return NULL;
#endif
}

const LoaderInfo *loader_info(const Loader *l) { return &l->info; }
int32_t loader_pad_id(const Loader *l) { return l->info.pad_id; }
LoaderState loader_state(const Loader *l) { return l->st; }

int loader_restore(Loader *l, const LoaderState *s) {
    if (s->rows != l->st.rows || s->global_batch != l->st.global_batch) {
        hyp_set_error("%s: loader state is for %llu usable rows and global batch %llu, this loader has %llu and %llu",
                      l->dir, (unsigned long long)s->rows, (unsigned long long)s->global_batch,
                      (unsigned long long)l->st.rows, (unsigned long long)l->st.global_batch);
        return -1;
    }
    uint64_t bpe = (uint64_t)l->info.batches_per_epoch;
    if (s->batch >= bpe || s->step != s->epoch * bpe + s->batch) {
        hyp_set_error("%s: inconsistent loader state (epoch %llu, batch %llu, step %llu; %llu batches per epoch)", l->dir,
                      (unsigned long long)s->epoch, (unsigned long long)s->batch, (unsigned long long)s->step,
                      (unsigned long long)bpe);
        return -1;
    }
    l->st = *s;
    return 0;
}

// ---------------------------------------------------------------- batches
// Every id of a stored sequence must be in the vocabulary.
static int check_ids(const Loader *l, int which, const int32_t *src, uint64_t n, uint64_t what) {
    for (uint64_t i = 0; i < n; i++)
        if (src[i] < 0 || src[i] >= l->info.vocab_size) {
            hyp_set_error("%s: token id %d of %s %llu is outside the vocabulary (size %d)", l->m[which].path, src[i],
                          which == M_QUERIES ? "row" : "item", (unsigned long long)what, l->info.vocab_size);
            return -1;
        }
    return 0;
}

static int eff_len(uint64_t n, int max) { return n > (uint64_t)max ? max : (int)n; }

// Copy n ids into a row of width `width`, truncated to max (keeping a final [SEP]), then pad.
static void put_seq(int32_t *ids, int32_t *mask, int width, const int32_t *src, uint64_t n, int max, int32_t sep,
                    int32_t pad) {
    int m = eff_len(n, max);
    memcpy(ids, src, (size_t)m * sizeof(int32_t));
    if ((uint64_t)m < n && src[n - 1] == sep) ids[m - 1] = sep;
    for (int j = 0; j < m; j++) mask[j] = 1;
    for (int j = m; j < width; j++) { ids[j] = pad; mask[j] = 0; }
}

int loader_next(Loader *l, TrainBatch *b) {
    const LoaderOptions *o = &l->o;
    uint64_t U = (uint64_t)l->info.rows_usable, G = l->st.global_batch;
    if (!l->perm_valid || l->perm_epoch != l->st.epoch) build_perm(l, l->st.epoch);
    uint64_t start = l->st.batch * G + (uint64_t)o->rank * (uint64_t)o->batch_size;
    uint64_t end = start + (uint64_t)o->batch_size;
    if (end > U) end = U;
    int nq = start < end ? (int)(end - start) : 0;
    int n = 1 + o->num_negatives;
    size_t nd = (size_t)nq * (size_t)n;

    size_t slots = nd > (size_t)nq ? nd : (size_t)nq;
    if (slots > b->cap_n || !b->rows) {
        b->rows = hyp_realloc(b->rows, (slots ? slots : 1) * sizeof(int64_t));
        b->scores = hyp_realloc(b->scores, (slots ? slots : 1) * sizeof(float));
        b->items = hyp_realloc(b->items, (slots ? slots : 1) * sizeof(int64_t));
        b->cap_n = slots;
    }
    // Pick rows and items; check what the stored offsets say before copying.
    int q_len = 0, d_len = 0;
    for (int i = 0; i < nq; i++) {
        uint32_t row = l->usable[l->perm[start + (uint64_t)i]];
        b->rows[i] = row;
        uint64_t i0 = l->ritems[row], cnt = l->ritems[row + 1] - i0;
        if (l->ritems[row + 1] > (uint64_t)l->info.items) {
            hyp_set_error("%s: row %u: item range %llu..%llu beyond %ld items", l->m[M_RITEMS].path, row,
                          (unsigned long long)i0, (unsigned long long)l->ritems[row + 1], l->info.items);
            return -1;
        }
        int64_t *it = b->items + (size_t)i * n;
        it[0] = (int64_t)i0;
        sample_negatives(l, row, l->st.step, (uint32_t)(cnt - 1), o->num_negatives, l->neg);
        for (int k = 0; k < o->num_negatives; k++) it[1 + k] = (int64_t)(i0 + 1 + l->neg[k]);
        int ql = eff_len(l->qoff[row + 1] - l->qoff[row], l->info.query_max_len);
        if (ql > q_len) q_len = ql;
        for (int k = 0; k < n; k++) {
            uint64_t a = l->ioff[it[k]], e = l->ioff[it[k] + 1];
            if (e < a || e - a < 1 || e - a > (uint64_t)l->stored_dmax || e > l->item_tokens) {
                hyp_set_error("%s: item %lld: offsets %llu..%llu are invalid (length must be 1..%d, end <= %llu)",
                              l->m[M_IOFF].path, (long long)it[k], (unsigned long long)a, (unsigned long long)e,
                              l->stored_dmax, (unsigned long long)l->item_tokens);
                return -1;
            }
            int dl = eff_len(e - a, l->info.doc_max_len);
            if (dl > d_len) d_len = dl;
            float s = l->scores[it[k]];
            if (!isfinite(s)) {
                hyp_set_error("%s: item %lld: score is not finite", l->m[M_SCORES].path, (long long)it[k]);
                return -1;
            }
            b->scores[(size_t)i * n + k] = s;
        }
    }
    size_t qn = (size_t)nq * (size_t)q_len, dn = nd * (size_t)d_len;
    if (qn > b->cap_q || !b->q_ids) {
        b->q_ids = hyp_realloc(b->q_ids, (qn ? qn : 1) * sizeof(int32_t));
        b->q_mask = hyp_realloc(b->q_mask, (qn ? qn : 1) * sizeof(int32_t));
        b->cap_q = qn;
    }
    if (dn > b->cap_d || !b->d_ids) {
        b->d_ids = hyp_realloc(b->d_ids, (dn ? dn : 1) * sizeof(int32_t));
        b->d_mask = hyp_realloc(b->d_mask, (dn ? dn : 1) * sizeof(int32_t));
        b->cap_d = dn;
    }
    int32_t pad = l->info.pad_id, sep = l->info.sep_id;
    for (int i = 0; i < nq; i++) {
        int64_t row = b->rows[i];
        const int32_t *q = l->queries + l->qoff[row];
        uint64_t qn_i = l->qoff[row + 1] - l->qoff[row];
        if (check_ids(l, M_QUERIES, q, qn_i, (uint64_t)row)) return -1;
        put_seq(b->q_ids + (size_t)i * q_len, b->q_mask + (size_t)i * q_len, q_len, q, qn_i, l->info.query_max_len, sep, pad);
        for (int k = 0; k < n; k++) {
            int64_t item = b->items[(size_t)i * n + k];
            const int32_t *d = l->items + l->ioff[item];
            uint64_t dn_i = l->ioff[item + 1] - l->ioff[item];
            if (check_ids(l, M_ITEMS, d, dn_i, (uint64_t)item)) return -1;
            size_t r = (size_t)i * n + k;
            put_seq(b->d_ids + r * d_len, b->d_mask + r * d_len, d_len, d, dn_i, l->info.doc_max_len, sep, pad);
        }
    }
    b->n_queries = nq;
    b->n_items = n;
    b->q_len = q_len;
    b->d_len = d_len;
    b->epoch = l->st.epoch;
    b->step = l->st.step;
    l->st.step++;
    if (++l->st.batch == (uint64_t)l->info.batches_per_epoch) {
        l->st.batch = 0;
        l->st.epoch++;
    }
    return 0;
}
