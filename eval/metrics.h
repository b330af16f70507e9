// metrics.h: trec_eval-compatible measures over TrecQrels x TrecRun.
//
// Semantics follow NIST trec_eval 9.x/10: ranking by score descending with ties broken
// by docno descending (the run's rank column ignored), -c / -l / -M / -J / -N options,
// measure names, parameters, the order of output lines and their printf formats.
// ir_measures-style names (nDCG@10, RR(rel=2)@10, R@1000, AP, P@10, ...) map onto the
// same code with a per-measure relevance level and depth.
//
// Typical use (what the training loop's validation does):
//     TrecMeasureSet *ms = trec_measures_new();
//     trec_measures_add(ms, "Rprec"); trec_measures_add(ms, "ndcg_cut.10");
//     TrecEvalOptions opt = trec_eval_default_options();
//     TrecEvalResult *res = trec_evaluate(qrels, run, ms, &opt);
//     double rprec = trec_result_summary(res, "Rprec");
#ifndef HYP_EVAL_METRICS_H
#define HYP_EVAL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "eval/trec.h"

typedef struct {
    long relevance_level;   // -l: minimum grade counted relevant by binary measures (1)
    long max_docs;          // -M: evaluate only the top max_docs per query (LONG_MAX)
    bool complete;          // -c: average over every qrels query; missing ones score 0
    bool judged_only;       // -J: drop unjudged documents before evaluating
    long num_docs_in_coll;  // -N: collection size, used by utility (0)
} TrecEvalOptions;

TrecEvalOptions trec_eval_default_options(void);

// ---------------------------------------------------------------- measure sets
typedef struct TrecMeasureSet TrecMeasureSet;

TrecMeasureSet *trec_measures_new(void);
// Adds one -m argument: a trec_eval measure with optional parameters ("P.5,10",
// "ndcg.1=3,2=9", "iprec_at_recall..10,.5"), a nickname ("official", "all_trec",
// "set"), or an ir_measures name ("nDCG@10", "RR(rel=2)@10", "AP", "R@1000").
// As in trec_eval, the first parameter list given for a measure wins.
// Returns 0, or -1 with a message in hyp_last_error().
int trec_measures_add(TrecMeasureSet *ms, const char *spec);
bool trec_measures_empty(const TrecMeasureSet *ms);
void trec_measures_free(TrecMeasureSet *ms);

// ---------------------------------------------------------------- results
typedef enum { TREC_COL_FLOAT, TREC_COL_INT, TREC_COL_STRING } TrecColKind;

typedef struct {
    char *name;        // printed name, e.g. "ndcg_cut_10"
    TrecColKind kind;
    bool per_query;    // printed per query with -q (gm_map and runid are not)
    bool summary;      // printed in the "all" block (relstring is not)
} TrecColumn;

typedef struct {
    size_t num_cols;
    TrecColumn *cols;         // (num_cols) in trec_eval's output order
    size_t num_queries;       // evaluated queries, in qid (strcmp) order
    char **qids;              // (num_queries)
    double *values;           // (num_queries, num_cols) row-major
    char **strings;           // (num_queries, num_cols): relstring text, NULL elsewhere
    double *summary;          // (num_cols) trec_eval's "all" values
    char *runid;
} TrecEvalResult;

// Evaluates run against qrels. NULL on error (no query in both files without -c,
// duplicate docids in a query, duplicate judgments) with a message in hyp_last_error().
TrecEvalResult *trec_evaluate(const TrecQrels *qrels, const TrecRun *run,
                              const TrecMeasureSet *ms, const TrecEvalOptions *opt);
void trec_result_free(TrecEvalResult *r);

long trec_result_col(const TrecEvalResult *r, const char *name);   // index or -1
double trec_result_summary(const TrecEvalResult *r, const char *name); // NaN if absent
long trec_result_query(const TrecEvalResult *r, const char *qid);  // row or -1

// Prints exactly as trec_eval: per-query blocks (if per_query), then the summary.
void trec_result_print(const TrecEvalResult *r, FILE *out, bool per_query, bool summary);
// The first measure family without a registry entry (name), or -1 when all have one (tested).
int trec_families_check(void);

#endif
