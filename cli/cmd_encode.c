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

static const char *const SYNOPSIS = "--model M.h5 --corpus FILE.{tsv,jsonl} --out DOCS.h5 [options]";

int cmd_encode(int argc, char **argv) {
    const char *model = NULL, *corpus = NULL, *out = NULL, *vocab = NULL;
    EncodeOptions o = {.batch = 64, .progress = true};
    Device dev = HYP_CPU;
    int side_i = 0, pooling = -1;   // side_i: document, query, doc; pooling -1: the model's
    const CliFlag flags[] = {
        {.name = "--model", .kind = FLAG_STR, .dst = &model, .meta = "FILE", .help = "the model file (hyp import, best.h5, ckpt-*.h5)"},
        {.name = "--corpus", .kind = FLAG_STR, .dst = &corpus, .meta = "FILE", .help = "texts: id<TAB>text lines or JSONL"},
        {.name = "--out", .kind = FLAG_STR, .dst = &out, .meta = "FILE", .help = "the vectors file to write (/embeddings, /ids)"},
        {.name = "--side", .kind = FLAG_CHOICE, .dst = &side_i, .meta = "document|query|doc",
         .help = "which encoder: documents (default) or a BE-Base / plain BERT's queries"},
        {.name = "--pooling", .kind = FLAG_CHOICE, .dst = &pooling, .meta = "cls|mean", .help = "override the model's pooling"},
        {.name = "--max-len", .kind = FLAG_INT, .dst = &o.max_len, .lo = 2, .hi = 1 << 20, .meta = "N", .help = "word pieces per text, [CLS] and [SEP] included"},
        {.name = "--batch", .kind = FLAG_INT, .dst = &o.batch, .lo = 1, .hi = 1 << 20, .meta = "N", .help = "texts per forward pass (default 64)"},
        {.name = "--vocab", .kind = FLAG_STR, .dst = &vocab, .meta = "FILE", .help = "a vocab.txt instead of the model file's"},
        {.name = "--device", .kind = FLAG_DEVICE, .dst = &dev, .meta = "cpu|cuda", .help = "where the encoder runs (default cpu)"},
        {.name = "--cuda", .kind = FLAG_DEVICE, .dst = &dev, .help = "--device cuda", .fixed = "cuda"},
    };
    const int parsed = cli_parse("encode", SYNOPSIS, CLI_FLAGS(flags), argc, argv);
    if (parsed) return parsed == CLI_HELP ? 0 : 1;
    if (!model || !corpus || !out) {
        fprintf(stderr, "hyp encode: --model, --corpus and --out are needed\n");
        cli_usage(stderr, "encode", SYNOPSIS, CLI_FLAGS(flags));
        return 1;
    }
    const EncodeSide side = side_i == 1 ? SIDE_QUERY : SIDE_DOCUMENT;
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
