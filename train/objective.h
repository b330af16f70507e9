// objective.h: the distillation objective of one training batch (used by the trainer, the
// memory planner, the tests and bench_train).
#ifndef HYP_OBJECTIVE_H
#define HYP_OBJECTIVE_H
#include "model/hypencoder.h"
#include "model/biencoder.h"
#include "data/train_data.h"

// The trained model: a Hypencoder or the BE-Base baseline, parameters in one ParamSet.
struct DocCache;
typedef struct TrainModel {
    bool hypencoder;             // false: bi-encoder
    Hypencoder hyp;
    BiEncoder be;
    ParamSet *ps;
    struct DocCache *doc_cache;  // model.freeze_encoder: document vectors by token ids (else NULL)
} TrainModel;

typedef struct StepLosses { Tensor *total, *mmse, *ce; } StepLosses;
// The training objective on one batch (B queries, n items each, positive first):
// w_mmse * MarginMSE(scores, teacher) + w_ce * CE(in-batch scores of the positives).
StepLosses train_forward(Ctx *c, const TrainModel *m, const TrainBatch *b, float w_mmse, float w_ce);
// With cross-device negatives (dist.cross_device_negatives, the reference's option): the
// positives of every rank are all-gathered (as constants, like torch.distributed.all_gather:
// gradients flow only through this rank's own positives) and each query's CE runs over
// B * world candidates. comm NULL or world 1: the plain objective.
struct Comm;
StepLosses train_forward_dist(Ctx *c, const TrainModel *m, const TrainBatch *b, float w_mmse, float w_ce,
                              struct Comm *comm, bool cross_device_negatives);

#endif
