// optim.h: AdamW (torch.optim.AdamW), global-norm gradient clipping (torch's
// clip_grad_norm_) and the HuggingFace learning-rate schedules, over a ParamSet's
// contiguous parameter and gradient buffers (one norm reduction, one update launch).
//
// One training update, as HF Trainer does it (grad accumulation k >= 1):
//   paramset_zero_grad(ps);
//   for each of the k micro-batches: forward, then backward with the loss divided by k
//       (seed the loss gradient with 1/k): the gradients accumulate (+=) in ps->grad, so
//       ps->grad holds the gradient of the mean loss over the k micro-batches;
//   [data parallel: all-reduce (mean) ps->grad across ranks]
//   double lr = lr_at(&sched, opt->step);     // HF: LambdaLR's lr after opt->step scheduler steps
//   OptimStats st;
//   if (optim_step(opt, ps, lr, &st) == OPTIM_NONFINITE) -> stop (train.on_nonfinite=stop;
//       nothing was changed, the last checkpoint is intact) or skip (zero the grads, go on).
// optim_step never modifies ps->grad (the clipping coefficient is applied inside the update).
//
// On a GPU the same update can be decided on the device (optim_step_async): the norm, the
// clipping coefficient and the non-finite guard stay in device memory, and the host reads them
// (optim_guard_read) only when it needs them: a log line, a checkpoint, the end of the run.
#ifndef HYP_OPTIM_H
#define HYP_OPTIM_H
#include "autograd/tensor.h"
#include "kernels/kernels.h"

// ---- learning-rate schedules (transformers.optimization)
typedef enum {
    SCHED_CONSTANT_WITH_WARMUP = 0,   // get_constant_schedule_with_warmup (the paper: 6000 steps)
    SCHED_LINEAR = 1,                 // get_linear_schedule_with_warmup (BE-Base)
    SCHED_CONSTANT = 2,               // get_constant_schedule
} SchedKind;

typedef struct LRSchedule {
    SchedKind kind;
    double lr;             // peak learning rate (the optimizer's base lr)
    long warmup_steps;     // linear ramp 0 -> lr over this many steps (0: none)
    long max_steps;        // SCHED_LINEAR: the lr reaches 0 here
} LRSchedule;

// The learning rate of the update that follows `done` completed updates. HF's step
// indexing: LambdaLR starts at lambda(0) and Trainer calls scheduler.step() after each
// optimizer.step(), so update t (1-based) uses lr * lambda(t - 1); with warmup the first
// update has lr 0.
//   constant_with_warmup: lambda(s) = s < W ? s / max(1, W) : 1
//   linear:               lambda(s) = s < W ? s / max(1, W) : max(0, (T - s) / max(1, T - W))
double lr_at(const LRSchedule *s, long done);
// "constant_with_warmup" | "linear" | "constant" -> kind; 0, or -1 for an unknown name.
int sched_parse(const char *name, SchedKind *out);
const char *sched_name(SchedKind k);

// ---- AdamW
typedef struct AdamWConfig {
    double beta1, beta2, eps;     // 0.9, 0.999, 1e-8
    double weight_decay;          // decoupled (p *= 1 - lr*wd); 0 in the paper
    double max_grad_norm;         // clip the global L2 norm to this; <= 0: no clipping
    bool decay_all;               // false (HF Trainer): no weight decay for biases and LayerNorm
                                  // parameters (adamw_param_decays); true: every parameter
    double head_lr_mult;          // lr multiplier of the non-BERT parameters (adamw_param_is_encoder false:
                                  // the hyperhead); 0 or 1: the same lr (train.head_lr / train.lr)
} AdamWConfig;
AdamWConfig adamw_config_default(void);   // torch/HF defaults: 0.9, 0.999, 1e-8, wd 0, clip 1.0

typedef struct AdamW {
    AdamWConfig cfg;
    Device device;
    size_t numel;
    float *m, *v;            // (numel) exp_avg, exp_avg_sq on `device`, laid out like ps->data
    int64_t step;            // updates applied (PyTorch's state["step"]; bias corrections use step+1)
    // weight-decay groups: runs of consecutive parameters with the same decay flag
    int n_runs;
    size_t *run_off, *run_len;
    bool *run_decay;
    double *run_lr_mult;     // per run: 1, or cfg.head_lr_mult for the hyperhead
    bool *run_frozen;        // per run: parameters that do not require grad (model.freeze_encoder): not updated
    float *norm_buf;         // (1) device scratch for the sum of squares
    HypClipState *guard;     // (1) device: clipping coefficient, last norm, first non-finite step
    double last_lr;          // lr of the last optim_step_async (reported by optim_guard_read)
} AdamW;

// State zeroed, step 0, for the parameters of ps (finalized; names decide weight decay).
AdamW *adamw_new(const ParamSet *ps, const AdamWConfig *cfg);
void adamw_free(AdamW *o);
// HF Trainer's rule (get_decay_parameter_names): biases and LayerNorm parameters get no decay.
bool adamw_param_decays(const char *name);
// A BERT parameter ("...transformer.*" of a Hypencoder or BE-Base, or a plain BERT's names)
// rather than the hyperhead ("query_encoder.<head>", which train.head_lr addresses).
bool adamw_param_is_encoder(const char *name);

typedef enum { OPTIM_OK = 0, OPTIM_NONFINITE = 1 } OptimStatus;
typedef struct OptimStats {
    double grad_norm;        // global L2 norm of ps->grad before clipping (what HF logs)
    float clip_coef;         // min(1, max_norm / (norm + 1e-6)) as torch computes it in fp32; 1 without clipping
    double lr;               // the lr applied
} OptimStats;

// torch.nn.utils.clip_grad_norm_'s coefficient for a total norm (fp32 arithmetic).
float optim_clip_coef(double grad_norm, double max_norm);
// Global L2 norm of ps->grad (synchronises; deterministic). Non-finite if any grad is.
double optim_grad_norm(const ParamSet *ps, float *scratch /* 1-element device buffer or NULL */);

// Clip by global norm and apply one AdamW update with learning rate lr. When the
// gradient norm (or lr) is not finite, returns OPTIM_NONFINITE and changes nothing:
// parameters, moments and o->step stay as they were. stats may be NULL.
OptimStatus optim_step(AdamW *o, ParamSet *ps, double lr, OptimStats *stats);

// The same update without a host round trip: the norm and the clipping coefficient are
// computed into o->guard on the device and AdamW reads the coefficient there (bitwise the
// same parameters and moments as optim_step). When the norm, or one of the n_check floats
// at check (device memory: the step's losses; NULL when n_check is 0), is not finite, the
// update is skipped on the device, and so is every later optim_step_async: the optimizer
// latches its last good state until optim_guard_read reports it. o->step counts the calls.
// Returns OPTIM_NONFINITE, changing nothing, only for a non-finite lr (known on the host).
OptimStatus optim_step_async(AdamW *o, ParamSet *ps, double lr, const float *check, long n_check);
// Reads the guard (one 16-byte device-to-host copy; synchronises). stats (may be NULL): the
// norm and coefficient of the last optim_step_async and its lr. When an update since the last
// read was skipped, returns OPTIM_NONFINITE with *bad_step (may be NULL) = the 1-based o->step
// of that update, puts o->step back to *bad_step - 1 (the parameters and moments are those of
// that step: nothing changed since) and clears the latch.
OptimStatus optim_guard_read(AdamW *o, OptimStats *stats, int64_t *bad_step);

#endif
