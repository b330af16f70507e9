// hyp train --config FILE [--set section.key=value ...] --out DIR [--resume auto|PATH] [--cuda] [--quiet]
// hyp train --config FILE [--set ...] --plan [--cuda]   peak device memory per rank (train/plan.h)
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "train/config.h"
#include "data/train_data.h"
#include "train/trainer.h"
#include "train/plan.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const SYNOPSIS =
    "--config FILE [--set section.key=value ...] --out DIR [--resume auto|PATH] [--cuda] [--quiet]\n"
    "       hyp train --config FILE [--set ...] --plan [--cuda]   will it fit? (no GPU, no data)\n"
    "       hyp train --help-config [--markdown]      every configuration key\n"
    "\n"
    "  configs/ has the paper's (hypencoder-1/2/4/6/8.ini, be-base.ini) and tiny.ini; keys, types,\n"
    "  defaults and meanings: hyp train --help-config, docs/config.md.\n"
    "  SIGINT/SIGTERM finish the current step, write its checkpoint and exit 3 (a second\n"
    "  signal stops at once). Exit codes: 0 done, 1 error (bad input, a checkpoint that could\n"
    "  not be written), 2 non-finite loss, 3 stopped by a signal (docs/reliability.md).\n"
    "\n"
    "examples:\n"
    "  hyp train --config configs/hypencoder-6.ini --set data.train=train.jsonl \\\n"
    "            --set model.init_from=bert-base.h5 --out runs/h6\n"
    "  hyp train --config configs/hypencoder-6.ini --out runs/h6 --resume auto\n"
    "  hyp plot runs/h6 --metric Rprec --out curves.svg\n"
    "\n"
    "flags:";

// A run that fails before its first checkpoint (a bad config or data) leaves no folder behind
// when it created the folder: only the resolved config.ini, an empty metrics.jsonl and the
// shards/ it pretokenized are removed; anything else (a checkpoint, a log with lines) stays.
static void remove_unused_run_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    bool only_ours = true;
    char p[4200];
    while ((e = readdir(d)) && only_ours) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "config.ini")) continue;
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (!strcmp(e->d_name, "metrics.jsonl") && stat(p, &st) == 0 && st.st_size == 0) continue;
        if (!strcmp(e->d_name, "shards") && shards_remove(p)) continue;   // the run's pretokenized data.train
        only_ours = false;
    }
    closedir(d);
    if (!only_ours) return;
    snprintf(p, sizeof p, "%s/config.ini", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    unlink(p);
    rmdir(dir);
}

int cmd_train(int argc, char **argv) {
    TrainOptions o = {.device = HYP_CPU};
    bool plan = false, plan_real = false, help_config = false, markdown = false, cuda = false;
    const char **sets = calloc((size_t)argc, sizeof(char *));
    CliList set_list = {sets, 0};
    const CliFlag flags[] = {
        {.name = "--config", .kind = FLAG_STR, .dst = &o.config_path, .meta = "FILE", .help = "INI file ([model] [data] [train] [eval] [dist])"},
        {.name = "--set", .kind = FLAG_LIST, .dst = &set_list, .meta = "K=V",
         .help = "override one key, e.g. --set model.qnet_layers=4 --set train.lr=3e-5 (repeatable)"},
        {.name = "--out", .kind = FLAG_STR, .dst = &o.out_dir, .meta = "DIR",
         .help = "run folder (ckpt-*.h5, latest, best.h5, metrics.jsonl, config.ini), created when missing"},
        {.name = "--resume", .kind = FLAG_STR, .dst = &o.resume, .meta = "auto|PATH",
         .help = "auto (the newest valid checkpoint in DIR) or a run folder's ckpt-*.h5"},
        {.name = "--cuda", .kind = FLAG_SWITCH, .dst = &cuda, .help = "train on the GPU (CUDA backend; with --plan no GPU is needed)"},
        {.name = "--quiet", .kind = FLAG_SWITCH, .dst = &o.quiet, .help = "no per-step log lines"},
        {.name = "--plan", .kind = FLAG_SWITCH, .dst = &plan,
         .help = "print one step's peak device memory per rank (parameters, gradients, AdamW, activations, "
                 "workspace) at the config's shapes and exit: no GPU and no data needed"},
        {.name = "--plan-check", .kind = FLAG_SWITCH, .dst = &plan_real,
         .help = "--plan, then the same two steps for real on the device (random weights and ids): prints the "
                 "measured peak beside the plan, fails if it is over the plan by more than 5% (needs the GPU with --cuda)"},
        {.name = "--help-config", .kind = FLAG_SWITCH, .dst = &help_config, .help = "every configuration key (with --markdown: docs/config.md)"},
        {.name = "--markdown", .kind = FLAG_SWITCH, .dst = &markdown},
    };
    const int parsed = cli_parse("train", SYNOPSIS, CLI_FLAGS(flags), argc, argv);
    if (parsed) { free(sets); return parsed == CLI_HELP ? 0 : 1; }
    o.n_sets = set_list.n;
    if (cuda) o.device = HYP_CUDA;
    if (help_config) {
        char *t = config_help_text(markdown);
        fputs(t, stdout);
        free(t);
        free(sets);
        return 0;
    }
    o.sets = sets;
    if (plan || plan_real) {   // shapes come from the config alone: no --out, no data (--plan: no GPU)
        PlanReport r;
        const PlanOptions po = {.config_path = o.config_path, .sets = o.sets, .n_sets = o.n_sets, .device = o.device};
        const bool bad = !o.config_path || cli_check_paths("train", &(CliPath)CLI_FILE("--config", o.config_path), 1, NULL, 0);
        int rc = bad ? 1 : (plan_real ? plan_check(&po, stdout) : plan_run(&po, &r)) ? 1 : 0;
        if (rc && !bad) fprintf(stderr, "hyp train %s: %s\n", plan_real ? "--plan-check" : "--plan", hyp_last_error());
        if (!o.config_path) cli_usage(stderr, "train", SYNOPSIS, CLI_FLAGS(flags));
        if (!rc && !plan_real) plan_print(stdout, &r);
        free(sets);
        return rc;
    }
    if (!o.out_dir || (!o.config_path && !o.resume)) {
        fprintf(stderr, "hyp train: --out and --config (or --resume) are needed\n");
        cli_usage(stderr, "train", SYNOPSIS, CLI_FLAGS(flags));
        free(sets);
        return 1;
    }
    // The run folder may not be (or replace) the config, the checkpoint resumed from, or the
    // training data (a pretokenized shards folder given as data.train).
    const bool resume_file = o.resume && strcmp(o.resume, "auto") != 0;
    char *data = NULL;
    if (o.config_path) {   // errors in the config itself are the trainer's to report
        Config cfg;
        config_init(&cfg);
        bool ok = config_parse_file(&cfg, o.config_path) == 0;
        for (int k = 0; ok && k < o.n_sets; k++) ok = config_set(&cfg, o.sets[k]) == 0;
        if (ok) data = config_get(&cfg, "data.train");
        if (data && !data[0]) { free(data); data = NULL; }
    }
    struct stat dst;
    const bool data_dir = data && stat(data, &dst) == 0 && S_ISDIR(dst.st_mode);
    const CliPath ins[] = {CLI_FILE("--config", o.config_path), CLI_FILE("--resume", resume_file ? o.resume : NULL),
                           {"data.train", data, data_dir}};
    const int bad = cli_check_paths("train", ins, 3, &(CliPath)CLI_DIR("--out", o.out_dir), 1);
    free(data);
    if (bad) { free(sets); return 1; }
    if (o.device == HYP_CUDA && !hyp_cuda_available()) {
        fprintf(stderr, "hyp train: --cuda but no GPU is usable: %s\n", hyp_cuda_why_unavailable());
        free(sets);
        return 1;
    }
    struct stat st;
    const bool existed = stat(o.out_dir, &st) == 0;
    int rc = train_run(&o, NULL);
    if (rc != 0 && !existed) remove_unused_run_dir(o.out_dir);
    free(sets);
    return rc;
}
