// losses.h: the Hypencoder's training losses (shared/reference §5).
#ifndef HYP_LOSSES_H
#define HYP_LOSSES_H
#include "autograd/ops.h"

// Margin-MSE: scores (B, n) of each query's n items, positive first; teacher (B, n) on
// the host. Mean over the B*(n-1) pairs (positive, negative_k) of
// ((s_pos - s_k) - (t_pos - t_k))^2, as nn.MSELoss over the reference's pair list.
Tensor *loss_margin_mse(Ctx *c, Tensor *scores, const float *teacher);
// The same with its constants (a margin matrix and the teacher margins) already in device
// memory, for callers that upload them with the rest of a batch (the trainer: one copy per
// micro-batch): loss_margin_mse_consts fills loss_margin_mse_consts_floats(B, n) floats on the
// host (256-byte aligned at the start when dst is), loss_margin_mse_dev uses their device copy.
size_t loss_margin_mse_consts_floats(int B, int n);
void loss_margin_mse_consts(float *dst, const float *teacher, int B, int n);
Tensor *loss_margin_mse_dev(Ctx *c, Tensor *scores, float *consts);
// In-batch cross-entropy: S (B, B), S[i, k] = query i's q-net on query k's positive;
// target i; no temperature. Mean over queries.
Tensor *loss_inbatch_ce(Ctx *c, Tensor *S);
// The same over a wider candidate set: S (B, M), query i's target is column offset + i
// (cross-device negatives: M = B * world, offset = rank * B).
Tensor *loss_inbatch_ce_offset(Ctx *c, Tensor *S, int offset);

#endif
