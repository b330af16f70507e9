// validation.h: the trainer's validation sweep: encode the validation corpus with the current
// model, search it exhaustively with the search driver (search/driver.h) on eval.device, and
// evaluate the run with eval/ (complete: a query the run misses counts 0).
#ifndef HYP_VALIDATION_H
#define HYP_VALIDATION_H
#include "train/config.h"
#include "train/objective.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "eval/metrics.h"
#include "search/store.h"

// The metrics of every sweep: [0] the selection metric eval.metric, then nDCG@10 and RR@10.
#define VAL_METRICS 3

typedef struct Validation {
    Corpus *corpus, *queries;   // eval.corpus (N passages), eval.queries; NULL: no validation
    TrecQrels *qrels;           // eval.qrels
    DocStore *store;            // frozen encoder: the corpus's vectors, kept across sweeps (else NULL)
    Device device;              // eval.device ("auto": the training device)
    int k, query_max_len, doc_max_len;
    const char *metric[VAL_METRICS];
} Validation;

// Reads the validation files when eval.every > 0 and eval.corpus is set (else leaves v off).
// tok: the training tokenizer (validation needs one). -1 with the error set.
int validation_open(Validation *v, const Config *c, Device train_dev, const Tokenizer *tok);
static inline bool validation_on(const Validation *v) { return v->corpus != NULL; }
// One sweep of model m (its weights on device model_dev) at training step `step`: out[i] is
// v->metric[i]. A line on stderr unless quiet.
int validation_run(Validation *v, const TrainModel *m, Device model_dev, const Tokenizer *tok, long step, bool quiet,
                   double out[VAL_METRICS]);
void validation_close(Validation *v);

#endif
