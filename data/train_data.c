// train_data.c: the training JSONL reader and `pretokenize` (see train_data.h).
#include "data/train_data.h"
#include "autograd/util.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef HYP_HAVE_JANSSON
#include <jansson.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the shard format is little-endian; add byte swapping for this host"
#endif

uint64_t train_vocab_checksum(const Tokenizer *tok) {
    uint64_t h = 1469598103934665603ull;
    int n = tok_vocab_size(tok);
    for (int i = 0; i < n; i++) {
        for (const char *s = tok_token_str(tok, i); *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
        h = (h ^ (unsigned char)'\n') * 1099511628211ull;
    }
    return h;
}

void train_row_free(TrainRow *r) {
    if (!r) return;
    free(r->q_ids);
    free(r->item_ids);
    free(r->item_off);
    free(r->scores);
    tok_ids_free(&r->scratch);
    memset(r, 0, sizeof *r);
}

// ---------------------------------------------------------------- row parsing
#ifdef HYP_HAVE_JANSSON

static int row_error(const char *name, long line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int row_error(const char *name, long line, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hyp_set_error("%s:%ld: %s", name, line, msg);
    return -1;
}

// Truncate ids (n of them) to max_len (0: none), keeping a final [SEP] at the end.
static size_t truncate_ids(int32_t *ids, size_t n, int max_len, int32_t sep) {
    if (max_len <= 0 || n <= (size_t)max_len) return n;
    if (ids[n - 1] == sep) ids[max_len - 1] = sep;
    return (size_t)max_len;
}

// ids of a text or tokenized_content into row->scratch (truncated). what names the
// field in messages ("query", "items[3]", "neg[2]").
static int encode_field(const char *name, long line, const Tokenizer *tok, json_t *content, json_t *tokenized,
                        int max_len, const char *what, unsigned flags, TrainRow *row) {
    TokIds *s = &row->scratch;
    if (tokenized && !json_is_null(tokenized) && !((flags & TRAIN_RETOKENIZE) && content)) {
        if (!json_is_array(tokenized))
            return row_error(name, line, "%s: \"tokenized_content\" is not an array of token ids", what);
        size_t n = json_array_size(tokenized);
        if (n == 0) return row_error(name, line, "%s: \"tokenized_content\" is empty", what);
        if (n > s->cap) {
            s->cap = n;
            s->ids = hyp_realloc(s->ids, n * sizeof(int32_t));
        }
        int vocab = tok_vocab_size(tok);
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(tokenized, i);
            if (!json_is_integer(v))
                return row_error(name, line, "%s: \"tokenized_content\"[%zu] is not an integer", what, i);
            json_int_t id = json_integer_value(v);
            if (id < 0 || id >= vocab)
                return row_error(name, line, "%s: \"tokenized_content\"[%zu] = %lld is outside the vocabulary (size %d)",
                                 what, i, (long long)id, vocab);
            s->ids[i] = (int32_t)id;
        }
        s->n = truncate_ids(s->ids, n, max_len, tok_special_id(tok, TOK_SEP));
        row->pretokenized = true;
        return 0;
    }
    if (!content) return row_error(name, line, "%s: missing \"content\" (or \"tokenized_content\")", what);
    if (!json_is_string(content)) return row_error(name, line, "%s: \"content\" is not a string", what);
    tok_encode(tok, json_string_value(content), json_string_length(content), max_len, s);
    return 0;
}

static void row_push_item(TrainRow *row, float score) {
    size_t n = row->scratch.n;
    uint64_t at = row->n_items ? row->item_off[row->n_items] : 0;
    if ((size_t)row->n_items + 2 > row->cap_items) {
        row->cap_items = row->cap_items ? 2 * row->cap_items : 64;
        row->item_off = hyp_realloc(row->item_off, row->cap_items * sizeof(uint64_t));
        row->scores = hyp_realloc(row->scores, row->cap_items * sizeof(float));
    }
    if (at + n > row->cap_ids) {
        row->cap_ids = at + n > 2 * row->cap_ids ? at + n : 2 * row->cap_ids;
        row->item_ids = hyp_realloc(row->item_ids, row->cap_ids * sizeof(int32_t));
    }
    memcpy(row->item_ids + at, row->scratch.ids, n * sizeof(int32_t));
    row->item_off[0] = 0;
    row->item_off[row->n_items + 1] = at + n;
    row->scores[row->n_items] = score;
    row->n_items++;
}

static int get_score(const char *name, long line, json_t *v, const char *what, float *out) {
    if (!v) return row_error(name, line, "%s: missing score", what);
    if (!json_is_number(v)) return row_error(name, line, "%s: score is not a number", what);
    double d = json_number_value(v);
    float f = (float)d;
    if (!isfinite(f)) return row_error(name, line, "%s: score %g does not fit a float32", what, d);
    *out = f;
    return 0;
}

static int parse_obj(json_t *o, const char *name, long line, const Tokenizer *tok, int qmax, int dmax, unsigned flags,
                     TrainRow *row) {
    char what[64];
    json_t *q = json_object_get(o, "query");
    if (!q) return row_error(name, line, "missing \"query\"");
    if (json_is_string(q)) {
        if (encode_field(name, line, tok, q, NULL, qmax, "query", flags, row)) return -1;
    } else if (json_is_object(q)) {
        if (encode_field(name, line, tok, json_object_get(q, "content"), json_object_get(q, "tokenized_content"), qmax,
                         "query", flags, row))
            return -1;
    } else
        return row_error(name, line, "\"query\" is neither an object nor a string");
    if (row->scratch.n > row->cap_q) {
        row->cap_q = row->scratch.n;
        row->q_ids = hyp_realloc(row->q_ids, row->cap_q * sizeof(int32_t));
    }
    memcpy(row->q_ids, row->scratch.ids, row->scratch.n * sizeof(int32_t));
    row->q_len = (int)row->scratch.n;

    json_t *items = json_object_get(o, "items");
    if (items) {
        if (!json_is_array(items)) return row_error(name, line, "\"items\" is not an array");
        size_t n = json_array_size(items);
        for (size_t i = 0; i < n; i++) {
            json_t *it = json_array_get(items, i);
            snprintf(what, sizeof what, "items[%zu]", i);
            if (!json_is_object(it)) return row_error(name, line, "%s: not an object", what);
            float sc = 0;
            json_t *sv = json_object_get(it, "score");
            if (!sv) return row_error(name, line, "%s: missing \"score\"", what);
            if (get_score(name, line, sv, what, &sc)) return -1;
            if (encode_field(name, line, tok, json_object_get(it, "content"), json_object_get(it, "tokenized_content"),
                             dmax, what, flags, row))
                return -1;
            row_push_item(row, sc);
        }
        return 0;
    }
    // FlagEmbedding: pos / neg / pos_scores / neg_scores
    json_t *pos = json_object_get(o, "pos");
    if (!pos) return row_error(name, line, "missing \"items\" (authors' format) or \"pos\" (FlagEmbedding format)");
    static const char *const lists[2][2] = {{"pos", "pos_scores"}, {"neg", "neg_scores"}};
    for (int l = 0; l < 2; l++) {
        json_t *texts = json_object_get(o, lists[l][0]);
        if (!texts && l == 1) break;   // no negatives: a short row
        if (!json_is_array(texts)) return row_error(name, line, "\"%s\" is not an array", lists[l][0]);
        json_t *scores = json_object_get(o, lists[l][1]);
        if (!scores) return row_error(name, line, "missing \"%s\" (teacher scores are required)", lists[l][1]);
        if (!json_is_array(scores)) return row_error(name, line, "\"%s\" is not an array", lists[l][1]);
        size_t n = json_array_size(texts);
        if (json_array_size(scores) != n)
            return row_error(name, line, "\"%s\" has %zu entries but \"%s\" has %zu", lists[l][0], n, lists[l][1],
                             json_array_size(scores));
        if (l == 0 && n == 0) return 0;   // no positive: the row is skipped (counted)
        for (size_t i = 0; i < n; i++) {
            snprintf(what, sizeof what, "%s[%zu]", lists[l][0], i);
            json_t *t = json_array_get(texts, i);
            if (!json_is_string(t)) return row_error(name, line, "%s: not a string", what);
            float sc = 0;
            if (get_score(name, line, json_array_get(scores, i), what, &sc)) return -1;
            if (l == 0 && i > 0) { row->extra_positives++; continue; }   // never let a positive become a negative
            if (encode_field(name, line, tok, t, NULL, dmax, what, flags, row)) return -1;
            row_push_item(row, sc);
        }
    }
    return 0;
}
#endif

int train_row_parse(const char *text, size_t len, const char *name, long line, const Tokenizer *tok,
                    int query_max_len, int doc_max_len, unsigned flags, TrainRow *row) {
    row->q_len = 0;
    row->n_items = 0;
    row->extra_positives = 0;
    row->pretokenized = false;
    row->line = line;
#ifdef HYP_HAVE_JANSSON
    json_error_t err;
    json_t *o = json_loadb(text, len, 0, &err);
    if (!o) return row_error(name, line, "invalid JSON: %s (column %d)", err.text, err.column);
    if (!json_is_object(o)) {
        json_decref(o);
        return row_error(name, line, "invalid JSON: not an object");
    }
    int rc = parse_obj(o, name, line, tok, query_max_len, doc_max_len, flags, row);
    json_decref(o);
    return rc;
#else
    (void)text; (void)len; (void)line; (void)tok; (void)query_max_len; (void)doc_max_len; (void)flags; (void)row;
    hyp_set_error("%s: training JSONL needs jansson (rebuild with libjansson-dev)", name);
    return -1;
#endif
}

static bool blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return false;
    return true;
}

// ---------------------------------------------------------------- streaming reader
struct TrainReader {
    HypLines *in;
    char *path;
    const Tokenizer *tok;
    int qmax, dmax;
    unsigned flags;
};

TrainReader *train_reader_open(const char *path, const Tokenizer *tok, int query_max_len, int doc_max_len,
                               unsigned flags) {
    HypLines *in = hyp_lines_open(path, 0);
    if (!in) return NULL;
    TrainReader *r = hyp_calloc(1, sizeof *r);
    r->in = in;
    r->path = hyp_strdup(path);
    r->tok = tok;
    r->qmax = query_max_len;
    r->dmax = doc_max_len;
    r->flags = flags;
    return r;
}

int train_reader_next(TrainReader *r, TrainRow *row) {
    char *line;
    size_t len;
    int got;
    while ((got = hyp_lines_next(r->in, &line, &len)) > 0) {
        if (blank(line, len)) continue;
        long lineno = hyp_lines_lineno(r->in);
        return train_row_parse(line, len, r->path, lineno, r->tok, r->qmax, r->dmax, r->flags, row) ? -1 : 1;
    }
    return got;
}

void train_reader_close(TrainReader *r) {
    if (!r) return;
    hyp_lines_close(r->in);
    free(r->path);
    free(r);
}

// ---------------------------------------------------------------- pretokenize
PretokOptions pretok_options_default(void) {
    PretokOptions o = {0};
    o.query_max_len = 32;
    o.doc_max_len = 196;
    o.progress = true;
    return o;
}

#ifndef HYP_HAVE_JANSSON
int pretokenize(const PretokOptions *o) {
    hyp_set_error("%s: training JSONL needs jansson (rebuild with libjansson-dev)", o->in_path);
    return -1;
}
#else
enum { F_QUERIES, F_QOFF, F_ITEMS, F_IOFF, F_RITEMS, F_SCORES, F_N };
static const char *const FILE_NAMES[F_N] = {"queries.bin", "query_offsets.bin", "items.bin",
                                            "item_offsets.bin", "row_items.bin", "scores.bin"};

typedef struct {
    FILE *f[F_N];
    char *path[F_N];
    char *bufs[F_N];
} Shard;

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = hyp_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

bool shards_remove(const char *dir) {
    for (int i = 0; i <= F_N; i++) {
        char *p = path_join(dir, i < F_N ? FILE_NAMES[i] : "meta.json");
        unlink(p);
        free(p);
    }
    return rmdir(dir) == 0 || errno == ENOENT;
}

static int wr(Shard *s, int which, const void *p, size_t size, size_t n) {
    if (n && fwrite(p, size, n, s->f[which]) != n) {
        hyp_set_error("%s: write failed: %s", s->path[which], strerror(errno));
        return -1;
    }
    return 0;
}

static int sync_close(FILE *f, const char *path) {
    int rc = 0;
    if (fflush(f) != 0 || ferror(f)) rc = -1;
    else if (fsync(fileno(f)) != 0) rc = -1;
    int e = errno;
    if (fclose(f) != 0 && rc == 0) { rc = -1; e = errno; }
    if (rc) hyp_set_error("%s: write failed: %s", path, strerror(e));
    return rc;
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

static char *parent_dir(const char *path) {
    char *p = hyp_strdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    char *slash = strrchr(p, '/');
    if (!slash) { free(p); return hyp_strdup("."); }
    if (slash == p) slash[1] = 0; else *slash = 0;
    return p;
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e8) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 86400) snprintf(buf, n, "%ldd %ldh", t / 86400, t % 86400 / 3600);
    else if (t >= 3600) snprintf(buf, n, "%ldh %02ldm", t / 3600, t % 3600 / 60);
    else snprintf(buf, n, "%ldm %02lds", t / 60, t % 60);
}

static int write_meta(const char *tmp, const PretokOptions *o, const PretokStats *st, int max_q, int max_d,
                      uint64_t source_bytes) {
    const Tokenizer *t = o->tok;
    char cks[17], when[32];
    snprintf(cks, sizeof cks, "%016llx", (unsigned long long)train_vocab_checksum(t));
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    json_t *m = json_object();
    json_object_set_new(m, "format", json_string(PRETOK_FORMAT));
    json_object_set_new(m, "version", json_integer(PRETOK_VERSION));
    json_object_set_new(m, "byte_order", json_string("little"));
    json_object_set_new(m, "rows", json_integer(st->rows));
    json_object_set_new(m, "items", json_integer(st->items));
    json_object_set_new(m, "query_tokens", json_integer((json_int_t)st->query_tokens));
    json_object_set_new(m, "item_tokens", json_integer((json_int_t)st->item_tokens));
    json_object_set_new(m, "rows_skipped_no_items", json_integer(st->rows_empty));
    json_object_set_new(m, "extra_positives_dropped", json_integer(st->extra_positives));
    json_object_set_new(m, "rows_with_tokenized_content", json_integer(st->pretokenized_rows));
    json_object_set_new(m, "retokenized", json_boolean(o->retokenize));
    json_object_set_new(m, "min_items_per_row", json_integer(st->min_items));
    json_object_set_new(m, "max_items_per_row", json_integer(st->max_items));
    json_object_set_new(m, "query_max_len", json_integer(o->query_max_len));
    json_object_set_new(m, "doc_max_len", json_integer(o->doc_max_len));
    json_object_set_new(m, "longest_query", json_integer(max_q));
    json_object_set_new(m, "longest_item", json_integer(max_d));
    json_object_set_new(m, "vocab_size", json_integer(tok_vocab_size(t)));
    json_object_set_new(m, "vocab_checksum", json_string(cks));
    json_object_set_new(m, "vocab", json_string(o->vocab_name ? o->vocab_name : ""));
    json_object_set_new(m, "lowercase", json_boolean(tok_lowercase(t)));
    json_object_set_new(m, "pad_id", json_integer(tok_special_id(t, TOK_PAD)));
    json_object_set_new(m, "cls_id", json_integer(tok_special_id(t, TOK_CLS)));
    json_object_set_new(m, "sep_id", json_integer(tok_special_id(t, TOK_SEP)));
    json_object_set_new(m, "unk_id", json_integer(tok_special_id(t, TOK_UNK)));
    json_object_set_new(m, "source", json_string(o->in_path));
    json_object_set_new(m, "source_bytes", json_integer((json_int_t)source_bytes));
    json_object_set_new(m, "created", json_string(when));
    json_object_set_new(m, "hyp_version", json_string(HYP_VERSION));
    char *path = path_join(tmp, "meta.json");
    FILE *f = fopen(path, "wb");
    int rc = 0;
    if (!f) { hyp_set_error("%s: cannot create: %s", path, strerror(errno)); rc = -1; }
    else {
        if (json_dumpf(m, f, JSON_INDENT(2)) != 0 || fputc('\n', f) == EOF) {
            hyp_set_error("%s: write failed: %s", path, strerror(errno));
            rc = -1;
            fclose(f);
        } else rc = sync_close(f, path);
    }
    free(path);
    json_decref(m);
    return rc;
}

// OUT.tmp, created empty: a stale one of an interrupted run is removed first, but only
// when it holds nothing but a shard's files. malloc'd path, or NULL + error.
static char *fresh_tmp_dir(const char *out_dir) {
    size_t tl = strlen(out_dir);
    while (tl > 1 && out_dir[tl - 1] == '/') tl--;
    char *tmp = hyp_malloc(tl + 5);
    memcpy(tmp, out_dir, tl);
    memcpy(tmp + tl, ".tmp", 5);
    struct stat tsb;
    // Only an existing DIR.tmp is removed: on a read-only filesystem rmdir of a missing
    // directory fails with EROFS, which used to read as "holds other files".
    if (lstat(tmp, &tsb) == 0 && !shards_remove(tmp)) {
        if (errno == ENOTEMPTY || errno == EEXIST)
            hyp_set_error("%s: a stale temporary directory holds files other than a shard's; remove it", tmp);
        else if (errno == ENOTDIR)
            hyp_set_error("%s: exists and is not a directory (expected none, or a stale shard directory); remove it", tmp);
        else
            hyp_set_error("%s: cannot remove the stale temporary directory: %s", tmp, strerror(errno));
        free(tmp);
        return NULL;
    }
    if (mkdir(tmp, 0755) != 0) {
        hyp_set_error("%s: cannot create directory: %s", tmp, strerror(errno));
        free(tmp);
        return NULL;
    }
    return tmp;
}

// One parsed row appended to the shard's files (a row without items is counted, not written).
static int append_row(Shard *sh, PretokStats *st, const TrainRow *r, int *max_q, int *max_d, const char *in_path) {
    st->extra_positives += r->extra_positives;
    if (r->n_items == 0) { st->rows_empty++; return 0; }
    st->rows++;
    st->pretokenized_rows += r->pretokenized;
    if (st->min_items < 0 || r->n_items < st->min_items) st->min_items = r->n_items;
    if (r->n_items > st->max_items) st->max_items = r->n_items;
    if (r->q_len > *max_q) *max_q = r->q_len;
    if (wr(sh, F_QUERIES, r->q_ids, 4, (size_t)r->q_len)) return -1;
    st->query_tokens += (uint64_t)r->q_len;
    if (wr(sh, F_QOFF, &st->query_tokens, 8, 1)) return -1;
    uint64_t ntok = r->item_off[r->n_items];
    if (wr(sh, F_ITEMS, r->item_ids, 4, ntok)) return -1;
    for (int k = 0; k < r->n_items; k++) {
        uint64_t off = st->item_tokens + r->item_off[k + 1];
        int len = (int)(r->item_off[k + 1] - r->item_off[k]);
        if (len > *max_d) *max_d = len;
        if (wr(sh, F_IOFF, &off, 8, 1)) return -1;
    }
    st->item_tokens += ntok;
    if (wr(sh, F_SCORES, r->scores, 4, (size_t)r->n_items)) return -1;
    st->items += r->n_items;
    uint64_t ni = (uint64_t)st->items;
    if (wr(sh, F_RITEMS, &ni, 8, 1)) return -1;
    if (st->rows > (long)INT32_MAX) { hyp_set_error("%s:%ld: more than 2^31-1 rows", in_path, r->line); return -1; }
    return 0;
}

// The finished OUT.tmp becomes OUT: directory fsync, rename, parent fsync. 0 or -1.
static int publish_dir(const char *tmp, const char *out_dir) {
    fsync_dir(tmp);
    if (rename(tmp, out_dir) != 0) {
        hyp_set_error("%s: cannot rename %s to it: %s", out_dir, tmp, strerror(errno));
        return -1;
    }
    char *parent = parent_dir(out_dir);
    fsync_dir(parent);
    free(parent);
    return 0;
}

static void print_totals(const PretokOptions *o, const PretokStats *st) {
    double el = st->seconds > 1e-9 ? st->seconds : 1e-9;
    fprintf(stderr,
            "pretokenize: %s -> %s: %ld rows, %ld items (%d..%d per row), %llu query + %llu item tokens, "
            "%ld rows without items skipped, %ld extra positives dropped, %.1f s (%.0f rows/s, %.1f MB/s)\n",
            o->in_path, o->out_dir, st->rows, st->items, st->min_items, st->max_items,
            (unsigned long long)st->query_tokens, (unsigned long long)st->item_tokens, st->rows_empty,
            st->extra_positives, st->seconds, st->rows / el, st->bytes_in / 1e6 / el);
}

int pretokenize(const PretokOptions *o) {
    if (!o->tok || !o->in_path || !o->out_dir) { hyp_set_error("pretokenize: tokenizer, input and output are required"); return -1; }
    if (o->query_max_len < 2 || o->doc_max_len < 2) {
        hyp_set_error("pretokenize: query_max_len and doc_max_len must be >= 2 (they count [CLS] and [SEP]), got %d and %d",
                      o->query_max_len, o->doc_max_len);
        return -1;
    }
    struct stat sb;
    if (stat(o->out_dir, &sb) == 0) {
        hyp_set_error("%s: already exists (remove it or choose another output directory)", o->out_dir);
        return -1;
    }
    uint64_t in_size = 0;
    if (stat(o->in_path, &sb) == 0 && S_ISREG(sb.st_mode)) in_size = (uint64_t)sb.st_size;
    HypLines *in = hyp_lines_open(o->in_path, 0);
    if (!in) return -1;

    char *tmp = fresh_tmp_dir(o->out_dir);
    if (!tmp) { hyp_lines_close(in); return -1; }
    json_object_seed(0);   // before any thread parses JSON

    Shard sh = {0};
    int rc = -1;
    for (int i = 0; i < F_N; i++) {
        sh.path[i] = path_join(tmp, FILE_NAMES[i]);
        sh.f[i] = fopen(sh.path[i], "wb");
        if (!sh.f[i]) { hyp_set_error("%s: cannot create: %s", sh.path[i], strerror(errno)); goto done; }
        sh.bufs[i] = hyp_malloc(1 << 20);
        setvbuf(sh.f[i], sh.bufs[i], _IOFBF, 1 << 20);
    }
    PretokStats st = {0};
    st.min_items = -1;
    int max_q = 0, max_d = 0;
    uint64_t zero = 0;
    if (wr(&sh, F_QOFF, &zero, 8, 1) || wr(&sh, F_IOFF, &zero, 8, 1) || wr(&sh, F_RITEMS, &zero, 8, 1)) goto done;

    // Lines are read in chunks (bounded count and bytes), parsed and tokenized in
    // parallel, then written in order: constant memory, the earliest error wins.
    enum { CHUNK_LINES = 256 };
    const size_t CHUNK_BYTES = 16u << 20;
    char *lines[CHUNK_LINES] = {0};
    size_t caps[CHUNK_LINES] = {0}, lens[CHUNK_LINES];
    long linenos[CHUNK_LINES];
    int rcs[CHUNK_LINES];
    char *errs[CHUNK_LINES] = {0};
    TrainRow *rows = hyp_calloc(CHUNK_LINES, sizeof(TrainRow));
    long lineno = 0;
    uint64_t bytes = 0;
    double t0 = hyp_now(), last = t0;
    bool tty = isatty(2);
    bool eof = false;
    char *read_err = NULL;   // a bad line (too long, NUL) ends the input; earlier lines report first
    int nthreads = o->threads;
#ifdef _OPENMP
    if (nthreads <= 0) nthreads = omp_get_max_threads();
#else
    nthreads = 1;
#endif
    while (!eof) {
        int n = 0;
        size_t chunk_bytes = 0;
        while (n < CHUNK_LINES && chunk_bytes < CHUNK_BYTES) {
            char *line;
            size_t len;
            int got = hyp_lines_next(in, &line, &len);
            if (got < 0) { read_err = hyp_strdup(hyp_last_error()); eof = true; break; }
            if (got == 0) { eof = true; break; }
            lineno = hyp_lines_lineno(in);
            bytes = hyp_lines_bytes(in);
            if (blank(line, len)) continue;
            if (len + 1 > caps[n]) lines[n] = hyp_realloc(lines[n], caps[n] = len + 1);
            memcpy(lines[n], line, len + 1);
            lens[n] = len;
            linenos[n] = lineno;
            chunk_bytes += len;
            n++;
        }
        bytes = hyp_lines_bytes(in);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) if (n > 1)
        for (int i = 0; i < n; i++) {
            rcs[i] = train_row_parse(lines[i], lens[i], o->in_path, linenos[i], o->tok, o->query_max_len,
                                     o->doc_max_len, o->retokenize ? TRAIN_RETOKENIZE : 0u, &rows[i]);
            if (rcs[i]) {
                free(errs[i]);
                errs[i] = hyp_strdup(hyp_last_error());
            }
        }
        for (int i = 0; i < n; i++) {
            if (rcs[i]) { hyp_set_error("%s", errs[i]); goto chunk_fail; }
            if (append_row(&sh, &st, &rows[i], &max_q, &max_d, o->in_path)) goto chunk_fail;
        }
        double now = hyp_now();
        if (o->progress && (eof || now - last >= (tty ? 0.5 : 10.0))) {
            last = now;
            double el = now - t0 > 1e-9 ? now - t0 : 1e-9;
            char eta[32];
            fmt_eta(eta, sizeof eta, in_size && bytes ? (double)(in_size - bytes) * el / (double)bytes : -1);
            fprintf(stderr, "%spretokenize: %ld rows | %.1f / %.1f MB (%.1f%%) | %.0f rows/s | %.1f MB/s | eta %s%s",
                    tty ? "\r" : "", st.rows, bytes / 1e6, in_size / 1e6, in_size ? 100.0 * bytes / in_size : 0.0,
                    st.rows / el, bytes / 1e6 / el, eta, tty ? "   " : "\n");
            fflush(stderr);
        }
    }
    if (read_err) { hyp_set_error("%s", read_err); goto chunk_fail; }   // after the lines before it (earliest error wins)
    if (st.min_items < 0) st.min_items = 0;
    for (int i = 0; i < F_N; i++) {
        FILE *f = sh.f[i];
        sh.f[i] = NULL;
        if (sync_close(f, sh.path[i])) goto chunk_fail;
    }
    if (write_meta(tmp, o, &st, max_q, max_d, bytes)) goto chunk_fail;
    if (publish_dir(tmp, o->out_dir)) goto chunk_fail;
    st.bytes_in = bytes;
    st.seconds = hyp_now() - t0;
    if (o->progress) {
        if (tty) fputc('\n', stderr);
        print_totals(o, &st);
    }
    if (o->stats) *o->stats = st;
    rc = 0;
chunk_fail:
    free(read_err);
    for (int i = 0; i < CHUNK_LINES; i++) {
        free(lines[i]);
        free(errs[i]);
        train_row_free(&rows[i]);
    }
    free(rows);
done:
    for (int i = 0; i < F_N; i++) {
        if (sh.f[i]) fclose(sh.f[i]);
        free(sh.bufs[i]);
        free(sh.path[i]);
    }
    hyp_lines_close(in);
    if (rc) shards_remove(tmp);
    free(tmp);
    return rc;
}
#endif   // HYP_HAVE_JANSSON
