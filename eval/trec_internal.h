// trec_internal.h: what eval/metrics.c needs from eval/trec.c beyond the public API.
// Not for use outside eval/.
#ifndef HYP_EVAL_TREC_INTERNAL_H
#define HYP_EVAL_TREC_INTERNAL_H

#include "eval/trec.h"

uint64_t trec_hash_str(const char *s);

// Index of qid among the (sorted) qrels queries, or -1.
long trec_qrels_query_index(const TrecQrels *q, const char *qid);
// Judgment of docid for query qi; hash = trec_hash_str(docid). Returns false if unjudged.
bool trec_qrels_rel_hashed(const TrecQrels *q, size_t qi, const char *docid, uint64_t hash,
                           long *rel);
// Number of judgments at each level 0..max for query qi (negative levels not counted):
// counts[level], *num_levels = highest level with a nonzero count + 1 (0 if none).
const long *trec_qrels_level_counts(const TrecQrels *q, size_t qi, long *num_levels);
// Judgments with relevance > 0 over every query of the qrels, whatever the relevance level:
// trec_eval 10.0's summary num_rel under -c (m_num_rel.c, te_calc_avg_num_rel).
long trec_qrels_num_positive(const TrecQrels *q);
// The judgments of query qi (any order).
const TrecJudgment *trec_qrels_judgments(const TrecQrels *q, size_t qi, size_t *n);
const char *trec_qrels_path(const TrecQrels *q);
// 0 when usable; -1 (message set again) when building found duplicate judgments.
int trec_qrels_validate(const TrecQrels *q);

#endif
