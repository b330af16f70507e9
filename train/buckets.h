// buckets.h: data-parallel gradient buckets for the trainer.
// Data-parallel gradient averaging in buckets of consecutive parameters that start as soon
// as backward has finished writing them (on NCCL the all-reduce overlaps the rest of the
// backward pass; host engines complete each bucket as it is started). A parameter's
// gradient is final once the backward of the first tape node that reads it has run.
#ifndef HYP_BUCKETS_H
#define HYP_BUCKETS_H
#include "autograd/tape.h"
#include "train/comm.h"

typedef struct GradBuckets {
    Comm *comm;
    ParamSet *ps;
    Device dev;
    int n;                 // buckets
    int *first, *last;     // parameter index range [first, last] of each bucket
    int *ready;            // per bucket: the node index after whose backward it is final
    int *order;            // buckets by ready descending (the order backward reaches them)
    int next;              // next entry of order to launch
    int *min_use;          // per parameter: first tape node reading it (INT_MAX: none)
    size_t *off;           // per parameter: offset in ps->grad
    int failed;
    double seconds;        // time spent starting bucket all-reduces this step
} GradBuckets;

// Buckets of at most bucket_mb MiB of consecutive parameters of ps.
void buckets_init(GradBuckets *g, ParamSet *ps, Comm *comm, Device dev, double bucket_mb);
void buckets_free(GradBuckets *g);
// Before the last micro-batch's backward: when each bucket becomes final (from the tape).
void buckets_plan(GradBuckets *g, const Tape *tape);
// The tape's after-backward-node callback (Ctx.after_backward_node, user = g): starts the
// all-reduce of every bucket that is final once the nodes from done_from on have run.
void buckets_launch(Ctx *c, int done_from, void *u);

#endif
