// hyp train as a whole: exact resume (N+M steps == N steps, stop, resume, M steps, bitwise
// on the CPU, with dropout on), validation sweeps writing best.h5, and bad configs.
#include "tests/testlib.h"
#include "train/trainer.h"
#include "data/synthetic.h"
#include "model/load.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void make_task(void) {
    snprintf(dir, sizeof dir, "/tmp/hyp_trainer_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    SynthOptions o = synth_default();
    o.n_docs = 120;
    o.n_train = 300;
    o.n_val = 4;
    o.n_test = 4;
    char d[128];
    snprintf(d, sizeof d, "%s/data", dir);
    cr_assert_eq(synth_write(d, &o), 0, "%s", hyp_last_error());
}

static int train(const char *out, long max_steps, const char *resume, const char *extra) {
    static char s[8][256];
    snprintf(s[0], sizeof s[0], "data.train=%s/data/train.jsonl", dir);
    snprintf(s[1], sizeof s[1], "data.vocab=%s/data/vocab.txt", dir);
    snprintf(s[2], sizeof s[2], "eval.corpus=%s/data/corpus.tsv", dir);
    snprintf(s[3], sizeof s[3], "eval.queries=%s/data/val_queries.tsv", dir);
    snprintf(s[4], sizeof s[4], "eval.qrels=%s/data/val_qrels.txt", dir);
    snprintf(s[5], sizeof s[5], "train.max_steps=%ld", max_steps);
    snprintf(s[6], sizeof s[6], "%s", "model.dropout=0.1");   // exercises the Philox state on resume
    snprintf(s[7], sizeof s[7], "%s", extra ? extra : "train.log_steps=1");
    const char *sets[8] = {s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]};
    char out_dir[128];
    snprintf(out_dir, sizeof out_dir, "%s/%s", dir, out);
    TrainOptions o = {.config_path = "configs/tiny.ini", .sets = sets, .n_sets = 8, .out_dir = out_dir,
                      .resume = resume, .device = HYP_CPU, .quiet = true};
    return train_run(&o, NULL);
}

Test(trainer, exact_resume_is_bitwise) {
    make_task();
    cr_assert_eq(train("straight", 10, NULL, "train.save_steps=5"), 0);
    cr_assert_eq(train("stopped", 6, NULL, "train.save_steps=5"), 0);
    cr_assert_eq(train("stopped", 10, "auto", "train.save_steps=5"), 0);   // resumes at step 6
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/straight/ckpt-00000010.h5", dir);
    snprintf(b, sizeof b, "%s/stopped/ckpt-00000010.h5", dir);
    size_t na, nb;
    float *pa = read_all_params(a, &na), *pb = read_all_params(b, &nb);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(pa, pb, na * sizeof(float)), 0, "parameters after 10 steps differ between a straight run and 6 + resume + 4");
    free(pa);
    free(pb);
    // The run folder: latest pointer, pruning (keep_last 2), best.h5 loadable as a model.
    char p[160];
    snprintf(p, sizeof p, "%s/stopped/latest", dir);
    FILE *f = fopen(p, "r");
    char line[64] = "";
    cr_assert(f && fgets(line, sizeof line, f));
    fclose(f);
    cr_assert(strstr(line, "ckpt-00000010.h5"), "latest names the newest checkpoint: %s", line);
    snprintf(p, sizeof p, "%s/stopped/best.h5", dir);
    Model *m = model_load(p, HYP_CPU);
    cr_assert_not_null(m, "%s", hyp_last_error());
    cr_assert_eq(m->mc.kind, MODEL_HYPENCODER);
    model_free(m);
    snprintf(p, sizeof p, "rm -rf %s", dir);
    cr_assert_eq(system(p), 0);
}

Test(trainer, bad_config_is_one_clear_error) {
    make_task();
    cr_assert_eq(train("bad", 5, NULL, "train.lr=fast"), 1);
    cr_assert_eq(train("bad2", 5, NULL, "model.kind=gpt"), 1);
    char p[160];
    snprintf(p, sizeof p, "rm -rf %s", dir);
    cr_assert_eq(system(p), 0);
}

// Every shipped config parses and passes the cross-key checks.
Test(trainer, shipped_configs_parse) {
    const char *files[] = {"configs/tiny.ini", "configs/hypencoder-2.ini", "configs/hypencoder-4.ini",
                           "configs/hypencoder-6.ini", "configs/hypencoder-8.ini", "configs/be-base.ini"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        Config c;
        config_init(&c);
        cr_assert_eq(config_parse_file(&c, files[i]), 0, "%s", hyp_last_error());
        cr_assert_eq(config_check(&c), 0, "%s: %s", files[i], hyp_last_error());
    }
}
