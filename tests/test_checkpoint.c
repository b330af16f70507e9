// test_checkpoint.c: training checkpoints: bitwise round trip (parameters, AdamW moments,
// state, config), exact continuation after a load, atomic writes (leftover .tmp files are
// ignored and cleaned), the `latest` pointer, keep_last pruning, --resume auto falling back
// past a corrupt newest file, validation errors naming the file and key, and best.h5 as a
// model file that model_load reads; failed writes at every stage (injected faults) change
// nothing, for checkpoints and for the other atomic outputs (model files, embeddings,
// graphs); stale temporaries are cleaned, a real HDF5 close failure exits cleanly, and
// --resume of a non-checkpoint says what it found.
#include "tests/testlib.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "model/bert.h"
#include "model/load.h"
#include "model/model_file.h"
#include "search/graph.h"
#include "search/store.h"
#include "kernels/kernels.h"
#include "autograd/fault.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/wait.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *make_dir(void) {
    char *d = hyp_strdup("/tmp/hyp_test_ckpt_XXXXXX");
    cr_assert(mkdtemp(d), "mkdtemp");
    return d;
}
static void remove_dir(char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
    free(dir);
}
static bool exists(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}
static void write_file(const char *dir, const char *name, const char *text, size_t n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert(f);
    fwrite(text, 1, n, f);
    fclose(f);
}
static char *read_file(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    char *buf = hyp_calloc(1, 4096);
    size_t n = fread(buf, 1, 4095, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

// A small model: names like BERT's, several shapes.
static ParamSet *make_params(Device dev, bool alt_shape, bool extra, bool drop_last) {
    ParamSet *ps = paramset_new(dev);
    paramset_add(ps, "embeddings.word_embeddings.weight", HYP_SHAPE(11, 6));
    if (alt_shape) paramset_add(ps, "encoder.layer.0.attention.self.query.weight", HYP_SHAPE(6, 5));
    else paramset_add(ps, "encoder.layer.0.attention.self.query.weight", HYP_SHAPE(6, 6));
    paramset_add(ps, "encoder.layer.0.attention.self.query.bias", HYP_SHAPE(6));
    paramset_add(ps, "embeddings.LayerNorm.weight", HYP_SHAPE(6));
    if (!drop_last) paramset_add(ps, "hyper_base_matrices.0", HYP_SHAPE(1, 6, 6));
    if (extra) paramset_add(ps, "extra.weight", HYP_SHAPE(2));
    paramset_finalize(ps);
    return ps;
}
static void fill(Device dev, float *d, size_t n, uint64_t seed, float scale) {
    float *h = hyp_malloc(n * sizeof(float));
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        h[i] = scale * ((float)((s * 2685821657736338717ull) >> 40) / 16777216.0f - 0.5f);
    }
    backend_get(dev)->copy(d, h, n * sizeof(float), COPY_H2D);
    free(h);
}
static float *host_copy(Device dev, const float *d, size_t n) {
    float *h = hyp_malloc(n * sizeof(float));
    backend_get(dev)->synchronize();
    backend_get(dev)->copy(h, d, n * sizeof(float), COPY_D2H);
    return h;
}
static void expect_same(Device dev, const float *a, const float *b, size_t n, const char *what) {
    float *x = host_copy(dev, a, n), *y = host_copy(dev, b, n);
    cr_assert(memcmp(x, y, n * sizeof(float)) == 0, "%s differs after the round trip", what);
    free(x);
    free(y);
}

// Train a few steps so that parameters and both moments are non-trivial.
static AdamW *trained(ParamSet *ps, int steps, uint64_t seed) {
    fill(ps->device, ps->data, ps->numel, seed, 2.0f);
    AdamWConfig cfg = adamw_config_default();
    cfg.weight_decay = 0.01;
    AdamW *o = adamw_new(ps, &cfg);
    for (int t = 0; t < steps; t++) {
        fill(ps->device, ps->grad, ps->numel, seed + 100 + (uint64_t)t, 1.0f);
        cr_assert_eq(optim_step(o, ps, 1e-3, NULL), OPTIM_OK);
    }
    return o;
}

static CkptState sample_state(int64_t step) {
    CkptState st = ckpt_state_empty();
    st.step = step;
    st.sched_step = step - 1;
    st.seed = 0xFEEDFACECAFEBEEFull;   // > 2^63: stored unsigned
    st.rng_offset = 123456789012345ull;
    st.lr = 1.5e-5;
    st.best_metric = 0.4375;
    st.best_step = step - 2;
    static int64_t cur[3];
    cur[0] = 2; cur[1] = 98765; cur[2] = step;
    st.cursor = cur;
    st.n_cursor = 3;
    return st;
}

static void roundtrip(Device dev) {
    char *dir = make_dir();
    ParamSet *ps = make_params(dev, false, false, false);
    AdamW *o = trained(ps, 3, 7);
    Config cfg;
    config_init(&cfg);
    config_set(&cfg, "train.lr=3e-5");
    char *cfg_text = config_resolved_text(&cfg);
    CkptState st = sample_state(300);
    char *path = checkpoint_path(dir, 300);
    cr_assert(strstr(path, "/ckpt-00000300.h5"), "%s", path);
    cr_assert_eq(checkpoint_save(path, ps, o, &st, cfg_text, NULL), 0, "%s", hyp_last_error());
    cr_assert(!exists(dir, "ckpt-00000300.h5.tmp"), "the temporary file must be renamed away");

    ParamSet *ps2 = make_params(dev, false, false, false);
    AdamWConfig ac = o->cfg;
    AdamW *o2 = adamw_new(ps2, &ac);
    CkptState st2;
    char *cfg2;
    cr_assert_eq(checkpoint_load(path, ps2, o2, &st2, &cfg2), 0, "%s", hyp_last_error());
    expect_same(dev, ps->data, ps2->data, ps->numel, "parameters");
    expect_same(dev, o->m, o2->m, ps->numel, "exp_avg");
    expect_same(dev, o->v, o2->v, ps->numel, "exp_avg_sq");
    cr_assert_eq(o2->step, 3);
    cr_assert_eq(st2.step, 300);
    cr_assert_eq(st2.optim_step, 3);
    cr_assert_eq(st2.sched_step, 299);
    cr_assert_eq(st2.seed, 0xFEEDFACECAFEBEEFull);
    cr_assert_eq(st2.rng_offset, 123456789012345ull);
    cr_assert_eq(st2.lr, 1.5e-5);
    cr_assert_eq(st2.best_metric, 0.4375);
    cr_assert_eq(st2.best_step, 298);
    cr_assert_eq(st2.n_cursor, 3);
    cr_assert(st2.cursor[0] == 2 && st2.cursor[1] == 98765 && st2.cursor[2] == 300);
    cr_assert_str_eq(cfg2, cfg_text);
    char *cfg3 = checkpoint_read_config(path);
    cr_assert_str_eq(cfg3, cfg_text);
    Config back;
    config_init(&back);
    cr_assert_eq(config_parse_text(&back, cfg3, path), 0, "%s", hyp_last_error());
    cr_assert_eq(back.train.lr, 3e-5);

    // exact continuation: one more step on the same gradient gives identical bits
    fill(dev, ps->grad, ps->numel, 999, 1.0f);
    fill(dev, ps2->grad, ps2->numel, 999, 1.0f);
    cr_assert_eq(optim_step(o, ps, 1e-3, NULL), OPTIM_OK);
    cr_assert_eq(optim_step(o2, ps2, 1e-3, NULL), OPTIM_OK);
    expect_same(dev, ps->data, ps2->data, ps->numel, "parameters after one more step");

    // no best metric yet and an empty cursor also round-trip
    CkptState e = ckpt_state_empty(), e2;
    cr_assert_eq(checkpoint_save(path, ps, o, &e, "", NULL), 0, "%s", hyp_last_error());
    cr_assert_eq(checkpoint_load(path, ps2, NULL, &e2, NULL), 0, "%s", hyp_last_error());
    cr_assert(isnan(e2.best_metric) && e2.best_step == -1 && e2.n_cursor == 0 && !e2.cursor);
    cr_assert_eq(e2.optim_step, 4, "optim_step comes from the optimizer");

    ckpt_state_free(&st2);
    free(cfg2);
    free(cfg3);
    free(cfg_text);
    free(path);
    adamw_free(o);
    adamw_free(o2);
    paramset_free(ps);
    paramset_free(ps2);
    remove_dir(dir);
}
Test(checkpoint, roundtrip_bitwise) { roundtrip(HYP_CPU); }
Test(checkpoint, roundtrip_bitwise_cuda) {
    RUN_ON_CUDA_OR_SKIP();
    roundtrip(HYP_CUDA);
}

// Save a run checkpoint at `step` with keep_last k.
static void save_step(const char *dir, ParamSet *ps, AdamW *o, int64_t step, int keep) {
    CkptState st = sample_state(step);
    char *p = NULL;
    cr_assert_eq(checkpoint_save_run(dir, ps, o, &st, "[train]\nlr = 1\n", NULL, keep, &p), 0, "%s", hyp_last_error());
    char *want = checkpoint_path(dir, step);
    cr_assert_str_eq(p, want);
    free(want);
    free(p);
}

Test(checkpoint, latest_pointer_and_pruning) {
    char *dir = make_dir();
    ParamSet *ps = make_params(HYP_CPU, false, false, false);
    AdamW *o = trained(ps, 1, 3);
    write_file(dir, "best.h5", "not touched", 11);
    for (int64_t s = 100; s <= 400; s += 100) save_step(dir, ps, o, s, 2);
    char *latest = read_file(dir, "latest");
    cr_assert_str_eq(latest, "ckpt-00000400.h5\n");
    free(latest);
    cr_assert(!exists(dir, "ckpt-00000100.h5") && !exists(dir, "ckpt-00000200.h5"), "keep_last 2 prunes the oldest");
    cr_assert(exists(dir, "ckpt-00000300.h5") && exists(dir, "ckpt-00000400.h5"));
    cr_assert(exists(dir, "best.h5"), "pruning never touches best.h5");
    cr_assert(!exists(dir, "latest.tmp"));
    char *found = checkpoint_find_latest(dir, ps);
    cr_assert(found && strstr(found, "ckpt-00000400.h5"), "%s", found ? found : hyp_last_error());
    free(found);
    // the checkpoint `latest` names is never pruned, even when it is not among the newest
    cr_assert_eq(checkpoint_set_latest(dir, "ckpt-00000300.h5"), 0);
    save_step(dir, ps, o, 500, 1);   // points latest at 500 again: 300 and 400 may go
    cr_assert(!exists(dir, "ckpt-00000300.h5") && !exists(dir, "ckpt-00000400.h5"));
    char *p300 = checkpoint_path(dir, 300);
    CkptState st = sample_state(300);
    cr_assert_eq(checkpoint_save(p300, ps, o, &st, "", NULL), 0);
    cr_assert_eq(checkpoint_set_latest(dir, p300), 0);
    cr_assert_eq(checkpoint_prune(dir, 1), 0, "keep 1 = ckpt 500; 300 is `latest`: nothing to delete");
    cr_assert(exists(dir, "ckpt-00000300.h5") && exists(dir, "ckpt-00000500.h5"));
    cr_assert_eq(checkpoint_prune(dir, 0), 0, "keep_last 0 keeps everything");
    free(p300);
    adamw_free(o);
    paramset_free(ps);
    remove_dir(dir);
}

Test(checkpoint, leftover_tmp_ignored_and_cleaned) {
    char *dir = make_dir();
    ParamSet *ps = make_params(HYP_CPU, false, false, false);
    AdamW *o = trained(ps, 1, 5);
    save_step(dir, ps, o, 100, 3);
    // a crash in the middle of writing checkpoint 200 and of updating `latest`
    write_file(dir, "ckpt-00000200.h5.tmp", "\x89HDF\r\n\x1a\n partial", 16);
    write_file(dir, "latest.tmp", "ckpt-00000200.h5\n", 17);
    write_file(dir, "best.h5.tmp", "x", 1);
    write_file(dir, "notes.tmp", "user file", 9);   // not ours: left alone
    char *found = checkpoint_find_latest(dir, ps);
    cr_assert(found && strstr(found, "ckpt-00000100.h5"), "%s", found ? found : hyp_last_error());
    cr_assert(!exists(dir, "ckpt-00000200.h5.tmp") && !exists(dir, "latest.tmp") && !exists(dir, "best.h5.tmp"),
              "leftover temporary files are cleaned");
    cr_assert(exists(dir, "notes.tmp"), "files that are not ours stay");
    // the previous checkpoint is intact and loads
    ParamSet *ps2 = make_params(HYP_CPU, false, false, false);
    AdamW *o2 = adamw_new(ps2, &o->cfg);
    CkptState st;
    cr_assert_eq(checkpoint_load(found, ps2, o2, &st, NULL), 0, "%s", hyp_last_error());
    cr_assert(!memcmp(ps->data, ps2->data, ps->numel * sizeof(float)));
    ckpt_state_free(&st);
    // a failed save leaves nothing behind
    CkptState s2 = sample_state(1);
    cr_assert_eq(checkpoint_save("/nonexistent-dir/ckpt.h5", ps, o, &s2, "", NULL), -1);
    free(found);
    adamw_free(o);
    adamw_free(o2);
    paramset_free(ps);
    paramset_free(ps2);
    remove_dir(dir);
}

Test(checkpoint, find_latest_falls_back_past_corrupt_files) {
    char *dir = make_dir();
    ParamSet *ps = make_params(HYP_CPU, false, false, false);
    AdamW *o = trained(ps, 1, 9);
    cr_assert_null(checkpoint_find_latest(dir, ps), "an empty run folder has nothing to resume");
    cr_assert(strstr(hyp_last_error(), "no checkpoint"), "%s", hyp_last_error());
    for (int64_t s = 100; s <= 300; s += 100) save_step(dir, ps, o, s, 0);
    // truncate the newest (the one `latest` names) to half its size
    char p3[1024];
    snprintf(p3, sizeof p3, "%s/ckpt-00000300.h5", dir);
    struct stat sb;
    cr_assert_eq(stat(p3, &sb), 0);
    cr_assert_eq(truncate(p3, sb.st_size / 2), 0);
    char *found = checkpoint_find_latest(dir, ps);
    cr_assert(found && strstr(found, "ckpt-00000200.h5"), "%s", found ? found : hyp_last_error());
    free(found);
    // garbage over the start of 200 as well; no `latest` at all
    char p2[1024];
    snprintf(p2, sizeof p2, "%s/ckpt-00000200.h5", dir);
    FILE *f = fopen(p2, "r+b");
    fwrite("garbage garbage garbage", 1, 23, f);
    fclose(f);
    snprintf(p3, sizeof p3, "%s/latest", dir);
    unlink(p3);
    found = checkpoint_find_latest(dir, ps);
    cr_assert(found && strstr(found, "ckpt-00000100.h5"), "%s", found ? found : hyp_last_error());
    free(found);
    // `latest` naming something absent
    write_file(dir, "latest", "ckpt-00009999.h5\n", 17);
    found = checkpoint_find_latest(dir, NULL);
    cr_assert(found && strstr(found, "ckpt-00000100.h5"), "%s", found ? found : hyp_last_error());
    free(found);
    // a checkpoint for another model is not a resume candidate
    ParamSet *other = make_params(HYP_CPU, true, false, false);
    cr_assert_null(checkpoint_find_latest(dir, other));
    paramset_free(other);
    adamw_free(o);
    paramset_free(ps);
    remove_dir(dir);
}

Test(checkpoint, validation_errors_name_file_and_key) {
    char *dir = make_dir();
    ParamSet *ps = make_params(HYP_CPU, false, false, false);
    AdamW *o = trained(ps, 2, 11);
    char *path = checkpoint_path(dir, 42);
    CkptState st = sample_state(42);
    cr_assert_eq(checkpoint_save(path, ps, o, &st, "", NULL), 0, "%s", hyp_last_error());
    cr_assert_eq(checkpoint_validate(path, ps), 0, "%s", hyp_last_error());
    cr_assert_eq(checkpoint_validate(path, NULL), 0, "%s", hyp_last_error());
    const struct { bool alt, extra, drop; const char *want; } cases[] = {
        {true, false, false, "/params/encoder.layer.0.attention.self.query.weight: shape [6, 6] in the file, [6, 5] expected"},
        {false, true, false, "/params/extra.weight: missing"},
        {false, false, true, "/params/hyper_base_matrices.0: unexpected parameter"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ParamSet *bad = make_params(HYP_CPU, cases[i].alt, cases[i].extra, cases[i].drop);
        float *before = host_copy(HYP_CPU, bad->data, bad->numel);
        CkptState s;
        cr_assert_eq(checkpoint_load(path, bad, NULL, &s, NULL), -1, "case %zu loaded", i);
        cr_assert(strstr(hyp_last_error(), path), "\"%s\" does not name the file", hyp_last_error());
        cr_assert(strstr(hyp_last_error(), cases[i].want), "\"%s\" lacks \"%s\"", hyp_last_error(), cases[i].want);
        cr_assert(!memcmp(before, bad->data, bad->numel * sizeof(float)), "a rejected load must not change the model");
        free(before);
        paramset_free(bad);
    }
    // not a checkpoint at all / a model file without optimizer state
    write_file(dir, "junk.h5", "junk", 4);
    char junk[1024];
    snprintf(junk, sizeof junk, "%s/junk.h5", dir);
    cr_assert_eq(checkpoint_validate(junk, ps), -1);
    cr_assert(strstr(hyp_last_error(), junk), "%s", hyp_last_error());
    CkptState s0 = ckpt_state_empty();
    cr_assert_eq(checkpoint_save(path, ps, NULL, &s0, "", NULL), 0);
    CkptState s1;
    cr_assert_eq(checkpoint_load(path, ps, o, &s1, NULL), -1);
    cr_assert(strstr(hyp_last_error(), "/optim: missing"), "%s", hyp_last_error());
    free(path);
    adamw_free(o);
    paramset_free(ps);
    remove_dir(dir);
}

// best.h5: a model file (model_load) with the tokenizer; here a tiny BERT.
Test(checkpoint, best_h5_loads_with_model_load) {
#ifndef HYP_HAVE_JANSSON
    cr_skip_test("built without jansson: model files store their config as JSON");
#endif
    char *dir = make_dir();
    ModelConfig mc;
    memset(&mc, 0, sizeof mc);
    mc.kind = MODEL_BERT;
    mc.bert = bert_base_config();
    mc.bert.hidden = 16;
    mc.bert.layers = 2;
    mc.bert.heads = 2;
    mc.bert.ffn = 32;
    mc.bert.vocab_size = 8;
    mc.bert.max_positions = 24;
    BertConfig bc;
    cr_assert_eq(model_bert_config(&mc, &bc, "test"), 0, "%s", hyp_last_error());
    ParamSet *ps = paramset_new(HYP_CPU);
    Bert bert;
    bert_register(&bert, ps, mc.bert_prefix, &bc);
    paramset_finalize(ps);
    bert_init(&bert, 5);
    const char *vocab[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s"};
    ModelMeta mi = {.config = &mc, .vocab = vocab, .n_vocab = 8, .lowercase = true, .query_max_len = 12,
                        .doc_max_len = 20};
    CkptState st = ckpt_state_empty();
    st.step = 1200;
    st.best_metric = 0.5;
    char best[1024];
    snprintf(best, sizeof best, "%s/best.h5", dir);
    cr_assert_eq(checkpoint_save_model(best, ps, &mi, "[train]\nlr = 2e-05\n", &st), 0, "%s", hyp_last_error());
    cr_assert(!exists(dir, "best.h5.tmp"));
    Model *m = model_load(best, HYP_CPU);
    cr_assert(m, "model_load: %s", hyp_last_error());
    cr_assert_eq(m->ps->numel, ps->numel);
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = paramset_get(m->ps, ps->params[i]->name);
        cr_assert(t, "%s missing from the loaded model", ps->params[i]->name);
        cr_assert(!memcmp(t->data, ps->params[i]->data, tensor_bytes(t)), "%s differs", ps->params[i]->name);
    }
    cr_assert_eq(m->n_vocab, 8);
    cr_assert_str_eq(m->vocab[5], "hello");
    cr_assert(m->lowercase);
    cr_assert_eq(m->query_max_len, 12);
    cr_assert_eq(m->doc_max_len, 20);
    cr_assert_eq(m->mc.bert.hidden, 16);
    model_free(m);
    // a model file cannot resume training, and a checkpoint with model info stays a checkpoint
    cr_assert_eq(checkpoint_validate(best, ps), -1);
    char *ck = checkpoint_path(dir, 1200);
    cr_assert_eq(checkpoint_save(ck, ps, NULL, &st, "", &mi), 0, "%s", hyp_last_error());
    cr_assert_eq(checkpoint_validate(ck, ps), 0, "%s", hyp_last_error());
    H5File *f = h5_open(ck);
    cr_assert(f && h5_exists(f, "/model_config") && h5_exists(f, "/tokenizer/vocab"));
    h5_close(f);
    free(ck);
    bert_free(&bert);
    paramset_free(ps);
    remove_dir(dir);
}

// ---------------------------------------------------------------- failed writes (issue 12)
// A write that fails at any stage (injected through autograd/fault.h) leaves the run folder
// as it was: no new checkpoint, no .tmp, `latest` and every checkpoint byte-identical, and
// nothing pruned; the error names the file and the errno.
typedef struct { FaultStage stage; int nth, err, seen; const char *match; } Fault;
static int fault_at(FaultStage stage, const char *path, void *user) {
    Fault *f = user;
    if (stage != f->stage || !strstr(path, f->match)) return 0;
    return ++f->seen == f->nth ? f->err : 0;
}
static char *slurp(const char *dir, const char *name, size_t *n) {
    *n = 0;
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *b = hyp_malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}
// The folder's file names, sorted, one per line (malloc'd).
static char *listing(const char *dir) {
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "ls -A %s", dir);
    FILE *p = popen(cmd, "r");
    char *buf = hyp_calloc(1, 8192);
    size_t n = fread(buf, 1, 8191, p);
    buf[n] = 0;
    pclose(p);
    return buf;
}

Test(checkpoint, failed_write_at_any_stage_changes_nothing) {
    char *dir = make_dir();
    ParamSet *ps = make_params(HYP_CPU, false, false, false);
    AdamW *o = trained(ps, 1, 13);
    save_step(dir, ps, o, 100, 2);
    save_step(dir, ps, o, 200, 2);
    size_t n1, n2, nl;
    char *c1 = slurp(dir, "ckpt-00000100.h5", &n1), *c2 = slurp(dir, "ckpt-00000200.h5", &n2);
    char *lat = slurp(dir, "latest", &nl), *before = listing(dir);
    const struct { FaultStage stage; int nth, err; const char *match, *want; } cases[] = {
        {FAULT_CREATE, 1, ENOSPC, "ckpt-00000300", "No space left on device (errno 28)"},
        {FAULT_WRITE, 1, ENOSPC, "ckpt-00000300", "No space left on device (errno 28)"},
        {FAULT_WRITE, 7, EIO, "ckpt-00000300", "Input/output error (errno 5)"},
        {FAULT_WRITE, 19, ENOSPC, "ckpt-00000300", "/state/"},
        {FAULT_FLUSH, 1, ENOSPC, "ckpt-00000300", "cannot flush"},
        {FAULT_CLOSE, 1, ENOSPC, "ckpt-00000300", "cannot close"},
        {FAULT_FSYNC, 1, EIO, "ckpt-00000300", "fsync failed: Input/output error (errno 5)"},
        {FAULT_RENAME, 1, EXDEV, "ckpt-00000300", "cannot rename"},
        {FAULT_WRITE, 1, ENOSPC, "latest", "latest"},       // the checkpoint is complete, `latest` is not
        {FAULT_RENAME, 1, EIO, "latest", "latest"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Fault f = {cases[i].stage, cases[i].nth, cases[i].err, 0, cases[i].match};
        fault_set_hook(fault_at, &f);
        CkptState st = sample_state(300);
        char *p = NULL;
        int rc = checkpoint_save_run(dir, ps, o, &st, "[train]\nlr = 1\n", NULL, 1, &p);
        fault_set_hook(NULL, NULL);
        cr_assert_eq(f.seen >= f.nth, true, "case %zu: the fault was never reached", i);
        cr_assert_eq(rc, -1, "case %zu: the save must fail", i);
        cr_assert_null(p);
        const char *e = hyp_last_error();
        cr_assert(strstr(e, dir) && strstr(e, cases[i].match), "case %zu: \"%s\" does not name the file", i, e);
        cr_assert(strstr(e, cases[i].want), "case %zu: \"%s\" lacks \"%s\"", i, e, cases[i].want);
        char *after = listing(dir);
        cr_assert_str_eq(after, before, "case %zu: the folder changed", i);
        free(after);
        size_t m1, m2, ml;
        char *d1 = slurp(dir, "ckpt-00000100.h5", &m1), *d2 = slurp(dir, "ckpt-00000200.h5", &m2);
        char *dl = slurp(dir, "latest", &ml);
        cr_assert(d1 && m1 == n1 && !memcmp(d1, c1, n1), "case %zu: ckpt 100 changed (keep_last pruning?)", i);
        cr_assert(d2 && m2 == n2 && !memcmp(d2, c2, n2), "case %zu: ckpt 200 changed", i);
        cr_assert(dl && ml == nl && !memcmp(dl, lat, nl), "case %zu: latest changed", i);
        free(d1); free(d2); free(dl);
    }
    // the next save works and prunes as usual
    save_step(dir, ps, o, 300, 2);
    cr_assert(!exists(dir, "ckpt-00000100.h5") && exists(dir, "ckpt-00000200.h5") && exists(dir, "ckpt-00000300.h5"));
    free(c1); free(c2); free(lat); free(before);
    adamw_free(o);
    paramset_free(ps);
    remove_dir(dir);
}

// Model info of a default BERT config (for model files whose contents do not matter here).
static ModelMeta bert_model_info(ModelConfig *mc) {
    memset(mc, 0, sizeof *mc);
    mc->kind = MODEL_BERT;
    mc->bert = bert_base_config();
    return (ModelMeta){.config = mc, .query_max_len = 8, .doc_max_len = 8};
}

// best.h5 the same way; and a stale PATH.tmp of a killed writer is removed by the next
// write of PATH, one that a live writer holds locked is not.
Test(checkpoint, best_h5_failed_write_and_stale_tmp) {
#ifndef HYP_HAVE_JANSSON
    cr_skip_test("built without jansson: model files store their config as JSON");
#endif
    char *dir = make_dir();
    ParamSet *ps = make_params(HYP_CPU, false, false, false);
    fill(HYP_CPU, ps->data, ps->numel, 3, 1.0f);
    ModelConfig mc;
    ModelMeta mi = bert_model_info(&mc);
    char best[1024], tmp[1100];
    snprintf(best, sizeof best, "%s/best.h5", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", best);
    cr_assert_eq(checkpoint_save_model(best, ps, &mi, NULL, NULL), 0, "%s", hyp_last_error());
    size_t n0, n1;
    char *b0 = slurp(dir, "best.h5", &n0);
    fill(HYP_CPU, ps->data, ps->numel, 4, 1.0f);
    Fault f = {FAULT_WRITE, 3, ENOSPC, 0, "best.h5"};
    fault_set_hook(fault_at, &f);
    cr_assert_eq(checkpoint_save_model(best, ps, &mi, NULL, NULL), -1);
    fault_set_hook(NULL, NULL);
    cr_assert(strstr(hyp_last_error(), best) && strstr(hyp_last_error(), "errno 28"), "%s", hyp_last_error());
    char *b1 = slurp(dir, "best.h5", &n1);
    cr_assert(n1 == n0 && !memcmp(b0, b1, n0), "the previous best.h5 must stay");
    cr_assert(!exists(dir, "best.h5.tmp"));
    free(b1);
    // a leftover of a killed writer: removed by the next write
    write_file(dir, "best.h5.tmp", "\x89HDF partial", 12);
    cr_assert_eq(checkpoint_save_model(best, ps, &mi, NULL, NULL), 0, "%s", hyp_last_error());
    cr_assert(!exists(dir, "best.h5.tmp"));
    // a temporary a live writer holds (locked, as HDF5 locks the files it writes): untouched
    write_file(dir, "best.h5.tmp", "in progress", 11);
    int fd = open(tmp, O_RDONLY);
    cr_assert(fd >= 0 && flock(fd, LOCK_EX) == 0);
    cr_assert_eq(checkpoint_save_model(best, ps, &mi, NULL, NULL), -1);
    cr_assert(strstr(hyp_last_error(), "another process is writing"), "%s", hyp_last_error());
    cr_assert(exists(dir, "best.h5.tmp"));
    close(fd);
    free(b0);
    paramset_free(ps);
    remove_dir(dir);
}

// --resume with a model file, or with something that is no checkpoint: what was found and
// what was expected.
Test(checkpoint, read_config_says_what_it_found) {
#ifndef HYP_HAVE_JANSSON
    cr_skip_test("built without jansson: model files store their config as JSON");
#endif
    char *dir = make_dir();
    ParamSet *ps = make_params(HYP_CPU, false, false, false);
    ModelConfig mc;
    ModelMeta mi = bert_model_info(&mc);
    char best[1024], junk[1024];
    snprintf(best, sizeof best, "%s/best.h5", dir);
    CkptState st = ckpt_state_empty();
    cr_assert_eq(checkpoint_save_model(best, ps, &mi, "[train]\n", &st), 0, "%s", hyp_last_error());
    cr_assert_null(checkpoint_read_config(best));
    cr_assert(strstr(hyp_last_error(), "a model file") && strstr(hyp_last_error(), "model.init_from"), "%s", hyp_last_error());
    snprintf(junk, sizeof junk, "%s/other.h5", dir);
    H5File *f = h5_create(junk);
    cr_assert_eq(h5_write_f32(f, "/x", (float[]){1, 2}, 1, (int[]){2}), 0);
    cr_assert_eq(h5_close(f), 0);
    cr_assert_null(checkpoint_read_config(junk));
    cr_assert(strstr(hyp_last_error(), "not a training checkpoint") && strstr(hyp_last_error(), "/state/cursor"), "%s",
              hyp_last_error());
    paramset_free(ps);
    remove_dir(dir);
}

// A real failure inside HDF5's own flush/close (the file size limit stands in for a full
// disk: EFBIG): HDF5 keeps small objects in its metadata cache and writes them only at the
// flush, so with a limit in the right range the raw writes pass and the close fails. Every
// outcome must be clean (error with errno, no .tmp), HDF5 must stay usable, and the
// process must exit normally (a dangling handle used to crash HDF5's atexit: rc 139).
// The sweep runs in a child that exits through exit(3), so HDF5's shutdown runs for real.
// Child exit codes: 0 ok, 3 an unclean failure, 4 no limit hit the flush/close, 5 HDF5
// unusable afterwards.
static int close_failure_child(const char *path) {
#ifdef __SANITIZE_ADDRESS__
    __lsan_disable();   // the half-closed file is never freed, by design (HDF5 cannot free it)
#endif
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    signal(SIGXFSZ, SIG_IGN);
    float x[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    int at_close = 0;
    for (rlim_t lim = 8192; lim <= 160 * 1024; lim += 4096) {
        struct rlimit rl = {lim, RLIM_INFINITY};
        setrlimit(RLIMIT_FSIZE, &rl);
        H5File *f = h5_begin(path);
        if (!f) return 3;
        for (int i = 0; i < 300; i++) {
            char n[64];
            snprintf(n, sizeof n, "/g%d/d%d", i % 7, i);
            if (h5_write_f32(f, n, x, 1, (int[]){10})) break;
        }
        int rc = h5_commit(f);
        rl.rlim_cur = RLIM_INFINITY;
        setrlimit(RLIMIT_FSIZE, &rl);
        if (rc == 0) break;
        const char *e = hyp_last_error();
        if (!strstr(e, path) || !strstr(e, "(errno 27)") || access(tmp, F_OK) == 0 || access(path, F_OK) == 0) {
            fprintf(stderr, "limit %ld: unclean failure: %s\n", (long)lim, e);
            return 3;
        }
        if (strstr(e, "cannot flush") || strstr(e, "cannot close")) at_close++;
    }
    if (!at_close) return 4;
    H5File *f = h5_begin(path);   // HDF5 still works after a failed close
    h5_write_f32(f, "/x", x, 1, (int[]){10});
    if (h5_commit(f)) return 5;
    f = h5_open(path);
    bool ok = f && h5_exists(f, "/x");
    h5_close(f);
    return ok ? 0 : 5;
}
Test(checkpoint, real_close_failure_is_clean_and_exit_does_not_crash) {
    char *dir = make_dir();
    char path[1024];
    snprintf(path, sizeof path, "%s/many.h5", dir);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int rc = close_failure_child(path);
        free(dir);
        exit(rc);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the process crashed at exit (signal %d): a dangling HDF5 handle", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0, "child status %d (3: unclean failure, 4: no close failure in the range, 5: HDF5 "
                 "unusable after it)", WEXITSTATUS(status));
    remove_dir(dir);
}

// ---------------------------------------------------------------- the other atomic outputs
// Model files (hyp import), embeddings (docstore_write) and neighbour graphs (graph_write)
// go through the same writer: a failure injected at any stage leaves the previous file
// byte-identical, no PATH.tmp, and an error naming the file and errno; the next write works
// and removes a stale PATH.tmp of a killed writer.
typedef int (*WriteFn)(const char *path, int version);

// write(path, 0) must succeed; then for every stage write(path, 1) with that stage failing
// must leave the version-0 file as it was; then write(path, 1) succeeds.
static void check_writer(WriteFn write, const char *what) {
    char dir[] = "/tmp/hyp_atomic_XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[128], tmp[140];
    snprintf(path, sizeof path, "%s/out.h5", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_eq(write(path, 0), 0, "%s: %s", what, hyp_last_error());
    size_t n0;
    char *v0 = slurp(dir, "out.h5", &n0);
    const struct { FaultStage stage; int nth, err; const char *want; } cases[] = {
        {FAULT_CREATE, 1, EACCES, "Permission denied (errno 13)"},
        {FAULT_WRITE, 1, ENOSPC, "No space left on device (errno 28)"},
        {FAULT_WRITE, 2, EIO, "Input/output error (errno 5)"},
        {FAULT_FLUSH, 1, ENOSPC, "cannot flush"},
        {FAULT_CLOSE, 1, EDQUOT, "cannot close"},
        {FAULT_FSYNC, 1, EIO, "fsync failed"},
        {FAULT_RENAME, 1, EXDEV, "cannot rename"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Fault f = {cases[i].stage, cases[i].nth, cases[i].err, 0, "out.h5"};
        fault_set_hook(fault_at, &f);
        int rc = write(path, 1);
        fault_set_hook(NULL, NULL);
        cr_assert(f.seen >= f.nth, "%s, case %zu: the fault was never reached", what, i);
        cr_assert_eq(rc, -1, "%s, case %zu: the write must fail", what, i);
        const char *e = hyp_last_error();
        cr_assert(strstr(e, path) && strstr(e, cases[i].want), "%s, case %zu: \"%s\" lacks the file or \"%s\"", what, i, e,
                  cases[i].want);
        cr_assert(access(tmp, F_OK) != 0, "%s, case %zu: %s left behind", what, i, tmp);
        size_t n;
        char *v = slurp(dir, "out.h5", &n);
        cr_assert(v && n == n0 && !memcmp(v, v0, n0), "%s, case %zu: the previous file changed", what, i);
        free(v);
    }
    // a stale temporary of a killed writer does not stop the next write, which removes it
    FILE *t = fopen(tmp, "wb");
    fputs("\x89HDF partial", t);
    fclose(t);
    cr_assert_eq(write(path, 1), 0, "%s: %s", what, hyp_last_error());
    cr_assert(access(tmp, F_OK) != 0);
    size_t n1;
    char *v1 = slurp(dir, "out.h5", &n1);
    cr_assert(n1 != n0 || memcmp(v1, v0, n0), "%s: the new version was not written", what);
    free(v1);
    free(v0);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static int write_embeddings(const char *path, int version) {
    float x[6] = {1, 2, 3, 4, 5, (float)(6 + version)};
    const char *ids[3] = {"a", "b", "c"};
    return docstore_write(path, x, 3, 2, ids);
}
Test(checkpoint, atomic_embeddings) { check_writer(write_embeddings, "docstore_write"); }

static int write_graph(const char *path, int version) {
    int32_t nbr[6] = {1, 2, 0, 2, 0, version};
    Graph g = {.n = 3, .k = 2, .nbr = nbr, .recall = -1};
    snprintf(g.builder, sizeof g.builder, "exact");
    return graph_write(path, &g);
}
Test(checkpoint, atomic_graph) { check_writer(write_graph, "graph_write"); }

static int write_model(const char *path, int version) {
    ModelFile m = {0};
    m.params = weights_new();
    float *w = weights_alloc(4);
    for (int i = 0; i < 4; i++) w[i] = (float)(i + version);
    weights_add(m.params, "embeddings.word_embeddings.weight", WDT_F32, 2, (int[]){2, 2}, w);
    m.config.kind = MODEL_BERT;
    m.config.bert = bert_base_config();
    char *vocab[2] = {"[PAD]", "[UNK]"};
    m.vocab = vocab;
    m.n_vocab = 2;
    m.lowercase = true;
    m.query_max_len = 8;
    m.doc_max_len = 8;
    int rc = model_file_write(path, &m);
    weights_free(m.params);
    return rc;
}
Test(checkpoint, atomic_model_file) {
#ifndef HYP_HAVE_JANSSON
    cr_skip_test("built without jansson: model files store their config as JSON");
#endif
    check_writer(write_model, "model_file_write");
}
