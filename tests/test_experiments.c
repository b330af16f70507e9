// test_experiments.c: the experiment drivers run end to end on the embedded task (small
// budgets), are resumable, and their paper presets dry-run.
#include "tests/testlib.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

Test(experiments, qnet_depth_ablation_demo_and_paper_dry_run) {
    if (access(HYP_BIN, X_OK) != 0) cr_skip_test(HYP_BIN " not built");
    char dir[] = "/tmp/hyp_qdepth_XXXXXX", cmd[1024], p[256];
    cr_assert(mkdtemp(dir));
    char hyp[512];
    cr_assert(realpath(HYP_BIN, hyp));
    snprintf(cmd, sizeof cmd, "HYP=%s OMP_NUM_THREADS=1 experiments/qnet-depth/run.sh --preset demo --depths 1,2 "
             "--steps 60 --out %s/out > %s/log 2>&1", hyp, dir, dir);
    cr_assert_eq(system(cmd), 0, "the demo ablation failed (see %s/log)", dir);
    snprintf(p, sizeof p, "%s/out/results.md", dir);
    const char *r = slurp(p);
    cr_assert(r && strstr(r, "| 1") && strstr(r, "| 2") && strstr(r, "synthetic nDCG@10"), "results.md: %s", r ? r : "missing");
    snprintf(p, sizeof p, "%s/out/depth.svg", dir);
    cr_assert(access(p, R_OK) == 0, "no depth.svg");
    snprintf(p, sizeof p, "%s/out/curves.svg", dir);
    r = slurp(p);
    cr_assert(r && strstr(r, "depth 2 seed 1"), "curves.svg has every run");
    // resumable: a second call trains nothing
    snprintf(cmd, sizeof cmd, "HYP=%s experiments/qnet-depth/run.sh --preset demo --depths 1,2 --steps 60 --out %s/out "
             "2>&1 | grep -c 'training depth'", hyp, dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    cr_assert(f && fscanf(f, "%d", &n) == 1);
    pclose(f);
    cr_assert_eq(n, 0, "the rerun trained again");
    // the paper preset prints every command (mpirun for 2 ranks) without running any
    snprintf(cmd, sizeof cmd, "HYP=%s experiments/qnet-depth/run.sh --preset paper --dry-run --np 2 --out %s/paper "
             "| grep -c '^mpirun -np 2 .*train --config .*configs/hypencoder-[2468].ini'", hyp, dir);
    f = popen(cmd, "r");
    cr_assert(f && fscanf(f, "%d", &n) == 1);
    pclose(f);
    cr_assert_eq(n, 4, "one training per paper depth (2, 4, 6, 8)");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)system(cmd);
}

// The real-text preset dry-runs: the MS MARCO preparation of experiments/msmarco-minilm, one
// training per depth from its frozen-MiniLM config, and one encoding of the test corpus shared
// by every run (the frozen encoder gives every depth the same document vectors).
Test(experiments, qnet_depth_cpu_small_dry_run) {
    if (access(HYP_BIN, X_OK) != 0) cr_skip_test(HYP_BIN " not built");
    char dir[] = "/tmp/hyp_qsmall_XXXXXX", cmd[1024], hyp[512];
    cr_assert(mkdtemp(dir));
    cr_assert(realpath(HYP_BIN, hyp));
    const char *greps[3][2] = {{"msmarco-minilm/run.sh --prepare-only", "1"},
                               {"train --config .*msmarco-minilm/hypencoder-minilm.ini --set model.qnet_layers=[124] ", "3"},
                               {" encode --model ", "1"}};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "HYP=%s experiments/qnet-depth/run.sh --preset cpu-small --dry-run --out %s/out | grep -c -- '%s'",
                 hyp, dir, greps[i][0]);
        FILE *f = popen(cmd, "r");
        char got[16] = {0};
        cr_assert(f && fgets(got, sizeof got, f));
        pclose(f);
        cr_expect_eq(atoi(got), atoi(greps[i][1]), "'%s': %d lines, expected %s", greps[i][0], atoi(got), greps[i][1]);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)system(cmd);
}
