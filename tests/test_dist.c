// Data-parallel training on the CPU under mpirun: 2 ranks at batch B give the parameters of
// 1 rank at batch 2B (Margin-MSE only: the in-batch CE is per rank, as in the reference),
// and a 2-rank run stopped and resumed equals an uninterrupted one. Skipped, visibly,
// without mpirun or an MPI build.
#include "tests/testlib.h"
#include "data/synthetic.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
// ASAN_OPTIONS: under sanitizer builds OpenMPI's own allocations (in its dlopen'ed
// components) are reported as leaks at exit; none of ours is, so leak checks are off there.
#define MPIRUN "OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=0 mpirun -np 2 --oversubscribe --allow-run-as-root " \
               "-x OMP_NUM_THREADS -x ASAN_OPTIONS "

static bool have_mpi(void) {
    return system("mpirun --version >/dev/null 2>&1") == 0 && system(HYP_BIN " --version >/dev/null 2>&1") == 0 &&
           strstr(hyp_backends_compiled(), "cpu") != NULL;
}

// bin: HYP_BIN, or HYP_FAULTS_BIN for a launcher that sets a fault variable.
static int run_bin(const char *bin, const char *launcher, const char *out, int batch, long steps, const char *extra) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s %s train --config configs/tiny.ini --out %s/%s --quiet --set data.train=%s/data/train.jsonl "
             "--set data.vocab=%s/data/vocab.txt --set train.max_steps=%ld --set train.ce_weight=0 --set eval.every=0 "
             "--set train.batch_size=%d --set train.save_steps=3 --set dist.bucket_mb=0.02 %s >%s/%s.log 2>&1",
             launcher, bin, dir, out, dir, dir, steps, batch, extra ? extra : "", dir, out);
    return system(cmd);
}
static int run(const char *launcher, const char *out, int batch, long steps, const char *extra) {
    return run_bin(HYP_BIN, launcher, out, batch, steps, extra);
}

static float *params(const char *ckpt, size_t *n) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, ckpt);
    return read_all_params(p, n);
}

Test(dist, two_ranks_equal_one_rank_with_twice_the_batch_and_resume) {
    if (!have_mpi()) cr_skip_test("mpirun not available: the data-parallel test is skipped");
    make_synth_task(dir, sizeof dir, "/tmp/hyp_dist", 200, 50, 2);
    // Dropout off for the equivalence (each rank draws its own masks); on for the resume.
    cr_assert_eq(run(MPIRUN, "two", 8, 6, "--set dist.backend=mpi --set model.dropout=0"), 0, "see %s/two.log", dir);
    cr_assert_eq(run("OMP_NUM_THREADS=1", "one", 16, 6, "--set model.dropout=0"), 0, "see %s/one.log", dir);
    // 2 ranks, stopped after 3 steps, resumed to 6, against 6 straight steps.
    cr_assert_eq(run(MPIRUN, "straight", 8, 6, "--set dist.backend=mpi --set model.dropout=0.1"), 0);
    cr_assert_eq(run(MPIRUN, "resumed", 8, 3, "--set dist.backend=mpi --set model.dropout=0.1"), 0);
    cr_assert_eq(run(MPIRUN, "resumed", 8, 6, "--set dist.backend=mpi --set model.dropout=0.1 --resume auto"), 0,
                 "see %s/resumed.log", dir);
    size_t n1, n2, n3;
    float *two = params("two/ckpt-00000006.h5", &n1), *one = params("one/ckpt-00000006.h5", &n2);
    float *res = params("resumed/ckpt-00000006.h5", &n3), *straight = params("straight/ckpt-00000006.h5", &n3);
    cr_assert(n1 == n2 && n1 == n3);
    double e = rel_err(two, one, n1);
    cr_log_info("2 ranks x B=8 vs 1 rank x B=16 after 6 steps: relative parameter difference %.3g", e);
    cr_assert_leq(e, TOL_OP, "2 ranks at B vs 1 rank at 2B: relative parameter difference %.3g", e);
    cr_assert_eq(memcmp(straight, res, n1 * sizeof(float)), 0, "2-rank resume is not exact");
    free(straight);
    free(one);
    free(two);
    free(res);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

// One rank killed mid-run: the whole job ends (no hang) with an error, and --resume auto
// then continues from the last checkpoint to the end.
Test(dist, killed_rank_ends_the_job_and_resume_continues) {
    if (!have_mpi()) cr_skip_test("mpirun not available: the fault test is skipped");
    make_synth_task(dir, sizeof dir, "/tmp/hyp_fault", 200, 50, 2);
    double t0 = hyp_now();
    int rc = run_bin(HYP_FAULTS_BIN, "OMP_NUM_THREADS=1 HYP_COMM_TIMEOUT=20 ASAN_OPTIONS=detect_leaks=0 mpirun -np 2 --oversubscribe "
                 "--allow-run-as-root -x OMP_NUM_THREADS -x ASAN_OPTIONS -x HYP_COMM_TIMEOUT -x HYP_TEST_KILL_RANK=1:4", "job", 8, 8, "--set dist.backend=mpi");
    cr_assert_neq(rc, 0, "the job must fail when a rank dies");
    cr_assert_lt(hyp_now() - t0, 60.0, "the surviving rank must not hang");
    char p[256];
    snprintf(p, sizeof p, "%s/job/ckpt-00000003.h5", dir);
    cr_assert_eq(access(p, R_OK), 0, "the step-3 checkpoint survives");
    cr_assert_eq(run(MPIRUN, "job", 8, 8, "--set dist.backend=mpi --resume auto"), 0, "see %s/job.log", dir);
    snprintf(p, sizeof p, "%s/job/ckpt-00000008.h5", dir);
    cr_assert_eq(access(p, R_OK), 0, "the resumed run reaches step 8");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

// Sharded search: 2 ranks each search half the documents; the merged run is identical to
// one process's (ties included: 9 pairs of near-duplicate passages).
Test(dist, sharded_search_equals_one_process) {
    if (!have_mpi()) cr_skip_test("mpirun not available: the sharded search test is skipped");
    snprintf(dir, sizeof dir, "/tmp/hyp_shard_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char p[256], cmd[4096];
    snprintf(p, sizeof p, "%s/c.tsv", dir);
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 25; i++) {
        fprintf(f, "d%d\tindia has states and union territories %d\n", i, i % 7);
        fprintf(f, "c%d\tconcussion symptoms can appear after the injury %d\n", i, i % 5);
    }
    fclose(f);
#define FX "tests/fixtures/hypencoder_import"
    snprintf(cmd, sizeof cmd,
             HYP_BIN " import --from " FX " --bert-config " FX "/bert_config.json --out %s/m.h5 2>/dev/null && "
             HYP_BIN " encode --model %s/m.h5 --corpus %s/c.tsv --out %s/d.h5 >/dev/null 2>&1 && "
             HYP_BIN " search --model %s/m.h5 --docs %s/d.h5 --queries " FX "/queries.tsv --k 20 --out %s/one.trec >/dev/null 2>&1 && "
             MPIRUN HYP_BIN " search --model %s/m.h5 --docs %s/d.h5 --queries " FX "/queries.tsv --k 20 --streaming "
             "--out %s/two.trec >/dev/null 2>&1 && cmp %s/one.trec %s/two.trec",
             dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir);
    cr_assert_eq(system(cmd), 0, "sharded run differs from one process: %s", cmd);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

// Cross-device negatives (the reference's option): with 2 ranks x B each query's CE runs
// over all 2B positives, so the first step's loss equals 1 rank x 2B exactly (the gradients
// differ by design: other ranks' positives are gathered as constants).
static double first_loss(const char *out) {
    char p[256], line[512];
    snprintf(p, sizeof p, "%s/%s/metrics.jsonl", dir, out);
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "%s", p);
    double loss = NAN;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "\"step\": 1,")) sscanf(strstr(line, "\"loss\": ") + 8, "%lf", &loss);
    fclose(f);
    return loss;
}

Test(dist, cross_device_negatives_first_loss) {
    if (!have_mpi()) cr_skip_test("mpirun not available: the cross-device negatives test is skipped");
    make_synth_task(dir, sizeof dir, "/tmp/hyp_xdev", 100, 20, 2);
    const char *common = "--set model.dropout=0 --set train.ce_weight=1 --set train.log_steps=1";
    char extra[256];
    snprintf(extra, sizeof extra, "%s --set dist.backend=mpi --set dist.cross_device_negatives=true", common);
    cr_assert_eq(run(MPIRUN, "two", 8, 1, extra), 0, "see %s/two.log", dir);
    cr_assert_eq(run("OMP_NUM_THREADS=1", "one", 16, 1, common), 0, "see %s/one.log", dir);
    double a = first_loss("two"), b = first_loss("one");
    cr_assert(fabs(a - b) <= 1e-5 * fabs(b), "first loss %.7g (2 ranks, cross-device) vs %.7g (1 rank)", a, b);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
