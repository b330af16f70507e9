// bench_eval.c: evaluation speed at MS MARCO dev scale: 7,000 queries x 1,000 retrieved
// documents with graded qrels. Times building the run in memory, writing and reading
// the run file, the all_trec measure set, and the TREC DL measures.
// trec_eval itself is not available on this machine, so no reference ratio is printed.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "autograd/util.h"
#include "eval/metrics.h"
#include "eval/trec.h"

enum { NQ = 7000, NDOC = 1000, NJUDGED = 40, CORPUS = 8841823 };

static uint64_t rng_state = 12345;
static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_docid_then_rank(const void *a, const void *b) {
    const TrecRunEntry *x = a, *y = b;
    int c = strcmp(x->docid, y->docid);
    return c ? c : trec_entry_cmp(a, b);
}

static TrecEvalResult *timed_eval(const char *what, const TrecQrels *q, const TrecRun *run,
                                  const char **measures, TrecEvalOptions opt, double *secs) {
    TrecMeasureSet *ms = trec_measures_new();
    for (int i = 0; measures[i]; i++)
        if (trec_measures_add(ms, measures[i])) HYP_FATAL("%s", hyp_last_error());
    double t0 = hyp_now();
    TrecEvalResult *r = trec_evaluate(q, run, ms, &opt);
    *secs = hyp_now() - t0;
    if (!r) HYP_FATAL("%s: %s", what, hyp_last_error());
    trec_measures_free(ms);
    return r;
}

int main(void) {
    char qid[32], docid[32];
    double t0 = hyp_now();
    TrecQrels *qrels = trec_qrels_new();
    TrecRun *run = trec_run_new("bench");
    for (int q = 0; q < NQ; q++) {
        snprintf(qid, sizeof qid, "%d", 1000000 + q);
        int docs[NDOC];
        for (int d = 0; d < NDOC; d++) {
            docs[d] = (int)(next_u64() % CORPUS);
            snprintf(docid, sizeof docid, "%d", docs[d]);
            // a few exact ties, as real float scores have
            double score = (double)(next_u64() % 100000) / 1000.0;
            if (trec_run_add(run, qid, docid, score)) HYP_FATAL("%s", hyp_last_error());
        }
        // judgments: some retrieved documents, some not; grades 0..3 (DL style)
        int judged[NJUDGED];
        for (int j = 0; j < NJUDGED; j++) {
            int doc = j < NJUDGED / 2 ? docs[next_u64() % NDOC] : (int)(next_u64() % CORPUS);
            bool seen = false;
            for (int k = 0; k < j && !seen; k++) seen = judged[k] == doc;
            judged[j] = doc;
            if (seen) continue;
            snprintf(docid, sizeof docid, "%d", doc);
            if (trec_qrels_add(qrels, qid, docid, (long)(next_u64() % 4))) HYP_FATAL("%s", hyp_last_error());
        }
    }
    double t_build = hyp_now() - t0;
    // Random draws can repeat a docid within a query; trec_eval (and we) refuse that,
    // so rebuild the run without repeats.
    TrecRun *clean = trec_run_new("bench");
    size_t kept = 0;
    for (size_t i = 0; i < trec_run_num_queries(run); i++) {
        const TrecRunQuery *rq = trec_run_query(run, i);
        TrecRunEntry *e = hyp_malloc(rq->n * sizeof *e);
        memcpy(e, rq->entries, rq->n * sizeof *e);
        // keep the first (highest ranked) copy of each docid
        qsort(e, rq->n, sizeof *e, cmp_docid_then_rank);
        for (size_t k = 0; k < rq->n; k++) {
            if (k > 0 && !strcmp(e[k - 1].docid, e[k].docid)) continue;
            trec_run_add(clean, rq->qid, e[k].docid, e[k].score);
            kept++;
        }
        free(e);
    }
    trec_run_free(run);
    run = clean;

    char path[] = "/tmp/hyp_bench_eval_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    t0 = hyp_now();
    if (trec_run_write(run, path, NULL)) HYP_FATAL("%s", hyp_last_error());
    double t_write = hyp_now() - t0;
    t0 = hyp_now();
    TrecRun *from_file = trec_run_read(path);
    if (!from_file) HYP_FATAL("%s", hyp_last_error());
    double t_read = hyp_now() - t0;

    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("bench_eval: %d queries x %d docs (%zu run lines), %zu qrels queries, %d threads\n",
           NQ, NDOC, kept, trec_qrels_num_queries(qrels), threads);
    printf("  build run + qrels in memory      %8.3f s\n", t_build);
    printf("  write run file (sorted, .tmp)    %8.3f s\n", t_write);
    printf("  read run file                    %8.3f s\n", t_read);

    const char *all_trec[] = {"all_trec", NULL};
    const char *dl_ndcg[] = {"ndcg_cut.10", NULL};
    const char *dl_l2[] = {"map", "recall.100", "recall.1000", NULL};
    const char *dl_rr[] = {"recip_rank", NULL};
    TrecEvalOptions opt = trec_eval_default_options();
    opt.complete = true;
    double s_all, s_ndcg, s_l2, s_rr;
    for (int pass = 0; pass < 2; pass++) {
#ifdef _OPENMP
        if (pass == 1) omp_set_num_threads(1);
#else
        if (pass == 1) break;
#endif
        TrecEvalResult *r = timed_eval("all_trec", qrels, from_file, all_trec, opt, &s_all);
        trec_result_free(r);
        r = timed_eval("ndcg", qrels, from_file, dl_ndcg, opt, &s_ndcg);
        double ndcg = trec_result_summary(r, "ndcg_cut_10");
        trec_result_free(r);
        TrecEvalOptions l2 = opt;
        l2.relevance_level = 2;
        r = timed_eval("l2", qrels, from_file, dl_l2, l2, &s_l2);
        trec_result_free(r);
        TrecEvalOptions m10 = opt;
        m10.max_docs = 10;
        r = timed_eval("rr", qrels, from_file, dl_rr, m10, &s_rr);
        trec_result_free(r);
        printf("  [%s]\n", pass == 0 ? "all threads" : "1 thread");
        printf("  -c -m all_trec                   %8.3f s   (target < 1 s)\n", s_all);
        printf("  -c -m ndcg_cut.10                %8.3f s   (nDCG@10 = %.4f)\n", s_ndcg, ndcg);
        printf("  -c -l 2 -m map -m recall.100,1000 %7.3f s\n", s_l2);
        printf("  -c -M 10 -m recip_rank           %8.3f s\n", s_rr);
        printf("  DL measures total                %8.3f s\n", s_ndcg + s_l2 + s_rr);
        // the in-memory run is in docid order, so every query needs its sort
        double s_mem;
        r = timed_eval("all_trec (unsorted)", qrels, run, all_trec, opt, &s_mem);
        trec_result_free(r);
        printf("  -c -m all_trec, unranked input   %8.3f s   (sorts every query)\n", s_mem);
    }
    unlink(path);
    trec_run_free(from_file);
    trec_run_free(run);
    trec_qrels_free(qrels);
    return 0;
}
