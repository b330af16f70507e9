// Training data: JSONL reader (authors' and FlagEmbedding formats), pretokenize into
// shards, and the loader (shapes, sampling, determinism, rollover, exact resume,
// rank shares), plus bad input with one clear error and no half-written output.
#include "tests/testlib.h"
#include "data/train_data.h"
#ifndef HYP_HAVE_JANSSON
Test(train_data, needs_jansson) { cr_skip_test("built without jansson: training JSONL and shard meta.json are unavailable"); }
#else
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tests/bounded_child.h"

#define VOCAB SHARED_DATA "/vocab/bert-base-uncased-vocab.txt"
#define SAMPLE SHARED_DATA "/distill/flagembedding_msmarco_kd_sample.jsonl"

static Tokenizer *load_tok(void) {
    Tokenizer *t = tok_load(VOCAB, true);
    cr_assert_not_null(t, "%s", hyp_last_error());
    return t;
}

static char *tmp_path(const char *tag) {
    static int counter;
    char buf[256];
    snprintf(buf, sizeof buf, "/tmp/hyp_td_%d_%d_%s", (int)getpid(), counter++, tag);
    return hyp_strdup(buf);
}

static void write_file(const char *path, const char *content) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs(content, f);
    fclose(f);
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void rm_shard(const char *dir) {
    static const char *names[] = {"queries.bin", "query_offsets.bin", "items.bin", "item_offsets.bin",
                                  "row_items.bin", "scores.bin", "meta.json"};
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void *read_all(const char *dir, const char *name, size_t *size) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f, "cannot open %s", p);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = hyp_malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return b;
}

static int run_pretok(const Tokenizer *t, const char *in, const char *out, int qmax, int dmax, PretokStats *st) {
    PretokOptions o = pretok_options_default();
    o.tok = t;
    o.vocab_name = VOCAB;
    o.in_path = in;
    o.out_dir = out;
    o.query_max_len = qmax;
    o.doc_max_len = dmax;
    o.progress = false;
    o.stats = st;
    return pretokenize(&o);
}

// The whole shard in memory, for checking against the loader and the tokenizer.
typedef struct {
    int32_t *q, *it;
    uint64_t *qo, *io, *ri;
    float *sc;
    size_t rows, items;
} Shard;
static Shard shard_read(const char *dir) {
    Shard s;
    size_t n;
    s.q = read_all(dir, "queries.bin", &n);
    s.qo = read_all(dir, "query_offsets.bin", &n);
    s.rows = n / 8 - 1;
    s.it = read_all(dir, "items.bin", &n);
    s.io = read_all(dir, "item_offsets.bin", &n);
    s.items = n / 8 - 1;
    s.ri = read_all(dir, "row_items.bin", &n);
    s.sc = read_all(dir, "scores.bin", &n);
    return s;
}
static void shard_free(Shard *s) {
    free(s->q); free(s->it); free(s->qo); free(s->io); free(s->ri); free(s->sc);
}
static void expect_ids(const int32_t *got, size_t ngot, const TokIds *want, const char *what) {
    cr_assert_eq(ngot, want->n, "%s: %zu ids, tok_encode gives %zu", what, ngot, want->n);
    for (size_t i = 0; i < ngot; i++) cr_assert_eq(got[i], want->ids[i], "%s: id %zu: %d != %d", what, i, got[i], want->ids[i]);
}

// ---------------------------------------------------------------- the real sample
Test(train_data, flagembedding_sample_matches_tok_encode) {
    Tokenizer *t = load_tok();
    char *out = tmp_path("sample");
    PretokStats st;
    cr_assert_eq(run_pretok(t, SAMPLE, out, 32, 196, &st), 0, "%s", hyp_last_error());
    cr_assert_eq(st.rows, 10);
    cr_assert_eq(st.items, 260);   // 1 positive + 25 negatives per line
    cr_assert_eq(st.min_items, 26);
    cr_assert_eq(st.extra_positives, 0);
    Shard s = shard_read(out);
    cr_assert_eq(s.rows, 10);
    cr_assert_eq(s.items, 260);
    // Compare every query and passage with tok_encode of the same text.
    FILE *f = fopen(SAMPLE, "rb");
    char *line = NULL;
    size_t cap = 0;
    TokIds want = {0};
    char what[64];
    for (size_t r = 0; getline(&line, &cap, f) > 0; r++) {
        json_t *o = json_loads(line, 0, NULL);
        cr_assert_not_null(o);
        const char *q = json_string_value(json_object_get(o, "query"));
        tok_encode(t, q, strlen(q), 32, &want);
        snprintf(what, sizeof what, "row %zu query", r);
        expect_ids(s.q + s.qo[r], s.qo[r + 1] - s.qo[r], &want, what);
        cr_assert_eq(s.ri[r + 1] - s.ri[r], 26);
        for (size_t k = 0; k < 26; k++) {
            json_t *texts = json_object_get(o, k == 0 ? "pos" : "neg");
            json_t *scores = json_object_get(o, k == 0 ? "pos_scores" : "neg_scores");
            size_t j = k == 0 ? 0 : k - 1;
            const char *d = json_string_value(json_array_get(texts, j));
            tok_encode(t, d, strlen(d), 196, &want);
            uint64_t item = s.ri[r] + k;
            snprintf(what, sizeof what, "row %zu item %zu", r, k);
            expect_ids(s.it + s.io[item], s.io[item + 1] - s.io[item], &want, what);
            cr_assert_eq(s.sc[item], (float)json_number_value(json_array_get(scores, j)));
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    tok_ids_free(&want);
    // meta.json records the facts a trainer checks.
    char mp[512];
    snprintf(mp, sizeof mp, "%s/meta.json", out);
    json_t *m = json_load_file(mp, 0, NULL);
    cr_assert_not_null(m);
    cr_assert_str_eq(json_string_value(json_object_get(m, "format")), "hyp-pretok");
    cr_assert_eq(json_integer_value(json_object_get(m, "version")), PRETOK_VERSION);
    cr_assert_eq(json_integer_value(json_object_get(m, "pad_id")), tok_special_id(t, TOK_PAD));
    cr_assert(json_is_true(json_object_get(m, "lowercase")));
    json_int_t longest = json_integer_value(json_object_get(m, "longest_item"));
    cr_assert(longest > 100 && longest <= 196, "longest item %lld", (long long)longest);
    json_decref(m);
    // The loader on it: 10 rows, 7 negatives of 25.
    LoaderOptions lo = loader_options_default();
    lo.batch_size = 4;
    lo.check_tok = t;
    Loader *l = loader_open(out, &lo);
    cr_assert_not_null(l, "%s", hyp_last_error());
    cr_assert_eq(loader_info(l)->rows_usable, 10);
    cr_assert_eq(loader_info(l)->batches_per_epoch, 2);
    cr_assert_eq(loader_pad_id(l), tok_special_id(t, TOK_PAD));
    TrainBatch b = {0};
    cr_assert_eq(loader_next(l, &b), 0, "%s", hyp_last_error());
    cr_assert_eq(b.n_queries, 4);
    cr_assert_eq(b.n_items, 8);
    cr_assert(b.d_len <= 196 && b.q_len <= 32);
    train_batch_free(&b);
    loader_close(l);
    // A cased tokenizer is a different tokenizer: the loader refuses the shard.
    Tokenizer *tc = tok_load(VOCAB, false);
    lo.check_tok = tc;
    cr_assert_null(loader_open(out, &lo));
    cr_assert(strstr(hyp_last_error(), "meta.json"), "%s", hyp_last_error());
    tok_free(tc);
    shard_free(&s);
    rm_shard(out);
    free(out);
    tok_free(t);
}

// ---------------------------------------------------------------- synthetic authors' format
// Row r: query object with id; 8 + r%5 items (row 3: 5 items, too few for 7 negatives);
// items with varying lengths, some pre-tokenized (with a long one that gets truncated).
#define SYN_ROWS 40
static int syn_items(int r) { return r == 3 ? 5 : 8 + r % 5; }
static float syn_score(int r, int k) { return 10.0f - 0.5f * (float)k + 0.01f * (float)r; }
static void syn_text(char *buf, size_t n, int r, int k) {
    int words = 1 + (r * 7 + k * 3) % 23;
    size_t at = (size_t)snprintf(buf, n, "Passage %d.%d about", r, k);
    for (int w = 0; w < words && at + 16 < n; w++) at += (size_t)snprintf(buf + at, n - at, " topic%d", (r + w) % 9);
}
static bool syn_pretok(int r, int k) { return r % 4 == 1 && k == 2; }
static int syn_pretok_ids(const Tokenizer *t, int r, int32_t *ids) {   // 40 ids: [CLS] 38 ids [SEP]
    ids[0] = tok_special_id(t, TOK_CLS);
    for (int j = 1; j < 39; j++) ids[j] = 2000 + (r * 13 + j) % 1000;
    ids[39] = tok_special_id(t, TOK_SEP);
    return 40;
}

static char *write_synthetic(const Tokenizer *t) {
    char *p = tmp_path("syn.jsonl");
    FILE *f = fopen(p, "wb");
    char text[512];
    int32_t ids[64];
    for (int r = 0; r < SYN_ROWS; r++) {
        json_t *o = json_object(), *q = json_object(), *items = json_array();
        char qt[128];
        snprintf(qt, sizeof qt, "What is question %d about topic%d%s?", r, r % 9, r % 6 == 0 ? " and many more words here" : "");
        json_object_set_new(q, "id", json_integer(1000 + r));
        json_object_set_new(q, "content", json_string(qt));
        json_object_set_new(o, "query", q);
        for (int k = 0; k < syn_items(r); k++) {
            json_t *it = json_object();
            json_object_set_new(it, "id", json_sprintf("d%d_%d", r, k));
            syn_text(text, sizeof text, r, k);
            json_object_set_new(it, "content", json_string(text));
            json_object_set_new(it, "score", json_real(syn_score(r, k)));
            json_object_set_new(it, "type", json_string(k ? "negative" : "positive"));
            if (syn_pretok(r, k)) {
                json_t *a = json_array();
                int n = syn_pretok_ids(t, r, ids);
                for (int j = 0; j < n; j++) json_array_append_new(a, json_integer(ids[j]));
                json_object_set_new(it, "tokenized_content", a);
            }
            json_array_append_new(items, it);
        }
        json_object_set_new(o, "items", items);
        char *s = json_dumps(o, JSON_COMPACT);
        fprintf(f, "%s\n%s", s, r == 10 ? "\n" : "");   // a blank line after row 10
        free(s);
        json_decref(o);
    }
    fclose(f);
    return p;
}

// Shard of the synthetic file: query 16, doc 24 ids.
static char *make_syn_shard(Tokenizer *t, char **jsonl) {
    *jsonl = write_synthetic(t);
    char *out = tmp_path("synshard");
    cr_assert_eq(run_pretok(t, *jsonl, out, 16, 24, NULL), 0, "%s", hyp_last_error());
    return out;
}

Test(train_data, authors_format_matches_tok_encode) {
    Tokenizer *t = load_tok();
    char *jsonl, *out = NULL;
    jsonl = write_synthetic(t);
    out = tmp_path("synshard");
    PretokStats st;
    cr_assert_eq(run_pretok(t, jsonl, out, 16, 24, &st), 0, "%s", hyp_last_error());
    cr_assert_eq(st.rows, SYN_ROWS);
    cr_assert_eq(st.pretokenized_rows, 10);
    Shard s = shard_read(out);
    TokIds want = {0};
    char text[512], what[64];
    int32_t ids[64];
    for (int r = 0; r < SYN_ROWS; r++) {
        char qt[128];
        snprintf(qt, sizeof qt, "What is question %d about topic%d%s?", r, r % 9, r % 6 == 0 ? " and many more words here" : "");
        tok_encode(t, qt, strlen(qt), 16, &want);
        snprintf(what, sizeof what, "row %d query", r);
        expect_ids(s.q + s.qo[r], s.qo[r + 1] - s.qo[r], &want, what);
        cr_assert_eq((int)(s.ri[r + 1] - s.ri[r]), syn_items(r));
        for (int k = 0; k < syn_items(r); k++) {
            uint64_t item = s.ri[r] + (uint64_t)k;
            snprintf(what, sizeof what, "row %d item %d", r, k);
            if (syn_pretok(r, k)) {   // tokenized_content used as is, truncated to 24 keeping [SEP]
                syn_pretok_ids(t, r, ids);
                ids[23] = tok_special_id(t, TOK_SEP);
                TokIds w = {ids, 24, 24};
                expect_ids(s.it + s.io[item], s.io[item + 1] - s.io[item], &w, what);
            } else {
                syn_text(text, sizeof text, r, k);
                tok_encode(t, text, strlen(text), 24, &want);
                expect_ids(s.it + s.io[item], s.io[item + 1] - s.io[item], &want, what);
            }
            cr_assert_eq(s.sc[item], syn_score(r, k));
        }
    }
    // --retokenize: content wins over tokenized_content.
    char *out2 = tmp_path("synshard2");
    PretokOptions po = pretok_options_default();
    po.tok = t;
    po.in_path = jsonl;
    po.out_dir = out2;
    po.query_max_len = 16;
    po.doc_max_len = 24;
    po.progress = false;
    po.retokenize = true;
    po.stats = &st;
    cr_assert_eq(pretokenize(&po), 0, "%s", hyp_last_error());
    cr_assert_eq(st.pretokenized_rows, 0);
    Shard s2 = shard_read(out2);
    syn_text(text, sizeof text, 1, 2);
    tok_encode(t, text, strlen(text), 24, &want);
    expect_ids(s2.it + s2.io[s2.ri[1] + 2], s2.io[s2.ri[1] + 3] - s2.io[s2.ri[1] + 2], &want, "retokenized row 1 item 2");
    shard_free(&s2);
    rm_shard(out2);
    free(out2);
    // The streaming reader gives the same rows one at a time (blank line skipped).
    TrainReader *rd = train_reader_open(jsonl, t, 16, 24, 0);
    cr_assert_not_null(rd);
    TrainRow row = {0};
    int n = 0, rc;
    while ((rc = train_reader_next(rd, &row)) == 1) {
        cr_assert_eq(row.n_items, syn_items(n));
        cr_assert_eq((uint64_t)row.q_len, s.qo[n + 1] - s.qo[n]);
        cr_assert_eq(row.line, n <= 10 ? n + 1 : n + 2);
        n++;
    }
    cr_assert_eq(rc, 0, "%s", hyp_last_error());
    cr_assert_eq(n, SYN_ROWS);
    train_row_free(&row);
    train_reader_close(rd);
    tok_ids_free(&want);
    shard_free(&s);
    rm_shard(out);
    unlink(jsonl);
    free(out);
    free(jsonl);
    tok_free(t);
}

// ---------------------------------------------------------------- loader
static Loader *open_loader(const char *dir, uint64_t seed, int B, int rank, int world) {
    LoaderOptions o = loader_options_default();
    o.seed = seed;
    o.batch_size = B;
    o.rank = rank;
    o.world_size = world;
    Loader *l = loader_open(dir, &o);
    cr_assert_not_null(l, "%s", hyp_last_error());
    return l;
}

static void next_ok(Loader *l, TrainBatch *b) { cr_assert_eq(loader_next(l, b), 0, "%s", hyp_last_error()); }

// Real length of row i of a (n, w) mask; checks it is 1..1 0..0.
static int mask_len(const int32_t *mask, int w, int i) {
    int n = 0;
    while (n < w && mask[(size_t)i * w + n]) n++;
    for (int j = n; j < w; j++) cr_assert_eq(mask[(size_t)i * w + j], 0, "mask row %d not a prefix", i);
    return n;
}

static void batch_eq(const TrainBatch *a, const TrainBatch *b) {
    cr_assert_eq(a->n_queries, b->n_queries);
    cr_assert_eq(a->q_len, b->q_len);
    cr_assert_eq(a->d_len, b->d_len);
    cr_assert_eq(a->step, b->step);
    cr_assert_eq(a->epoch, b->epoch);
    size_t nd = (size_t)a->n_queries * a->n_items;
    cr_assert_eq(memcmp(a->rows, b->rows, a->n_queries * sizeof(int64_t)), 0);
    cr_assert_eq(memcmp(a->items, b->items, nd * sizeof(int64_t)), 0);
    cr_assert_eq(memcmp(a->q_ids, b->q_ids, (size_t)a->n_queries * a->q_len * 4), 0);
    cr_assert_eq(memcmp(a->d_ids, b->d_ids, nd * a->d_len * 4), 0);
    cr_assert_eq(memcmp(a->d_mask, b->d_mask, nd * a->d_len * 4), 0);
    cr_assert_eq(memcmp(a->scores, b->scores, nd * 4), 0);
}

Test(train_data, loader_batches_padding_and_sampling) {
    Tokenizer *t = load_tok();
    char *jsonl, *out = make_syn_shard(t, &jsonl);
    Shard s = shard_read(out);
    Loader *l = open_loader(out, 7, 6, 0, 1);
    const LoaderInfo *info = loader_info(l);
    cr_assert_eq(info->rows, SYN_ROWS);
    cr_assert_eq(info->rows_short, 1);   // row 3 has 5 items < 1 + 7
    cr_assert_eq(info->rows_usable, SYN_ROWS - 1);
    cr_assert_eq(info->batches_per_epoch, (SYN_ROWS - 1) / 6);
    int32_t pad = tok_special_id(t, TOK_PAD), cls = tok_special_id(t, TOK_CLS), sep = tok_special_id(t, TOK_SEP);
    TrainBatch b = {0};
    for (int step = 0; step < 12; step++) {
        next_ok(l, &b);
        cr_assert_eq(b.n_queries, 6);
        cr_assert_eq(b.n_items, 8);
        cr_assert_eq(b.step, (uint64_t)step);
        int maxq = 0, maxd = 0;
        for (int i = 0; i < b.n_queries; i++) {
            int64_t row = b.rows[i];
            cr_assert(row >= 0 && row < SYN_ROWS && row != 3);
            int ql = mask_len(b.q_mask, b.q_len, i);
            cr_assert_eq((uint64_t)ql, s.qo[row + 1] - s.qo[row]);
            cr_assert_eq(memcmp(b.q_ids + (size_t)i * b.q_len, s.q + s.qo[row], (size_t)ql * 4), 0);
            cr_assert_eq(b.q_ids[(size_t)i * b.q_len], cls);
            cr_assert_eq(b.q_ids[(size_t)i * b.q_len + ql - 1], sep);
            for (int j = ql; j < b.q_len; j++) cr_assert_eq(b.q_ids[(size_t)i * b.q_len + j], pad);
            if (ql > maxq) maxq = ql;
            const int64_t *it = b.items + (size_t)i * b.n_items;
            cr_assert_eq((uint64_t)it[0], s.ri[row], "positive first");
            for (int k = 0; k < b.n_items; k++) {
                if (k) {
                    cr_assert((uint64_t)it[k] > s.ri[row] && (uint64_t)it[k] < s.ri[row + 1], "negative from the same row");
                    for (int k2 = 1; k2 < k; k2++) cr_assert_neq(it[k], it[k2], "negatives distinct");
                }
                size_t r = (size_t)i * b.n_items + k;
                int dl = mask_len(b.d_mask, b.d_len, (int)r);
                cr_assert_eq((uint64_t)dl, s.io[it[k] + 1] - s.io[it[k]]);
                cr_assert_eq(memcmp(b.d_ids + r * b.d_len, s.it + s.io[it[k]], (size_t)dl * 4), 0);
                for (int j = dl; j < b.d_len; j++) cr_assert_eq(b.d_ids[r * b.d_len + j], pad);
                cr_assert_eq(b.scores[r], s.sc[it[k]]);
                if (dl > maxd) maxd = dl;
            }
        }
        cr_assert_eq(b.q_len, maxq, "padded to the longest query");
        cr_assert_eq(b.d_len, maxd, "padded to the longest item");
    }
    train_batch_free(&b);
    loader_close(l);
    shard_free(&s);
    rm_shard(out);
    unlink(jsonl);
    free(out);
    free(jsonl);
    tok_free(t);
}

Test(train_data, loader_determinism_rollover_and_resume) {
    Tokenizer *t = load_tok();
    char *jsonl, *out = make_syn_shard(t, &jsonl);
    TrainBatch a = {0}, b = {0};
    // Same seed -> same batches; different seed -> different order.
    Loader *l1 = open_loader(out, 11, 5, 0, 1), *l2 = open_loader(out, 11, 5, 0, 1), *l3 = open_loader(out, 12, 5, 0, 1);
    bool differ = false;
    for (int i = 0; i < 10; i++) {
        next_ok(l1, &a);
        next_ok(l2, &b);
        batch_eq(&a, &b);
        next_ok(l3, &b);
        differ |= memcmp(a.rows, b.rows, 5 * sizeof(int64_t)) != 0;
    }
    cr_assert(differ, "a different seed gives a different order");
    loader_close(l1);
    loader_close(l2);
    loader_close(l3);
    // Rollover: 39 usable rows, B = 5 -> 7 batches per epoch, 35 distinct rows, then epoch 1
    // in another order.
    Loader *l = open_loader(out, 3, 5, 0, 1);
    cr_assert_eq(loader_info(l)->batches_per_epoch, 7);
    int seen[SYN_ROWS] = {0};
    int64_t order0[35], order1[35];
    for (int g = 0; g < 14; g++) {
        next_ok(l, &a);
        cr_assert_eq(a.epoch, (uint64_t)(g / 7));
        cr_assert_eq(a.step, (uint64_t)g);
        for (int i = 0; i < 5; i++) {
            if (g < 7) {
                cr_assert_eq(seen[a.rows[i]]++, 0, "row %lld twice in epoch 0", (long long)a.rows[i]);
                order0[g * 5 + i] = a.rows[i];
            } else order1[(g - 7) * 5 + i] = a.rows[i];
        }
    }
    cr_assert_neq(memcmp(order0, order1, sizeof order0), 0, "each epoch has its own permutation");
    LoaderState st = loader_state(l);
    cr_assert_eq(st.epoch, 2);
    cr_assert_eq(st.batch, 0);
    cr_assert_eq(st.step, 14);
    loader_close(l);
    // Exact resume: 7 batches in one run == 3, save, new loader, restore, 4.
    TrainBatch ref[7] = {{0}};
    l = open_loader(out, 5, 6, 0, 1);   // 6 batches per epoch: the 7 cross an epoch boundary
    for (int i = 0; i < 7; i++) next_ok(l, &ref[i]);
    loader_close(l);
    l = open_loader(out, 5, 6, 0, 1);
    for (int i = 0; i < 3; i++) next_ok(l, &a);
    st = loader_state(l);
    loader_close(l);
    l = open_loader(out, 5, 6, 0, 1);
    cr_assert_eq(loader_restore(l, &st), 0, "%s", hyp_last_error());
    for (int i = 3; i < 7; i++) {
        next_ok(l, &a);
        batch_eq(&a, &ref[i]);
    }
    loader_close(l);
    // A state from another global batch size is refused.
    l = open_loader(out, 5, 4, 0, 1);
    cr_assert_eq(loader_restore(l, &st), -1);
    cr_assert(strstr(hyp_last_error(), "global batch"), "%s", hyp_last_error());
    loader_close(l);
    for (int i = 0; i < 7; i++) train_batch_free(&ref[i]);
    train_batch_free(&a);
    train_batch_free(&b);
    rm_shard(out);
    unlink(jsonl);
    free(out);
    free(jsonl);
    tok_free(t);
}

Test(train_data, rank_shares_equal_single_rank_double_batch) {
    Tokenizer *t = load_tok();
    char *jsonl, *out = make_syn_shard(t, &jsonl);
    const int B = 4;
    Loader *r0 = open_loader(out, 9, B, 0, 2), *r1 = open_loader(out, 9, B, 1, 2), *one = open_loader(out, 9, 2 * B, 0, 1);
    cr_assert_eq(loader_info(r0)->batches_per_epoch, loader_info(one)->batches_per_epoch);
    TrainBatch a = {0}, b = {0}, c = {0};
    for (int g = 0; g < 10; g++) {   // 4 batches per epoch: crosses two rollovers
        next_ok(r0, &a);
        next_ok(r1, &b);
        next_ok(one, &c);
        cr_assert_eq(a.step, c.step);
        cr_assert_eq(b.step, c.step);
        int n = c.n_items;
        for (int i = 0; i < 2 * B; i++) {
            const TrainBatch *p = i < B ? &a : &b;
            int j = i % B;
            cr_assert_eq(p->rows[j], c.rows[i], "batch %d query %d", g, i);
            cr_assert_eq(memcmp(p->items + (size_t)j * n, c.items + (size_t)i * n, (size_t)n * 8), 0, "same negatives");
            cr_assert_eq(memcmp(p->scores + (size_t)j * n, c.scores + (size_t)i * n, (size_t)n * 4), 0);
            for (int k = 0; k < n; k++) {   // same ids (padding widths differ)
                int dl = mask_len(c.d_mask, c.d_len, i * n + k);
                cr_assert_eq(mask_len(p->d_mask, p->d_len, j * n + k), dl);
                cr_assert_eq(memcmp(p->d_ids + ((size_t)j * n + k) * p->d_len, c.d_ids + ((size_t)i * n + k) * c.d_len,
                                    (size_t)dl * 4), 0);
            }
        }
        for (int i = 0; i < B; i++)
            for (int j = 0; j < B; j++) cr_assert_neq(a.rows[i], b.rows[j], "rank shares are disjoint");
    }
    train_batch_free(&a);
    train_batch_free(&b);
    train_batch_free(&c);
    loader_close(r0);
    loader_close(r1);
    loader_close(one);
    rm_shard(out);
    unlink(jsonl);
    free(out);
    free(jsonl);
    tok_free(t);
}

Test(train_data, tail_batch_and_truncation_at_load) {
    Tokenizer *t = load_tok();
    char *jsonl, *out = make_syn_shard(t, &jsonl);
    // drop_last = false: 39 usable rows, B = 10 -> 4 batches, the last of 9 queries.
    LoaderOptions o = loader_options_default();
    o.batch_size = 10;
    o.drop_last = false;
    o.doc_max_len = 8;     // truncate further at load time, keeping [SEP]
    Loader *l = loader_open(out, &o);
    cr_assert_not_null(l, "%s", hyp_last_error());
    cr_assert_eq(loader_info(l)->batches_per_epoch, 4);
    TrainBatch b = {0};
    int32_t sep = tok_special_id(t, TOK_SEP);
    for (int g = 0; g < 4; g++) {
        next_ok(l, &b);
        cr_assert_eq(b.n_queries, g < 3 ? 10 : 9);
        cr_assert(b.d_len <= 8);
        for (int r = 0; r < b.n_queries * b.n_items; r++) {
            int dl = mask_len(b.d_mask, b.d_len, r);
            cr_assert_eq(b.d_ids[(size_t)r * b.d_len + dl - 1], sep, "a truncated item still ends in [SEP]");
        }
    }
    next_ok(l, &b);
    cr_assert_eq(b.epoch, 1);
    cr_assert_eq(b.n_queries, 10);
    train_batch_free(&b);
    loader_close(l);
    rm_shard(out);
    unlink(jsonl);
    free(out);
    free(jsonl);
    tok_free(t);
}

Test(train_data, negatives_uniform_without_replacement) {
    // One row with 12 items: every one of the 11 candidates is drawn with
    // probability 7/11 per step.
    Tokenizer *t = load_tok();
    char *jsonl = tmp_path("one.jsonl"), *out = tmp_path("oneshard");
    char buf[4096];
    size_t at = (size_t)snprintf(buf, sizeof buf, "{\"query\": {\"id\": \"q\", \"content\": \"a query\"}, \"items\": [");
    for (int k = 0; k < 12; k++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s{\"id\": \"d%d\", \"content\": \"text %d\", \"score\": %d}",
                               k ? ", " : "", k, k, 20 - k);
    snprintf(buf + at, sizeof buf - at, "]}\n");
    write_file(jsonl, buf);
    cr_assert_eq(run_pretok(t, jsonl, out, 32, 196, NULL), 0, "%s", hyp_last_error());
    Loader *l = open_loader(out, 1, 1, 0, 1);
    TrainBatch b = {0};
    int count[12] = {0};
    const int steps = 4000;
    for (int s = 0; s < steps; s++) {
        next_ok(l, &b);
        for (int k = 1; k < 8; k++) count[b.items[k]]++;
        cr_assert_eq(b.scores[0], 20.0f);
    }
    cr_assert_eq(count[0], 0);
    double expect = steps * 7.0 / 11.0;   // sd ~ 30
    for (int k = 1; k < 12; k++)
        cr_assert(fabs(count[k] - expect) < 150, "item %d drawn %d times, expected ~%.0f", k, count[k], expect);
    train_batch_free(&b);
    loader_close(l);
    rm_shard(out);
    unlink(jsonl);
    free(out);
    free(jsonl);
    tok_free(t);
}

// ---------------------------------------------------------------- bad input
Test(train_data, bad_jsonl_one_error_no_output) {
    Tokenizer *t = load_tok();
    const char *good = "{\"query\": {\"id\": \"1\", \"content\": \"q\"}, \"items\": [{\"id\": \"a\", \"content\": \"x\", \"score\": 1.5}]}\n";
    struct { const char *line2, *want; } cases[] = {
        {"{\"query\": {\"id\": \"2\", \"content\": \"q\"}, \"items\": [\n", ":2: invalid JSON"},
        {"[1, 2]\n", ":2: invalid JSON: not an object"},
        {"{\"items\": []}\n", ":2: missing \"query\""},
        {"{\"query\": \"q\"}\n", ":2: missing \"items\" (authors' format) or \"pos\""},
        {"{\"query\": {\"id\": \"2\"}, \"items\": []}\n", ":2: query: missing \"content\""},
        {"{\"query\": \"q\", \"items\": [{\"content\": \"x\", \"score\": 1}, {\"content\": \"y\"}]}\n", ":2: items[1]: missing \"score\""},
        {"{\"query\": \"q\", \"items\": [{\"content\": \"x\", \"score\": \"high\"}]}\n", ":2: items[0]: score is not a number"},
        {"{\"query\": \"q\", \"items\": [{\"score\": 2}]}\n", ":2: items[0]: missing \"content\""},
        {"{\"query\": \"q\", \"items\": [{\"tokenized_content\": [101, 99999999], \"score\": 2}]}\n",
         ":2: items[0]: \"tokenized_content\"[1] = 99999999 is outside the vocabulary"},
        {"{\"query\": \"q\", \"items\": [{\"content\": \"x\", \"score\": 1e300}]}\n", "does not fit a float32"},
        {"{\"query\": \"q\", \"pos\": [\"x\"], \"neg\": [\"y\"], \"pos_scores\": [1]}\n", ":2: missing \"neg_scores\""},
        {"{\"query\": \"q\", \"pos\": [\"x\"], \"pos_scores\": [1, 2]}\n", ":2: \"pos\" has 1 entries but \"pos_scores\" has 2"},
        {"{\"query\": \"q\", \"pos\": [\"x\"], \"pos_scores\": [null]}\n", ":2: pos[0]: score is not a number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *in = tmp_path("bad.jsonl"), *out = tmp_path("badshard"), tmpdir[512];
        char content[2048];
        snprintf(content, sizeof content, "%s%s%s", good, cases[i].line2, good);
        write_file(in, content);
        cr_assert_eq(run_pretok(t, in, out, 32, 196, NULL), -1, "case %zu should fail", i);
        const char *e = hyp_last_error();
        cr_assert(strstr(e, in) && strstr(e, cases[i].want), "case %zu: got '%s', want '%s'", i, e, cases[i].want);
        snprintf(tmpdir, sizeof tmpdir, "%s.tmp", out);
        cr_assert(!exists(out) && !exists(tmpdir), "case %zu left output behind", i);
        unlink(in);
        free(in);
        free(out);
    }
    // Missing input, existing output directory.
    char *out = tmp_path("x");
    cr_assert_eq(run_pretok(t, "/nonexistent/train.jsonl", out, 32, 196, NULL), -1);
    cr_assert(strstr(hyp_last_error(), "/nonexistent/train.jsonl"));
    cr_assert(!exists(out));
    mkdir(out, 0755);
    cr_assert_eq(run_pretok(t, SAMPLE, out, 32, 196, NULL), -1);
    cr_assert(strstr(hyp_last_error(), "already exists"), "%s", hyp_last_error());
    rmdir(out);
    // A stale out.tmp from a killed run is replaced; one holding foreign files is not.
    char tmpdir[512], junk[600];
    snprintf(tmpdir, sizeof tmpdir, "%s.tmp", out);
    mkdir(tmpdir, 0755);
    snprintf(junk, sizeof junk, "%s/items.bin", tmpdir);
    write_file(junk, "half");
    char slash[520];
    snprintf(slash, sizeof slash, "%s/", out);   // a trailing slash is fine
    cr_assert_eq(run_pretok(t, SAMPLE, slash, 32, 196, NULL), 0, "%s", hyp_last_error());
    cr_assert(exists(out) && !exists(tmpdir));
    rm_shard(out);
    mkdir(tmpdir, 0755);
    snprintf(junk, sizeof junk, "%s/notes.txt", tmpdir);
    write_file(junk, "mine");
    cr_assert_eq(run_pretok(t, SAMPLE, out, 32, 196, NULL), -1);
    cr_assert(strstr(hyp_last_error(), tmpdir) && strstr(hyp_last_error(), "stale"), "%s", hyp_last_error());
    cr_assert(!exists(out) && exists(junk), "foreign files are never removed");
    unlink(junk);
    rmdir(tmpdir);
    free(out);
    tok_free(t);
}

Test(train_data, flagembedding_extra_positives_and_empty_rows) {
    Tokenizer *t = load_tok();
    char *in = tmp_path("fe.jsonl"), *out = tmp_path("feshard");
    write_file(in,
               "{\"query\": \"q1\", \"pos\": [\"p1\", \"p2\"], \"neg\": [\"n1\"], \"pos_scores\": [3, 2.5], \"neg_scores\": [1]}\n"
               "{\"query\": \"q2\", \"pos\": [], \"neg\": [\"n1\"], \"pos_scores\": [], \"neg_scores\": [1]}\n"
               "{\"query\": \"q3\", \"pos\": [\"p\"], \"pos_scores\": [4]}\n");
    PretokStats st;
    cr_assert_eq(run_pretok(t, in, out, 32, 196, &st), 0, "%s", hyp_last_error());
    cr_assert_eq(st.rows, 2);
    cr_assert_eq(st.rows_empty, 1);
    cr_assert_eq(st.extra_positives, 1);
    cr_assert_eq(st.items, 3);   // p1 n1 | p
    Shard s = shard_read(out);
    cr_assert_eq(s.sc[0], 3.0f);
    cr_assert_eq(s.sc[1], 1.0f);
    cr_assert_eq(s.sc[2], 4.0f);
    // num_negatives = 1: row 0 usable, row 1 (no negatives) short.
    LoaderOptions o = loader_options_default();
    o.batch_size = 1;
    o.num_negatives = 1;
    Loader *l = loader_open(out, &o);
    cr_assert_not_null(l, "%s", hyp_last_error());
    cr_assert_eq(loader_info(l)->rows_usable, 1);
    cr_assert_eq(loader_info(l)->rows_short, 1);
    loader_close(l);
    // 7 negatives: nothing usable -> a clear error.
    o.num_negatives = 7;
    cr_assert_null(loader_open(out, &o));
    cr_assert(strstr(hyp_last_error(), out) && strstr(hyp_last_error(), "nothing to train on"), "%s", hyp_last_error());
    shard_free(&s);
    rm_shard(out);
    unlink(in);
    free(in);
    free(out);
    tok_free(t);
}

Test(train_data, bad_shards_name_the_file) {
    Tokenizer *t = load_tok();
    char *jsonl, *out = make_syn_shard(t, &jsonl);
    LoaderOptions o = loader_options_default();
    o.batch_size = 4;
    char p[512];
    // Truncated items.bin.
    snprintf(p, sizeof p, "%s/items.bin", out);
    struct stat sb;
    stat(p, &sb);
    cr_assert_eq(truncate(p, sb.st_size - 4), 0);
    cr_assert_null(loader_open(out, &o));
    cr_assert(strstr(hyp_last_error(), p) && strstr(hyp_last_error(), "truncated"), "%s", hyp_last_error());
    cr_assert_eq(truncate(p, sb.st_size), 0);   // zero-filled again: sizes fine
    // Wrong meta version.
    size_t n;
    char *meta = read_all(out, "meta.json", &n);
    meta[n] = 0;
    char *v = strstr(meta, "\"version\": 1");
    cr_assert_not_null(v);
    v[11] = '7';
    snprintf(p, sizeof p, "%s/meta.json", out);
    write_file(p, meta);
    cr_assert_null(loader_open(out, &o));
    cr_assert(strstr(hyp_last_error(), p) && strstr(hyp_last_error(), "version 7"), "%s", hyp_last_error());
    v[11] = '1';
    write_file(p, meta);
    Loader *l = loader_open(out, &o);
    cr_assert_not_null(l, "%s", hyp_last_error());
    loader_close(l);
    // Malformed meta.json and a missing file.
    write_file(p, "{\"format\": \"hyp-pretok\",");
    cr_assert_null(loader_open(out, &o));
    cr_assert(strstr(hyp_last_error(), p) && strstr(hyp_last_error(), "invalid JSON"), "%s", hyp_last_error());
    write_file(p, meta);
    snprintf(p, sizeof p, "%s/scores.bin", out);
    unlink(p);
    cr_assert_null(loader_open(out, &o));
    cr_assert(strstr(hyp_last_error(), p), "%s", hyp_last_error());
    cr_assert_null(loader_open("/nonexistent/shard", &o));
    cr_assert(strstr(hyp_last_error(), "/nonexistent/shard/meta.json"), "%s", hyp_last_error());
    free(meta);
    rm_shard(out);
    unlink(jsonl);
    free(out);
    free(jsonl);
    tok_free(t);
}

Test(train_data, corrupt_offsets_and_ids_are_errors_not_crashes) {
    Tokenizer *t = load_tok();
    char *jsonl, *out = make_syn_shard(t, &jsonl);
    LoaderOptions o = loader_options_default();
    o.batch_size = 39;   // every usable row in one batch
    char p[512];
    size_t n;
    // Garbage in an item's offset.
    uint64_t *io = read_all(out, "item_offsets.bin", &n);
    io[5] = 1ull << 40;
    snprintf(p, sizeof p, "%s/item_offsets.bin", out);
    FILE *f = fopen(p, "wb");
    fwrite(io, 1, n, f);
    fclose(f);
    Loader *l = loader_open(out, &o);
    cr_assert_not_null(l, "%s", hyp_last_error());
    TrainBatch b = {0};
    int rc = 0;
    for (int i = 0; i < 20 && rc == 0; i++) rc = loader_next(l, &b);   // item 4 or 5 is drawn sooner or later
    cr_assert_eq(rc, -1);
    cr_assert(strstr(hyp_last_error(), p), "%s", hyp_last_error());
    loader_close(l);
    free(io);
    // A token id outside the vocabulary.
    rm_shard(out);
    cr_assert_eq(run_pretok(t, jsonl, out, 16, 24, NULL), 0, "%s", hyp_last_error());
    int32_t *q = read_all(out, "queries.bin", &n);
    q[1] = 1 << 30;
    snprintf(p, sizeof p, "%s/queries.bin", out);
    f = fopen(p, "wb");
    fwrite(q, 1, n, f);
    fclose(f);
    l = loader_open(out, &o);
    cr_assert_not_null(l, "%s", hyp_last_error());
    cr_assert_eq(loader_next(l, &b), -1);
    cr_assert(strstr(hyp_last_error(), p) && strstr(hyp_last_error(), "outside the vocabulary"), "%s", hyp_last_error());
    loader_close(l);
    free(q);
    train_batch_free(&b);
    rm_shard(out);
    unlink(jsonl);
    free(out);
    free(jsonl);
    tok_free(t);
}

// Throughput on the real sample repeated 100 times (printed, not asserted).
Test(train_data, pretokenize_throughput) {
    Tokenizer *t = load_tok();
    size_t n;
    FILE *f = fopen(SAMPLE, "rb");
    cr_assert_not_null(f);
    char *s = hyp_malloc(200000);
    n = fread(s, 1, 200000, f);
    fclose(f);
    char *in = tmp_path("big.jsonl"), *out = tmp_path("bigshard");
    f = fopen(in, "wb");
    for (int i = 0; i < 100; i++) fwrite(s, 1, n, f);
    fclose(f);
    PretokStats st;
    cr_assert_eq(run_pretok(t, in, out, 32, 196, &st), 0, "%s", hyp_last_error());
    cr_assert_eq(st.rows, 1000);
    cr_log_info("pretokenize: %ld rows, %.1f MB in %.3f s: %.0f rows/s, %.1f MB/s", st.rows, st.bytes_in / 1e6,
                st.seconds, st.rows / st.seconds, st.bytes_in / 1e6 / st.seconds);
    fprintf(stderr, "pretokenize throughput: %ld rows (%.1f MB) in %.3f s: %.0f rows/s, %.1f MB/s\n", st.rows,
            st.bytes_in / 1e6, st.seconds, st.rows / st.seconds, st.bytes_in / 1e6 / st.seconds);
    rm_shard(out);
    unlink(in);
    free(s);
    free(in);
    free(out);
    tok_free(t);
}
// ---------------------------------------------------------------- issue 12
// `pretokenize --in /dev/zero` reached 9.2 GB and left DIR.tmp (data.train=/dev/zero hung in
// `hyp train`, which pretokenizes): now one error naming the line, and nothing left behind.
// Run in a child under a 1 GiB address-space limit and an alarm, so a regression cannot hang CI.
typedef struct { const Tokenizer *t; const char *out; } PretokArgs;
static bool dev_zero_pretok(void *arg) {
    PretokArgs *a = arg;
    return run_pretok(a->t, "/dev/zero", a->out, 32, 196, NULL) == -1 && strstr(hyp_last_error(), "/dev/zero:1: NUL byte");
}
Test(train_data, endless_input_fails_fast_and_leaves_nothing) {
    Tokenizer *t = load_tok();
    char *out = tmp_path("zeroshard"), tmpdir[512];
    snprintf(tmpdir, sizeof tmpdir, "%s.tmp", out);
    PretokArgs a = {t, out};
    expect_in_bounded_child(dev_zero_pretok, &a, "pretokenize(/dev/zero)");
    cr_assert(!exists(out) && !exists(tmpdir), "output left behind");
    // the streaming reader gets the same rule
    TrainReader *r = train_reader_open("/dev/zero", t, 32, 196, 0);
    cr_assert(r);
    TrainRow row = {0};
    cr_assert_eq(train_reader_next(r, &row), -1);
    cr_assert(strstr(hyp_last_error(), "/dev/zero:1: NUL byte"), "%s", hyp_last_error());
    train_reader_close(r);
    train_row_free(&row);
    free(out);
    tok_free(t);
}

Test(train_data, leading_bom_and_stale_tmp_messages) {
    Tokenizer *t = load_tok();
    char *in = tmp_path("bom.jsonl"), *out = tmp_path("bomshard");
    write_file(in, "\xEF\xBB\xBF{\"query\": \"q\", \"items\": [{\"content\": \"x\", \"score\": 1}]}\n");
    PretokStats st;
    cr_assert_eq(run_pretok(t, in, out, 32, 196, &st), 0, "%s", hyp_last_error());
    cr_assert_eq(st.rows, 1);
    cr_assert_eq(st.bytes_in, 3 + 56);
    rm_shard(out);
    // out.tmp exists but is a file: say so (it used to be "holds other files", as for a
    // read-only filesystem: now each errno gets its own message)
    char tmpfile[512];
    snprintf(tmpfile, sizeof tmpfile, "%s.tmp", out);
    write_file(tmpfile, "x");
    cr_assert_eq(run_pretok(t, in, out, 32, 196, NULL), -1);
    cr_assert(strstr(hyp_last_error(), tmpfile) && strstr(hyp_last_error(), "is not a directory"), "%s", hyp_last_error());
    unlink(tmpfile);
    unlink(in);
    free(in);
    free(out);
    tok_free(t);
}
#endif   // HYP_HAVE_JANSSON
