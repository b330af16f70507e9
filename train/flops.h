// flops.h: the step log's throughput figures (issue 18): FLOPs of a training step counted
// from the model's shapes, and the peak the MFU is relative to.
#ifndef HYP_FLOPS_H
#define HYP_FLOPS_H
#include "autograd/tensor.h"

typedef struct StepShape {
    int bert_layers, hidden, ffn;   // the (shared) BERT
    int qnet_layers;                // 0 for BE-Base
    int queries, items;             // B queries, each with `items` passages (1 + negatives)
    int q_len, d_len;               // padded lengths of the batch
    bool in_batch;                  // in-batch cross-entropy: every query also scores the batch's positives
    bool frozen_encoder;            // model.freeze_encoder: query BERT forward only, passages cached
} StepShape;

// Forward + backward FLOPs of one micro-batch: BERT's linear layers (2 in out a token) and
// attention (QK^T and PV: 4 T h a token a layer) over every query and passage token, the
// hyperhead (a key and a value projection, 4 h^2 a query token, for each of its L+1 matrices
// and L biases; their attention, 4 out h T a query, and output projection, 2 out h^2 a query,
// out = h for hidden matrices, 1 for the last and the biases) and the q-net's layers (2 d^2 a
// layer) over every scored (query, passage) pair (a query's own passages, and with in-batch
// cross-entropy the batch's B positives), all times 3 (backward is twice the forward).
// A frozen encoder: the query BERT forward once, no passage BERT (vectors come from the cache).
// Not counted: embeddings, LayerNorm, softmax.
double step_flops(const StepShape *s);
// Tokens of one micro-batch as computed (padded): queries * q_len + queries * items * d_len.
double step_tokens(const StepShape *s);

// The peak FLOP/s MFU is measured against at GEMM precision prec, and what it is ("cpu sgemm
// 285 GFLOP/s measured", "NVIDIA H100 bf16 989.4 TFLOP/s"), or 0 when unknown (a GPU not in
// the table, the simulator). The CPU's is the rate of a 1024^3 sgemm on this machine's
// threads, measured once (its bf16 and tf32 are emulated at fp32 speed); a GPU's is the
// data sheet's dense tensor-core rate for bf16 and tf32 (fp32 without HYP_CUDA_TF32: CUDA cores).
double device_peak_flops(Device d, MatmulPrecision prec, char *what, size_t n);
#endif
