// hyp score --model M.h5 --queries Q --corpus C [--vocab V] [--query-max-len N]
//           [--doc-max-len N] [--batch N]
// Prints "qid docid score" for every (query, document) pair: the Hypencoder's q-net score,
// or the inner product of [CLS] vectors for a plain BERT model (bi-encoder). For small
// inputs: inspection and parity checks.
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "search/encode.h"
#include "data/corpus.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr, "usage: hyp score --model M.h5 --queries Q.tsv --corpus C.tsv [--vocab V] [--query-max-len N]\n"
                    "                 [--doc-max-len N] [--batch N]\n");
    return 1;
}

int cmd_score(int argc, char **argv) {
    const char *model = NULL, *queries = NULL, *corpus = NULL, *vocab = NULL;
    int qmax = 0, dmax = 0, batch = 16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        if (!strcmp(a, "--model") && v) model = argv[++i];
        else if (!strcmp(a, "--queries") && v) queries = argv[++i];
        else if (!strcmp(a, "--corpus") && v) corpus = argv[++i];
        else if (!strcmp(a, "--vocab") && v) vocab = argv[++i];
        else if (!strcmp(a, "--query-max-len") && v) { if (cli_int("score", a, argv[++i], 2, 1 << 20, &qmax)) return 1; }
        else if (!strcmp(a, "--doc-max-len") && v) { if (cli_int("score", a, argv[++i], 2, 1 << 20, &dmax)) return 1; }
        else if (!strcmp(a, "--batch") && v) { if (cli_int("score", a, argv[++i], 1, 1 << 16, &batch)) return 1; }
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        else { cli_bad_option("score", a, "--model --queries --corpus --vocab --query-max-len --doc-max-len --batch"); return usage(); }
    }
    if (!model || !queries || !corpus) return usage();
    Model *m = model_load(model, HYP_CPU);
    if (!m) { fprintf(stderr, "hyp score: %s\n", hyp_last_error()); return 1; }
    // Lengths and vocabulary against the model before reading any text.
    const Bert *qbert = m->mc.kind == MODEL_HYPENCODER ? &m->hyp.query_bert
                      : m->mc.kind == MODEL_BIENCODER ? &m->be.query_bert : &m->bert;
    int qpos = qbert->cfg.max_positions, dpos = model_doc_bert(m)->cfg.max_positions;
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
    EncodeOptions eo = {.max_len = dmax, .batch = batch, .pooling = POOL_CLS, .ids = (const char *const *)c->ids,
                        .nonfinite_null = true};
    const Bert *db = model_doc_bert(m);
    int d = db->cfg.hidden;
    float *docs = encode_texts(m, tok, (const char *const *)c->texts, c->n, &eo);
    if (!docs) {
        fprintf(stderr, "hyp score: %s\n", hyp_last_error());
        corpus_free(c); corpus_free(q); tok_free(tok); model_free(m);
        return 1;
    }
    int rc = 0;
    Ctx *ctx = ctx_new(HYP_CPU);
    no_grad_begin(ctx);
    TokBatch tb = {0};
    float *scores = hyp_malloc((size_t)batch * (c->n ? c->n : 1) * sizeof(float));
    for (int s = 0; s < q->n; s += batch) {
        int b = q->n - s < batch ? q->n - s : batch;
        tok_encode_batch(tok, (const char *const *)q->texts + s, NULL, b, qmax, &tb);
        Tensor *ids = tensor_new(ctx, HYP_I32, HYP_SHAPE(b, tb.len)), *mask = tensor_new(ctx, HYP_I32, HYP_SHAPE(b, tb.len));
        tensor_from_host(ids, tb.ids);
        tensor_from_host(mask, tb.mask);
        Tensor *X = tensor_wrap(ctx, HYP_F32, docs, HYP_SHAPE(c->n, d));
        Tensor *S;
        if (m->mc.kind == MODEL_HYPENCODER) {
            QNet qn = hypencoder_queries(ctx, &m->hyp, ids, mask);
            S = qnet_score_shared(ctx, &qn, X);                           // (b, N)
        } else {
            const Bert *qb = m->mc.kind == MODEL_BIENCODER ? &m->be.query_bert : &m->bert;
            Tensor *qv = bert_forward_cls(ctx, qb, ids, mask);
            S = op_matmul(ctx, qv, X, false, true);                       // (b, N)
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
    free(docs);
    corpus_free(c);
    corpus_free(q);
    tok_free(tok);
    model_free(m);
    return rc;
}
