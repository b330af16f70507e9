// test_eval.c: the evaluation module against trec_eval's own test suite, the published
// BM25 numbers, hand-computed edge cases, bad input, and the significance tests.
#ifndef HYP_BIN
#define HYP_BIN "bin/hyp"
#endif
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autograd/util.h"
#include "eval/metrics.h"
#include "eval/signif.h"
#include "eval/trec.h"

#define REF "../shared/data/trec_eval_reference/"
#define MSMARCO "../shared/data/msmarco/"
#define CACM "../shared/data/collections/cacm/"

// ---------------------------------------------------------------- helpers

// Writes text to a fresh temporary file; returns its malloc'd path.
static char *write_temp(const char *text) {
    char *path = hyp_strdup("/tmp/hyp_test_eval_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp failed");
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (tests run from the repository root)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = hyp_malloc((size_t)n + 1);
    cr_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

typedef struct {
    const char *measures[12];
    bool q, c, j;
    long l, M;     // 0: default
} Args;

static TrecEvalResult *eval_files(const char *qrels_path, const char *run_path, const Args *a) {
    TrecQrels *q = trec_qrels_read(qrels_path);
    cr_assert(q, "%s", hyp_last_error());
    TrecRun *r = trec_run_read(run_path);
    cr_assert(r, "%s", hyp_last_error());
    TrecMeasureSet *ms = trec_measures_new();
    for (int i = 0; a->measures[i]; i++)
        cr_assert(trec_measures_add(ms, a->measures[i]) == 0, "%s", hyp_last_error());
    TrecEvalOptions opt = trec_eval_default_options();
    opt.complete = a->c;
    opt.judged_only = a->j;
    if (a->l) opt.relevance_level = a->l;
    if (a->M) opt.max_docs = a->M;
    TrecEvalResult *res = trec_evaluate(q, r, ms, &opt);
    cr_assert(res, "%s", hyp_last_error());
    trec_measures_free(ms);
    trec_run_free(r);
    trec_qrels_free(q);
    return res;
}

static char *print_to_string(const TrecEvalResult *res, bool per_query) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    trec_result_print(res, f, per_query, true);
    fclose(f);
    return buf;
}

// Compares two texts line by line, failing on the first difference.
static void expect_same_lines(const char *got, const char *want, const char *what) {
    int line = 1;
    for (;;) {
        const char *eg = strchr(got, '\n'), *ew = strchr(want, '\n');
        size_t lg = eg ? (size_t)(eg - got) : strlen(got), lw = ew ? (size_t)(ew - want) : strlen(want);
        cr_assert(lg == lw && !memcmp(got, want, lg),
                  "%s: line %d differs:\n  got:  %.*s\n  want: %.*s", what, line, (int)lg, got,
                  (int)lw, want);
        if (!eg || !ew) {
            cr_assert(!eg == !ew, "%s: line counts differ after line %d", what, line);
            break;
        }
        got = eg + 1;
        want = ew + 1;
        line++;
        if (!*got || !*want) {
            cr_assert(!*got && !*want, "%s: output ends early/late at line %d", what, line);
            break;
        }
    }
}

static void expect_reference(const char *qrels, const char *run, const Args *a, const char *ref) {
    TrecEvalResult *res = eval_files(qrels, run, a);
    char *got = print_to_string(res, a->q);
    char *want = read_text(ref);
    expect_same_lines(got, want, ref);
    free(got);
    free(want);
    trec_result_free(res);
}

static double summary(const TrecEvalResult *r, const char *name) {
    long c = trec_result_col(r, name);
    cr_assert(c >= 0, "no column %s", name);
    return r->summary[c];
}

static double value(const TrecEvalResult *r, const char *qid, const char *name) {
    long c = trec_result_col(r, name), q = trec_result_query(r, qid);
    cr_assert(c >= 0 && q >= 0, "no value %s for %s", name, qid);
    return r->values[q * r->num_cols + c];
}

static void expect_printed(double v, const char *want, const char *what) {
    char buf[32];
    snprintf(buf, sizeof buf, "%6.4f", v);
    cr_expect_str_eq(buf, want, "%s: got %s, want %s", what, buf, want);
}

// ---------------------------------------------------------------- trec_eval's test suite
// Inputs and expected outputs of `make quicktest` in usnistgov/trec_eval; every line of
// every file must be reproduced (see shared/data/PROVENANCE.md §5a for the commands).

Test(trec_eval_reference, default_official) {
    expect_reference(REF "qrels.test", REF "results.test", &(Args){.measures = {NULL}}, REF "out.test");
}

Test(trec_eval_reference, all_trec) {
    expect_reference(REF "qrels.test", REF "results.test", &(Args){.measures = {"all_trec", NULL}},
                     REF "out.test.a");
}

Test(trec_eval_reference, all_trec_per_query) {
    expect_reference(REF "qrels.test", REF "results.test", &(Args){.measures = {"all_trec", NULL}, .q = true},
                     REF "out.test.aq");
}

Test(trec_eval_reference, complete_with_missing_query) {
    // results.trunc has no topic 302: -c scores it 0 and averages over 3 topics
    expect_reference(REF "qrels.test", REF "results.trunc",
                     &(Args){.measures = {"all_trec", NULL}, .q = true, .c = true}, REF "out.test.aqc");
}

Test(trec_eval_reference, complete_max_depth_100) {
    expect_reference(REF "qrels.test", REF "results.trunc",
                     &(Args){.measures = {"all_trec", NULL}, .q = true, .c = true, .M = 100}, REF "out.test.aqcM");
}

Test(trec_eval_reference, graded_level_2_relstring_20) {
    expect_reference(REF "qrels.rel_level", REF "results.test",
                     &(Args){.measures = {"all_trec", "relstring.20", NULL}, .q = true, .l = 2}, REF "out.test.aql");
}

Test(trec_eval_reference, measure_parameters) {
    Args a = {.measures = {"iprec_at_recall..10,.20,.25,.75,.50", "P.5,7,3", "recall.20,2000",
               "Rprec_mult.5.0,0.2,0.35", "utility.2,-1,0,0", "11pt_avg..25,.5,.75",
               "ndcg.1=3,2=9,4=4.5", "ndcg_cut.10,20,23.4", "success.2,5,20", NULL},
              .q = true};
    expect_reference(REF "qrels.test", REF "results.test", &a, REF "out.test.meas_params");
}

// The command line must give the same bytes as the library (flags attached or not).
Test(trec_eval_reference, cli_matches_reference_outputs) {
    if (access(HYP_BIN, X_OK) != 0) cr_skip_test(HYP_BIN " not built (make " HYP_BIN ")");
    static const char *cases[][2] = {
        {"", "out.test"},
        {"-m all_trec -q -c -M100", "out.test.aqcM"},
        {"-m all_trec -mrelstring.20 -q -l2", "out.test.aql"},
        {"-q -miprec_at_recall..10,.20,.25,.75,.50 -m P.5,7,3 -m recall.20,2000 "
         "-m Rprec_mult.5.0,0.2,0.35 -mutility.2,-1,0,0 -m 11pt_avg..25,.5,.75 "
         "-mndcg.1=3,2=9,4=4.5 -mndcg_cut.10,20,23.4 -msuccess.2,5,20", "out.test.meas_params"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *qrels = strstr(cases[i][1], "aql") ? "qrels.rel_level" : "qrels.test";
        const char *run = strstr(cases[i][0], "-c") ? "results.trunc" : "results.test";
        char cmd[1024];
        snprintf(cmd, sizeof cmd, HYP_BIN " eval %s " REF "%s " REF "%s", cases[i][0], qrels, run);
        FILE *p = popen(cmd, "r");
        cr_assert(p);
        char *got = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&got, &len);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, p)) > 0) fwrite(buf, 1, n, m);
        fclose(m);
        cr_assert(pclose(p) == 0, "%s failed", cmd);
        char ref[256];
        snprintf(ref, sizeof ref, REF "%s", cases[i][1]);
        char *want = read_text(ref);
        expect_same_lines(got, want, cmd);
        free(got);
        free(want);
    }
}

// ---------------------------------------------------------------- published BM25 numbers
// Anserini's published BM25 numbers, reproduced by the shipped top-100 / top-30 runs.

Test(published, dl19_bm25) {
    TrecEvalResult *r = eval_files(MSMARCO "qrels.dl19-passage.txt",
                                   MSMARCO "rank_llm_bm25_top100/trec_results_dl19.bm25.top100.txt",
                                   &(Args){.measures = {"ndcg_cut.10", NULL}, .c = true});
    expect_printed(summary(r, "ndcg_cut_10"), "0.5058", "DL19 nDCG@10");
    trec_result_free(r);
    r = eval_files(MSMARCO "qrels.dl19-passage.txt",
                   MSMARCO "rank_llm_bm25_top100/trec_results_dl19.bm25.top100.txt",
                   &(Args){.measures = {"recall.100", NULL}, .c = true, .l = 2});
    expect_printed(summary(r, "recall_100"), "0.4910", "DL19 R@100");
    trec_result_free(r);
}

Test(published, dl20_bm25) {
    TrecEvalResult *r = eval_files(MSMARCO "qrels.dl20-passage.txt",
                                   MSMARCO "rank_llm_bm25_top100/trec_results_dl20.bm25.top100.txt",
                                   &(Args){.measures = {"ndcg_cut.10", NULL}, .c = true});
    expect_printed(summary(r, "ndcg_cut_10"), "0.4796", "DL20 nDCG@10");
    trec_result_free(r);
    r = eval_files(MSMARCO "qrels.dl20-passage.txt",
                   MSMARCO "rank_llm_bm25_top100/trec_results_dl20.bm25.top100.txt",
                   &(Args){.measures = {"recall.100", NULL}, .c = true, .l = 2});
    expect_printed(summary(r, "recall_100"), "0.5599", "DL20 R@100");
    trec_result_free(r);
}

Test(published, cacm_p30) {
    TrecEvalResult *r = eval_files(CACM "qrels.cacm.txt", CACM "run.cacm-bm25.top30.anserini.txt",
                                   &(Args){.measures = {"P.30", NULL}});
    expect_printed(summary(r, "P_30"), "0.1942", "CACM P@30");
    trec_result_free(r);
}

Test(published, ir_measures_names_match_trec_eval_flags) {
    const char *run = MSMARCO "rank_llm_bm25_top100/trec_results_dl19.bm25.top100.txt";
    const char *qrels = MSMARCO "qrels.dl19-passage.txt";
    TrecEvalResult *ir = eval_files(qrels, run,
        &(Args){.measures = {"nDCG@10", "R(rel=2)@100", "RR(rel=2)@10", "AP(rel=2)", "P@10", NULL}, .c = true});
    TrecEvalResult *te = eval_files(qrels, run, &(Args){.measures = {"ndcg_cut.10", "P.10", NULL}, .c = true});
    TrecEvalResult *l2 = eval_files(qrels, run, &(Args){.measures = {"recall.100", "map", NULL}, .c = true, .l = 2});
    TrecEvalResult *rr = eval_files(qrels, run, &(Args){.measures = {"recip_rank", NULL}, .c = true, .l = 2, .M = 10});
    cr_expect_eq(summary(ir, "nDCG@10"), summary(te, "ndcg_cut_10"));
    cr_expect_eq(summary(ir, "P@10"), summary(te, "P_10"));
    cr_expect_eq(summary(ir, "R(rel=2)@100"), summary(l2, "recall_100"));
    cr_expect_eq(summary(ir, "AP(rel=2)"), summary(l2, "map"));
    cr_expect_eq(summary(ir, "RR(rel=2)@10"), summary(rr, "recip_rank"));
    expect_printed(summary(ir, "R(rel=2)@100"), "0.4910", "R(rel=2)@100");
    trec_result_free(ir);
    trec_result_free(te);
    trec_result_free(l2);
    trec_result_free(rr);
}

// ---------------------------------------------------------------- edge cases

static const char *EDGE_QRELS =
    "# comment lines are skipped\n"
    "q1 0 d1 1\n"
    "q1 0 d2 0\n"
    "q1 0 d3 3\n"
    "q1 0 d4 -1\n"      // in the pool but unjudged
    "q2 0 d1 0\n"       // a query with no relevant document
    "q2 0 d2 0\n"
    "q3 0 d9 2\n";      // a query the run does not retrieve

static const char *EDGE_RUN =
    "q1 Q0 d2 1 3.0 tagA\n"
    "q1 Q0 d1 2 2.0 tagA\n"
    "q1 Q0 d4 3 2.0 tagA\n"   // ties d1 (2.0): docid descending puts d4 first
    "q1 Q0 d3 4 1.0 tagA\n"
    "q1 Q0 d7 5 0.5 tagA\n"   // not in the qrels
    "q2 Q0 d1 1 1.0 tagA\n"
    "q4 Q0 d1 1 1.0 tagB\n";  // a query missing from the qrels; last line gives runid

Test(edge, per_query_values_by_hand) {
    char *qp = write_temp(EDGE_QRELS), *rp = write_temp(EDGE_RUN);
    TrecEvalResult *r = eval_files(qp, rp, &(Args){.measures = {"all_trec", "relstring.5", NULL}});
    // ranking of q1: d2(0) d4(unjudged) d1(1) d3(3) d7(nonpool)
    cr_expect_eq(r->num_queries, 2, "q1 and q2 evaluated; q3 (no run) and q4 (no qrels) not");
    cr_expect_str_eq(r->runid, "tagB");
    long c = trec_result_col(r, "relstring_5");
    cr_expect_str_eq(r->strings[trec_result_query(r, "q1") * r->num_cols + c], "0.13-");
    cr_expect_eq(value(r, "q1", "num_rel"), 2);          // grades 1 and 3; -1 is not relevant
    cr_expect_eq(value(r, "q1", "num_rel_ret"), 2);
    cr_expect_eq(value(r, "q1", "num_nonrel_judged_ret"), 1);   // d2 only
    cr_expect_float_eq(value(r, "q1", "recip_rank"), 1.0 / 3.0, 1e-15);
    cr_expect_float_eq(value(r, "q1", "map"), (1.0 / 3.0 + 2.0 / 4.0) / 2.0, 1e-15);
    cr_expect_float_eq(value(r, "q1", "P_5"), 2.0 / 5.0, 1e-15);
    cr_expect_float_eq(value(r, "q1", "unj_5"), 2.0 / 5.0, 1e-15);    // d4 and d7
    // bpref: d1 and d3 each have judged nonrel d2 above: 1 - min(1, R=2) / min(N=1, R=2) = 0
    cr_expect_float_eq(value(r, "q1", "bpref"), 0.0, 1e-15);
    // graded gains: dcg = 1/log2(4) + 3/log2(5); ideal = 3/log2(2) + 1/log2(3)
    double dcg = 1.0 / log2(4.0) + 3.0 / log2(5.0), idcg = 3.0 + 1.0 / log2(3.0);
    cr_expect_float_eq(value(r, "q1", "ndcg"), dcg / idcg, 1e-12);
    cr_expect_float_eq(value(r, "q1", "ndcg_cut_5"), dcg / idcg, 1e-12);
    // q2 has no relevant document: every measure 0, and it still counts in the mean
    cr_expect_eq(value(r, "q2", "num_rel"), 0);
    cr_expect_eq(value(r, "q2", "map"), 0.0);
    cr_expect_eq(value(r, "q2", "ndcg"), 0.0);
    cr_expect_eq(value(r, "q2", "recall_5"), 0.0);
    cr_expect_float_eq(summary(r, "map"), (1.0 / 3.0 + 2.0 / 4.0) / 2.0 / 2.0, 1e-15);
    cr_expect_eq(summary(r, "num_q"), 2);
    trec_result_free(r);

    // -c: q3 (in the qrels, not in the run) is scored 0 and averaged in
    r = eval_files(qp, rp, &(Args){.measures = {"map", "num_q", "num_ret", "num_rel", NULL}, .c = true});
    cr_expect_eq(r->num_queries, 3);
    cr_expect_eq(value(r, "q3", "map"), 0.0);
    cr_expect_eq(value(r, "q3", "num_ret"), 0);
    cr_expect_eq(value(r, "q3", "num_rel"), 1);
    cr_expect_float_eq(summary(r, "map"), (1.0 / 3.0 + 2.0 / 4.0) / 2.0 / 3.0, 1e-15);
    trec_result_free(r);

    // -l 2: grade 1 no longer relevant for binary measures; nDCG keeps every grade
    r = eval_files(qp, rp, &(Args){.measures = {"map", "ndcg", "num_rel", NULL}, .l = 2});
    cr_expect_eq(value(r, "q1", "num_rel"), 1);
    cr_expect_float_eq(value(r, "q1", "map"), 1.0 / 4.0, 1e-15);
    cr_expect_float_eq(value(r, "q1", "ndcg"), dcg / idcg, 1e-12);
    trec_result_free(r);

    // -J: unjudged d4 and nonpool d7 vanish: d2 d1 d3
    r = eval_files(qp, rp, &(Args){.measures = {"recip_rank", "num_ret", NULL}, .j = true});
    cr_expect_eq(value(r, "q1", "num_ret"), 3);
    cr_expect_float_eq(value(r, "q1", "recip_rank"), 0.5, 1e-15);
    trec_result_free(r);
    unlink(qp);
    unlink(rp);
    free(qp);
    free(rp);
}

Test(edge, ties_break_by_docid_descending_and_rank_column_is_ignored) {
    // every score equal: trec_eval ranks d3 d2 d1 whatever the rank column says
    char *qp = write_temp("q 0 d3 1\n");
    char *rp = write_temp("q Q0 d1 1 5 t\nq Q0 d2 2 5 t\nq Q0 d3 3 5 t\n");
    TrecEvalResult *r = eval_files(qp, rp, &(Args){.measures = {"recip_rank", "map", NULL}});
    cr_expect_eq(value(r, "q", "recip_rank"), 1.0);
    cr_expect_eq(value(r, "q", "map"), 1.0);
    trec_result_free(r);
    unlink(qp);
    unlink(rp);
    free(qp);
    free(rp);
}

Test(edge, empty_run) {
    char *qp = write_temp(EDGE_QRELS), *rp = write_temp("");
    TrecQrels *q = trec_qrels_read(qp);
    TrecRun *run = trec_run_read(rp);
    cr_assert(q && run, "%s", hyp_last_error());
    cr_expect_eq(trec_run_num_queries(run), 0);
    TrecMeasureSet *ms = trec_measures_new();
    trec_measures_add(ms, "map");
    trec_measures_add(ms, "num_q");
    TrecEvalOptions opt = trec_eval_default_options();
    cr_expect_null(trec_evaluate(q, run, ms, &opt), "without -c there is nothing to evaluate");
    cr_expect(strstr(hyp_last_error(), "no queries"), "%s", hyp_last_error());
    opt.complete = true;
    TrecEvalResult *r = trec_evaluate(q, run, ms, &opt);
    cr_assert(r, "%s", hyp_last_error());
    cr_expect_eq(summary(r, "num_q"), 3);
    cr_expect_eq(summary(r, "map"), 0.0);
    trec_result_free(r);
    trec_measures_free(ms);
    trec_run_free(run);
    trec_qrels_free(q);
    unlink(qp);
    unlink(rp);
    free(qp);
    free(rp);
}

Test(edge, max_depth_and_rr_at_k) {
    char *qp = write_temp("q 0 a 1\n");
    char *rp = write_temp("q Q0 x 1 9 t\nq Q0 y 2 8 t\nq Q0 a 3 7 t\n");
    TrecEvalResult *r = eval_files(qp, rp, &(Args){.measures = {"recip_rank", "RR@2", "RR@3", NULL}});
    cr_expect_float_eq(value(r, "q", "recip_rank"), 1.0 / 3.0, 1e-15);
    cr_expect_eq(value(r, "q", "RR@2"), 0.0);
    cr_expect_float_eq(value(r, "q", "RR@3"), 1.0 / 3.0, 1e-15);
    trec_result_free(r);
    r = eval_files(qp, rp, &(Args){.measures = {"recip_rank", "num_ret", NULL}, .M = 2});
    cr_expect_eq(value(r, "q", "recip_rank"), 0.0);
    cr_expect_eq(value(r, "q", "num_ret"), 2);
    trec_result_free(r);
    unlink(qp);
    unlink(rp);
    free(qp);
    free(rp);
}

Test(edge, in_memory_run_equals_file_run_and_writer_round_trips) {
    TrecQrels *q = trec_qrels_read(REF "qrels.test");
    TrecRun *file_run = trec_run_read(REF "results.test");
    cr_assert(q && file_run, "%s", hyp_last_error());
    TrecRun *mem = trec_run_new("STANDARD");
    for (size_t i = 0; i < trec_run_num_queries(file_run); i++) {
        const TrecRunQuery *rq = trec_run_query(file_run, i);
        for (size_t k = 0; k < rq->n; k++)
            cr_assert(trec_run_add(mem, rq->qid, rq->entries[k].docid, rq->entries[k].score) == 0);
    }
    char path[] = "/tmp/hyp_test_eval_run_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert(trec_run_write(mem, path, NULL) == 0, "%s", hyp_last_error());
    char tmp[sizeof path + 4];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_expect(access(tmp, F_OK) != 0, "the .tmp file is renamed away");
    TrecRun *back = trec_run_read(path);
    cr_assert(back, "%s", hyp_last_error());

    TrecMeasureSet *ms = trec_measures_new();
    trec_measures_add(ms, "all_trec");
    TrecEvalOptions opt = trec_eval_default_options();
    TrecEvalResult *a = trec_evaluate(q, file_run, ms, &opt);
    TrecEvalResult *b = trec_evaluate(q, mem, ms, &opt);
    TrecEvalResult *c = trec_evaluate(q, back, ms, &opt);
    cr_assert(a && b && c, "%s", hyp_last_error());
    char *sa = print_to_string(a, true), *sb = print_to_string(b, true), *sc = print_to_string(c, true);
    expect_same_lines(sb, sa, "in-memory run");
    expect_same_lines(sc, sa, "written and re-read run");
    // the written ranks follow trec_eval's order: first line of 301 is rank 1
    char *text = read_text(path);
    cr_expect(!strncmp(text, "301 Q0 ", 7) && strstr(text, " 1 ") && strstr(text, " STANDARD\n"));
    free(text);
    free(sa);
    free(sb);
    free(sc);
    trec_result_free(a);
    trec_result_free(b);
    trec_result_free(c);
    trec_measures_free(ms);
    trec_run_free(back);
    trec_run_free(mem);
    trec_run_free(file_run);
    trec_qrels_free(q);
    unlink(path);
}

// ---------------------------------------------------------------- bad input

static void expect_read_error(bool qrels, const char *text, int line, const char *fragment) {
    char *p = write_temp(text);
    void *obj = qrels ? (void *)trec_qrels_read(p) : (void *)trec_run_read(p);
    cr_expect_null(obj, "reading %s should fail", text);
    char want[512];
    snprintf(want, sizeof want, "%s:%d:", p, line);
    cr_expect(strstr(hyp_last_error(), want), "error '%s' should name '%s'", hyp_last_error(), want);
    cr_expect(strstr(hyp_last_error(), fragment), "error '%s' should say '%s'", hyp_last_error(), fragment);
    unlink(p);
    free(p);
}

Test(bad_input, malformed_qrels) {
    expect_read_error(true, "q 0 d 1\nq 0 d2\n", 2, "expected 4 fields");
    expect_read_error(true, "q 0 d 1 extra\n", 1, "expected 4 fields");
    expect_read_error(true, "q 0 d 1\n\nq 0 e x\n", 3, "not an integer");
    expect_read_error(true, "q 0 d 1\nq 0 e 2\nq 0 d 0\n", 3, "duplicate judgment");
    expect_read_error(true, "q 0 d 1\nq 0 e 2000000000\n", 2, "out of range");
}

Test(bad_input, malformed_run) {
    expect_read_error(false, "q Q0 d 1 1.5 t\nq Q0 e 2 abc t\n", 2, "not a number");
    expect_read_error(false, "q Q0 d 1 1.5 t\nq Q0 e 2 2.5\n", 2, "expected 6 fields");
    expect_read_error(false, "q Q0 d 1 1.5 t\nq Q0 e 2 1e5x t\n", 2, "not a number");
    expect_read_error(false, "q Q0 d 1 nan t\n", 1, "not a number");
}

Test(bad_input, duplicate_docid_in_run) {
    char *qp = write_temp("q 0 d 1\n");
    char *rp = write_temp("q Q0 d 1 2.0 t\nq Q0 e 2 1.5 t\nq Q0 d 3 1.0 t\n");
    TrecQrels *q = trec_qrels_read(qp);
    TrecRun *r = trec_run_read(rp);
    cr_assert(q && r);
    TrecMeasureSet *ms = trec_measures_new();
    trec_measures_add(ms, "map");
    TrecEvalOptions opt = trec_eval_default_options();
    cr_expect_null(trec_evaluate(q, r, ms, &opt));
    char want[512];
    snprintf(want, sizeof want, "%s:3:", rp);
    cr_expect(strstr(hyp_last_error(), want) && strstr(hyp_last_error(), "duplicate document d"),
              "%s", hyp_last_error());
    trec_measures_free(ms);
    trec_run_free(r);
    trec_qrels_free(q);
    unlink(qp);
    unlink(rp);
    free(qp);
    free(rp);
}

Test(bad_input, missing_file_and_bad_measures) {
    cr_expect_null(trec_qrels_read("/nonexistent/qrels.txt"));
    cr_expect(strstr(hyp_last_error(), "/nonexistent/qrels.txt"));
    TrecMeasureSet *ms = trec_measures_new();
    cr_expect_eq(trec_measures_add(ms, "nosuchmeasure"), -1);
    cr_expect(strstr(hyp_last_error(), "nosuchmeasure"));
    cr_expect_eq(trec_measures_add(ms, "P.0"), -1);
    cr_expect_eq(trec_measures_add(ms, "P.5,5"), -1);
    cr_expect_eq(trec_measures_add(ms, "map.5"), -1);
    cr_expect_eq(trec_measures_add(ms, "ndcg.1"), -1);
    cr_expect_eq(trec_measures_add(ms, "P@"), -1);
    cr_expect_eq(trec_measures_add(ms, "R"), -1, "ir_measures R needs @k");
    cr_expect_eq(trec_measures_add(ms, "nDCG(rel=2)@10"), -1);
    cr_expect_eq(trec_measures_add(ms, "RR(foo=1)"), -1);
    trec_measures_free(ms);
}

Test(bad_input, cli_usage_errors) {
    if (access(HYP_BIN, X_OK) != 0) cr_skip_test(HYP_BIN " not built");
    cr_expect_neq(system(HYP_BIN " eval >/dev/null 2>&1"), 0);
    cr_expect_neq(system(HYP_BIN " eval -m nosuch " REF "qrels.test " REF "results.test >/dev/null 2>&1"), 0);
    cr_expect_neq(system(HYP_BIN " eval -l x " REF "qrels.test " REF "results.test >/dev/null 2>&1"), 0);
    cr_expect_neq(system(HYP_BIN " eval " REF "qrels.test /nonexistent >/dev/null 2>&1"), 0);
}

// ---------------------------------------------------------------- significance

Test(signif, t_cdf_closed_forms) {
    // df = 1 is the Cauchy distribution, df = 2 has F(t) = 1/2 + t / (2 sqrt(t^2 + 2)).
    double ts[] = {-3.0, -0.5, 0.0, 0.7, 1.0, 2.5, 10.0};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        double t = ts[i];
        cr_expect_float_eq(signif_t_cdf(t, 1.0), 0.5 + atan(t) / M_PI, 1e-12, "df=1 t=%g", t);
        cr_expect_float_eq(signif_t_cdf(t, 2.0), 0.5 + t / (2.0 * sqrt(t * t + 2.0)), 1e-12,
                           "df=2 t=%g", t);
    }
    // large df approaches the normal distribution: Phi(1.959963984540054) = 0.975
    cr_expect_float_eq(signif_t_cdf(1.959963984540054, 1e7), 0.975, 1e-6);
    // I_x(a, 1) = x^a and I_x(1, b) = 1 - (1-x)^b
    cr_expect_float_eq(signif_betai(2.5, 1.0, 0.3), pow(0.3, 2.5), 1e-13);
    cr_expect_float_eq(signif_betai(1.0, 4.0, 0.3), 1.0 - pow(0.7, 4.0), 1e-13);
}

Test(signif, paired_t_student_sleep_data) {
    // Cushny & Peebles' sleep data as analysed by "Student" (1908), R's `sleep` data set:
    // t.test(extra ~ group, paired = TRUE) gives t = -4.0621, df = 9, p = 0.002833.
    double g1[] = {0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0};
    double g2[] = {1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4};
    double t;
    double p = signif_paired_t(g1, g2, 10, &t);
    cr_expect_float_eq(t, -4.062127683382037, 1e-9);
    cr_expect(fabs(p - 0.002833) < 5e-7, "p = %.7f", p);
    // the same p by Simpson integration of the t(9) density (computed offline in Python)
    cr_expect_float_eq(p, 0.0028328901973875, 1e-10);
    // p from the CDF directly agrees
    cr_expect_float_eq(p, 2.0 * signif_t_cdf(-fabs(t), 9.0), 1e-12);
    // the randomization test sees the same strong effect (exact here: 2^10 <= 10000)
    double pr = signif_randomization(g1, g2, 10, 10000, 1);
    cr_expect(pr < 0.01, "randomization p = %g", pr);
}

Test(signif, identical_runs_give_p_one) {
    double a[] = {0.1, 0.5, 0.3, 0.9, 0.0, 0.25, 0.7};
    cr_expect_eq(signif_paired_t(a, a, 7, NULL), 1.0);
    cr_expect_eq(signif_randomization(a, a, 7, 10000, 42), 1.0);
    cr_expect_eq(signif_randomization(a, a, 7, 50, 42), 1.0);   // sampled path
}

Test(signif, randomization_exact_and_seeded) {
    // differences 1, 2, 3: of the 8 sign patterns, |sum| >= 6 for 2 -> p = 0.25
    double a[] = {1, 2, 3}, b[] = {0, 0, 0};
    cr_expect_float_eq(signif_randomization(a, b, 3, 10000, 7), 0.25, 1e-15);
    // sampled: deterministic in the seed, close to the exact value
    double x[20], y[20];
    for (int i = 0; i < 20; i++) {
        x[i] = 0.5 + 0.02 * ((i * 7) % 11);
        y[i] = x[i] + ((i % 3) ? 0.01 : -0.015);
    }
    double p1 = signif_randomization(x, y, 20, 20000, 123);
    double p2 = signif_randomization(x, y, 20, 20000, 123);
    cr_expect_eq(p1, p2);
    double pt = signif_paired_t(x, y, 20, NULL);
    cr_expect(p1 > 0 && p1 < 1 && fabs(p1 - pt) < 0.1, "rand p %g vs t p %g", p1, pt);
}

Test(signif, cli_compare_report) {
    if (access(HYP_BIN, X_OK) != 0) cr_skip_test(HYP_BIN " not built");
    FILE *p = popen(HYP_BIN " eval --compare " REF "results.trunc -c -m map -m ndcg_cut.10 --seed 3 "
                    REF "qrels.test " REF "results.test", "r");
    cr_assert(p);
    char line[512];
    int rows = 0;
    while (fgets(line, sizeof line, p))
        if (!strncmp(line, "map ", 4) || !strncmp(line, "ndcg_cut_10", 11)) {
            double ma, mb, d, pt, pr;
            char name[64];
            cr_expect_eq(sscanf(line, "%63s %lf %lf %lf %lf %lf", name, &ma, &mb, &d, &pt, &pr), 6, "%s", line);
            cr_expect(pt >= 0 && pt <= 1 && pr > 0 && pr <= 1, "%s", line);
            rows++;
        }
    cr_expect_eq(pclose(p), 0);
    cr_expect_eq(rows, 2);
}

// ---------------------------------------------------------------- issue 12
#include "eval/trec_internal.h"
#include "tests/bounded_child.h"

// BOM: trec_eval keeps it in the first qid (that query then matches nothing); we drop it,
// in qrels and runs alike, so a file saved by a Windows editor evaluates as intended.
Test(issue12, leading_bom_in_qrels_and_run_is_dropped) {
    char *qp = write_temp("\xEF\xBB\xBFq1 0 d1 1\nq1 0 d2 0\n");
    char *rp = write_temp("\xEF\xBB\xBFq1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 1.0 t\n");
    TrecQrels *q = trec_qrels_read(qp);
    TrecRun *r = trec_run_read(rp);
    cr_assert(q && r, "%s", hyp_last_error());
    cr_assert_str_eq(trec_qrels_qid(q, 0), "q1");
    cr_assert_not_null(trec_run_find(r, "q1"));
    trec_run_free(r);
    trec_qrels_free(q);
    TrecEvalResult *res = eval_files(qp, rp, &(Args){.measures = {"map", NULL}});
    cr_expect_eq(summary(res, "map"), 1.0);
    trec_result_free(res);
    unlink(qp); unlink(rp); free(qp); free(rp);
}

// qsort(NULL, 0, ...) on an empty qrels file (UBSan); it must simply evaluate nothing.
Test(issue12, empty_qrels) {
    char *qp = write_temp("# nothing judged\n"), *rp = write_temp("q1 Q0 d1 1 2.0 t\n");
    TrecQrels *q = trec_qrels_read(qp);
    cr_assert(q, "%s", hyp_last_error());
    cr_assert_eq(trec_qrels_num_queries(q), 0);
    cr_assert_eq(trec_qrels_num_positive(q), 0);
    TrecRun *r = trec_run_read(rp);
    TrecMeasureSet *ms = trec_measures_new();
    trec_measures_add(ms, "map");
    TrecEvalOptions opt = trec_eval_default_options();
    opt.complete = true;
    cr_expect_null(trec_evaluate(q, r, ms, &opt));
    cr_expect(strstr(hyp_last_error(), "no queries"), "%s", hyp_last_error());
    trec_measures_free(ms);
    trec_run_free(r);
    trec_qrels_free(q);
    unlink(qp); unlink(rp); free(qp); free(rp);
}

// trec_eval's -c summary num_rel counts every judgment with rel > 0 in the qrels, whatever -l.
Test(issue12, num_positive_ignores_the_relevance_level) {
    char *qp = write_temp("q1 0 a 1\nq1 0 b 2\nq1 0 c 0\nq1 0 d -1\nq2 0 a 3\nq3 0 z 0\n");
    TrecQrels *q = trec_qrels_read(qp);
    cr_assert(q, "%s", hyp_last_error());
    cr_assert_eq(trec_qrels_num_positive(q), 3);
    trec_qrels_free(q);
    unlink(qp); free(qp);
    // trec_eval 10.0 (built from usnistgov/trec_eval): `trec_eval -c -l 2 -m num_rel
    // qrels.test results.test` prints 561 (and 0 without -c)
    q = trec_qrels_read(REF "qrels.test");
    cr_assert(q, "%s", hyp_last_error());
    cr_assert_eq(trec_qrels_num_positive(q), 561);
    trec_qrels_free(q);
}

// Ids with whitespace made 7-field run lines; a non-finite score is a broken model.
Test(issue12, in_memory_ids_and_scores_are_checked) {
    TrecRun *r = trec_run_new("t");
    cr_assert_neq(trec_run_add(r, "q 1", "d1", 1.0), 0);
    cr_assert(strstr(hyp_last_error(), "query id 'q 1' contains whitespace"), "%s", hyp_last_error());
    cr_assert_neq(trec_run_add(r, "q1", "a b", 1.0), 0);
    cr_assert(strstr(hyp_last_error(), "document id 'a b' contains whitespace"), "%s", hyp_last_error());
    cr_assert_neq(trec_run_add(r, "q1", "", 1.0), 0);
    cr_assert(strstr(hyp_last_error(), "is empty"), "%s", hyp_last_error());
    cr_assert_neq(trec_run_add(r, "q1", "d1", -INFINITY), 0);
    cr_assert(strstr(hyp_last_error(), "-inf; expected a finite score"), "%s", hyp_last_error());
    cr_assert_neq(trec_run_add(r, "q1", "d1", NAN), 0);
    cr_assert_eq(trec_run_add(r, "q1", "d1", 1.0), 0);
    cr_assert_eq(trec_run_num_entries(r), 1);
    trec_run_free(r);
    TrecQrels *q = trec_qrels_new();
    cr_assert_neq(trec_qrels_add(q, "q1", "d\t1", 1), 0);
    cr_assert(strstr(hyp_last_error(), "document id 'd\t1' contains whitespace"), "%s", hyp_last_error());
    trec_qrels_free(q);
}

// Runs `cmd` under a 2 GiB address-space limit (not under ASan) and `timeout 20`; its exit status.
static int run_bounded(const char *cmd) {
    char full[1024];
    snprintf(full, sizeof full, HYP_ULIMIT_V "timeout 20 %s", cmd);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static bool dev_zero_qrels(void *arg) {
    (void)arg;
    return !trec_qrels_read("/dev/zero") && strstr(hyp_last_error(), "/dev/zero:1: NUL byte");
}
static bool dev_zero_run(void *arg) {
    (void)arg;
    return !trec_run_read("/dev/zero") && strstr(hyp_last_error(), "/dev/zero:1: NUL byte");
}
// `hyp eval qrels /dev/zero` reached 7.3 GB: now an error at once naming the file and line.
Test(issue12, endless_inputs_fail_fast) {
    expect_in_bounded_child(dev_zero_qrels, NULL, "trec_qrels_read(/dev/zero)");
    expect_in_bounded_child(dev_zero_run, NULL, "trec_run_read(/dev/zero)");
    if (access(HYP_BIN, X_OK) != 0) cr_skip_test(HYP_BIN " not built");
    double t0 = hyp_now();
    cr_expect_eq(run_bounded(HYP_BIN " eval " REF "qrels.test /dev/zero >/dev/null 2>&1"), 1);
    cr_expect_eq(run_bounded(HYP_BIN " eval /dev/zero " REF "results.test >/dev/null 2>&1"), 1);
    cr_expect_lt(hyp_now() - t0, 10.0);
}

// trec_eval 10.0 with -c: the summary num_rel counts every judgment with relevance > 0,
// whatever -l says (te_calc_avg_num_rel). Its output for this case (built from its source) is 561.
Test(trec_eval_reference, complete_num_rel_ignores_the_relevance_level) {
    if (access(HYP_BIN, X_OK) != 0) cr_skip_test(HYP_BIN " not built");
    FILE *p = popen(HYP_BIN " eval -c -l 2 -m num_rel " REF "qrels.test " REF "results.test", "r");
    cr_assert(p);
    char line[256] = "";
    cr_assert(fgets(line, sizeof line, p));
    pclose(p);
    cr_assert(strstr(line, "num_rel") && strstr(line, "\tall\t561"), "got: %s", line);
}

Test(trec_eval_reference, every_measure_family_has_a_registry_entry) {
    const int bad = trec_families_check();
    cr_assert_eq(bad, -1, "measure family %d has no entry in eval/metrics.c's FAMILIES", bad);
}
