// test_train_reliability.c: `hyp train` when things go wrong (issue 12): a full disk (a
// real 2 MB tmpfs, where mounting is permitted) and injected write failures leave the run
// folder as it was and stop with a clear error (or go on with train.on_save_error=continue);
// SIGTERM stops after the current step with a checkpoint and exit code 3, and --resume auto
// then ends bitwise identical to an uninterrupted run; a second signal ends it at once;
// misleading messages (--out naming a file, --resume naming a model file).
#include "tests/testlib.h"
#include "autograd/fault.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static void make_task(void) { make_synth_task(dir, sizeof dir, "/tmp/hyp_trainrel", 300, 120, 4); }
static void remove_task(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

// "BIN train ... --set ..." for the task, no validation, OMP_NUM_THREADS=1 in front of the binary.
static const char *hyp_train_bin(char *buf, size_t n, const char *bin, const char *out, const char *more) {
    snprintf(buf, n,
             "OMP_NUM_THREADS=1 %s train --config configs/tiny.ini --out %s --quiet "
             "--set data.train=%s/data/train.jsonl --set data.vocab=%s/data/vocab.txt --set eval.every=0 %s",
             bin, out, dir, dir, more);
    return buf;
}
static const char *hyp_train(char *buf, size_t n, const char *out, const char *more) {
    return hyp_train_bin(buf, n, HYP_BIN, out, more);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return hyp_strdup("");
    char *b = hyp_calloc(1, 65536);
    size_t n = fread(b, 1, 65535, f);
    b[n] = 0;
    fclose(f);
    return b;
}
static int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

// In-process run (the fault hook is process-local).
static int train_inproc(const char *out, long max_steps, const char *resume, const char *extra) {
    static char s[6][256];
    snprintf(s[0], sizeof s[0], "data.train=%s/data/train.jsonl", dir);
    snprintf(s[1], sizeof s[1], "data.vocab=%s/data/vocab.txt", dir);
    snprintf(s[2], sizeof s[2], "train.max_steps=%ld", max_steps);
    snprintf(s[3], sizeof s[3], "eval.every=0");
    snprintf(s[4], sizeof s[4], "train.save_steps=2");
    snprintf(s[5], sizeof s[5], "%s", extra ? extra : "train.keep_last=2");
    const char *sets[6] = {s[0], s[1], s[2], s[3], s[4], s[5]};
    char out_dir[128];
    snprintf(out_dir, sizeof out_dir, "%s/%s", dir, out);
    TrainOptions o = {.config_path = "configs/tiny.ini", .sets = sets, .n_sets = 6, .out_dir = out_dir,
                      .resume = resume, .device = HYP_CPU, .quiet = true};
    return train_run(&o, NULL);
}

typedef struct { const char *match; int seen, nth; } Fail;
static int fail_nth_write(FaultStage stage, const char *path, void *user) {
    Fail *f = user;
    if (stage != FAULT_WRITE || !strstr(path, f->match)) return 0;
    return ++f->seen == f->nth ? ENOSPC : 0;
}

static char *latest_of(const char *run) {
    char p[160];
    snprintf(p, sizeof p, "%s/%s/latest", dir, run);
    return read_text(p);
}
static bool has(const char *run, const char *name) {
    char p[200];
    snprintf(p, sizeof p, "%s/%s/%s", dir, run, name);
    return access(p, F_OK) == 0;
}

// A checkpoint write that fails (injected ENOSPC in the middle of ckpt 4): stop with 1 and
// the folder as it was; with on_save_error=continue the run goes on and the next save works.
Test(train_reliability, failed_save_stops_or_continues) {
    make_task();
    Fail f = {"ckpt-00000004.h5", 0, 5};
    fault_set_hook(fail_nth_write, &f);
    int rc = train_inproc("stop", 6, NULL, "train.keep_last=1");
    fault_set_hook(NULL, NULL);
    cr_assert_eq(rc, 1, "a failed checkpoint write stops the run with 1, got %d", rc);
    cr_assert_eq(f.seen, 5);
    char *l = latest_of("stop");
    cr_assert_str_eq(l, "ckpt-00000002.h5\n", "latest keeps naming the good checkpoint");
    free(l);
    cr_assert(has("stop", "ckpt-00000002.h5") && !has("stop", "ckpt-00000004.h5") && !has("stop", "ckpt-00000004.h5.tmp"),
              "keep_last 1 must not have pruned the good checkpoint for a failed one");
    char p[160];
    snprintf(p, sizeof p, "%s/stop/ckpt-00000002.h5", dir);
    cr_assert_eq(checkpoint_validate(p, NULL), 0, "%s", hyp_last_error());
    // resume: continues from step 2 and finishes
    cr_assert_eq(train_inproc("stop", 6, "auto", "train.keep_last=1"), 0);
    cr_assert(has("stop", "ckpt-00000006.h5") && !has("stop", "ckpt-00000002.h5"));

    f = (Fail){"ckpt-00000004.h5", 0, 5};
    fault_set_hook(fail_nth_write, &f);
    rc = train_inproc("cont", 6, NULL, "train.on_save_error=continue");
    fault_set_hook(NULL, NULL);
    cr_assert_eq(rc, 0, "on_save_error=continue: the run goes on, got %d", rc);
    l = latest_of("cont");
    cr_assert_str_eq(l, "ckpt-00000006.h5\n");
    free(l);
    cr_assert(has("cont", "ckpt-00000002.h5") && !has("cont", "ckpt-00000004.h5") && has("cont", "ckpt-00000006.h5"));
    remove_task();
}

// A real full disk: `hyp train` on a 2 MB tmpfs (in a private mount namespace) holds three
// checkpoints; the fourth cannot be written. Before the fix: the partial file became
// `latest`, keep_last deleted the good ones, "done", then rc 139.
Test(train_reliability, full_disk_tmpfs) {
    make_task();
    char cmd[4096], tr[2048], mnt[128], run[160], script[160];
    snprintf(mnt, sizeof mnt, "%s/mnt", dir);
    snprintf(run, sizeof run, "%s/run", mnt);
    cr_assert_eq(mkdir(mnt, 0755), 0);
    hyp_train(tr, sizeof tr, run, "--set train.max_steps=12 --set train.save_steps=3 --set train.keep_last=3");
    // the script runs in a private mount namespace: the tmpfs vanishes with it
    snprintf(script, sizeof script, "%s/full.sh", dir);
    FILE *sf = fopen(script, "w");
    cr_assert(sf);
    fprintf(sf, "set -u\nmount -t tmpfs -o size=2m tmpfs %s || exit 77\n: > %s/mounted\n%s > %s/full.log 2>&1\n"
                "echo $? > %s/full.rc\nmkdir -p %s/copy && cp -a %s %s/copy/\numount %s\n",
            mnt, dir, tr, dir, dir, dir, run, dir, mnt);
    fclose(sf);
    snprintf(cmd, sizeof cmd, "unshare -m sh %s > %s/unshare.log 2>&1", script, dir);
    int st = system(cmd);
    char p[160];
    snprintf(p, sizeof p, "%s/mounted", dir);
    if (access(p, F_OK) != 0) {
        snprintf(p, sizeof p, "%s/unshare.log", dir);
        char *why = read_text(p);
        remove_task();
        cr_skip_test("cannot mount a private tmpfs here (unshare -m + mount -t tmpfs; status %d): %s", st, why);
    }
    snprintf(p, sizeof p, "%s/full.rc", dir);
    char *rc = read_text(p);
    snprintf(p, sizeof p, "%s/full.log", dir);
    char *log = read_text(p);
    cr_assert_eq(atoi(rc), 1, "exit status %s (want 1); log:\n%s", rc, log);
    cr_assert(strstr(log, "ckpt-00000012.h5") && strstr(log, "No space left on device (errno 28)"),
              "the error names the file and errno:\n%s", log);
    cr_assert_null(strstr(log, "done"), "the run must not report success:\n%s", log);
    char *l = latest_of("copy/run");
    cr_assert_str_eq(l, "ckpt-00000009.h5\n");
    free(l);
    for (int s = 3; s <= 9; s += 3) {
        snprintf(p, sizeof p, "%s/copy/run/ckpt-%08d.h5", dir, s);
        cr_assert_eq(checkpoint_validate(p, NULL), 0, "checkpoint %d: %s", s, hyp_last_error());
    }
    cr_assert(!has("copy/run", "ckpt-00000012.h5") && !has("copy/run", "ckpt-00000012.h5.tmp"));
    free(rc);
    free(log);
    remove_task();
}

// Until out/metrics.jsonl shows a first step (at most a minute).
static void wait_for_step(const char *out) {
    char p[200];
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    double t0 = hyp_now();
    for (;;) {
        char *m = read_text(p);
        bool step = strstr(m, "\"step\"") != NULL;
        free(m);
        if (step || hyp_now() - t0 > 60) break;
        usleep(5000);
    }
}

// `sh -c cmd` as our child (cmd starting with exec: the pid is the command's).
static pid_t spawn(const char *cmd) {
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

// Start `hyp train` as our child (sh execs it: the pid is hyp's); returns once
// out/metrics.jsonl shows a first step.
// bin: HYP_BIN, or HYP_FAULTS_BIN when env sets one of its fault variables.
static pid_t start_bg(const char *bin, const char *out, const char *env, const char *more) {
    char cmd[4096], tr[2048];
    hyp_train_bin(tr, sizeof tr, bin, out, more);
    snprintf(cmd, sizeof cmd, "exec env %s %s > %s.log 2>&1", env, tr, out);
    pid_t pid = spawn(cmd);
    wait_for_step(out);
    return pid;
}

// SIGTERM mid-run: the current step finishes, its checkpoint is written, exit code 3;
// --resume auto then ends with the same bits as a run that was never interrupted.
Test(train_reliability, sigterm_checkpoints_and_resume_is_bitwise) {
    make_task();
    const char *steps = "--set train.max_steps=120 --set train.save_steps=1000 --set train.log_steps=1 "
                        "--set model.dropout=0.1";
    char cmd[4096], tr[2048], a[160], b[160], p[200];
    snprintf(a, sizeof a, "%s/straight", dir);
    snprintf(b, sizeof b, "%s/stopped", dir);
    pid_t pid = start_bg(HYP_BIN, b, "OMP_NUM_THREADS=1", steps);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    snprintf(p, sizeof p, "%s.log", b);
    char *log = read_text(p);
    cr_assert_eq(exit_code(status), TRAIN_STOPPED, "exit status %d, want %d; log:\n%s", exit_code(status), TRAIN_STOPPED, log);
    const char *at = strstr(log, "stopped by SIGTERM after step ");
    cr_assert(at, "the stop is reported:\n%s", log);
    long k = atol(at + strlen("stopped by SIGTERM after step "));
    cr_assert(k >= 1 && k < 120, "stopped at step %ld", k);
    char ck[200];
    snprintf(ck, sizeof ck, "%s/ckpt-%08ld.h5", b, k);
    cr_assert(strstr(log, ck), "the message names the checkpoint %s:\n%s", ck, log);
    cr_assert_eq(checkpoint_validate(ck, NULL), 0, "%s", hyp_last_error());
    free(log);
    // resume to the end, and the straight run
    snprintf(cmd, sizeof cmd, "%s --resume auto > %s.log2 2>&1", hyp_train(tr, sizeof tr, b, steps), b);
    cr_assert_eq(exit_code(system(cmd)), 0);
    snprintf(cmd, sizeof cmd, "%s > %s.log 2>&1", hyp_train(tr, sizeof tr, a, steps), a);
    cr_assert_eq(exit_code(system(cmd)), 0);
    snprintf(a, sizeof a, "%s/straight/ckpt-00000120.h5", dir);
    snprintf(b, sizeof b, "%s/stopped/ckpt-00000120.h5", dir);
    size_t na, nb;
    float *pa = read_all_params(a, &na), *pb = read_all_params(b, &nb);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(pa, pb, na * sizeof(float)), 0, "stopped at %ld + resumed differs from the straight run", k);
    free(pa);
    free(pb);
    remove_task();
}

// A second signal ends the run at once (here while the stop's checkpoint is being
// committed, held there by the crash-test pause): killed by SIGTERM, nothing committed.
Test(train_reliability, second_signal_stops_at_once) {
    make_task();
    char out[160], p[200], cmd[256];
    snprintf(out, sizeof out, "%s/twice", dir);
    pid_t pid = start_bg(HYP_FAULTS_BIN, out, "OMP_NUM_THREADS=1 HYP_TEST_CKPT_PAUSE_MS=20000",
                         "--set train.max_steps=100000 --set train.save_steps=0 --set train.log_steps=1");
    cr_assert_eq(kill(pid, SIGTERM), 0);
    // wait for the stop's checkpoint to be complete (held before its rename)
    double t0 = hyp_now();
    bool tmp = false;
    while (!tmp && hyp_now() - t0 < 60) {
        snprintf(cmd, sizeof cmd, "ls %s | grep -q 'ckpt-.*\\.h5\\.tmp$'", out);
        tmp = system(cmd) == 0;
        if (!tmp) usleep(10000);
    }
    cr_assert(tmp, "the stop never started its checkpoint");
    double t1 = hyp_now();
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "the second signal ends the process by SIGTERM (status %d)",
              status);
    cr_assert(hyp_now() - t1 < 10, "the second signal must not wait for the commit");
    snprintf(p, sizeof p, "%s/latest", out);
    cr_assert_neq(access(p, F_OK), 0, "nothing was committed");
    remove_task();
}

// Messages that said something else than what was found.
Test(train_reliability, out_file_and_resume_model_file_messages) {
    make_task();
    char cmd[4096], tr[2048], p[200];
    snprintf(p, sizeof p, "%s/plainfile", dir);
    FILE *f = fopen(p, "w");
    fputs("x", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s > %s.log 2>&1", hyp_train(tr, sizeof tr, p, "--set train.max_steps=2"), p);
    cr_assert_eq(exit_code(system(cmd)), 1);
    snprintf(cmd, sizeof cmd, "%s.log", p);
    char *log = read_text(cmd);
    // said by the command's output check (cli/cli_util.c) before any work, or by the trainer
    cr_assert((strstr(log, "exists and is not a directory") || strstr(log, "expected a directory, found a file")) &&
              !strstr(log, "stale temporary"), "%s", log);
    free(log);
    // a model file (best.h5) given to --resume
    char run[160], more[1024];
    snprintf(run, sizeof run, "%s/r", dir);
    snprintf(more, sizeof more, "--set train.max_steps=2 --set eval.every=2 --set eval.corpus=%s/data/corpus.tsv "
             "--set eval.queries=%s/data/val_queries.tsv --set eval.qrels=%s/data/val_qrels.txt", dir, dir, dir);
    snprintf(cmd, sizeof cmd, "%s > %s.log 2>&1", hyp_train(tr, sizeof tr, run, more), run);
    cr_assert_eq(exit_code(system(cmd)), 0);
    cr_assert(has("r", "best.h5"));
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 " HYP_BIN " train --out %s/r2 --resume %s/best.h5 > %s/r2.log 2>&1", dir,
             run, dir);
    cr_assert_eq(exit_code(system(cmd)), 1);
    snprintf(p, sizeof p, "%s/r2.log", dir);
    log = read_text(p);
    cr_assert(strstr(log, "best.h5: a model file") && strstr(log, "--set model.init_from=") && !strstr(log, "INI"), "%s", log);
    free(log);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 " HYP_BIN " train --out %s/r3 --resume %s/data/corpus.tsv > %s/r3.log 2>&1",
             dir, dir, dir);
    cr_assert_eq(exit_code(system(cmd)), 1);
    snprintf(p, sizeof p, "%s/r3.log", dir);
    log = read_text(p);
    cr_assert(strstr(log, "corpus.tsv") && strstr(log, "not an HDF5 file"), "%s", log);
    free(log);
    remove_task();
}

// Two ranks (tcp backend, no MPI needed): SIGTERM reaches rank 1 only; both ranks stop
// after the same step (one all-reduced flag per step), rank 0 writes that step's
// checkpoint, both exit 3.
Test(train_reliability, ranks_agree_on_the_stopping_step) {
    make_task();
    char out[160], tr[2048], cmd[2][4096], p[200];
    snprintf(out, sizeof out, "%s/dist", dir);
    hyp_train(tr, sizeof tr, out, "--set train.max_steps=100000 --set train.save_steps=0 --set train.log_steps=1 "
                                  "--set dist.backend=tcp --set train.batch_size=8");
    int port = 20000 + (int)(getpid() % 30000);
    pid_t pid[2];
    for (int r = 0; r < 2; r++) {
        snprintf(cmd[r], sizeof cmd[r], "exec env RANK=%d WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=%d %s > %s.%d.log 2>&1",
                 r, port, tr, out, r);
        pid[r] = spawn(cmd[r]);
    }
    wait_for_step(out);
    cr_assert_eq(kill(pid[1], SIGTERM), 0);
    long k[2];
    for (int r = 0; r < 2; r++) {
        int status;
        cr_assert_eq(waitpid(pid[r], &status, 0), pid[r]);
        snprintf(p, sizeof p, "%s.%d.log", out, r);
        char *log = read_text(p);
        cr_assert_eq(exit_code(status), TRAIN_STOPPED, "rank %d: exit %d; log:\n%s", r, exit_code(status), log);
        const char *at = strstr(log, " after step ");
        cr_assert(at, "rank %d does not report its stop:\n%s", r, log);
        k[r] = atol(at + strlen(" after step "));
        if (r == 0) cr_assert(strstr(log, "stopped by a signal on another rank"), "%s", log);
        free(log);
    }
    cr_assert_eq(k[0], k[1], "rank 0 stopped after step %ld, rank 1 after %ld", k[0], k[1]);
    snprintf(p, sizeof p, "%s/ckpt-%08ld.h5", out, k[0]);
    cr_assert_eq(checkpoint_validate(p, NULL), 0, "%s", hyp_last_error());
    remove_task();
}
