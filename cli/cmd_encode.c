// hyp encode --model M.h5 --corpus FILE --out DOCS.h5 [--side document|query] [--pooling cls|mean]
//            [--max-len N] [--batch N] [--vocab VOCAB] [--device cpu|cuda]
// Vectors: HDF5 /embeddings (N, d) fp32 and /ids (N strings), written through the atomic
// writer (DOCS.h5.tmp, fsync, rename), so a failure never leaves a partial file. The
// document side by default (a Hypencoder's passage encoder, BE-Base's document encoder);
// --side query encodes with a BE-Base or plain BERT model's query encoder (a Hypencoder's
// queries are q-nets, not vectors). Pooling and normalisation are the model's unless
// --pooling says otherwise.
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "search/encode.h"
#include "data/corpus.h"
#include "search/store.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(void) {
    fprintf(stderr, "usage: hyp encode --model M.h5 --corpus FILE.{tsv,jsonl} --out DOCS.h5 [--side document|query]\n"
                    "                  [--pooling cls|mean] [--max-len N] [--batch N] [--vocab VOCAB] [--device cpu|cuda]\n");
    return 1;
}

int cmd_encode(int argc, char **argv) {
    const char *model = NULL, *corpus = NULL, *out = NULL, *vocab = NULL;
    EncodeOptions o = {.batch = 64, .progress = true};
    Device dev = HYP_CPU;
    EncodeSide side = SIDE_DOCUMENT;
    int pooling = -1;   // -1: the model's
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--model") && v) model = argv[++i];
        else if (!strcmp(a, "--corpus") && v) corpus = argv[++i];
        else if (!strcmp(a, "--out") && v) out = argv[++i];
        else if (!strcmp(a, "--vocab") && v) vocab = argv[++i];
        else if (!strcmp(a, "--max-len") && v) { if (cli_int("encode", a, argv[++i], 2, 1 << 20, &o.max_len)) return 1; }
        else if (!strcmp(a, "--batch") && v) { if (cli_int("encode", a, argv[++i], 1, 1 << 20, &o.batch)) return 1; }
        else if (!strcmp(a, "--pooling") && v) {
            const char *p = argv[++i];
            if (!strcmp(p, "cls")) pooling = POOL_CLS;
            else if (!strcmp(p, "mean")) pooling = POOL_MEAN;
            else { fprintf(stderr, "hyp encode: --pooling: expected cls or mean, got \"%s\"\n", p); return 1; }
        } else if (!strcmp(a, "--side") && v) {
            const char *p = argv[++i];
            if (!strcmp(p, "document") || !strcmp(p, "doc")) side = SIDE_DOCUMENT;
            else if (!strcmp(p, "query")) side = SIDE_QUERY;
            else { fprintf(stderr, "hyp encode: --side: expected document or query, got \"%s\"\n", p); return 1; }
        } else if (!strcmp(a, "--device") && v) { if (cli_device("encode", a, argv[++i], &dev)) return 1; }
        else if (!strcmp(a, "--cuda")) { if (cli_device("encode", "--cuda", "cuda", &dev)) return 1; }
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        else { cli_bad_option("encode", a, "--model --corpus --out --vocab --max-len --batch --pooling --side --device"); return usage(); }
    }
    if (!model || !corpus || !out) return usage();
    const CliPath ins[] = {CLI_FILE("--model", model), CLI_FILE("--corpus", corpus), CLI_FILE("--vocab", vocab)};
    if (cli_check_paths("encode", ins, 3, &(CliPath)CLI_FILE("--out", out), 1)) return 1;
    Model *m = model_load(model, dev);
    if (!m) { fprintf(stderr, "hyp encode: %s\n", hyp_last_error()); return 1; }
    SearchModel sm = search_model_of(m);
    if (pooling >= 0) sm.pooling = (Pooling)pooling;
    if (side == SIDE_QUERY && sm.kind == SEARCH_HYPENCODER) {
        fprintf(stderr, "hyp encode: %s is a Hypencoder: its queries become q-nets, not vectors; --side query is for "
                "BE-Base and plain BERT models (a Hypencoder encodes documents: --side document)\n", model);
        model_free(m);
        return 1;
    }
    const Bert *bert = search_model_bert(&sm, side);
    int max_pos = bert->cfg.max_positions;
    if (o.max_len > max_pos) {
        fprintf(stderr, "hyp encode: --max-len %d exceeds the model's %d positions\n", o.max_len, max_pos);
        model_free(m);
        return 1;
    }
    Tokenizer *tok = vocab ? tok_load(vocab, m->lowercase) : model_tokenizer(m);
    if (tok && cli_check_vocab("encode", tok, vocab, bert->cfg.vocab_size)) {
        tok_free(tok);
        model_free(m);
        return 1;
    }
    Corpus *c = tok ? corpus_read(corpus) : NULL;
    if (!tok || !c) {
        fprintf(stderr, "hyp encode: %s\n", hyp_last_error());
        tok_free(tok);
        model_free(m);
        return 1;
    }
    double t0 = hyp_now();
    o.ids = (const char *const *)c->ids;
    o.nonfinite_null = true;   // a NaN vector is an error of this command (exit 1), not a crash
    float *emb = encode_side(&sm, side, tok, (const char *const *)c->texts, c->n, &o);
    int d = bert->cfg.hidden;
    // One atomic writer (search/store.c): OUT.tmp, checked closes, fsync, rename, dir fsync.
    int rc = !emb || docstore_write(out, emb, c->n, d, (const char *const *)c->ids);
    if (rc) {
        fprintf(stderr, "hyp encode: %s\n", hyp_last_error());
    } else {
        double dt = hyp_now() - t0;
        printf("{\"documents\": %d, \"side\": \"%s\", \"dim\": %d, \"seconds\": %.3f, \"docs_per_s\": %.1f, \"out\": \"%s\"}\n",
               c->n, side == SIDE_QUERY ? "query" : "document", d, dt, c->n / (dt > 0 ? dt : 1), out);
    }
    free(emb);
    corpus_free(c);
    tok_free(tok);
    model_free(m);
    return rc ? 1 : 0;
}
