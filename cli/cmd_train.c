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

static int usage(void) {
    fprintf(stderr,
            "usage: hyp train --config FILE [--set section.key=value ...] --out DIR [--resume auto|PATH]\n"
            "                 [--cuda] [--quiet]\n"
            "       hyp train --config FILE [--set ...] --plan [--cuda]   will it fit? (no GPU, no data)\n"
            "       hyp train --help-config [--markdown]      every configuration key\n"
            "\n"
            "  --config FILE  INI file ([model] [data] [train] [eval] [dist]); configs/ has the paper's\n"
            "                 (hypencoder-2/4/6/8.ini, be-base.ini) and tiny.ini\n"
            "  --set K=V      override one key, e.g. --set model.qnet_layers=4 --set train.lr=3e-5\n"
            "                 (keys, types, defaults and meanings: hyp train --help-config, docs/config.md)\n"
            "  --out DIR      run folder (checkpoints ckpt-*.h5, latest, best.h5, metrics.jsonl,\n"
            "                 config.ini), created when missing\n"
            "  --resume       auto (the newest valid checkpoint in DIR) or a run folder's ckpt-*.h5\n"
            "  --cuda         train on the GPU (CUDA backend)\n"
            "  --quiet        no per-step log lines\n"
            "  --plan         print the peak device memory per rank of one training step at the\n"
            "                 config's shapes (parameters, gradients, AdamW state, activations,\n"
            "                 workspace) and exit; the step runs through the real op code with\n"
            "                 no arithmetic, so no GPU and no data files are needed\n"
            "\n"
            "  SIGINT/SIGTERM finish the current step, write its checkpoint and exit 3 (a second\n"
            "  signal stops at once). Exit codes: 0 done, 1 error (bad input, a checkpoint that could\n"
            "  not be written), 2 non-finite loss, 3 stopped by a signal (docs/reliability.md).\n"
            "\n"
            "examples:\n"
            "  hyp train --config configs/hypencoder-6.ini --set data.train=train.jsonl \\\n"
            "            --set model.init_from=bert-base.h5 --out runs/h6\n"
            "  hyp train --config configs/hypencoder-6.ini --out runs/h6 --resume auto\n"
            "  hyp plot runs/h6 --metric Rprec --out curves.svg\n");
    return 1;
}

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
    bool plan = false;
    const char **sets = calloc((size_t)argc, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        if (!strcmp(a, "--config") && v) o.config_path = argv[++i];
        else if (!strcmp(a, "--set") && v) sets[o.n_sets++] = argv[++i];
        else if (!strncmp(a, "--set=", 6)) sets[o.n_sets++] = a + 6;
        else if (!strcmp(a, "--out") && v) o.out_dir = argv[++i];
        else if (!strcmp(a, "--resume") && v) o.resume = argv[++i];
        else if (!strcmp(a, "--cuda")) o.device = HYP_CUDA;
        else if (!strcmp(a, "--quiet")) o.quiet = true;
        else if (!strcmp(a, "--plan")) plan = true;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { free(sets); usage(); return 0; }
        else if (!strcmp(a, "--help-config")) {
            const bool md = i + 1 < argc && !strcmp(argv[i + 1], "--markdown");
            char *t = config_help_text(md);
            fputs(t, stdout);
            free(t);
            free(sets);
            return 0;
        }
        else { cli_bad_option("train", a, "--config --set --out --resume"); free(sets); return usage(); }
    }
    o.sets = sets;
    if (plan) {   // shapes come from the config alone: no --out, no data, no GPU
        PlanReport r;
        const PlanOptions po = {.config_path = o.config_path, .sets = o.sets, .n_sets = o.n_sets, .device = o.device};
        const bool bad = !o.config_path || cli_check_paths("train", &(CliPath)CLI_FILE("--config", o.config_path), 1, NULL, 0);
        int rc = bad ? 1 : plan_run(&po, &r) ? 1 : 0;
        if (rc && !bad) fprintf(stderr, "hyp train --plan: %s\n", hyp_last_error());
        if (!o.config_path) usage();
        if (!rc) plan_print(stdout, &r);
        free(sets);
        return rc;
    }
    if (!o.out_dir || (!o.config_path && !o.resume)) { free(sets); return usage(); }
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
