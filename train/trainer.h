// trainer.h: `hyp train`: the distillation training loop (Margin-MSE + in-batch CE), with
// exact resume, checkpoints, validation sweeps and best-checkpoint selection (DESIGN §1).
#ifndef HYP_TRAINER_H
#define HYP_TRAINER_H
#include "train/config.h"
#include "model/hypencoder.h"
#include "model/biencoder.h"
#include "data/train_data.h"
#include "train/objective.h"

typedef struct TrainOptions {
    const char *config_path;     // INI file (optional on resume: the checkpoint's is used)
    const char *const *sets;     // --set section.key=value, in order
    int n_sets;
    const char *out_dir;         // run folder
    const char *resume;          // NULL, "auto", or a checkpoint path
    Device device;
    bool quiet;                  // no step lines on stderr
} TrainOptions;

// What one run produced (for scripts and the main job).
typedef struct TrainSummary {
    long steps;                  // global steps completed
    double last_loss;
    double best_metric;          // NaN when no validation ran
    long best_step;
    double final_metric[3];      // the last validation's eval.metric, nDCG@10, RR@10 (NaN if none; validation.h)
} TrainSummary;

// train_run's results (also `hyp train`'s exit status; docs/exit-codes.md):
//   0  done: max_steps reached
//   1  bad input (config, data, resume) or an output that could not be written (disk full,
//      I/O error: the run folder is left as it was before that save), message printed
//   2  stopped on a non-finite loss or gradient norm (the last checkpoint stays intact). With
//      train.on_nonfinite=stop the check runs on the device: that step's update and all later
//      ones are skipped there, and the host learns of it when it next reads the step's values
//      (every step on the CPU; on a GPU at the next log line, validation, checkpoint or the
//      end), stopping before anything is written. train.on_nonfinite=skip decides on the host
//      before each update (one read of the losses and the norm per step).
//   TRAIN_STOPPED (3)  stopped by SIGINT/SIGTERM after finishing the current step and
//      writing its checkpoint; `--resume auto` continues exactly (a second signal ends the
//      process at once, by that signal). Under several ranks all stop at the same step.
#define TRAIN_STOPPED 3
int train_run(const TrainOptions *o, TrainSummary *summary);

#endif
