// losses.h: the Hypencoder's training losses (shared/reference §5).
#ifndef HYP_LOSSES_H
#define HYP_LOSSES_H
#include "autograd/ops.h"

// Margin-MSE: scores (B, n) of each query's n items, positive first; teacher (B, n) on
// the host. Mean over the B*(n-1) pairs (positive, negative_k) of
// ((s_pos - s_k) - (t_pos - t_k))^2, as nn.MSELoss over the reference's pair list.
Tensor *loss_margin_mse(Ctx *c, Tensor *scores, const float *teacher);
// In-batch cross-entropy: S (B, B), S[i, k] = query i's q-net on query k's positive;
// target i; no temperature. Mean over queries.
Tensor *loss_inbatch_ce(Ctx *c, Tensor *S);
// The same over a wider candidate set: S (B, M), query i's target is column offset + i
// (cross-device negatives: M = B * world, offset = rank * B).
Tensor *loss_inbatch_ce_offset(Ctx *c, Tensor *S, int offset);

#endif
