// hyp score --model M.h5 --queries Q --corpus C [--vocab V] [--query-max-len N]
//           [--doc-max-len N] [--batch N] [--device cpu|cuda]
// Prints "qid docid score" for every (query, document) pair: the Hypencoder's q-net score;
// for BE-Base (query encoder for queries, document encoder for documents) and plain BERT
// models the inner product of their pooled vectors (the cosine when the model normalises).
// For small inputs: inspection, parity checks, and the reference ranking of `hyp search`.
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "search/encode.h"
#include "data/corpus.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SYNOPSIS = "--model M.h5 --queries Q.tsv --corpus C.tsv [options]\n"
                                    "  Hypencoder: q-net scores; BE-Base and plain BERT: inner products (cosine when normalised)";

int cmd_score(int argc, char **argv) {
    const char *model = NULL, *queries = NULL, *corpus = NULL, *vocab = NULL;
    int qmax = 0, dmax = 0, batch = 16;
    Device dev = HYP_CPU;
    const CliFlag flags[] = {
        {.name = "--model", .kind = FLAG_STR, .dst = &model, .meta = "FILE", .help = "the model file"},
        {.name = "--queries", .kind = FLAG_STR, .dst = &queries, .meta = "FILE", .help = "queries: id<TAB>text lines or JSONL"},
        {.name = "--corpus", .kind = FLAG_STR, .dst = &corpus, .meta = "FILE", .help = "documents: id<TAB>text lines or JSONL"},
        {.name = "--vocab", .kind = FLAG_STR, .dst = &vocab, .meta = "FILE", .help = "a vocab.txt instead of the model file's"},
        {.name = "--query-max-len", .kind = FLAG_INT, .dst = &qmax, .lo = 2, .hi = 1 << 20, .meta = "N", .help = "word pieces per query (default: the model's)"},
        {.name = "--doc-max-len", .kind = FLAG_INT, .dst = &dmax, .lo = 2, .hi = 1 << 20, .meta = "N", .help = "word pieces per document (default: the model's)"},
        {.name = "--batch", .kind = FLAG_INT, .dst = &batch, .lo = 1, .hi = 1 << 16, .meta = "N", .help = "queries per batch (default 16)"},
        {.name = "--device", .kind = FLAG_DEVICE, .dst = &dev, .meta = "cpu|cuda", .help = "where the model runs (default cpu)"},
        {.name = "--cuda", .kind = FLAG_DEVICE, .dst = &dev, .help = "--device cuda", .fixed = "cuda"},
    };
    const int parsed = cli_parse("score", SYNOPSIS, CLI_FLAGS(flags), argc, argv);
    if (parsed) return parsed == CLI_HELP ? 0 : 1;
    if (!model || !queries || !corpus) {
        fprintf(stderr, "hyp score: --model, --queries and --corpus are needed\n");
        cli_usage(stderr, "score", SYNOPSIS, CLI_FLAGS(flags));
        return 1;
    }
    Model *m = model_load(model, dev);
    if (!m) { fprintf(stderr, "hyp score: %s\n", hyp_last_error()); return 1; }
    SearchModel sm = search_model_of(m);
    // Lengths and vocabulary against the model before reading any text.
    int qpos = sm.query_bert->cfg.max_positions, dpos = sm.doc_bert->cfg.max_positions;
    if (qmax > qpos || dmax > dpos) {
        fprintf(stderr, "hyp score: --%s-max-len %d exceeds the model's %d positions: expected 2 to %d\n",
                qmax > qpos ? "query" : "doc", qmax > qpos ? qmax : dmax, qmax > qpos ? qpos : dpos,
                qmax > qpos ? qpos : dpos);
        model_free(m);
        return 1;
    }
    Tokenizer *tok = vocab ? tok_load(vocab, m->lowercase) : model_tokenizer(m);
    if (tok && cli_check_vocab("score", tok, vocab, model_doc_bert(m)->cfg.vocab_size)) {
        tok_free(tok);
        model_free(m);
        return 1;
    }
    Corpus *q = tok ? corpus_read(queries) : NULL;
    Corpus *c = q ? corpus_read(corpus) : NULL;
    if (!tok || !q || !c) {
        fprintf(stderr, "hyp score: %s\n", hyp_last_error());
        corpus_free(q); tok_free(tok); model_free(m);
        return 1;
    }
    if (!qmax) qmax = m->query_max_len;
    EncodeOptions eo = {.max_len = dmax, .batch = batch, .ids = (const char *const *)c->ids, .nonfinite_null = true};
    int d = sm.doc_bert->cfg.hidden;
    float *docs = encode_side(&sm, SIDE_DOCUMENT, tok, (const char *const *)c->texts, c->n, &eo);
    // Dense models: every query vector at once (normalised like the documents when the model says so).
    EncodeOptions qo = {.max_len = qmax, .batch = batch, .ids = (const char *const *)q->ids, .nonfinite_null = true};
    float *qv = docs && sm.kind != SEARCH_HYPENCODER
                    ? encode_side(&sm, SIDE_QUERY, tok, (const char *const *)q->texts, q->n, &qo) : NULL;
    if (!docs || (sm.kind != SEARCH_HYPENCODER && !qv)) {
        fprintf(stderr, "hyp score: %s\n", hyp_last_error());
        free(docs); corpus_free(c); corpus_free(q); tok_free(tok); model_free(m);
        return 1;
    }
    int rc = 0;
    Ctx *ctx = ctx_new(sm.kind == SEARCH_HYPENCODER ? dev : HYP_CPU);
    no_grad_begin(ctx);
    TokBatch tb = {0};
    float *scores = hyp_malloc((size_t)batch * (c->n ? c->n : 1) * sizeof(float));
    for (int s = 0; s < q->n; s += batch) {
        int b = q->n - s < batch ? q->n - s : batch;
        Tensor *S;
        if (sm.kind == SEARCH_HYPENCODER) {
            tok_encode_batch(tok, (const char *const *)q->texts + s, NULL, b, qmax, &tb);
            Tensor *ids = tensor_new(ctx, HYP_I32, HYP_SHAPE(b, tb.len)), *mask = tensor_new(ctx, HYP_I32, HYP_SHAPE(b, tb.len));
            tensor_from_host(ids, tb.ids);
            tensor_from_host(mask, tb.mask);
            Tensor *Xd = tensor_new(ctx, HYP_F32, HYP_SHAPE(c->n, d));
            tensor_from_host(Xd, docs);
            QNet qn = hypencoder_queries(ctx, sm.hyp, ids, mask);
            S = qnet_score_shared(ctx, &qn, Xd);                          // (b, N)
        } else {
            Tensor *Q = tensor_wrap(ctx, HYP_F32, qv + (size_t)s * d, HYP_SHAPE(b, d));
            Tensor *X = tensor_wrap(ctx, HYP_F32, docs, HYP_SHAPE(c->n, d));
            S = op_matmul(ctx, Q, X, false, true);                        // (b, N)
        }
        tensor_to_host(S, scores);
        const size_t bad = hyp_find_nonfinite(scores, (size_t)b * c->n, NULL);
        if (bad < (size_t)b * c->n) {   // a NaN score would print and sort as garbage
            fprintf(stderr, "hyp score: %s: the model produced a non-finite score (%g) for query '%s' and document "
                    "'%s'; expected finite scores (the model's weights, or a too-long input?)\n", m->path,
                    scores[bad], q->ids[s + (int)(bad / (size_t)c->n)], c->ids[bad % (size_t)c->n]);
            ctx_reset(ctx);
            rc = 1;
            break;
        }
        for (int i = 0; i < b; i++)
            for (int k = 0; k < c->n; k++)
                printf("%s %s %.9g\n", q->ids[s + i], c->ids[k], scores[(size_t)i * c->n + k]);
        ctx_reset(ctx);
    }
    no_grad_end(ctx);
    ctx_free(ctx);
    tok_batch_free(&tb);
    free(scores);
    free(qv);
    free(docs);
    corpus_free(c);
    corpus_free(q);
    tok_free(tok);
    model_free(m);
    return rc;
}
