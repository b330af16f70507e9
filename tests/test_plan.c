// The memory planner (train/plan.h, kernels/meta_backend.c): the plan made on the meta
// backend agrees with the arena high-water marks of the same steps run for real, on the CPU
// and on the CUDA backend (the simulator in CI), and `hyp train --plan` prints its line.
#include "tests/testlib.h"
#include "train/plan.h"
#include "kernels/kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// A small config: tiny.ini with dropout on, two micro-batches, a padded tail in each row.
static const char *SETS[] = {"model.dropout=0.1", "train.batch_size=4", "train.grad_accum=2", "data.doc_max_len=12"};

static PlanReport plan(Device d, bool real, const char *const *sets, int n) {
    PlanOptions o = {.config_path = "configs/tiny.ini", .sets = sets, .n_sets = n, .device = d, .real = real};
    PlanReport r;
    cr_assert_eq(plan_run(&o, &r), 0, "plan_run (%s, %s): %s", device_name(d), real ? "real" : "meta", hyp_last_error());
    return r;
}

static void expect_within(size_t got, size_t want, double tol, const char *what) {
    cr_assert_gt(want, 0, "%s: the real run measured 0 bytes", what);
    double rel = ((double)got - (double)want) / (double)want;
    cr_assert(rel <= tol && rel >= -tol, "%s: plan %zu bytes, real %zu bytes (%.2f%%)", what, got, want, 100 * rel);
}

static void plan_matches_real_with(Device d, const char *const *sets, int n) {
    PlanReport meta = plan(d, false, sets, n), real = plan(d, true, sets, n);
    expect_within(meta.act_peak, real.act_peak, 0.05, "activation arena, most bytes held");
    expect_within(meta.act_steady, real.act_steady, 0.05, "activation arena, bytes handed out per step");
    cr_assert_eq(meta.n_params, real.n_params);
    cr_assert_eq(meta.optim, 2 * meta.params);
    cr_assert_geq(meta.peak, meta.params + meta.grads + meta.optim + meta.act_peak, "the peak holds its parts");
    cr_assert_eq(backend_meta_for(d), NULL, "the meta backend is off after the plan");
}
static void plan_matches_real(Device d) { plan_matches_real_with(d, SETS, 4); }

// bf16 on the CPU (CUDA's default): activations kept as bf16 copies, thawed in backward.
Test(plan, cpu_bf16_plan_matches_the_real_step) {
    const char *sets[] = {SETS[0], SETS[1], SETS[2], SETS[3], "train.precision=bf16"};
    plan_matches_real_with(HYP_CPU, sets, 5);
    PlanReport fp32 = plan(HYP_CPU, false, SETS, 4), bf16 = plan(HYP_CPU, false, sets, 5);
    fprintf(stderr, "plan activations per step: fp32 saves %zu B, bf16 saves %zu B\n", fp32.act_steady, bf16.act_steady);
    cr_assert_lt(bf16.act_steady, fp32.act_steady, "bf16 saves hand out %zu B a step, fp32 %zu B", bf16.act_steady, fp32.act_steady);
}

Test(plan, cpu_plan_matches_the_real_step) {
    plan_matches_real(HYP_CPU);
    // A step that outgrows the arena's first 64 MiB block mid-step: the first step's peak
    // holds several blocks (and their unused tails), later steps one block of the high-water mark.
    const char *big[] = {"model.dropout=0.1", "train.batch_size=64", "data.num_negatives=15", "data.doc_max_len=14"};
    PlanReport meta = plan(HYP_CPU, false, big, 4), real = plan(HYP_CPU, true, big, 4);
    cr_assert_gt(real.act_steady, (size_t)64 << 20, "the step should need more than one block");
    cr_assert_gt(real.act_peak, real.act_steady);
    expect_within(meta.act_peak, real.act_peak, 0.05, "activation arena, most bytes held (several blocks)");
    expect_within(meta.act_steady, real.act_steady, 0.05, "activation arena, bytes handed out per step");
}

Test(plan, cuda_plan_matches_the_real_step) {
    RUN_ON_CUDA_OR_SKIP();
    plan_matches_real(HYP_CUDA);
    // Both backends run the same ops (one fused attention), so their activations agree.
    PlanReport cpu = plan(HYP_CPU, false, SETS, 4), cuda = plan(HYP_CUDA, false, SETS, 4);
    fprintf(stderr, "plan activations: cpu %zu B, cuda %zu B per step\n", cpu.act_steady, cuda.act_steady);
    expect_within(cuda.act_steady, cpu.act_steady, 0.05, "CUDA and CPU activations");
    cr_assert_gt(cuda.workspace, 0, "the cuBLASLt workspace is counted");
}

// The plan follows the shapes: more passages per query, more activations; the parameters
// stay. Also the bi-encoder.
Test(plan, plan_scales_with_the_batch) {
    const char *more[] = {"model.dropout=0.1", "train.batch_size=4", "train.grad_accum=2", "data.doc_max_len=12",
                          "data.num_negatives=15"};
    PlanReport a = plan(HYP_CPU, false, SETS, 4), b = plan(HYP_CPU, false, more, 5);
    cr_assert_eq(a.params, b.params);
    cr_assert_gt(b.act_steady, a.act_steady + a.act_steady / 2, "16 items instead of 8: %zu vs %zu", b.act_steady,
                 a.act_steady);
    const char *be[] = {"model.kind=biencoder", "train.batch_size=4"};
    PlanReport m = plan(HYP_CPU, false, be, 2), r = plan(HYP_CPU, true, be, 2);
    expect_within(m.act_peak, r.act_peak, 0.05, "bi-encoder activations");
}

Test(plan, cli_prints_the_plan_line_without_data) {
    FILE *p = popen(HYP_BIN " train --config configs/hypencoder-6.ini --plan --set train.batch_size=2 2>&1", "r");
    cr_assert(p);
    char line[512], last[512] = "";
    while (fgets(line, sizeof line, p)) snprintf(last, sizeof last, "%s", line);
    cr_assert_eq(pclose(p), 0, "hyp train --plan failed: %s", last);
    double gib;
    char dev[16], prec[16];
    int b, n, q, d;
    cr_assert_eq(sscanf(last, "plan: peak %lf GiB per rank (device %15[a-z], precision %15[a-z0-9], batch %dx%d, "
                        "query %d, passage %d)", &gib, dev, prec, &b, &n, &q, &d), 7, "last line: %s", last);
    cr_assert(gib > 2 && !strcmp(dev, "cpu") && !strcmp(prec, "fp32") && b == 2 && n == 9 && q == 32 && d == 196, "%s", last);
}

// --plan-check runs the plan and the real steps and prints the comparison (on a GPU machine
// gpu-check runs it with --cuda at the paper's shapes). On CUDA it compares the whole plan
// (workspace, scratch and the bf16 copy included) with the bytes the process allocated on the
// device, so it runs in a fresh process: nothing allocated before the steps.
static void plan_check_cli(bool cuda) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s train --config configs/tiny.ini --plan-check%s --set train.batch_size=2 "
             "--set model.dropout=0.1 2>&1", HYP_BIN, cuda ? " --cuda" : "");
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char line[512], all[8192] = "";
    while (fgets(line, sizeof line, p)) strncat(all, line, sizeof all - strlen(all) - 1);
    cr_assert_eq(pclose(p), 0, "hyp train --plan-check failed: %s", all);
    double ratio;
    const char *at = strstr(all, "plan check: ");
    cr_assert(at && strstr(all, "plan: peak"), "%s", all);
    const char *what = cuda ? "device high-water (hyp_cuda_alloc)" : "activation arena";
    cr_assert(!strncmp(at + 12, what, strlen(what)), "%s", at);
    const char *r = strstr(at, "(ratio ");
    cr_assert(r && sscanf(r, "(ratio %lf)", &ratio) == 1, "%s", at);
    fprintf(stderr, "%s", at);
    cr_assert(ratio > 0.95 && ratio < 1.05, "%s", at);
}
Test(plan, cli_plan_check_compares_with_a_real_step) { plan_check_cli(false); }
Test(plan, cli_plan_check_cuda_device_high_water) { RUN_ON_CUDA_OR_SKIP(); plan_check_cli(true); }

Test(plan, cli_bad_config_is_one_clear_error) {
    FILE *p = popen(HYP_BIN " train --config configs/tiny.ini --plan --set model.qnet_layers=x 2>&1", "r");
    char buf[1024] = "";
    size_t k = fread(buf, 1, sizeof buf - 1, p);
    buf[k] = 0;
    cr_assert_neq(pclose(p), 0);
    cr_assert(strstr(buf, "model.qnet_layers") && !strstr(buf, "plan: peak"), "%s", buf);
}
