// test_tokenizer.c: BERT WordPiece parity with HuggingFace BertTokenizerFast.
// Expected ids: tests/fixtures/tokenizer_expected/*.tsv.gz, written by
// tests/fixtures/make_tokenizer_fixtures.py; the texts are re-read from ../shared/data
// (and tests/fixtures/tokenizer_adversarial.txt) in the order the script documents.
#include "tests/testlib.h"
#include "data/tokenizer.h"
#include "tests/bounded_child.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef HYP_HAVE_JANSSON
#include <jansson.h>
#endif

#define VOCAB SHARED_DATA "/vocab/bert-base-uncased-vocab.txt"
#define EXPECTED FIXTURE_DIR "/tokenizer_expected"

// ---------------------------------------------------------------- helpers

typedef struct { char *p; size_t n; } Buf;

static Buf read_cmd(const char *cmd) {
    FILE *f = popen(cmd, "r");
    cr_assert(f, "popen(%s) failed", cmd);
    Buf b = {hyp_malloc(1 << 20), 0};
    size_t cap = 1 << 20, k;
    while ((k = fread(b.p + b.n, 1, cap - b.n, f)) > 0) {
        b.n += k;
        if (b.n == cap) b.p = hyp_realloc(b.p, cap *= 2);
    }
    int rc = pclose(f);
    cr_assert(rc == 0, "`%s` failed (status %d)", cmd, rc);
    b.p = hyp_realloc(b.p, b.n + 1);
    b.p[b.n] = 0;
    return b;
}

// Whole file; .gz files through `gzip -dc` (the build does not link zlib).
static Buf read_all(const char *path) {
    cr_assert(access(path, R_OK) == 0, "cannot read %s (tests run from the repository root; "
                                       "data lives in ../shared/data)", path);
    char cmd[1024];
    size_t l = strlen(path);
    if (l > 3 && !strcmp(path + l - 3, ".gz")) snprintf(cmd, sizeof cmd, "gzip -dc '%s'", path);
    else snprintf(cmd, sizeof cmd, "cat '%s'", path);
    return read_cmd(cmd);
}

// Split into lines at LF (in place); a final empty piece after the last LF is dropped.
static char **split_lines(Buf *b, size_t *n_out, size_t **lens_out) {
    size_t cap = 1024, n = 0;
    char **lines = hyp_malloc(cap * sizeof *lines);
    size_t *lens = hyp_malloc(cap * sizeof *lens);
    size_t pos = 0;
    while (pos < b->n) {
        char *nl = memchr(b->p + pos, '\n', b->n - pos);
        size_t l = nl ? (size_t)(nl - (b->p + pos)) : b->n - pos;
        if (n == cap) {
            cap *= 2;
            lines = hyp_realloc(lines, cap * sizeof *lines);
            lens = hyp_realloc(lens, cap * sizeof *lens);
        }
        lines[n] = b->p + pos;
        lens[n] = l;
        b->p[pos + l] = 0;   // the LF (or the terminator read_cmd added)
        n++;
        pos += l + 1;
    }
    *n_out = n;
    if (lens_out) *lens_out = lens;
    else free(lens);
    return lines;
}

// One expected set: keys and ids in source order.
typedef struct {
    char *name;
    size_t n;
    char **keys;
    int32_t **ids;
    size_t *nids;
    Buf raw;
} Expected;

static Expected load_expected(const char *set) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.tsv.gz", EXPECTED, set);
    Expected e = {.name = hyp_strdup(set), .raw = read_all(path)};
    char **lines = split_lines(&e.raw, &e.n, NULL);
    e.keys = lines;
    e.ids = hyp_malloc(e.n * sizeof *e.ids);
    e.nids = hyp_malloc(e.n * sizeof *e.nids);
    for (size_t i = 0; i < e.n; i++) {
        char *tab = strchr(lines[i], '\t');
        cr_assert(tab, "%s line %zu: no TAB", path, i + 1);
        *tab = 0;
        size_t cap = 16, m = 0;
        int32_t *v = hyp_malloc(cap * sizeof *v);
        char *s = tab + 1, *end;
        while (*s) {
            long x = strtol(s, &end, 10);
            cr_assert(end != s, "%s line %zu: bad id list", path, i + 1);
            if (m == cap) v = hyp_realloc(v, (cap *= 2) * sizeof *v);
            v[m++] = (int32_t)x;
            s = end;
            while (*s == ' ') s++;
        }
        e.ids[i] = v;
        e.nids[i] = m;
    }
    return e;
}

static void free_expected(Expected *e) {
    for (size_t i = 0; i < e->n; i++) free(e->ids[i]);
    free(e->ids);
    free(e->nids);
    free(e->keys);
    free(e->raw.p);
    free(e->name);
}

// Running comparison of one set: counts mismatches, prints the first few.
typedef struct {
    const Tokenizer *t;
    Expected e;
    size_t next, compared, mismatches;
    TokIds got;
} Parity;

static Parity parity_begin(const Tokenizer *t, const char *set) {
    Parity p = {.t = t, .e = load_expected(set)};
    return p;
}

static void print_tokens(const Tokenizer *t, const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "      %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %s", tok_token_str(t, ids[i]) ? tok_token_str(t, ids[i]) : "?");
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

static void parity_check(Parity *p, const char *key, const char *text, size_t len) {
    cr_assert(p->next < p->e.n, "%s: more texts in the source than expected entries (at key %s)", p->e.name, key);
    size_t i = p->next++;
    cr_assert(!strcmp(p->e.keys[i], key), "%s entry %zu: key '%s' in the fixture, '%s' in the source "
              "(regenerate with tests/fixtures/make_tokenizer_fixtures.py)", p->e.name, i + 1, p->e.keys[i], key);
    tok_encode(p->t, text, len, 0, &p->got);
    p->compared++;
    if (p->got.n == p->e.nids[i] && !memcmp(p->got.ids, p->e.ids[i], p->got.n * sizeof(int32_t))) return;
    if (++p->mismatches <= 5) {
        fprintf(stderr, "  %s %s: text %.*s%s\n", p->e.name, key, (int)(len < 200 ? len : 200), text, len > 200 ? "..." : "");
        size_t k = 0;
        while (k < p->got.n && k < p->e.nids[i] && p->got.ids[k] == p->e.ids[i][k]) k++;
        fprintf(stderr, "      first difference at id %zu\n", k);
        print_tokens(p->t, "ours", p->got.ids + (k > 5 ? k - 5 : 0), p->got.n - (k > 5 ? k - 5 : 0));
        print_tokens(p->t, "HF  ", p->e.ids[i] + (k > 5 ? k - 5 : 0), p->e.nids[i] - (k > 5 ? k - 5 : 0));
    }
}

static void parity_end(Parity *p) {
    size_t n = p->e.n, next = p->next, mism = p->mismatches, cmp = p->compared;
    char name[64];
    snprintf(name, sizeof name, "%s", p->e.name);
    cr_log_info("%s: %zu texts compared with HF BertTokenizerFast, %zu mismatches", name, cmp, mism);
    fprintf(stderr, "tokenizer parity %s: %zu texts, %zu mismatches\n", name, cmp, mism);
    tok_ids_free(&p->got);
    free_expected(&p->e);
    cr_expect(next == n, "%s: %zu expected entries, %zu texts in the source", name, n, next);
    cr_expect(mism == 0, "%s: %zu of %zu texts differ from HF", name, mism, cmp);
}

static Tokenizer *load_bert(void) {
    Tokenizer *t = tok_load(VOCAB, true);
    cr_assert(t, "%s", hyp_last_error());
    return t;
}

// ---------------------------------------------------------------- parity suites

static void topics_parity(const char *set, const char *rel) {
    Tokenizer *t = load_bert();
    Parity p = parity_begin(t, set);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SHARED_DATA, rel);
    Buf b = read_all(path);
    size_t n, *lens;
    char **lines = split_lines(&b, &n, &lens);
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0) continue;
        char *tab = memchr(lines[i], '\t', lens[i]);
        cr_assert(tab, "%s:%zu: no TAB", path, i + 1);
        *tab = 0;
        parity_check(&p, lines[i], tab + 1, lens[i] - (size_t)(tab + 1 - lines[i]));
    }
    parity_end(&p);
    free(lines);
    free(lens);
    free(b.p);
    tok_free(t);
}

Test(tokenizer_parity, topics_dl19) { topics_parity("topics_dl19", "msmarco/topics.dl19-passage.txt"); }
Test(tokenizer_parity, topics_dl20) { topics_parity("topics_dl20", "msmarco/topics.dl20.txt"); }
Test(tokenizer_parity, topics_dev) { topics_parity("topics_dev", "msmarco/topics.msmarco-passage.dev-subset.txt"); }
Test(tokenizer_parity, topics_scifact) { topics_parity("topics_scifact", "tokenization/topics.beir-v1.0.0-scifact.test.tsv.gz"); }

#ifdef HYP_HAVE_JANSSON
// Passages of the rank_llm BM25 top-100 JSON files, first occurrence of each docid.
// Calls f(docid, text, len) for each, in order.
static void each_passage(void (*f)(void *, const char *, const char *, size_t), void *u) {
    const char *files[] = {"retrieve_results_dl19.bm25.top100.json", "retrieve_results_dl20.bm25.top100.json"};
    // Seen docids: open addressing on the string hash.
    size_t cap = 1 << 15, used = 0;
    char **seen = hyp_calloc(cap, sizeof *seen);
    for (int fi = 0; fi < 2; fi++) {
        char path[512];
        snprintf(path, sizeof path, "%s/msmarco/rank_llm_bm25_top100/%s", SHARED_DATA, files[fi]);
        json_error_t err;
        json_t *root = json_load_file(path, 0, &err);
        cr_assert(root && json_is_array(root), "%s:%d: %s", path, err.line, err.text);
        size_t qi;
        json_t *q;
        json_array_foreach(root, qi, q) {
            json_t *hits = json_object_get(q, "hits");
            cr_assert(json_is_array(hits), "%s: query %zu has no hits array", path, qi);
            size_t hi;
            json_t *h;
            json_array_foreach(hits, hi, h) {
                const char *docid = json_string_value(json_object_get(h, "docid"));
                json_t *content = json_object_get(h, "content");
                cr_assert(docid && json_is_string(content), "%s: query %zu hit %zu: docid/content", path, qi, hi);
                uint32_t hsh = 2166136261u;
                for (const char *c = docid; *c; c++) hsh = (hsh ^ (uint8_t)*c) * 16777619u;
                size_t j = hsh & (cap - 1);
                while (seen[j] && strcmp(seen[j], docid)) j = (j + 1) & (cap - 1);
                if (seen[j]) continue;
                cr_assert(++used < cap / 2, "too many passages for the seen-set");
                seen[j] = hyp_strdup(docid);
                f(u, docid, json_string_value(content), json_string_length(content));
            }
        }
        json_decref(root);
    }
    for (size_t j = 0; j < cap; j++) free(seen[j]);
    free(seen);
}

static void passage_parity_cb(void *u, const char *docid, const char *text, size_t len) {
    parity_check(u, docid, text, len);
}

Test(tokenizer_parity, passages) {
    Tokenizer *t = load_bert();
    Parity p = parity_begin(t, "passages");
    each_passage(passage_parity_cb, &p);
    parity_end(&p);
    tok_free(t);
}
#else
Test(tokenizer_parity, passages) { cr_skip_test("built without jansson: the passage JSON cannot be read"); }
#endif

Test(tokenizer_parity, cacm) {
    Tokenizer *t = load_bert();
    Parity p = parity_begin(t, "cacm");
    Buf b = read_all(SHARED_DATA "/collections/cacm/cacm.tar.gz");   // the tar, un-gzipped
    size_t pos = 0;
    while (pos + 512 <= b.n) {
        const char *h = b.p + pos;
        if (!h[0]) break;   // end-of-archive block
        char name[101], szs[13];
        memcpy(name, h, 100); name[100] = 0;
        memcpy(szs, h + 124, 12); szs[12] = 0;
        size_t size = strtoul(szs, NULL, 8);
        char type = h[156];
        pos += 512;
        cr_assert(pos + size <= b.n, "cacm.tar.gz: member %s truncated", name);
        if (type == '0' || type == 0) {
            const char *base = strrchr(name, '/');
            parity_check(&p, base ? base + 1 : name, b.p + pos, size);
        }
        pos += (size + 511) / 512 * 512;
    }
    parity_end(&p);
    free(b.p);
    tok_free(t);
}

Test(tokenizer_parity, vaswani) {
    Tokenizer *t = load_bert();
    Parity p = parity_begin(t, "vaswani");
    Buf b = read_all(SHARED_DATA "/collections/vaswani_npl/doc-text.trec");
    Buf copy = {hyp_malloc(b.n + 1), b.n};   // the joined text, with its LFs
    memcpy(copy.p, b.p, b.n + 1);
    size_t n, *lens;
    char **lines = split_lines(&b, &n, &lens);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(lines[i], "<DOC>")) continue;
        cr_assert(i + 1 < n && !strncmp(lines[i + 1], "<DOCNO>", 7) && lens[i + 1] >= 15, "doc-text.trec:%zu: DOCNO", i + 2);
        char docno[64];
        snprintf(docno, sizeof docno, "%.*s", (int)(lens[i + 1] - 15), lines[i + 1] + 7);
        size_t j = i + 2;
        while (j < n && strcmp(lines[j], "</DOC>")) j++;
        cr_assert(j < n, "doc-text.trec: unterminated <DOC> at line %zu", i + 1);
        // Lines i+2 .. j-1 joined by LF = the bytes from line i+2 to the end of line j-1.
        size_t from = (size_t)(lines[i + 2] - b.p), to = j > i + 2 ? (size_t)(lines[j - 1] - b.p) + lens[j - 1] : from;
        parity_check(&p, docno, copy.p + from, to - from);
        i = j;
    }
    parity_end(&p);
    free(lines);
    free(lens);
    free(b.p);
    free(copy.p);
    tok_free(t);
}

Test(tokenizer_parity, adversarial) {
    Tokenizer *t = load_bert();
    Parity p = parity_begin(t, "adversarial");
    Buf b = read_all(FIXTURE_DIR "/tokenizer_adversarial.txt");
    size_t n, *lens;
    char **lines = split_lines(&b, &n, &lens);
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "%zu", i + 1);
        parity_check(&p, key, lines[i], lens[i]);
    }
    parity_end(&p);
    free(lines);
    free(lens);
    free(b.p);
    tok_free(t);
}

static int put_utf8(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// Every Unicode scalar value, 256 per text, each as the word "a<c>b".
Test(tokenizer_parity, every_code_point) {
#ifndef HYP_HAVE_UTF8PROC
    cr_skip_test("built without utf8proc: only ASCII and Latin-1 are normalized");
#endif
    Tokenizer *t = load_bert();
    Parity p = parity_begin(t, "sweep");
    char *buf = hyp_malloc(256 * 7);
    for (uint32_t base = 0; base < 0x110000; base += 256) {
        size_t n = 0;
        for (uint32_t cp = base; cp < base + 256; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;
            if (n) buf[n++] = ' ';
            buf[n++] = 'a';
            n += (size_t)put_utf8(cp, buf + n);
            buf[n++] = 'b';
        }
        if (!n) continue;
        char key[16];
        snprintf(key, sizeof key, "%X", base);
        parity_check(&p, key, buf, n);
    }
    parity_end(&p);
    free(buf);
    tok_free(t);
}

// ---------------------------------------------------------------- published references

#ifdef HYP_HAVE_JANSSON
Test(tokenizer_reference, published_cases) {
    Tokenizer *t = load_bert();
    json_error_t err;
    json_t *root = json_load_file(SHARED_DATA "/tokenization/bert_base_uncased_reference_cases.json", 0, &err);
    cr_assert(root, "reference cases: line %d: %s", err.line, err.text);
    json_t *cases = json_object_get(root, "cases");
    size_t i, n_ok = 0;
    json_t *c;
    TokIds got = {0};
    json_array_foreach(cases, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        json_t *ns = json_object_get(c, "never_split");
        const char *list[8];
        int nl = 0;
        if (json_is_array(ns)) {   // torchtext's never_split list; [] = split everything
            size_t k;
            json_t *s;
            json_array_foreach(ns, k, s) list[nl++] = json_string_value(s);
            cr_assert(tok_set_never_split(t, list, nl), "%s", hyp_last_error());
        } else {                   // HF default: the vocab's special tokens
            const char *def[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
            cr_assert(tok_set_never_split(t, def, 5));
        }
        if (json_is_true(json_object_get(c, "add_special_tokens"))) tok_encode(t, text, strlen(text), 0, &got);
        else { got.n = 0; tok_wordpieces(t, text, strlen(text), 0, &got); }
        json_t *ids = json_object_get(c, "ids"), *toks = json_object_get(c, "tokens");
        cr_expect_eq(got.n, json_array_size(ids), "case %zu '%s': %zu ids, expected %zu", i, text, got.n, json_array_size(ids));
        for (size_t k = 0; k < got.n && k < json_array_size(ids); k++) {
            cr_expect_eq(got.ids[k], json_integer_value(json_array_get(ids, k)), "case %zu '%s' id %zu", i, text, k);
            cr_expect_str_eq(tok_token_str(t, got.ids[k]), json_string_value(json_array_get(toks, k)), "case %zu token %zu", i, k);
        }
        n_ok++;
    }
    cr_assert_eq(n_ok, 15);
    tok_ids_free(&got);
    json_decref(root);
    tok_free(t);
}
#endif

// Order lines "qid<TAB>..." by qid (the two files of a pair need not share an order).
typedef struct { char *line; size_t len; } Line;
static int by_qid(const void *a, const void *b) {
    const char *x = ((const Line *)a)->line, *y = ((const Line *)b)->line;
    size_t lx = strcspn(x, "\t"), ly = strcspn(y, "\t");
    int c = memcmp(x, y, lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}
static void sort_by_qid(char **lines, size_t *lens, size_t n) {
    Line *v = hyp_malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = (Line){lines[i], lens[i]};
    qsort(v, n, sizeof *v, by_qid);
    for (size_t i = 0; i < n; i++) { lines[i] = v[i].line; lens[i] = v[i].len; }
    free(v);
}

// Anserini's bert-base-uncased WordPiece topics: the same tokens, without [CLS]/[SEP].
static void anserini(const char *wp, const char *plain) {
    Tokenizer *t = load_bert();
    char path[512];
    snprintf(path, sizeof path, "%s/tokenization/%s", SHARED_DATA, wp);
    Buf bw = read_all(path);
    size_t nw, *lw;
    char **want = split_lines(&bw, &nw, &lw);
    snprintf(path, sizeof path, "%s/%s", SHARED_DATA, plain);
    Buf bp = read_all(path);
    size_t np, *lp;
    char **text = split_lines(&bp, &np, &lp);
    cr_assert_eq(nw, np, "%s and %s: %zu vs %zu lines", wp, plain, nw, np);
    sort_by_qid(want, lw, nw);
    sort_by_qid(text, lp, np);
    TokIds got = {0};
    size_t bad = 0, cap = 1 << 16;
    char *joined = hyp_malloc(cap);
    for (size_t i = 0; i < np; i++) {
        char *tw = strchr(want[i], '\t'), *tp = strchr(text[i], '\t');
        cr_assert(tw && tp, "line %zu: no TAB", i + 1);
        cr_assert(tw - want[i] == tp - text[i] && !memcmp(want[i], text[i], (size_t)(tp - text[i])),
                  "line %zu: qids differ", i + 1);
        got.n = 0;
        tok_wordpieces(t, tp + 1, lp[i] - (size_t)(tp + 1 - text[i]), 0, &got);
        size_t m = 0;
        for (size_t k = 0; k < got.n; k++) {
            const char *s = tok_token_str(t, got.ids[k]);
            size_t l = strlen(s);
            cr_assert(m + l + 2 < cap);
            if (k) joined[m++] = ' ';
            memcpy(joined + m, s, l);
            m += l;
        }
        joined[m] = 0;
        if (strcmp(joined, tw + 1) && ++bad <= 5)
            fprintf(stderr, "  anserini %s: %s\n    ours %s\n    want %s\n", wp, tp + 1, joined, tw + 1);
    }
    fprintf(stderr, "tokenizer anserini %s: %zu queries, %zu differ\n", wp, np, bad);
    cr_expect_eq(bad, 0, "%s: %zu of %zu queries differ from Anserini's WordPiece", wp, bad, np);
    free(joined);
    tok_ids_free(&got);
    free(want); free(lw); free(bw.p);
    free(text); free(lp); free(bp.p);
    tok_free(t);
}

Test(tokenizer_reference, anserini_dl19) { anserini("topics.dl19-passage.wp.tsv.gz", "msmarco/topics.dl19-passage.txt"); }
Test(tokenizer_reference, anserini_dl20) { anserini("topics.dl20.wp.tsv.gz", "msmarco/topics.dl20.txt"); }
Test(tokenizer_reference, anserini_dev) {
    anserini("topics.msmarco-passage.dev-subset.wp.tsv.gz", "msmarco/topics.msmarco-passage.dev-subset.txt");
}
Test(tokenizer_reference, anserini_scifact) {
    anserini("topics.beir-v1.0.0-scifact.test.wp.tsv.gz", "tokenization/topics.beir-v1.0.0-scifact.test.tsv.gz");
}

// ---------------------------------------------------------------- encode, truncate, batch

static const char *const SAMPLE[] = {
    "The quick brown fox jumps over the lazy dog.",
    "",
    "Hypencoder: hypernetworks for knowledge-intensive retrieval, unaffable résumé!",
    "a",
    "中文 text [MASK] here",
};
#define NSAMPLE (int)(sizeof SAMPLE / sizeof SAMPLE[0])

Test(tokenizer, specials_by_string) {
    Tokenizer *t = load_bert();
    cr_expect_eq(tok_vocab_size(t), 30522);
    const char *names[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int k = 0; k < TOK_NSPECIAL; k++) {
        cr_expect_eq(tok_special_id(t, (TokSpecial)k), tok_token_id(t, names[k], strlen(names[k])));
        cr_expect_str_eq(tok_token_str(t, tok_special_id(t, (TokSpecial)k)), names[k]);
    }
    cr_expect_eq(tok_token_id(t, "##ing", 5), 2075);   // vocab line 2076
    cr_expect_eq(tok_token_id(t, "ing", 3), 13749);
    cr_expect_eq(tok_token_id(t, "nosuchtoken", 11), -1);
    cr_expect_null(tok_token_str(t, 30522));
    cr_expect_null(tok_token_str(t, -1));
    tok_free(t);
}

Test(tokenizer, truncation) {
    Tokenizer *t = load_bert();
    TokIds full = {0}, tr = {0};
    int lens[] = {2, 3, 4, 8, 11, 12, 13, 32, 128, 512};
    for (int s = 0; s < NSAMPLE; s++) {
        const char *x = SAMPLE[s];
        tok_encode(t, x, strlen(x), 0, &full);
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            int k = lens[li];
            tok_encode(t, x, strlen(x), k, &tr);
            size_t want = full.n <= (size_t)k ? full.n : (size_t)k;
            cr_assert_eq(tr.n, want, "'%s' max_len %d: %zu ids, want %zu", x, k, tr.n, want);
            cr_expect_eq(tr.ids[0], tok_special_id(t, TOK_CLS));
            cr_expect_eq(tr.ids[tr.n - 1], tok_special_id(t, TOK_SEP), "'%s' max_len %d: last is not [SEP]", x, k);
            cr_expect(!memcmp(tr.ids, full.ids, (tr.n - 1) * sizeof(int32_t)), "'%s' max_len %d: not a prefix", x, k);
        }
    }
    // A long word cut in the middle of its pieces, and an [UNK] word at the boundary.
    const char *x = "unaffable " "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa x";
    tok_encode(t, x, strlen(x), 0, &full);
    for (int k = 2; k <= (int)full.n + 1; k++) {
        tok_encode(t, x, strlen(x), k, &tr);
        size_t want = full.n <= (size_t)k ? full.n : (size_t)k;
        cr_assert_eq(tr.n, want);
        cr_expect(!memcmp(tr.ids, full.ids, (tr.n - 1) * sizeof(int32_t)), "max_len %d", k);
    }
    tok_ids_free(&full);
    tok_ids_free(&tr);
    tok_free(t);
}

Test(tokenizer, batch_padding_and_mask) {
    Tokenizer *t = load_bert();
    TokBatch b = {0};
    TokIds one = {0};
    for (int max_len = 0; max_len <= 12; max_len += 6) {
        if (max_len == 0 || max_len >= 2) tok_encode_batch(t, SAMPLE, NULL, NSAMPLE, max_len, &b);
        cr_assert_eq(b.batch, NSAMPLE);
        size_t longest = 0;
        for (int i = 0; i < NSAMPLE; i++) {
            tok_encode(t, SAMPLE[i], strlen(SAMPLE[i]), max_len, &one);
            if (one.n > longest) longest = one.n;
            for (int j = 0; j < b.len; j++) {
                int32_t id = b.ids[(size_t)i * b.len + j], m = b.mask[(size_t)i * b.len + j];
                if ((size_t)j < one.n) {
                    cr_expect_eq(id, one.ids[j], "row %d col %d", i, j);
                    cr_expect_eq(m, 1);
                } else {
                    cr_expect_eq(id, tok_special_id(t, TOK_PAD), "row %d col %d: not [PAD]", i, j);
                    cr_expect_eq(m, 0);
                }
            }
        }
        cr_expect_eq((size_t)b.len, longest, "max_len %d: padded to %d, longest %zu", max_len, b.len, longest);
    }
    size_t lens[2] = {3, 0};
    const char *two[2] = {"abcdef", "zzz"};
    tok_encode_batch(t, two, lens, 2, 0, &b);   // explicit lengths: "abc" and ""
    cr_expect_eq(b.len, 3);
    cr_expect_eq(b.ids[1], tok_token_id(t, "abc", 3));
    cr_expect_eq(b.mask[3 + 2], 0);
    tok_batch_free(&b);
    tok_ids_free(&one);
    tok_free(t);
}

Test(tokenizer, threads_agree) {
    Tokenizer *t = load_bert();
    Buf b = read_all(SHARED_DATA "/collections/vaswani_npl/doc-text.trec");
    size_t n, *lens;
    char **lines = split_lines(&b, &n, &lens);
    size_t *h1 = hyp_calloc(n, sizeof *h1), *h2 = hyp_calloc(n, sizeof *h2);
    for (int pass = 0; pass < 2; pass++) {
        size_t *h = pass ? h2 : h1;
#pragma omp parallel for schedule(dynamic, 64) if (pass)
        for (size_t i = 0; i < n; i++) {
            TokIds v = {0};
            tok_encode(t, lines[i], lens[i], 0, &v);
            size_t x = 1469598103934665603ull;
            for (size_t k = 0; k < v.n; k++) x = (x ^ (size_t)v.ids[k]) * 1099511628211ull;
            h[i] = x;
            tok_ids_free(&v);
        }
    }
    cr_expect(!memcmp(h1, h2, n * sizeof *h1), "parallel encoding differs from sequential");
    free(h1); free(h2); free(lines); free(lens); free(b.p);
    tok_free(t);
}

// A tiny vocab: WordPiece rules without bert-base's ids.
Test(tokenizer, small_vocab_wordpiece) {
    const char v[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nun\n##aff\n##able\naff\n##a\na\n##b\nb\n!\n##!\n";
    Tokenizer *t = tok_from_vocab_text(v, sizeof v - 1, "small", true);
    cr_assert(t, "%s", hyp_last_error());
    cr_expect_eq(tok_special_id(t, TOK_MASK), -1);
    TokIds o = {0};
    const char *x = "UnAffable aff ab ba abx !! unaff" ;
    tok_wordpieces(t, x, strlen(x), 0, &o);
    const char *want[] = {"un", "##aff", "##able", "aff", "a", "##b", "b", "##a", "[UNK]", "!", "!", "un", "##aff"};
    cr_assert_eq(o.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < o.n; i++) cr_expect_str_eq(tok_token_str(t, o.ids[i]), want[i], "piece %zu", i);
    // never-split strings are cut out of the raw text, even inside a word
    const char *ns[] = {"[SEP]"};
    cr_assert(tok_set_never_split(t, ns, 1));
    o.n = 0;
    tok_wordpieces(t, "a[SEP]b [sep]", 13, 0, &o);
    cr_expect_eq(o.n, 6);   // a [SEP] b [ sep ] -> a [SEP] b [UNK] [UNK] [UNK] ([, sep, ] unknown)
    cr_expect_eq(o.ids[1], tok_special_id(t, TOK_SEP));
    const char *bad[] = {"[MASK]"};
    cr_expect(!tok_set_never_split(t, bad, 1), "a never-split string outside the vocab must be refused");
    tok_ids_free(&o);
    tok_free(t);
}

// Words of exactly 100 and 101 characters (after normalization).
Test(tokenizer, max_word_chars) {
    Tokenizer *t = load_bert();
    char w[512];
    TokIds o = {0};
    for (int n = 99; n <= 102; n++) {
        memset(w, 'a', (size_t)n);
        o.n = 0;
        tok_wordpieces(t, w, (size_t)n, 0, &o);
        if (n <= TOK_MAX_WORD_CHARS) cr_expect(o.n > 1 && o.ids[0] != tok_special_id(t, TOK_UNK), "%d chars", n);
        else cr_expect(o.n == 1 && o.ids[0] == tok_special_id(t, TOK_UNK), "%d chars must be [UNK]", n);
    }
    tok_ids_free(&o);
    tok_free(t);
}

// ---------------------------------------------------------------- bad vocab files

static char g_dir[] = "/tmp/hyp_test_tok_XXXXXX";

static void expect_vocab_error(const char *name, const char *content, size_t len, const char *want) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fwrite(content, 1, len, f);
    fclose(f);
    hyp_clear_error();
    Tokenizer *t = tok_load(path, true);
    cr_expect_null(t, "%s: loaded, expected an error", name);
    tok_free(t);
    char full[512];
    snprintf(full, sizeof full, "%s%s", path, want);
    cr_expect(strstr(hyp_last_error(), full) != NULL, "%s: error '%s' does not contain '%s'", name, hyp_last_error(), full);
    unlink(path);
}

Test(tokenizer, bad_vocab_files) {
    cr_assert(mkdtemp(g_dir));
#define S(x) x, sizeof(x) - 1
    expect_vocab_error("empty.txt", S(""), ": empty vocab file");
    expect_vocab_error("dup.txt", S("[PAD]\n[UNK]\nthe\n[CLS]\n[SEP]\nthe\n"), ":6: duplicate token 'the' (first on line 3)");
    expect_vocab_error("blank.txt", S("[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n"), ":3: empty line");
    expect_vocab_error("crlf.txt", S("[PAD]\r\n[UNK]\r\n"), ":1: CR in token");
    expect_vocab_error("ctrl.txt", S("[PAD]\n[UNK]\na\tb\n"), ":3: control character");
    expect_vocab_error("utf8.txt", S("[PAD]\n[UNK]\n[CLS]\nab\xff\n"), ":4: invalid UTF-8");
    expect_vocab_error("nounk.txt", S("[PAD]\n[CLS]\n[SEP]\nthe\n"), ": vocab has no [UNK] token");
    expect_vocab_error("nocls.txt", S("[PAD]\n[UNK]\n[SEP]\n"), ": vocab has no [CLS] token");
#undef S
    char missing[256];
    snprintf(missing, sizeof missing, "%s/does-not-exist.txt", g_dir);
    cr_expect_null(tok_load(missing, true));
    cr_expect(strstr(hyp_last_error(), missing), "missing file: '%s'", hyp_last_error());
    rmdir(g_dir);
    // A final line without LF is accepted.
    const char ok[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello";
    Tokenizer *t = tok_from_vocab_text(ok, sizeof ok - 1, "ok", true);
    cr_assert(t, "%s", hyp_last_error());
    cr_expect_eq(tok_token_id(t, "hello", 5), 4);
    tok_free(t);
}

// ---------------------------------------------------------------- issue 12
// `--vocab /dev/zero` hung (read to memory exhaustion); oversized vocab files are refused
// before reading them; a BOM no longer becomes part of token 0.
Test(tokenizer, vocab_bom_size_limit_and_endless_input, .timeout = 30) {
    const char bom[] = "\xEF\xBB\xBF[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n";
    Tokenizer *t = tok_from_vocab_text(bom, sizeof bom - 1, "bom", true);
    cr_assert(t, "%s", hyp_last_error());
    cr_expect_eq(tok_special_id(t, TOK_PAD), 0);
    cr_expect_str_eq(tok_token_str(t, 0), "[PAD]");
    tok_free(t);
    double t0 = hyp_now();
    cr_expect_null(tok_load("/dev/zero", true));
    cr_expect(strstr(hyp_last_error(), "/dev/zero:1: NUL byte"), "%s", hyp_last_error());
    cr_expect_lt(hyp_now() - t0, 5.0);
    char path[] = "/tmp/hyp_vocab_big_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(ftruncate(fd, (off_t)TOK_MAX_VOCAB_BYTES + 1), 0);   // sparse: no disk used
    close(fd);
    cr_expect_null(tok_load(path, true));
    cr_expect(strstr(hyp_last_error(), path) && strstr(hyp_last_error(), "larger than the 64 MiB limit"), "%s",
              hyp_last_error());
    unlink(path);
}

// The tokenize command's loop as a library function (`hyp tokenize < /dev/zero` grew to
// 5.2 GB): same output as the command, a BOM dropped, an endless line an error.
static bool dev_zero_tok_lines(void *arg) {
    FILE *in = fopen("/dev/zero", "rb"), *out = fopen("/dev/null", "w");
    int rc = tok_lines(arg, in, "stdin", out, &(TokLinesOptions){.specials = true});
    return rc == -1 && strstr(hyp_last_error(), "stdin:1: line longer than 16 MiB");
}
Test(tokenizer, tok_lines_is_the_command_loop_bounded) {
    Tokenizer *t = tok_load(VOCAB, true);
    cr_assert(t, "%s", hyp_last_error());
    const char text[] = "Hello, World!\n\nna\xc3\xafve caf\xc3\xa9 [MASK] x\r\nlast line no newline";
    char path[] = "/tmp/hyp_tok_lines_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    for (int mode = 0; mode < 3; mode++) {
        TokLinesOptions o = {.specials = mode != 1, .tokens = mode == 2, .max_len = mode == 1 ? 3 : 0};
        char cmd[512];
        snprintf(cmd, sizeof cmd, HYP_BIN " tokenize --vocab " VOCAB "%s%s < %s", mode == 1 ? " --no-specials --max-len 3" : "",
                 mode == 2 ? " --tokens" : "", path);
        Buf want = read_cmd(cmd);
        char *got = NULL;
        size_t glen = 0;
        FILE *out = open_memstream(&got, &glen);
        FILE *in = fopen(path, "rb");
        cr_assert_eq(tok_lines(t, in, path, out, &o), 0, "%s", hyp_last_error());
        fclose(in);
        fclose(out);
        cr_assert_eq(glen, want.n, "mode %d: %zu vs %zu bytes", mode, glen, want.n);
        cr_assert(!memcmp(got, want.p, glen), "mode %d: output differs from hyp tokenize:\n%s\nvs\n%s", mode, got, want.p);
        // with a BOM in front: the same output
        char *bom = NULL;
        size_t blen = 0;
        FILE *bin = fmemopen((void *)"\xEF\xBB\xBF" "Hello, World!\n", 17, "rb");
        out = open_memstream(&bom, &blen);
        cr_assert_eq(tok_lines(t, bin, "bom", out, &o), 0, "%s", hyp_last_error());
        fclose(bin);
        fclose(out);
        cr_assert(blen > 0 && !memcmp(bom, want.p, blen), "mode %d: BOM changed the first line: %s", mode, bom);
        free(bom);
        free(got);
        free(want.p);
    }
    unlink(path);
    expect_in_bounded_child(dev_zero_tok_lines, t, "tok_lines(/dev/zero)");
    tok_free(t);
}
