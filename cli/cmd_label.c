// hyp label --teacher T.h5 --queries Q --corpus C (--candidates RUN | --top N | --qrels QRELS) --negatives K --out train.jsonl
// Training data from a teacher (train/label.h): each query's candidates scored by the teacher,
// written as the authors' JSONL (positive first, K sampled negatives, every item with its score).
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "train/label.h"
#include "search/encode.h"
#include "search/driver.h"
#include "search/store.h"
#include "autograd/atomic.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SYNOPSIS =
    "--teacher T.h5 --queries Q.tsv --corpus C.tsv (--candidates RUN | --top N | --qrels QRELS)\n"
    "                 --negatives K --out train.jsonl [options]";

// --top N: the teacher's exhaustive top N per query over the whole corpus (the search driver), as
// the candidate run. The corpus is encoded here unless *store holds the teacher's vectors; the
// store made here is kept in *store so the scores reuse it.
static TrecRun *teacher_top(const Model *m, const Tokenizer *tok, const Corpus *co, const Corpus *qs, DocStore **store,
                            int top, Device dev, bool progress) {
    SearchModel sm = search_model_of(m);
    SearchOptions so = search_options_default();
    so.k = top, so.device = dev, so.progress = progress;
    if (search_check(&sm, *store, &so)) return NULL;
    if (!*store) {
        EncodeOptions eo = {.progress = progress, .ids = (const char *const *)co->ids, .what = "documents", .nonfinite_null = true};
        float *v = encode_side(&sm, SIDE_DOCUMENT, tok, (const char *const *)co->texts, co->n, &eo);   // (N, d)
        if (!v) return NULL;
        *store = docstore_from_memory(v, co->n, search_model_dim(&sm), (const char *const *)co->ids, STORE_F32);
        free(v);
        if (!*store) return NULL;
    }
    TrecRun *run = trec_run_new("teacher-top");
    SearchRunSink sink = {run, (const char *const *)qs->ids, *store};
    if (search_run(&sm, tok, *store, (const char *const *)qs->ids, (const char *const *)qs->texts, qs->n, &so,
                   search_emit_run, &sink, NULL)) {
        trec_run_free(run);
        return NULL;
    }
    return run;
}

int cmd_label(int argc, char **argv) {
    const char *teacher = NULL, *queries = NULL, *corpus = NULL, *cands = NULL, *qrels = NULL, *out = NULL, *docs = NULL;
    int top = 0;
    LabelOptions o = {.negatives = 0, .progress = true};
    Device dev = HYP_CPU;
    bool quiet = false;
    const CliFlag flags[] = {
        {.name = "--teacher", .kind = FLAG_STR, .dst = &teacher, .meta = "T.h5",
         .help = "the teacher (hyp import): a BERT or BE-Base bi-encoder (inner product of its pooled vectors), "
                 "a Hypencoder, or a cross-encoder (needs --candidates)"},
        {.name = "--queries", .kind = FLAG_STR, .dst = &queries, .meta = "FILE", .help = "queries: id<TAB>text lines or JSONL"},
        {.name = "--corpus", .kind = FLAG_STR, .dst = &corpus, .meta = "FILE", .help = "documents: id<TAB>text lines or JSONL"},
        {.name = "--candidates", .kind = FLAG_STR, .dst = &cands, .meta = "RUN", .help = "a TREC run: each query's candidates (e.g. BM25's top 100)"},
        {.name = "--top", .kind = FLAG_INT, .dst = &top, .lo = 1, .hi = 1 << 20, .meta = "N",
         .help = "the candidates are the teacher's own exhaustive top N over the corpus (bi-encoder, BERT or Hypencoder)"},
        {.name = "--docs", .kind = FLAG_STR, .dst = &docs, .meta = "D.h5",
         .help = "the teacher's document vectors (hyp encode --model T.h5), used instead of encoding the corpus again"},
        {.name = "--depth", .kind = FLAG_INT, .dst = &o.depth, .lo = 1, .hi = 1 << 30, .meta = "N", .help = "candidates taken per query from the run, by its scores (default: all)"},
        {.name = "--qrels", .kind = FLAG_STR, .dst = &qrels, .meta = "QRELS",
         .help = "the positive is the relevant document (highest grade; the teacher breaks ties); relevant documents "
                 "are never negatives; without --teacher the grades are the scores, without --candidates the judged "
                 "documents are the candidates"},
        {.name = "--negatives", .kind = FLAG_INT, .dst = &o.negatives, .lo = 1, .hi = 1 << 20, .meta = "K", .help = "negatives per query, sampled from the other candidates"},
        {.name = "--out", .kind = FLAG_STR, .dst = &out, .meta = "FILE", .help = "the training JSONL to write (the authors' format)"},
        {.name = "--seed", .kind = FLAG_U64, .dst = &o.seed, .meta = "N", .help = "sampling seed (default 0)"},
        {.name = "--cosine", .kind = FLAG_SWITCH, .dst = &o.cosine, .help = "bi-encoder teachers: normalise vectors before the inner product"},
        {.name = "--scale", .kind = FLAG_DOUBLE, .dst = &o.scale, .lo = 1e-6, .hi = 1e6, .meta = "S",
         .help = "write the teacher's scores times S (default 1; MiniLM-like models were trained on 20 x cosine)"},
        {.name = "--batch", .kind = FLAG_INT, .dst = &o.batch, .lo = 1, .hi = 1 << 16, .meta = "N", .help = "texts or pairs per forward pass (default 64)"},
        {.name = "--cuda", .kind = FLAG_DEVICE, .dst = &dev, .help = "run the teacher on the GPU", .fixed = "cuda"},
        {.name = "--quiet", .kind = FLAG_SWITCH, .dst = &quiet, .help = "no progress on stderr (also -q)"},
        {.name = "-q", .kind = FLAG_SWITCH, .dst = &quiet},
    };
    const int parsed = cli_parse("label", SYNOPSIS, CLI_FLAGS(flags), argc, argv);
    if (parsed) return parsed == CLI_HELP ? 0 : 1;
    if (quiet) o.progress = false;
    if (cands && top) { fprintf(stderr, "hyp label: --candidates and --top are two ways to choose candidates: pass one\n"); return 1; }
    if ((top || docs) && !teacher) { fprintf(stderr, "hyp label: --top and --docs need a --teacher\n"); return 1; }
    if (!queries || !corpus || !out || !o.negatives || (!cands && !top && !qrels) || (!teacher && !qrels)) {
        fprintf(stderr, "hyp label: --queries, --corpus, --out, --negatives and --candidates, --top or --qrels are required "
                        "(--teacher, or --qrels whose grades are the scores)\n");
        cli_usage(stderr, "label", SYNOPSIS, CLI_FLAGS(flags));
        return 1;
    }
    const CliPath in[] = {CLI_FILE("--teacher", teacher), CLI_FILE("--queries", queries), CLI_FILE("--corpus", corpus),
                          CLI_FILE("--candidates", cands), CLI_FILE("--qrels", qrels), CLI_FILE("--docs", docs)};
    if (cli_check_paths("label", in, 6, &(CliPath)CLI_FILE("--out", out), 1)) return 1;
    if (dev == HYP_CUDA && !hyp_cuda_available()) {
        fprintf(stderr, "hyp label: --cuda but no GPU is usable: %s\n", hyp_cuda_why_unavailable());
        return 1;
    }
    Model *m = NULL;
    Tokenizer *tok = NULL;
    Corpus *qs = NULL, *co = NULL;
    TrecRun *run = NULL;
    TrecQrels *qr = NULL;
    DocStore *store = NULL;
    int rc = 1;
    if (teacher) {
        if (!(m = model_load(teacher, dev)) || !(tok = model_tokenizer(m))) goto fail;
        if (m->mc.kind == MODEL_CROSS_ENCODER && (!cands || docs)) {
            hyp_set_error("%s: a cross-encoder teacher scores given candidates only: pass --candidates RUN "
                          "(e.g. BM25's or a bi-encoder's top 100), without --top or --docs", teacher);
            goto fail;
        }
        if (cli_check_vocab("label", tok, NULL, model_doc_bert(m)->cfg.vocab_size)) { rc = 1; goto out; }
    }
    if (!(qs = corpus_read(queries)) || !(co = corpus_read(corpus))) goto fail;
    if (cands && !(run = trec_run_read(cands))) goto fail;
    if (qrels && !(qr = trec_qrels_read(qrels))) goto fail;
    if (docs && !(store = docstore_open(docs, &(DocStoreOptions){.progress = o.progress}))) goto fail;
    if (top && !(run = teacher_top(m, tok, co, qs, &store, top, dev, o.progress))) goto fail;
    o.docs = store;    o.teacher = m, o.tok = tok, o.queries = qs, o.corpus = co, o.candidates = run, o.qrels = qr;
    char *tmp = atomic_tmp_path(out);
    FILE *f = atomic_tmp_clear(tmp) == 0 ? fopen(tmp, "w") : NULL;
    if (!f) {
        if (!*hyp_last_error()) hyp_set_error("%s: cannot create", tmp);
        free(tmp);
        goto fail;
    }
    LabelStats st;
    int lr = label_write(&o, f, out, &st);
    bool bad = ferror(f);
    if (fclose(f) != 0 || bad) { if (!lr) hyp_set_error("%s: write error", tmp); lr = -1; }
    if (lr || atomic_commit(tmp, out)) { remove(tmp); free(tmp); goto fail; }
    free(tmp);
    fprintf(stderr, "hyp label: wrote %s: %ld rows; %ld queries without candidates, %ld without a relevant candidate, "
                    "%ld rows with fewer than %d negatives; %ld document vectors %s, %ld pairs scored\n", out, st.queries,
            st.no_candidates, st.no_positive, st.few_negatives, o.negatives, st.docs_encoded,
            docs ? "read from --docs" : "encoded", st.pairs_scored);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "hyp label: error: %s\n", hyp_last_error());
    rc = 1;
out:
    trec_qrels_free(qr);
    trec_run_free(run);
    docstore_free(store);
    corpus_free(qs);
    corpus_free(co);
    tok_free(tok);
    model_free(m);
    return rc;
}
