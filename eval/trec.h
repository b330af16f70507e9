// trec.h: TREC qrels and runs in memory: readers, an in-memory run builder, the run writer.
//
// Formats (whitespace separated, '#' starts a comment line, blank lines ignored):
//   qrels: qid iter docno rel            (rel: integer; < 0 means "in the pool, unjudged")
//   run:   qid Q0 docno rank score tag   (rank ignored; fields after tag ignored)
// Readers stream the file through hyp_lines (autograd/util.h): a leading UTF-8 BOM is
// dropped (trec_eval keeps it as part of the first qid, so such a file silently matches
// nothing there; here it evaluates as if the BOM were absent), a line over 16 MiB or a NUL
// byte is an error. They return NULL on bad input and leave "path:line: message" in
// hyp_last_error().
#ifndef HYP_EVAL_TREC_H
#define HYP_EVAL_TREC_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

// ---------------------------------------------------------------- qrels
typedef struct TrecQrels TrecQrels;

#define TREC_MAX_REL 1000000   // |grade| limit (trec_eval expects small integers)

TrecQrels *trec_qrels_read(const char *path);
// In-memory construction (tests, tools). Duplicate (qid, docid) pairs are an error, and so
// are ids that are empty or contain whitespace (hyp_id_problem).
// The first query of the set (lookup, num_queries, evaluation) freezes it: later adds fail.
TrecQrels *trec_qrels_new(void);
int trec_qrels_add(TrecQrels *q, const char *qid, const char *docid, long rel);  // 0 ok, -1 error
void trec_qrels_free(TrecQrels *q);

size_t trec_qrels_num_queries(const TrecQrels *q);   // finalizes a built set first
const char *trec_qrels_qid(const TrecQrels *q, size_t i); // queries in strcmp order of qid
// Relevance of (qid, docid): returns true and sets *rel when judged.
bool trec_qrels_lookup(const TrecQrels *q, const char *qid, const char *docid, long *rel);

typedef struct {
    const char *docid;
    uint64_t hash;    // trec_hash_str(docid)
    long rel;
} TrecJudgment;

// ---------------------------------------------------------------- runs
typedef struct {
    const char *docid;
    double score;
    uint32_t line;   // line in the run file (0 for in-memory entries), for error messages
} TrecRunEntry;

typedef struct {
    const char *qid;
    TrecRunEntry *entries;   // (n) in input order; evaluation sorts a copy
    size_t n, cap;
} TrecRunQuery;

typedef struct TrecRun TrecRun;

// A docid listed twice for one query is not an error here: like trec_eval, the
// evaluation refuses it (naming both lines) when it is among the documents evaluated.
TrecRun *trec_run_read(const char *path);
TrecRun *trec_run_new(const char *tag);   // tag may be NULL ("hyp")
// 0 ok, -1 error: a NaN or infinite score (run files may hold inf, trec_eval reads them;
// our own runs come from models, where it means a broken model), an id that is empty or contains whitespace (it would write
// a line of more than 6 fields).
int trec_run_add(TrecRun *run, const char *qid, const char *docid, double score);
void trec_run_free(TrecRun *run);

size_t trec_run_num_queries(const TrecRun *run);
const TrecRunQuery *trec_run_query(const TrecRun *run, size_t i);   // insertion order
const TrecRunQuery *trec_run_find(const TrecRun *run, const char *qid);
const char *trec_run_tag(const TrecRun *run);    // file: tag of the last line (trec_eval's runid)
const char *trec_run_path(const TrecRun *run);   // NULL for in-memory runs
size_t trec_run_num_entries(const TrecRun *run);

// Writes `qid Q0 docid rank score tag`, each query ranked by trec_eval's rule
// (score descending, ties by docid descending), ranks from 1, scores printed so
// that they read back to the same double. Written to path.tmp, then renamed.
// tag NULL: the run's own tag.
int trec_run_write(const TrecRun *run, const char *path, const char *tag);

// trec_eval's ranking order: score descending, then docid descending (strcmp).
int trec_entry_cmp(const void *a, const void *b);

#endif
