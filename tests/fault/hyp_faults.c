// hyp_faults.c: bin/hyp-faults, the `hyp` program with the fault hooks of autograd/fault.h set
// from its environment, for the tests that must crash or poison a real run in a child process
// (mpirun ranks, SIGKILL during a checkpoint). Built by `make test`, never installed; bin/hyp
// has no fault variables at all.
//   HYP_TEST_CKPT_PAUSE_MS=MS   hold every complete .h5 temporary for MS ms before its rename,
//                               so a test can SIGKILL the writer at the worst moment short of
//                               a half-written file
//   HYP_TEST_KILL_RANK=R:S      rank R dies by SIGKILL after S optimizer steps (a crashed node)
//   HYP_TEST_NONFINITE_STEP=S   the loss of global step S (1-based) is NaN
#include "cli/commands.h"
#include "autograd/fault.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long pause_ms = -1, kill_after = -1, nan_step = -1;
static int kill_rank = -1;

// A whole non-negative decimal number, or -1 with a message.
static long parse_count(const char *name, const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0) {
        fprintf(stderr, "hyp-faults: %s=\"%s\" is not a non-negative integer\n", name, s);
        return -1;
    }
    return v;
}

static int on_output(FaultStage stage, const char *path, void *user) {
    (void)user;
    size_t n = strlen(path);
    if (stage == FAULT_RENAME && pause_ms > 0 && n > 3 && !strcmp(path + n - 3, ".h5"))
        usleep((useconds_t)pause_ms * 1000);
    return 0;
}

static bool on_step(int rank, long step, void *user) {
    (void)user;
    if (rank == kill_rank && step == kill_after + 1) raise(SIGKILL);
    return step == nan_step;
}

int main(int argc, char **argv) {
    const char *p = getenv("HYP_TEST_CKPT_PAUSE_MS");
    if (p && (pause_ms = parse_count("HYP_TEST_CKPT_PAUSE_MS", p)) < 0) return 2;
    const char *k = getenv("HYP_TEST_KILL_RANK");
    if (k) {
        const char *colon = strchr(k, ':');
        char r[32];
        if (!colon || (size_t)(colon - k) >= sizeof r) {
            fprintf(stderr, "hyp-faults: HYP_TEST_KILL_RANK=\"%s\" is not RANK:STEPS\n", k);
            return 2;
        }
        memcpy(r, k, (size_t)(colon - k));
        r[colon - k] = 0;
        long rank = parse_count("HYP_TEST_KILL_RANK", r);
        if (rank < 0 || rank > 1 << 20 || (kill_after = parse_count("HYP_TEST_KILL_RANK", colon + 1)) < 0) return 2;
        kill_rank = (int)rank;
    }
    const char *s = getenv("HYP_TEST_NONFINITE_STEP");
    if (s && (nan_step = parse_count("HYP_TEST_NONFINITE_STEP", s)) < 0) return 2;
    if (pause_ms > 0) fault_set_hook(on_output, NULL);
    if (kill_rank >= 0 || nan_step >= 0) fault_set_train_hook(on_step, NULL);
    return hyp_main(argc, argv);
}
