// trec.c: TREC qrels/run readers, the in-memory run builder and the run writer.
//
// Files stream through the bounded line reader (hyp_lines: a leading UTF-8 BOM dropped,
// lines over 16 MiB and NUL bytes refused, so an endless input fails fast instead of
// filling memory); each line is split in place and its qid and docid copied into a
// chunked arena (a query's qid once), like the strings of in-memory entries.
#include "eval/trec_internal.h"
#include "autograd/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------- small helpers

typedef struct ArenaChunk {
    struct ArenaChunk *next;
    size_t used, cap;
    char data[];
} ArenaChunk;

typedef struct {
    ArenaChunk *head;
} Arena;

static char *arena_strdup(Arena *a, const char *s) {
    size_t n = strlen(s) + 1;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        ArenaChunk *c = hyp_malloc(sizeof *c + cap);
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    char *d = a->head->data + a->head->used;
    memcpy(d, s, n);
    a->head->used += n;
    return d;
}

static void arena_free(Arena *a) {
    for (ArenaChunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}

uint64_t trec_hash_str(const char *s) {
    // 8 bytes at a time with a multiply-xorshift mix; docids are short ASCII strings.
    size_t n = strlen(s);
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull);
    const char *p = s;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 32;
    return h;
}

// Open-addressing map from string to index (qids).
typedef struct {
    const char *key;
    uint64_t hash;
    size_t val;
} StrSlot;

typedef struct {
    StrSlot *slots;   // (cap), key NULL = empty
    size_t cap, n;
} StrMap;

static void strmap_grow(StrMap *m);

static long strmap_get(const StrMap *m, const char *key, uint64_t h) {
    if (!m->cap) return -1;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const StrSlot *s = &m->slots[i];
        if (!s->key) return -1;
        if (s->hash == h && strcmp(s->key, key) == 0) return (long)s->val;
    }
}

static void strmap_put(StrMap *m, const char *key, uint64_t h, size_t val) {
    if (2 * (m->n + 1) > m->cap) strmap_grow(m);
    size_t i = h & (m->cap - 1);
    while (m->slots[i].key) i = (i + 1) & (m->cap - 1);
    m->slots[i] = (StrSlot){key, h, val};
    m->n++;
}

static void strmap_grow(StrMap *m) {
    StrMap bigger = {hyp_calloc(m->cap ? 2 * m->cap : 64, sizeof(StrSlot)),
                     m->cap ? 2 * m->cap : 64, 0};
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) strmap_put(&bigger, m->slots[i].key, m->slots[i].hash, m->slots[i].val);
    free(m->slots);
    *m = bigger;
}

static void strmap_free(StrMap *m) {
    free(m->slots);
    *m = (StrMap){0};
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Splits the line starting at *p into up to max fields (NUL-terminating them in place);
// returns the field count (counting past max) and advances *p to the next line.
static int split_line(char **p, char **fields, int max) {
    char *s = *p;
    int nf = 0;
    for (;;) {
        while (is_space(*s)) s++;
        if (*s == '\n' || *s == '\0') break;
        char *start = s;
        while (*s && *s != '\n' && !is_space(*s)) s++;
        if (nf < max) fields[nf] = start;
        nf++;
        if (*s == '\n' || *s == '\0') {
            if (*s == '\n') *s++ = '\0';
            *p = s;
            return nf;
        }
        *s++ = '\0';
    }
    if (*s == '\n') s++;
    *p = s;
    return nf;
}

// ---------------------------------------------------------------- qrels

typedef struct {
    const char *qid, *docid;
    long rel;
    uint32_t line;
} Judgment;

typedef struct {
    const char *qid;
    long *level_counts;   // (num_levels) judgments per level >= 0
    long num_levels;
    TrecJudgment *judg;   // (nj) this query's judgments, for a cache-local lookup table
    size_t nj;
} QrelsQuery;

typedef struct {
    uint64_t hash;        // 0 = empty (hash values are forced nonzero)
    const char *docid;
    uint32_t qidx;
    uint32_t line;
    long rel;
} QrelSlot;

struct TrecQrels {
    char *path;
    Arena arena;          // qid and docid strings
    Judgment *j;          // (nj) until finalized
    size_t nj, capj;
    bool final;
    QrelsQuery *q;        // (nq) sorted by qid
    size_t nq;
    StrMap qmap;          // qid -> index in q
    QrelSlot *slots;      // (nslots) (qidx, docid) -> rel
    size_t nslots;
    bool failed;          // a duplicate was found when finalizing
    char *error;          // its message, repeated to every later user
};

static uint64_t pair_hash(uint64_t doc_hash, size_t qidx) {
    uint64_t h = doc_hash ^ ((uint64_t)(qidx + 1) * 0x9E3779B97F4A7C15ull);
    h ^= h >> 31;
    return h ? h : 1;
}

static int cmp_judgment_qid(const void *a, const void *b) {
    const Judgment *x = a, *y = b;
    int c = strcmp(x->qid, y->qid);
    if (c) return c;
    return (x->line > y->line) - (x->line < y->line);
}

// Sorts judgments into queries, builds the lookup table, detects duplicates.
static int qrels_finalize(TrecQrels *q) {
    if (q->final) return q->failed ? -1 : 0;
    q->final = true;
    if (q->nj > 1) qsort(q->j, q->nj, sizeof *q->j, cmp_judgment_qid);   // q->j is NULL when empty
    size_t nq = 0;
    for (size_t i = 0; i < q->nj; i++)
        if (i == 0 || strcmp(q->j[i].qid, q->j[i - 1].qid)) nq++;
    q->q = hyp_calloc(nq ? nq : 1, sizeof *q->q);
    q->nq = 0;
    size_t cap = 64;
    while (cap < 2 * q->nj) cap *= 2;
    q->slots = hyp_calloc(cap, sizeof *q->slots);
    q->nslots = cap;
    for (size_t i = 0, start = 0; i <= q->nj; i++) {
        if (i < q->nj && (i == start || !strcmp(q->j[i].qid, q->j[start].qid))) continue;
        if (i == start) break;
        // judgments [start, i) belong to one query
        QrelsQuery *qq = &q->q[q->nq];
        qq->qid = q->j[start].qid;
        long max_rel = -1;
        for (size_t k = start; k < i; k++)
            if (q->j[k].rel > max_rel) max_rel = q->j[k].rel;
        qq->level_counts = hyp_calloc((size_t)(max_rel + 1 > 0 ? max_rel + 1 : 1), sizeof(long));
        qq->num_levels = 0;
        qq->judg = hyp_malloc((i - start) * sizeof *qq->judg);
        qq->nj = i - start;
        for (size_t k = start; k < i; k++) {
            const Judgment *jd = &q->j[k];
            qq->judg[k - start] = (TrecJudgment){jd->docid, trec_hash_str(jd->docid), jd->rel};
            if (jd->rel >= 0) {
                qq->level_counts[jd->rel]++;
                if (jd->rel + 1 > qq->num_levels) qq->num_levels = jd->rel + 1;
            }
            uint64_t h = pair_hash(qq->judg[k - start].hash, q->nq);
            size_t s = h & (cap - 1);
            for (;; s = (s + 1) & (cap - 1)) {
                QrelSlot *sl = &q->slots[s];
                if (!sl->hash) {
                    *sl = (QrelSlot){h, jd->docid, (uint32_t)q->nq, jd->line, jd->rel};
                    break;
                }
                if (sl->hash == h && sl->qidx == q->nq && !strcmp(sl->docid, jd->docid)) {
                    if (q->path)
                        hyp_set_error("%s:%u: duplicate judgment for query %s document %s "
                                      "(first at line %u)", q->path, jd->line, jd->qid,
                                      jd->docid, sl->line);
                    else
                        hyp_set_error("qrels: duplicate judgment for query %s document %s",
                                      jd->qid, jd->docid);
                    q->failed = true;
                    q->error = hyp_strdup(hyp_last_error());
                    q->nq++;
                    return -1;
                }
            }
        }
        strmap_put(&q->qmap, qq->qid, trec_hash_str(qq->qid), q->nq);
        q->nq++;
        start = i;
    }
    free(q->j);
    q->j = NULL;
    q->nj = q->capj = 0;
    return 0;
}

TrecQrels *trec_qrels_new(void) { return hyp_calloc(1, sizeof(TrecQrels)); }

static void qrels_push(TrecQrels *q, const char *qid, const char *docid, long rel, uint32_t line) {
    if (q->nj == q->capj) {
        q->capj = q->capj ? 2 * q->capj : 1024;
        q->j = hyp_realloc(q->j, q->capj * sizeof *q->j);
    }
    q->j[q->nj++] = (Judgment){qid, docid, rel, line};
}

int trec_qrels_add(TrecQrels *q, const char *qid, const char *docid, long rel) {
    if (q->final) {
        hyp_set_error("qrels: cannot add judgments after the qrels were used");
        return -1;
    }
    const char *why = hyp_id_problem(qid);
    if (why || (why = hyp_id_problem(docid))) {
        hyp_set_error("qrels: %s '%s' %s", hyp_id_problem(qid) ? "query id" : "document id",
                      hyp_id_problem(qid) ? qid : docid, why);
        return -1;
    }
    if (rel > TREC_MAX_REL || rel < -TREC_MAX_REL) {
        hyp_set_error("qrels: relevance %ld out of range (|rel| <= %d)", rel, TREC_MAX_REL);
        return -1;
    }
    qrels_push(q, arena_strdup(&q->arena, qid), arena_strdup(&q->arena, docid), rel,
               (uint32_t)(q->nj + 1));
    return 0;
}

static bool parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno) return false;
    *out = v;
    return true;
}

TrecQrels *trec_qrels_read(const char *path) {
    HypLines *in = hyp_lines_open(path, 0);
    if (!in) return NULL;
    TrecQrels *q = trec_qrels_new();
    q->path = hyp_strdup(path);
    const char *last_qid = NULL;
    char *p;
    size_t len;
    int got;
    while ((got = hyp_lines_next(in, &p, &len)) > 0) {
        uint32_t line = (uint32_t)hyp_lines_lineno(in);
        char *f[5];
        int nf = split_line(&p, f, 5);
        if (nf == 0 || f[0][0] == '#') continue;
        if (nf != 4) {
            hyp_set_error("%s:%u: expected 4 fields (qid iter docno rel), got %d", path, line, nf);
            goto fail;
        }
        long rel;
        if (!parse_long(f[3], &rel)) {
            hyp_set_error("%s:%u: relevance '%s' is not an integer", path, line, f[3]);
            goto fail;
        }
        if (rel > TREC_MAX_REL || rel < -TREC_MAX_REL) {
            // grades index per-level counters: a hostile value must not allocate gigabytes
            hyp_set_error("%s:%u: relevance %ld out of range (|rel| <= %d)", path, line, rel,
                          TREC_MAX_REL);
            goto fail;
        }
        if (!last_qid || strcmp(last_qid, f[0])) last_qid = arena_strdup(&q->arena, f[0]);
        qrels_push(q, last_qid, arena_strdup(&q->arena, f[2]), rel, line);
    }
    if (got < 0) goto fail;
    hyp_lines_close(in);
    in = NULL;
    if (qrels_finalize(q)) goto fail;
    return q;
fail:
    hyp_lines_close(in);
    trec_qrels_free(q);
    return NULL;
}

void trec_qrels_free(TrecQrels *q) {
    if (!q) return;
    for (size_t i = 0; i < q->nq; i++) {
        free(q->q[i].level_counts);
        free(q->q[i].judg);
    }
    free(q->q);
    free(q->j);
    free(q->slots);
    strmap_free(&q->qmap);
    arena_free(&q->arena);
    free(q->path);
    free(q->error);
    free(q);
}

// A built qrels set is finalized on first use; a duplicate found then is reported
// by the evaluation (qrels_finalize leaves the message).
static TrecQrels *qrels_ready(const TrecQrels *cq) {
    TrecQrels *q = (TrecQrels *)cq;
    qrels_finalize(q);
    return q;
}

size_t trec_qrels_num_queries(const TrecQrels *cq) {
    TrecQrels *q = qrels_ready(cq);
    return q->failed ? 0 : q->nq;
}

const char *trec_qrels_qid(const TrecQrels *cq, size_t i) {
    TrecQrels *q = qrels_ready(cq);
    return i < q->nq ? q->q[i].qid : NULL;
}

int trec_qrels_validate(const TrecQrels *cq) {
    TrecQrels *q = qrels_ready(cq);
    if (q->failed) {
        hyp_set_error("%s", q->error);
        return -1;
    }
    return 0;
}

const char *trec_qrels_path(const TrecQrels *q) { return q->path ? q->path : "qrels"; }

long trec_qrels_query_index(const TrecQrels *cq, const char *qid) {
    TrecQrels *q = qrels_ready(cq);
    return strmap_get(&q->qmap, qid, trec_hash_str(qid));
}

bool trec_qrels_rel_hashed(const TrecQrels *q, size_t qi, const char *docid, uint64_t hash,
                           long *rel) {
    if (!q->nslots) return false;
    uint64_t h = pair_hash(hash, qi);
    for (size_t s = h & (q->nslots - 1);; s = (s + 1) & (q->nslots - 1)) {
        const QrelSlot *sl = &q->slots[s];
        if (!sl->hash) return false;
        if (sl->hash == h && sl->qidx == qi && !strcmp(sl->docid, docid)) {
            *rel = sl->rel;
            return true;
        }
    }
}

bool trec_qrels_lookup(const TrecQrels *q, const char *qid, const char *docid, long *rel) {
    long qi = trec_qrels_query_index(q, qid);
    if (qi < 0) return false;
    return trec_qrels_rel_hashed(q, (size_t)qi, docid, trec_hash_str(docid), rel);
}

long trec_qrels_num_positive(const TrecQrels *cq) {
    TrecQrels *q = qrels_ready(cq);
    long n = 0;
    for (size_t i = 0; i < q->nq; i++)
        for (long l = 1; l < q->q[i].num_levels; l++) n += q->q[i].level_counts[l];
    return n;
}

const TrecJudgment *trec_qrels_judgments(const TrecQrels *q, size_t qi, size_t *n) {
    *n = q->q[qi].nj;
    return q->q[qi].judg;
}

const long *trec_qrels_level_counts(const TrecQrels *q, size_t qi, long *num_levels) {
    *num_levels = q->q[qi].num_levels;
    return q->q[qi].level_counts;
}

// ---------------------------------------------------------------- runs

struct TrecRun {
    char *path;
    char *tag;
    Arena arena;          // qid and docid strings
    TrecRunQuery *q;      // (nq) in first-seen order
    size_t nq, capq;
    StrMap qmap;          // qid -> index in q
    size_t nentries;
    size_t last;          // query of the previous line: runs come grouped by qid
};

TrecRun *trec_run_new(const char *tag) {
    TrecRun *r = hyp_calloc(1, sizeof *r);
    r->tag = hyp_strdup(tag ? tag : "hyp");
    r->last = (size_t)-1;
    return r;
}

static TrecRunQuery *run_query_for(TrecRun *r, const char *qid, bool copy) {
    if (r->last != (size_t)-1 && !strcmp(r->q[r->last].qid, qid)) return &r->q[r->last];
    uint64_t h = trec_hash_str(qid);
    long i = strmap_get(&r->qmap, qid, h);
    if (i < 0) {
        if (r->nq == r->capq) {
            r->capq = r->capq ? 2 * r->capq : 64;
            r->q = hyp_realloc(r->q, r->capq * sizeof *r->q);
        }
        const char *key = copy ? arena_strdup(&r->arena, qid) : qid;
        r->q[r->nq] = (TrecRunQuery){key, NULL, 0, 0};
        strmap_put(&r->qmap, key, h, r->nq);
        i = (long)r->nq++;
    }
    r->last = (size_t)i;
    return &r->q[i];
}

static void run_push(TrecRunQuery *q, const char *docid, double score, uint32_t line) {
    if (q->n == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 16;
        q->entries = hyp_realloc(q->entries, q->cap * sizeof *q->entries);
    }
    q->entries[q->n++] = (TrecRunEntry){docid, score, line};
}

int trec_run_add(TrecRun *r, const char *qid, const char *docid, double score) {
    if (!qid || !docid) {
        hyp_set_error("run: missing qid or docid");
        return -1;
    }
    const char *why = hyp_id_problem(qid);
    if (why || (why = hyp_id_problem(docid))) {
        // such an id would write a run line with more than 6 fields
        hyp_set_error("run: %s '%s' %s", hyp_id_problem(qid) ? "query id" : "document id",
                      hyp_id_problem(qid) ? qid : docid, why);
        return -1;
    }
    if (!isfinite(score)) {
        // our runs come from models: NaN/inf means a broken model, never a ranking
        hyp_set_error("run: score of query %s document %s is %g; expected a finite score", qid, docid, score);
        return -1;
    }
    TrecRunQuery *q = run_query_for(r, qid, true);
    run_push(q, arena_strdup(&r->arena, docid), score, 0);
    r->nentries++;
    return 0;
}

TrecRun *trec_run_read(const char *path) {
    HypLines *in = hyp_lines_open(path, 0);
    if (!in) return NULL;
    TrecRun *r = trec_run_new(NULL);
    r->path = hyp_strdup(path);
    char *last_tag = NULL;
    size_t tag_cap = 0;
    char *p;
    size_t len;
    int got;
    while ((got = hyp_lines_next(in, &p, &len)) > 0) {
        uint32_t line = (uint32_t)hyp_lines_lineno(in);
        char *f[6];
        int nf = split_line(&p, f, 6);
        if (nf == 0 || f[0][0] == '#') continue;
        if (nf < 6) {
            hyp_set_error("%s:%u: expected 6 fields (qid Q0 docno rank score tag), got %d",
                          path, line, nf);
            goto fail;
        }
        char *end;
        double score = strtod(f[4], &end);
        if (end == f[4] || *end || isnan(score)) {
            hyp_set_error("%s:%u: score '%s' is not a number", path, line, f[4]);
            goto fail;
        }
        run_push(run_query_for(r, f[0], true), arena_strdup(&r->arena, f[2]), score, line);
        r->nentries++;
        size_t tl = strlen(f[5]) + 1;
        if (tl > tag_cap) last_tag = hyp_realloc(last_tag, tag_cap = tl);
        memcpy(last_tag, f[5], tl);
    }
    if (got < 0) goto fail;
    hyp_lines_close(in);
    if (last_tag) {
        free(r->tag);
        r->tag = last_tag;
    }
    return r;
fail:
    free(last_tag);
    hyp_lines_close(in);
    trec_run_free(r);
    return NULL;
}

void trec_run_free(TrecRun *r) {
    if (!r) return;
    for (size_t i = 0; i < r->nq; i++) free(r->q[i].entries);
    free(r->q);
    strmap_free(&r->qmap);
    arena_free(&r->arena);
    free(r->path);
    free(r->tag);
    free(r);
}

size_t trec_run_num_queries(const TrecRun *r) { return r->nq; }
const TrecRunQuery *trec_run_query(const TrecRun *r, size_t i) { return i < r->nq ? &r->q[i] : NULL; }
const char *trec_run_tag(const TrecRun *r) { return r->tag; }
const char *trec_run_path(const TrecRun *r) { return r->path; }
size_t trec_run_num_entries(const TrecRun *r) { return r->nentries; }

const TrecRunQuery *trec_run_find(const TrecRun *r, const char *qid) {
    long i = strmap_get(&r->qmap, qid, trec_hash_str(qid));
    return i < 0 ? NULL : &r->q[i];
}

int trec_entry_cmp(const void *a, const void *b) {
    const TrecRunEntry *x = a, *y = b;
    if (x->score > y->score) return -1;
    if (x->score < y->score) return 1;
    return strcmp(y->docid, x->docid);
}

// Shortest of %.9g / %.17g that reads back to the same double, so a written run
// ranks exactly as the in-memory one (ties included).
static void format_score(char *out, size_t n, double v) {
    snprintf(out, n, "%.9g", v);
    if (strtod(out, NULL) != v) snprintf(out, n, "%.17g", v);
}

// Formats one query's ranked lines into buf (grown as needed); returns its length.
static size_t format_query(const TrecRunQuery *q, const char *tag, TrecRunEntry *sorted,
                           char **buf, size_t *cap) {
    memcpy(sorted, q->entries, q->n * sizeof *sorted);
    qsort(sorted, q->n, sizeof *sorted, trec_entry_cmp);
    size_t len = 0, qlen = strlen(q->qid), tlen = strlen(tag);
    for (size_t i = 0; i < q->n; i++) {
        size_t dlen = strlen(sorted[i].docid);
        size_t need = len + qlen + dlen + tlen + 80;
        if (need > *cap) *buf = hyp_realloc(*buf, *cap = 2 * need);
        char *p = *buf + len;
        memcpy(p, q->qid, qlen);
        p += qlen;
        memcpy(p, " Q0 ", 4);
        p += 4;
        memcpy(p, sorted[i].docid, dlen);
        p += dlen;
        *p++ = ' ';
        char digits[24];
        int nd = 0;
        for (size_t rank = i + 1; rank; rank /= 10) digits[nd++] = (char)('0' + rank % 10);
        while (nd) *p++ = digits[--nd];
        *p++ = ' ';
        format_score(p, 40, sorted[i].score);
        p += strlen(p);
        *p++ = ' ';
        memcpy(p, tag, tlen);
        p += tlen;
        *p++ = '\n';
        len = (size_t)(p - *buf);
    }
    return len;
}

int trec_run_write(const TrecRun *r, const char *path, const char *tag) {
    if (!tag) tag = r->tag;
    size_t plen = strlen(path);
    char *tmp = hyp_malloc(plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        hyp_set_error("%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    // Formatting scores dominates: format blocks of queries in parallel, write in order.
    enum { BLOCK = 256 };
    char *bufs[BLOCK] = {0};
    size_t caps[BLOCK] = {0}, lens[BLOCK];
    bool bad = false;
    for (size_t q0 = 0; q0 < r->nq && !bad; q0 += BLOCK) {
        long nb = (long)(r->nq - q0 < BLOCK ? r->nq - q0 : BLOCK);
        #pragma omp parallel
        {
            TrecRunEntry *sorted = NULL;
            size_t scap = 0;
            #pragma omp for schedule(dynamic, 4)
            for (long b = 0; b < nb; b++) {
                const TrecRunQuery *q = &r->q[q0 + (size_t)b];
                if (q->n > scap) sorted = hyp_realloc(sorted, (scap = q->n) * sizeof *sorted);
                lens[b] = format_query(q, tag, sorted, &bufs[b], &caps[b]);
            }
            free(sorted);
        }
        for (long b = 0; b < nb && !bad; b++) bad = fwrite(bufs[b], 1, lens[b], f) != lens[b];
    }
    for (int b = 0; b < BLOCK; b++) free(bufs[b]);
    bad |= fflush(f) != 0 || ferror(f);
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        hyp_set_error("%s: write failed: %s", path, strerror(errno));
        remove(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}
