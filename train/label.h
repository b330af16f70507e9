// label.h: training data from a teacher (`hyp label`): each query's candidate documents
// scored by a teacher model, written as the authors' training JSONL (data/train_data.h):
//   {"query": {"id", "content"}, "items": [{"id", "content", "score"}, ...]}
// items[0] the positive, then up to K negatives sampled (Philox(seed), per query) from the
// other candidates, every item with its teacher score.
//
// Teachers (model kinds): a plain BERT or BE-Base bi-encoder (inner product of the model's
// own pooled vectors, L2-normalised when the model says so or `cosine`), a Hypencoder (its
// q-net on the documents' [CLS] vectors), a cross-encoder ([CLS] q [SEP] d [SEP] -> logit).
// No teacher: the qrels grades are the scores.
// Candidates: the run's documents per query (its top `depth` by run score), or, without a
// run, the query's judged documents in the qrels. The positive: with qrels, the candidate
// (or judged document, added to the candidates when the run missed it) of the highest
// grade > 0, the teacher's score breaking ties; without qrels, the teacher's best candidate.
// With qrels, documents judged relevant (grade > 0) are never negatives.
// Bi-encoder and Hypencoder teachers encode each document once (cached across queries), or
// read it from `docs`.
#ifndef HYP_LABEL_H
#define HYP_LABEL_H
#include "model/load.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "eval/trec.h"
#include <stdio.h>

typedef struct LabelOptions {
    const Model *teacher;        // NULL: qrels grades are the scores
    const Tokenizer *tok;        // the teacher's tokenizer (NULL without a teacher)
    const Corpus *queries;       // the queries to label, in this order
    const Corpus *corpus;        // every candidate's text
    const TrecRun *candidates;   // NULL: the judged documents of qrels
    const TrecQrels *qrels;      // NULL: the positive is the teacher's best candidate
    struct DocStore *docs;       // NULL: the teacher encodes the candidates; else their vectors by id
                                 // (hyp encode with the teacher), every candidate must be in it
    int depth;                   // candidates taken per query from the run (0: all)
    int negatives;               // K >= 1
    uint64_t seed;
    int batch;                   // texts (or pairs) per teacher forward pass; 0: 64
    bool cosine;                 // bi-encoder teachers: normalise vectors before the inner product
    double scale;                // the written scores are the teacher's times this (0: 1)
    bool progress;               // queries/s and ETA on stderr
} LabelOptions;

typedef struct LabelStats {
    long queries;                // labelled rows written
    long no_candidates;          // queries without candidates (not in the run / no judgments)
    long no_positive;            // queries whose candidates hold no relevant document (qrels)
    long few_negatives;          // rows written with fewer than K negatives
    long docs_encoded;           // document vectors the teacher encoded, or read from `docs` (bi-encoder / Hypencoder)
    long pairs_scored;           // (query, document) scores computed
} LabelStats;

// Writes the JSONL to out (named out_name in messages). 0, or -1 + error ("run.trec: query
// q7: document d9 is not in corpus.tsv", a write error, a non-finite teacher score).
int label_write(const LabelOptions *o, FILE *out, const char *out_name, LabelStats *st);

#endif
