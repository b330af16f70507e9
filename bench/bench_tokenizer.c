// bench_tokenizer.c: our BERT WordPiece tokenizer against HuggingFace `tokenizers` (Rust),
// both single-threaded, on the same texts in the same run (DESIGN §7): every unique passage of
// the MS MARCO BM25 top-100 lists for TREC DL19 + DL20 (../shared/data, 9,658 passages).
// The reference runs in bench/bench_tokenizer_hf.py (TOKENIZERS_PARALLELISM=false,
// RAYON_NUM_THREADS=1); without python3/tokenizers only our numbers are printed.
// Usage: bench_tokenizer [--reps N]   (run from the repository root)
#include "data/tokenizer.h"
#include "autograd/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef HYP_HAVE_JANSSON
#include <jansson.h>
#endif

#define DATA "../shared/data"
#define VOCAB DATA "/vocab/bert-base-uncased-vocab.txt"

int main(int argc, char **argv) {
    int reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) reps = 2;
        else { fprintf(stderr, "usage: bench_tokenizer [--reps N] [--quick]\n"); return 1; }
    }
    if (reps < 1) reps = 1;
#ifndef HYP_HAVE_JANSSON
    fprintf(stderr, "bench_tokenizer: built without jansson, cannot read the passages\n");
    return 0;
#else
    Tokenizer *t = tok_load(VOCAB, true);
    if (!t) { fprintf(stderr, "bench_tokenizer: %s\n", hyp_last_error()); return 1; }

    // Unique passages (first occurrence of each docid), as tests/test_tokenizer.c reads them.
    json_t *texts = json_array(), *seen = json_object();
    const char *files[] = {"retrieve_results_dl19.bm25.top100.json", "retrieve_results_dl20.bm25.top100.json"};
    size_t bytes = 0;
    for (int f = 0; f < 2; f++) {
        char path[512];
        snprintf(path, sizeof path, DATA "/msmarco/rank_llm_bm25_top100/%s", files[f]);
        json_error_t err;
        json_t *root = json_load_file(path, 0, &err);
        if (!root) { fprintf(stderr, "bench_tokenizer: %s:%d: %s\n", path, err.line, err.text); return 1; }
        size_t qi, hi;
        json_t *q, *h;
        json_array_foreach(root, qi, q) {
            json_array_foreach(json_object_get(q, "hits"), hi, h) {
                const char *docid = json_string_value(json_object_get(h, "docid"));
                json_t *c = json_object_get(h, "content");
                if (!docid || !json_is_string(c) || json_object_get(seen, docid)) continue;
                json_object_set_new(seen, docid, json_true());
                json_array_append(texts, c);
                bytes += json_string_length(c);
            }
        }
        json_decref(root);
    }
    size_t n = json_array_size(texts);
    const char **tx = hyp_malloc(n * sizeof *tx);
    size_t *lens = hyp_malloc(n * sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        tx[i] = json_string_value(json_array_get(texts, i));
        lens[i] = json_string_length(json_array_get(texts, i));
    }

    // Ours: tok_encode ([CLS] ... [SEP], no truncation) of every passage, best of reps.
    TokIds ids = {0};
    size_t tokens = 0;
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {   // r = 0: warm-up
        double t0 = hyp_now();
        size_t nt = 0;
        for (size_t i = 0; i < n; i++) nt += tok_encode(t, tx[i], lens[i], 0, &ids);
        double dt = hyp_now() - t0;
        if (r > 0 && dt < best) best = dt;
        tokens = nt;
    }
    double ours = tokens / best;
    printf("bert-base-uncased WordPiece, %zu MS MARCO passages (%.1f MB, %zu tokens with [CLS]/[SEP]), 1 thread, best of %d\n",
           n, bytes / 1e6, tokens, reps);
    printf("  hyp tokenizer        %8.3f s  %10.0f tokens/s  %7.1f MB/s\n", best, ours, bytes / best / 1e6);

    // Reference: HF tokenizers on the same texts, written to a temporary JSON file.
    char tmp[] = "/tmp/hyp_bench_tok_XXXXXX";
    int fd = mkstemp(tmp);
    int rc = 1;
    if (fd >= 0) {
        close(fd);
        if (json_dump_file(texts, tmp, JSON_COMPACT) == 0) {
            char cmd[1024];
            snprintf(cmd, sizeof cmd,
                     "TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 python3 bench/bench_tokenizer_hf.py '%s' '%s' %d 2>&1",
                     VOCAB, tmp, reps);
            FILE *p = popen(cmd, "r");
            char line[4096] = "", last[4096] = "";
            while (p && fgets(line, sizeof line, p)) memcpy(last, line, sizeof line);
            int st = p ? pclose(p) : -1;
            json_error_t err;
            json_t *res = st == 0 ? json_loads(last, 0, &err) : NULL;
            if (res && json_is_true(json_object_get(res, "ok"))) {
                double hs = json_real_value(json_object_get(res, "best_s"));
                json_int_t ht = json_integer_value(json_object_get(res, "tokens"));
                double hf = ht / hs;
                printf("  HF tokenizers %-6s %8.3f s  %10.0f tokens/s  %7.1f MB/s\n",
                       json_string_value(json_object_get(res, "version")), hs, hf, bytes / hs / 1e6);
                printf("  ratio (ours / HF tokens/s): %.2fx%s\n", ours / hf,
                       (size_t)ht == tokens ? "" : "   (WARNING: token counts differ)");
                rc = 0;
            } else {
                printf("  HF tokenizers: reference unavailable (%s)\n",
                       res ? json_string_value(json_object_get(res, "error")) : (last[0] ? last : "python3 failed"));
            }
            json_decref(res);
        }
        unlink(tmp);
    }
    if (rc) printf("  ratio: n/a\n");
    free(tx);
    free(lens);
    tok_ids_free(&ids);
    json_decref(texts);
    json_decref(seen);
    tok_free(t);
    return 0;
#endif
}
