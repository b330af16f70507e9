// checkpoint.h: training checkpoints and the run folder (DESIGN §5).
//
// A checkpoint (HDF5):
//   /params/<name>         fp32, HF-style names, the ParamSet's shapes
//   /optim/m/<name>        AdamW exp_avg      (same names and shapes)
//   /optim/v/<name>        AdamW exp_avg_sq
//   /state                 group; attributes: format (1), step, optim_step, sched_step,
//                          seed, rng_offset (Philox), lr, best_metric (NaN = none), best_step
//                          (-1 = none); dataset /state/cursor (int64, the loader's opaque cursor)
//   /config                the resolved training config (INI text, config_resolved_text)
//   /model_config, /tokenizer, /pooling   optional (ModelMeta, written by model_file_put_meta):
//                          what a model file needs, so a checkpoint can later be turned into one
// best.h5 is a model file (model/model_file.h; model_load reads it): /params, /config (the
// ModelConfig as JSON), /tokenizer/vocab + attributes lowercase, query_max_len, doc_max_len,
// plus /train_config (the INI text) and /state attributes step, best_metric.
//
// Every file is written to PATH.tmp, flushed to disk (fsync), then renamed over PATH and the
// directory fsync'ed (h5_begin / h5_commit, autograd/atomic.h): a crash at any moment leaves
// either the old file or the new one, and a failed write (any HDF5 error, ENOSPC, EIO on
// write, flush, close, fsync or rename) removes PATH.tmp and leaves every other file as it was.
// The run folder holds ckpt-%08d.h5 files, best.h5 and `latest` (one line: the file name
// of the newest complete checkpoint, replaced atomically the same way).
//
// Errors: -1 / NULL with "path: /key: reason" in hyp_last_error().
#ifndef HYP_CHECKPOINT_H
#define HYP_CHECKPOINT_H
#include "autograd/tensor.h"
#include "model/model_file.h"   // ModelMeta: what best.h5 needs besides the parameters
#include "train/optim.h"

typedef struct CkptState {
    int64_t step;            // trainer steps completed (the global step the run resumes after)
    int64_t optim_step;      // AdamW updates applied: save takes opt->step, load restores it
    int64_t sched_step;      // scheduler steps taken (lr_at(&sched, sched_step) is the next lr)
    uint64_t seed;           // Philox key (Ctx.seed)
    uint64_t rng_offset;     // Philox counter (Ctx.rng_offset)
    double lr;               // lr of the last update (informational)
    double best_metric;      // best validation metric so far; NaN = none yet
    int64_t best_step;       // its step; -1 = none
    int n_cursor;
    int64_t *cursor;         // (n_cursor) the data loader's cursor (e.g. epoch, position, step);
                             // checkpoint_load allocates it: free with ckpt_state_free
} CkptState;

// A state with no best metric (NaN, -1) and everything else 0.
CkptState ckpt_state_empty(void);
void ckpt_state_free(CkptState *st);    // frees st->cursor

// Write a checkpoint (atomically). opt may be NULL (no /optim, optim_step from st);
// model may be NULL. ps and opt may live on any device.
int checkpoint_save(const char *path, const ParamSet *ps, const AdamW *opt, const CkptState *st,
                    const char *config_text, const ModelMeta *model);
// Check a checkpoint without reading the tensors: it opens, has every group and /state
// attribute, and (ps != NULL) holds exactly ps's parameter names with ps's shapes, in
// /params and /optim/{m,v}; ps == NULL: /optim/{m,v} match /params. 0 or -1 + error
// naming the file and key.
int checkpoint_validate(const char *path, const ParamSet *ps);
// Load parameters (and opt's moments and step, if opt != NULL) and the state. Validates
// first (a mismatch changes nothing); a read error later leaves ps/opt partly loaded.
// *config_text (if not NULL) receives the stored config (malloc'd).
int checkpoint_load(const char *path, ParamSet *ps, AdamW *opt, CkptState *st, char **config_text);
// The stored resolved config (malloc'd), read before the model is built on resume.
char *checkpoint_read_config(const char *path);

// Write best.h5-style model file (atomically): params + model info + the training config.
// st may be NULL; otherwise its step and best_metric are recorded under /state.
int checkpoint_save_model(const char *path, const ParamSet *ps, const ModelMeta *model,
                          const char *config_text, const CkptState *st);

// ---- the run folder
// "DIR/ckpt-00001200.h5" (malloc'd).
char *checkpoint_path(const char *dir, int64_t step);
// Point DIR/latest at ckpt_path's file name (must be in DIR): latest.tmp, fsync, rename.
int checkpoint_set_latest(const char *dir, const char *ckpt_path);
// Delete all but the newest keep_last ckpt-*.h5 (by step); never the one `latest` names,
// never best.h5. keep_last <= 0 keeps everything. Returns the number deleted or -1.
int checkpoint_prune(const char *dir, int keep_last);
// Remove leftovers of interrupted writes (ckpt-*.h5.tmp, best.h5.tmp, latest.tmp).
// Returns the number removed or -1 (e.g. one is locked: a live process is writing it).
int checkpoint_clean_tmp(const char *dir);
// For `--resume auto`: cleans leftovers, then returns (malloc'd) the checkpoint `latest`
// names if it validates (against ps when not NULL), else the newest ckpt-*.h5 that does;
// NULL when there is none (hyp_last_error() says why, e.g. which files were rejected).
char *checkpoint_find_latest(const char *dir, const ParamSet *ps);
// save ckpt-<st->step>.h5 in DIR, point `latest` at it, prune to keep_last. *out_path
// (optional) receives the file written (malloc'd). 0 or -1; on -1 the folder is as it was
// (no new checkpoint, `latest` unchanged, nothing pruned).
int checkpoint_save_run(const char *dir, const ParamSet *ps, const AdamW *opt, const CkptState *st,
                        const char *config_text, const ModelMeta *model, int keep_last, char **out_path);

#endif
