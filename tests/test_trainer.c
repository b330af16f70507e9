// hyp train as a whole: exact resume (N+M steps == N steps, stop, resume, M steps, bitwise
// on the CPU, with dropout on), validation sweeps writing best.h5, and bad configs.
#include "tests/testlib.h"
#include "train/trainer.h"
#include "data/synthetic.h"
#include "model/load.h"
#include "train/checkpoint.h"
#include "model/model_file.h"
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void make_task(void) { make_synth_task(dir, sizeof dir, "/tmp/hyp_trainer", 300, 120, 4); }

// extra: "key=value" settings separated by ';' (at most 5).
static int train(const char *out, long max_steps, const char *resume, const char *extra) {
    static char s[12][256];
    snprintf(s[0], sizeof s[0], "data.train=%s/data/train.jsonl", dir);
    snprintf(s[1], sizeof s[1], "data.vocab=%s/data/vocab.txt", dir);
    snprintf(s[2], sizeof s[2], "eval.corpus=%s/data/corpus.tsv", dir);
    snprintf(s[3], sizeof s[3], "eval.queries=%s/data/val_queries.tsv", dir);
    snprintf(s[4], sizeof s[4], "eval.qrels=%s/data/val_qrels.txt", dir);
    snprintf(s[5], sizeof s[5], "train.max_steps=%ld", max_steps);
    snprintf(s[6], sizeof s[6], "%s", "model.dropout=0.1");   // exercises the Philox state on resume
    int n = 7;
    const char *e = extra ? extra : "train.log_steps=1";
    while (*e && n < 12) {
        size_t len = strcspn(e, ";");
        snprintf(s[n++], sizeof s[0], "%.*s", (int)len, e);
        e += len + (e[len] == ';');
    }
    const char *sets[12];
    for (int i = 0; i < n; i++) sets[i] = s[i];
    char out_dir[128];
    snprintf(out_dir, sizeof out_dir, "%s/%s", dir, out);
    TrainOptions o = {.config_path = "configs/tiny.ini", .sets = sets, .n_sets = n, .out_dir = out_dir,
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

// Every shipped config (each configs/*.ini, so a new one is covered when it is added) parses and
// passes the cross-key checks.
Test(trainer, shipped_configs_parse) {
    DIR *d = opendir("configs");
    cr_assert(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".ini") != 0) continue;
        char path[300];
        snprintf(path, sizeof path, "configs/%s", e->d_name);
        Config c;
        config_init(&c);
        cr_assert_eq(config_parse_file(&c, path), 0, "%s", hyp_last_error());
        cr_assert_eq(config_check(&c), 0, "%s: %s", path, hyp_last_error());
        n++;
    }
    closedir(d);
    cr_assert_geq(n, 7, "configs/ holds tiny, hypencoder-1/2/4/6/8 and be-base");
}

// SIGKILL while a checkpoint is being committed (its .tmp complete, not yet renamed): the
// previous checkpoint stays intact and `latest` points at it; --resume auto continues.
Test(trainer, sigkill_during_checkpoint_write_loses_nothing) {
    make_task();
    char cmd[2048], p[256];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 HYP_TEST_CKPT_PAUSE_MS=20000 " HYP_FAULTS_BIN " train --config configs/tiny.ini --out %s/k --quiet "
             "--set data.train=%s/data/train.jsonl --set data.vocab=%s/data/vocab.txt --set eval.every=0 "
             "--set train.max_steps=9 --set train.save_steps=3 >%s/k.log 2>&1 & echo $! > %s/pid",
             dir, dir, dir, dir, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(p, sizeof p, "%s/pid", dir);
    FILE *f = fopen(p, "r");
    long pid = 0;
    cr_assert(f && fscanf(f, "%ld", &pid) == 1);
    fclose(f);
    // First crash: at the very first commit (step 3), before anything was committed.
    snprintf(p, sizeof p, "%s/k/ckpt-00000003.h5.tmp", dir);
    double t0 = hyp_now();
    while (access(p, F_OK) != 0 && hyp_now() - t0 < 60) usleep(20000);
    cr_assert_eq(access(p, F_OK), 0, "the checkpoint .tmp never appeared");
    snprintf(cmd, sizeof cmd, "kill -9 %ld", pid);
    cr_assert_eq(system(cmd), 0);
    usleep(200000);
    // Nothing was committed: no ckpt-3, no latest. Resume starts fresh from step 0 (the
    // leftover .tmp is cleaned) and runs to the end without a pause.
    snprintf(p, sizeof p, "%s/k/ckpt-00000003.h5", dir);
    cr_assert_neq(access(p, F_OK), 0, "an uncommitted checkpoint must not appear under its final name");
    cr_assert_eq(train("k", 9, "auto", "train.save_steps=3"), 0);
    snprintf(p, sizeof p, "%s/k/ckpt-00000003.h5.tmp", dir);
    cr_assert_neq(access(p, F_OK), 0, "the leftover .tmp is cleaned on resume");
    // Second crash, now with a committed checkpoint before it: kill during step 6's commit.
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 " HYP_BIN " train --config configs/tiny.ini --out %s/k2 --quiet "
             "--set data.train=%s/data/train.jsonl --set data.vocab=%s/data/vocab.txt --set eval.every=0 "
             "--set train.max_steps=3 --set train.save_steps=3 >%s/k2a.log 2>&1 && "
             "(OMP_NUM_THREADS=1 HYP_TEST_CKPT_PAUSE_MS=20000 " HYP_FAULTS_BIN " train --out %s/k2 --resume auto --quiet "
             "--set train.max_steps=9 >%s/k2.log 2>&1 & echo $! > %s/pid2)",
             dir, dir, dir, dir, dir, dir, dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(p, sizeof p, "%s/pid2", dir);
    f = fopen(p, "r");
    cr_assert(f && fscanf(f, "%ld", &pid) == 1);
    fclose(f);
    snprintf(p, sizeof p, "%s/k2/ckpt-00000006.h5.tmp", dir);
    t0 = hyp_now();
    while (access(p, F_OK) != 0 && hyp_now() - t0 < 60) usleep(20000);
    cr_assert_eq(access(p, F_OK), 0, "the step-6 .tmp never appeared");
    snprintf(cmd, sizeof cmd, "kill -9 %ld", pid);
    cr_assert_eq(system(cmd), 0);
    usleep(200000);
    snprintf(p, sizeof p, "%s/k2/latest", dir);
    f = fopen(p, "r");
    char line[64] = "";
    cr_assert(f && fgets(line, sizeof line, f));
    fclose(f);
    cr_assert(strstr(line, "ckpt-00000003.h5"), "latest still names the intact step-3 checkpoint: %s", line);
    snprintf(p, sizeof p, "%s/k2/ckpt-00000003.h5", dir);
    cr_assert_eq(checkpoint_validate(p, NULL), 0, "%s", hyp_last_error());
    cr_assert_eq(train("k2", 9, "auto", "train.save_steps=3"), 0);
    snprintf(p, sizeof p, "%s/k2/ckpt-00000009.h5", dir);
    cr_assert_eq(access(p, R_OK), 0, "the resumed run reaches step 9");
    snprintf(p, sizeof p, "rm -rf %s", dir);
    cr_assert_eq(system(p), 0);
}

// Train `steps` steps of tiny.ini initialised from the model file `init` (extra: one more
// "key=value" or NULL) into dir/name; cfg gets that run's config.ini.
static void run_from_init(const char *init, const char *name, const char *extra, long steps, char *cfg, size_t n) {
    static char s[3][256];
    snprintf(s[0], sizeof s[0], "data.train=%s/data/train.jsonl", dir);
    snprintf(s[1], sizeof s[1], "model.init_from=%s", init);
    snprintf(s[2], sizeof s[2], "train.max_steps=%ld", steps);
    const char *sets[4] = {s[0], s[1], s[2], extra};
    char out_dir[160], p[200];
    snprintf(out_dir, sizeof out_dir, "%s/%s", dir, name);
    TrainOptions o = {.config_path = "configs/tiny.ini", .sets = sets, .n_sets = extra ? 4 : 3, .out_dir = out_dir,
                      .device = HYP_CPU, .quiet = true};
    cr_assert_eq(train_run(&o, NULL), 0, "%s", hyp_last_error());
    snprintf(p, sizeof p, "%s/config.ini", out_dir);
    FILE *f = fopen(p, "r");
    cr_assert(f);
    size_t k = fread(cfg, 1, n - 1, f);
    cfg[k] = 0;
    fclose(f);
}

// With model.init_from the init file decides BERT's sizes: the resolved config (config.ini,
// checkpoints) states them, not the bert_* keys the config happened to hold.
Test(trainer, resolved_config_states_the_init_files_sizes) {
    make_task();
    cr_assert_eq(train("base", 2, NULL, "eval.every=2"), 0);
    char init[160], p[200];
    snprintf(init, sizeof init, "%s/base/best.h5", dir);
    char buf[8192];
    run_from_init(init, "from_init", "model.bert_hidden=768", 2, buf, sizeof buf);   // wrong on purpose: the file's 32 wins
    cr_assert(strstr(buf, "bert_hidden = 32\n") && !strstr(buf, "bert_hidden = 768"), "config.ini: %s", buf);
    cr_assert(strstr(buf, "sizes of the model.init_from file"), "the init-file note is missing");
    snprintf(p, sizeof p, "rm -rf %s", dir);
    cr_assert_eq(system(p), 0);
}

// One parameter of a checkpoint (malloc'd, *n floats).
static float *ckpt_param(const char *run, long step, const char *group, const char *name, size_t *n) {
    char p[256], ds[256];
    snprintf(p, sizeof p, "%s/%s/ckpt-%08ld.h5", dir, run, step);
    snprintf(ds, sizeof ds, "%s/%s", group, name);
    H5File *f = h5_open(p);
    cr_assert_not_null(f, "%s", hyp_last_error());
    int nd, sh[4];
    float *x = h5_read_f32(f, ds, &nd, sh);
    cr_assert_not_null(x, "%s", hyp_last_error());
    h5_close(f);
    *n = 1;
    for (int i = 0; i < nd; i++) *n *= (size_t)sh[i];
    return x;
}
static bool same(const char *ra, long sa, const char *rb, long sb, const char *group, const char *name) {
    size_t na, nb;
    float *a = ckpt_param(ra, sa, group, name, &na), *b = ckpt_param(rb, sb, group, name, &nb);
    bool eq = na == nb && !memcmp(a, b, na * sizeof(float));
    free(a);
    free(b);
    return eq;
}
#define BERT_W "query_encoder.transformer.encoder.layer.0.attention.self.query.weight"
#define HEAD_W "query_encoder.hyper_base_matrices.0"

// model.freeze_encoder: BERT never changes and has no AdamW state, the hyperhead trains; the
// document-vector cache is exact: a resumed run (empty cache: the second epoch's batches 21-24
// encode afresh what the straight run took from its cache) ends bitwise where the straight run does.
Test(trainer, frozen_encoder_keeps_bert_and_its_cache_is_exact) {
    make_task();
    // 300 training rows, 16 a batch: an epoch is 18 steps, so steps 19-24 reuse documents.
    const char *fz = "model.freeze_encoder=true;train.save_steps=4;train.warmup_steps=0";
    cr_assert_eq(train("fz", 24, NULL, fz), 0);
    cr_assert_eq(train("fz2", 20, NULL, fz), 0);
    cr_assert_eq(train("fz2", 24, "auto", fz), 0);
    cr_assert(same("fz", 20, "fz", 24, "/params", BERT_W), "a frozen BERT weight changed");
    cr_assert(!same("fz", 20, "fz", 24, "/params", HEAD_W), "the hyperhead did not train");
    size_t n;
    float *m = ckpt_param("fz", 24, "/optim/m", BERT_W, &n);
    for (size_t i = 0; i < n; i++) cr_assert_eq(m[i], 0.0f, "AdamW moment of a frozen weight: %g", m[i]);
    free(m);
    size_t na, nb;
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/fz/ckpt-00000024.h5", dir);
    snprintf(b, sizeof b, "%s/fz2/ckpt-00000024.h5", dir);
    float *pa = read_all_params(a, &na), *pb = read_all_params(b, &nb);
    cr_assert(na == nb && !memcmp(pa, pb, na * sizeof(float)), "frozen: straight 24 steps differ from 20 + resume + 4 (the cache is not exact)");
    free(pa);
    free(pb);
    // A BE-Base is all BERT: freezing it is refused.
    cr_assert_neq(train("fzbe", 2, NULL, "model.kind=biencoder;model.freeze_encoder=true"), 0);
    cr_expect(strstr(hyp_last_error(), "freeze_encoder"), "%s", hyp_last_error());
    snprintf(a, sizeof a, "rm -rf %s", dir);
    cr_assert_eq(system(a), 0);
}

// train.head_lr: after the first update (warmup 0) the BERT weights are the same as with the
// default (their gradient does not depend on the head's lr) and the head's differ; head_lr = lr
// is the default, bitwise.
Test(trainer, head_lr_moves_only_the_head) {
    make_task();
    cr_assert_eq(train("base", 1, NULL, "train.save_steps=1;train.warmup_steps=0"), 0);
    cr_assert_eq(train("same", 1, NULL, "train.save_steps=1;train.warmup_steps=0;train.head_lr=3e-4"), 0);
    cr_assert_eq(train("fast", 1, NULL, "train.save_steps=1;train.warmup_steps=0;train.head_lr=3e-3"), 0);
    cr_assert(same("base", 1, "fast", 1, "/params", BERT_W), "head_lr changed a BERT weight's first update");
    cr_assert(!same("base", 1, "fast", 1, "/params", HEAD_W), "head_lr changed nothing in the head");
    size_t na, nb;
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/base/ckpt-00000001.h5", dir);
    snprintf(b, sizeof b, "%s/same/ckpt-00000001.h5", dir);
    float *pa = read_all_params(a, &na), *pb = read_all_params(b, &nb);
    cr_assert(na == nb && !memcmp(pa, pb, na * sizeof(float)), "head_lr = lr differs from the default");
    free(pa);
    free(pb);
    snprintf(a, sizeof a, "rm -rf %s", dir);
    cr_assert_eq(system(a), 0);
}

// model.pooling = mean: best.h5 records it, the loaded Hypencoder's documents are the masked
// mean of BERT's states (not [CLS]), and a run initialised from that file takes it (auto).
Test(trainer, mean_pooling_is_recorded_and_used) {
    make_task();
    cr_assert_eq(train("mean", 2, NULL, "model.pooling=mean;eval.every=2"), 0, "%s", hyp_last_error());
    char p[200];
    snprintf(p, sizeof p, "%s/mean/best.h5", dir);
    Model *m = model_load(p, HYP_CPU);
    cr_assert_not_null(m, "%s", hyp_last_error());
    cr_assert_eq(m->pooling, POOL_MEAN);
    cr_assert_eq(m->hyp.cfg.pooling, POOL_MEAN);
    cr_assert_str_eq(m->mc.passage_pooling, "mean");
    // A training checkpoint loads as the model it saved (its /model_config), pooling included.
    char ck[200];
    snprintf(ck, sizeof ck, "%s/mean/ckpt-00000002.h5", dir);
    Model *mk2 = model_load(ck, HYP_CPU);
    cr_assert_not_null(mk2, "%s", hyp_last_error());
    cr_assert_eq(mk2->pooling, POOL_MEAN);
    cr_assert_eq(mk2->mc.kind, MODEL_HYPENCODER);
    cr_assert_eq(mk2->ps->numel, m->ps->numel);
    model_free(mk2);
    Ctx *c = ctx_new(HYP_CPU);
    no_grad_begin(c);
    int32_t ids[2 * 5] = {2, 7, 9, 11, 3, 2, 8, 3, 0, 0}, mk[2 * 5] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    Tensor *ti = tensor_new(c, HYP_I32, HYP_SHAPE(2, 5)), *tm = tensor_new(c, HYP_I32, HYP_SHAPE(2, 5));
    tensor_from_host(ti, ids);
    tensor_from_host(tm, mk);
    int d = m->hyp.cfg.bert.hidden;
    float *got = hyp_malloc(2 * (size_t)d * sizeof(float)), *want = hyp_malloc(2 * (size_t)d * sizeof(float)),
          *cls = hyp_malloc(2 * (size_t)d * sizeof(float));
    tensor_to_host(hypencoder_docs(c, &m->hyp, ti, tm), got);
    tensor_to_host(bert_pool_mean(c, bert_forward(c, m->hyp.doc_bert, ti, tm), tm), want);
    tensor_to_host(bert_forward_cls(c, m->hyp.doc_bert, ti, tm), cls);
    double diff_cls = 0;
    for (int i = 0; i < 2 * d; i++) {
        cr_assert_float_eq(got[i], want[i], 1e-6, "document vector %d: %g, masked mean %g", i, got[i], want[i]);
        diff_cls += fabs(got[i] - cls[i]);
    }
    cr_assert(diff_cls > 1e-3, "the mean-pooled vectors equal [CLS]'s: the test cannot tell them apart");
    free(got); free(want); free(cls);
    no_grad_end(c);
    ctx_free(c);
    model_free(m);
    // auto: the init file's pooling
    char buf[8192];
    run_from_init(p, "from_mean", NULL, 1, buf, sizeof buf);
    cr_assert(strstr(buf, "pooling = mean\n"), "config.ini: %s", buf);
    snprintf(p, sizeof p, "rm -rf %s", dir);
    cr_assert_eq(system(p), 0);
}

// data.lowercase: a cased vocabulary trains with a cased tokenizer, recorded in the checkpoint
// (and in the resolved config); the default (auto, no init_from) is BERT's uncased setting.
Test(trainer, data_lowercase_is_recorded) {
    make_task();
    cr_assert_eq(train("cased", 2, NULL, "data.lowercase=false;eval.every=0"), 0);
    cr_assert_eq(train("uncased", 2, NULL, "eval.every=0"), 0);
    const char *runs[] = {"cased", "uncased"};
    for (int i = 0; i < 2; i++) {
        char p[200];
        snprintf(p, sizeof p, "%s/%s/ckpt-00000002.h5", dir, runs[i]);
        char **vocab = NULL;
        int nv = 0, ql = 0, dl = 0;
        bool lower = i == 0;
        cr_assert_eq(model_file_read_tokenizer(p, &vocab, &nv, &lower, &ql, &dl), 0, "%s", hyp_last_error());
        cr_assert_eq(lower, i == 1, "%s: lowercase %d", runs[i], lower);
        cr_assert_gt(nv, 0);
        for (int j = 0; j < nv; j++) free(vocab[j]);
        free(vocab);
        snprintf(p, sizeof p, "%s/%s/config.ini", dir, runs[i]);
        FILE *f = fopen(p, "r");
        cr_assert_not_null(f);
        char text[8192];
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = 0;
        cr_assert(strstr(text, i == 0 ? "lowercase = false" : "lowercase = true"), "%s", text);
    }
    char p[160];
    snprintf(p, sizeof p, "rm -rf %s", dir);
    cr_assert_eq(system(p), 0);
}
