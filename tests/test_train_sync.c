// test_train_sync.c: host<->device traffic of a training step on CUDA (issue 16, "Memory and
// syncs"), and what moved off the step's path with it: the ids are validated on the host before
// the upload (same message as op embedding's), and a non-finite loss or gradient norm is caught
// on the device and reported when the host next reads the step's values, before any checkpoint.
//
// A step uploads its batch and reads nothing back, except the scalars a log line needs on
// train.log_steps steps. Counted with the SIMT simulator's copy counters (CUDA=sim build): the
// copies of a run of N steps minus those of a run of M < N steps are the copies of N - M steps
// (setup, the final checkpoint and the last log line cancel out).
#include "tests/testlib.h"
#include "train/trainer.h"
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef HYP_CUDA_SIM
#include "kernels/cuda/sim/hyp_sim.h"
#endif

static char dir[64];

static void make_task(void) { make_synth_task(dir, sizeof dir, "/tmp/hyp_trainsync", 200, 40, 4); }
static void remove_task(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

#ifdef HYP_CUDA_SIM   // (used by the copy count, which needs the simulator)
static int train(Device dev, const char *out, long max_steps, const char *extra1, const char *extra2) {
    static char s[7][256];
    snprintf(s[0], sizeof s[0], "data.train=%s/data/train.jsonl", dir);
    snprintf(s[1], sizeof s[1], "data.vocab=%s/data/vocab.txt", dir);
    snprintf(s[2], sizeof s[2], "train.max_steps=%ld", max_steps);
    snprintf(s[3], sizeof s[3], "eval.every=0");
    snprintf(s[4], sizeof s[4], "train.batch_size=4");
    snprintf(s[5], sizeof s[5], "%s", extra1);
    snprintf(s[6], sizeof s[6], "%s", extra2);
    const char *sets[7] = {s[0], s[1], s[2], s[3], s[4], s[5], s[6]};
    char out_dir[128];
    snprintf(out_dir, sizeof out_dir, "%s/%s", dir, out);
    TrainOptions o = {.config_path = "configs/tiny.ini", .sets = sets, .n_sets = 7, .out_dir = out_dir,
                      .device = dev, .quiet = true};
    return train_run(&o, NULL);
}
#endif

#ifdef HYP_CUDA_SIM
typedef struct { double h2d, d2h, d2d, bytes_h2d; } PerStep;

// Copies per step of the steps a (max_steps) run does beyond a (max_steps - extra) run.
static PerStep per_step(const char *tag, long base, long extra, const char *e1, const char *e2) {
    char o1[64], o2[64];
    snprintf(o1, sizeof o1, "%s_a", tag);
    snprintf(o2, sizeof o2, "%s_b", tag);
    hyp_sim_reset_stats();
    cr_assert_eq(train(HYP_CUDA, o1, base, e1, e2), 0, "%s", hyp_last_error());
    HypSimStats a = hyp_sim_stats();
    hyp_sim_reset_stats();
    cr_assert_eq(train(HYP_CUDA, o2, base + extra, e1, e2), 0, "%s", hyp_last_error());
    HypSimStats b = hyp_sim_stats();
    PerStep p = {(double)(b.copies_h2d - a.copies_h2d) / extra, (double)(b.copies_d2h - a.copies_d2h) / extra,
                 (double)(b.copies_d2d - a.copies_d2d) / extra, (double)(b.bytes_h2d - a.bytes_h2d) / extra};
    fprintf(stderr, "train_sync %s (%s, %s): per step h2d %.2f (%.0f bytes) d2h %.2f d2d %.2f\n", tag, e1, e2, p.h2d,
            p.bytes_h2d, p.d2h, p.d2d);
    return p;
}
#endif

// Per micro-batch: one upload (the batch's ids and masks and its Margin-MSE constants). Per
// step: no copy to the host unless the step logs; then two (the micro-batches' losses, the
// optimizer's 16-byte guard with the gradient norm). Before issue 16: 11 uploads and 11 copies
// to the host per step with one micro-batch.
Test(train_sync, copies_per_step_cuda) {
    RUN_ON_CUDA_OR_SKIP();
#ifndef HYP_CUDA_SIM
    cr_skip_test("copy counting needs the simulator's counters (make CUDA=sim)");
#else
    make_task();
    // Non-log steps: only the last step of each run logs (log_steps above max_steps).
    PerStep quiet = per_step("quiet", 2, 3, "train.log_steps=1000", "train.grad_accum=1");
    cr_assert_eq(quiet.d2h, 0.0, "a non-log step copies %.2f times to the host", quiet.d2h);
    cr_assert_eq(quiet.h2d, 1.0, "a step uploads %.2f times (want once: the batch)", quiet.h2d);
    cr_assert(quiet.d2d <= 3.0, "%.2f device copies per step (the three loss scalars)", quiet.d2d);
    PerStep accum = per_step("accum", 2, 2, "train.log_steps=1000", "train.grad_accum=2");
    cr_assert_eq(accum.d2h, 0.0, "a non-log step with 2 micro-batches copies %.2f times to the host", accum.d2h);
    cr_assert_eq(accum.h2d, 2.0, "2 micro-batches upload %.2f times (want once each)", accum.h2d);
    // Every step logs: the losses and the guard.
    PerStep logged = per_step("logged", 2, 3, "train.log_steps=1", "train.grad_accum=1");
    cr_assert_eq(logged.d2h, 2.0, "a log step copies %.2f times to the host (want 2)", logged.d2h);
    cr_assert_eq(logged.h2d, 1.0);
    remove_task();
#endif
}

// ---------------------------------------------------------------- through the binary
static int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }
static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    char *b = hyp_calloc(1, 1 << 16);
    if (f) {
        size_t n = fread(b, 1, (1 << 16) - 1, f);
        b[n] = 0;
        fclose(f);
    }
    return b;
}
static bool exists(const char *dir_, const char *out, const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s/%s", dir_, out, name);
    return access(p, F_OK) == 0;
}
// hyp train on the task (no validation) with `more`; returns the exit code, *log its stderr.
// A non-empty env (fault variables) runs the test-only bin/hyp-faults.
static int hyp_train(const char *env, const char *out, bool cuda, const char *more, char **log) {
    char cmd[2048], lp[160];
    snprintf(lp, sizeof lp, "%s/%s.log", dir, out);
    snprintf(cmd, sizeof cmd,
             "%s OMP_NUM_THREADS=1 %s train --config configs/tiny.ini --out %s/%s %s "
             "--set data.train=%s/data/train.jsonl --set data.vocab=%s/data/vocab.txt --set eval.every=0 "
             "--set train.batch_size=4 %s >%s 2>&1",
             env, *env ? HYP_FAULTS_BIN : HYP_BIN, dir, out, cuda ? "--cuda" : "", dir, dir, more, lp);
    int rc = exit_code(system(cmd));
    *log = read_text(lp);
    return rc;
}

// A NaN loss at step 5 (HYP_TEST_NONFINITE_STEP): train.on_nonfinite=stop exits 2 and writes
// no checkpoint after step 4. On the CPU the guard is read every step; on CUDA at the next
// log line, validation or checkpoint (here: the step-6 checkpoint, which is not written).
static void nonfinite_stop(bool cuda) {
    make_task();
    char *log;
    int rc = hyp_train("HYP_TEST_NONFINITE_STEP=5", "nan", cuda,
                       "--set train.max_steps=8 --set train.save_steps=2 --set train.log_steps=1000", &log);
    cr_assert_eq(rc, 2, "exit %d, want 2 (non-finite loss):\n%s", rc, log);
    cr_assert(strstr(log, "step 5: non-finite loss"), "the message names step 5:\n%s", log);
    if (cuda) cr_assert(strstr(log, "seen after step 6"), "on CUDA it is seen at the step-6 checkpoint:\n%s", log);
    cr_assert(strstr(log, "The last checkpoint in"), "%s", log);
    cr_assert(exists(dir, "nan", "ckpt-00000004.h5"));
    cr_assert(!exists(dir, "nan", "ckpt-00000006.h5"), "no checkpoint after the non-finite step:\n%s", log);
    char p[160];
    snprintf(p, sizeof p, "%s/nan/latest", dir);
    char *latest = read_text(p);
    cr_assert(strstr(latest, "ckpt-00000004.h5"), "latest: %s", latest);
    free(latest);
    free(log);
    // train.on_nonfinite=skip: the step is skipped, the run goes on to the end.
    rc = hyp_train("HYP_TEST_NONFINITE_STEP=3", "skip", cuda,
                   "--set train.max_steps=6 --set train.save_steps=3 --set train.on_nonfinite=skip", &log);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, log);
    cr_assert(strstr(log, "step 3: non-finite loss or gradient, step skipped"), "%s", log);
    cr_assert(exists(dir, "skip", "ckpt-00000006.h5"), "%s", log);
    free(log);
    remove_task();
}
Test(train_sync, nonfinite_stops_before_the_next_checkpoint) { nonfinite_stop(false); }
Test(train_sync, nonfinite_stops_before_the_next_checkpoint_cuda) {
    RUN_ON_CUDA_OR_SKIP();
    nonfinite_stop(true);
}

// Ids outside the model's word embeddings (shards of a larger vocabulary, no data.vocab to
// catch it at load) are rejected on the host before the upload, with op embedding's message.
static void ids_checked(bool cuda) {
    make_task();
    char *log;
    int rc = hyp_train("", "first", false, "--set train.max_steps=1", &log);   // pretokenizes into first/shards
    cr_assert_eq(rc, 0, "%s", log);
    free(log);
    char cmd[1024], lp[160];
    snprintf(lp, sizeof lp, "%s/small.log", dir);
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 " HYP_BIN " train --config configs/tiny.ini --out %s/small %s --set data.train=%s/first/shards "
             "--set eval.every=0 --set train.batch_size=4 --set train.max_steps=2 --set model.bert_vocab=6 >%s 2>&1",
             dir, cuda ? "--cuda" : "", dir, lp);
    rc = exit_code(system(cmd));
    log = read_text(lp);
    cr_assert_eq(rc, 2, "exit %d:\n%s", rc, log);
    cr_assert(strstr(log, "op embedding: id ") && strstr(log, "is outside the table [0, 6)"), "%s", log);
    free(log);
    remove_task();
}
Test(train_sync, batch_ids_checked_before_upload) { ids_checked(false); }
Test(train_sync, batch_ids_checked_before_upload_cuda) {
    RUN_ON_CUDA_OR_SKIP();
    ids_checked(true);
}
