// trainer.c: the training loop of `hyp train` (reference §5; DESIGN §1, §5).
//
// One global step: every rank takes its share of the global batch from the loader,
// runs forward + backward (grad_accum micro-batches, loss divided by k as HF Trainer),
// the gradients are averaged over ranks, AdamW updates with global-norm clipping and
// the lr schedule. Rank 0 logs, validates and writes checkpoints; everything a resume
// needs (parameters, AdamW moments and step, Philox counter, loader cursor, best metric)
// goes into each checkpoint, so N+M steps equal N steps, a stop, and M resumed steps.
// On a GPU a step has no host round trip: its ids are validated on the host before the one
// upload of the batch, position ids and in-batch targets are built on the device, and the
// losses, gradient norm and non-finite guard stay there until a log line (train.log_steps),
// validation, a checkpoint or the end of the run reads them (StepValues, settle()).
#include "train/trainer.h"
#include "train/buckets.h"
#include "train/doc_cache.h"
#include "train/validation.h"
#include "autograd/fault.h"
#include "train/flops.h"
#include "train/checkpoint.h"
#include "train/comm.h"
#include "train/losses.h"
#include "train/optim.h"
#include "model/load.h"
#include "autograd/atomic.h"
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ---------------------------------------------------------------- run state
typedef struct Trainer {
    Config cfg;
    char *cfg_text;
    const TrainOptions *opt;
    Comm *comm;
    bool root;
    Device dev;
    TrainModel m;
    ModelConfig mc;
    AdamW *adam;
    LRSchedule sched;
    Loader *loader;
    TrainBatch batch;
    Ctx *ctx;
    char **vocab;
    int n_vocab;
    bool lowercase;
    Tokenizer *tok;
    Validation val;
    FILE *metrics;
    CkptState st;
    double last_eval[VAL_METRICS];
} Trainer;

static int fail(const char *what) {
    fprintf(stderr, "hyp train: %s%s%s\n", what ? what : "", what ? ": " : "", hyp_last_error());
    return 1;
}

static bool is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

// ModelConfig for best.h5 from our encoder configs.
static void fill_model_config(Trainer *t, const BertConfig *bc) {
    ModelConfig *mc = &t->mc;
    memset(mc, 0, sizeof *mc);
    mc->kind = t->m.hypencoder ? MODEL_HYPENCODER : MODEL_BIENCODER;
    mc->bert = *bc;
    snprintf(mc->bert_prefix, sizeof mc->bert_prefix, "query_encoder.transformer.");
    mc->shared_encoder = t->cfg.model.shared_encoder;
    if (t->m.hypencoder) {
        int L = t->cfg.model.qnet_layers;
        mc->n_dims = L + 2;
        for (int i = 0; i <= L; i++) mc->vector_dimensions[i] = bc->hidden;
        mc->vector_dimensions[L + 1] = 1;
        snprintf(mc->activation_type, sizeof mc->activation_type, "relu");
        snprintf(mc->passage_pooling, sizeof mc->passage_pooling, "%s", pooling_name(t->m.hyp.cfg.pooling));
    }
}

// Copy the BERT (and, when names and shapes match, the hyperhead) of a model file into
// our parameters: our "query_encoder.transformer.X" / "passage_encoder.transformer.X"
// take the source's own name, or its BERT prefix + X.
static int init_from_model(Trainer *t, const Model *src) {
    int copied = 0, bert_total = 0;
    for (int i = 0; i < t->m.ps->n; i++) {
        Tensor *p = t->m.ps->params[i];
        const char *rest = NULL;
        if (!strncmp(p->name, "query_encoder.transformer.", 26)) rest = p->name + 26;
        else if (!strncmp(p->name, "passage_encoder.transformer.", 28)) rest = p->name + 28;
        if (rest) bert_total++;
        Tensor *s = paramset_get(src->ps, p->name);
        char alt[512];
        if (!s && rest) {
            snprintf(alt, sizeof alt, "%s%s", src->mc.kind == MODEL_BERT ? src->mc.bert_prefix : "query_encoder.transformer.", rest);
            s = paramset_get(src->ps, alt);
        }
        if (!s) {
            if (rest && !strstr(rest, "pooler.")) {
                hyp_set_error("%s: no parameter for %s", src->path, p->name);
                return -1;
            }
            continue;
        }
        if (!same_shape(s, p)) {
            char a[64], b[64];
            hyp_set_error("%s: %s has shape %s, the model needs %s", src->path, s->name, shape_str(s, a, sizeof a),
                          shape_str(p, b, sizeof b));
            return -1;
        }
        float *h = hyp_malloc(tensor_bytes(s));
        tensor_to_host(s, h);
        tensor_from_host(p, h);
        free(h);
        copied++;
    }
    if (t->root)
        fprintf(stderr, "hyp train: initialised %d of %d tensors from %s (%d BERT tensors)\n", copied, t->m.ps->n,
                src->path, bert_total);
    return 0;
}

static int build_model(Trainer *t) {
    Config *cfg = &t->cfg;
    t->m.hypencoder = !strcmp(cfg->model.kind, "hypencoder");
    if (!t->m.hypencoder && strcmp(cfg->model.kind, "biencoder")) {
        hyp_set_error("model.kind = %s (hypencoder or biencoder)", cfg->model.kind);
        return -1;
    }
    if (cfg->model.freeze_encoder && !t->m.hypencoder) {
        hyp_set_error("model.freeze_encoder = true with model.kind = biencoder: a BE-Base is all BERT, nothing would train");
        return -1;
    }
    BertConfig bc = config_bert(cfg);
    Model *src = NULL;
    if (cfg->model.init_from[0]) {
        if (!(src = model_load(cfg->model.init_from, HYP_CPU))) return -1;
        if (model_bert_config(&src->mc, &bc, cfg->model.init_from)) { model_free(src); return -1; }
        // The init file decides the sizes: the resolved config states them, not the bert_* keys given.
        config_take_bert_sizes(cfg, &bc);
        config_bert_training(cfg, &bc);
        if (!strcmp(cfg->model.pooling, "auto"))
            snprintf(cfg->model.pooling, sizeof cfg->model.pooling, "%s", src->pooling == POOL_MEAN ? "mean" : "cls");
        if (src->vocab && !t->vocab) {
            t->vocab = hyp_malloc(src->n_vocab * sizeof(char *));
            for (int i = 0; i < src->n_vocab; i++) t->vocab[i] = hyp_strdup(src->vocab[i]);
            t->n_vocab = src->n_vocab;
        }
        if (!strcmp(cfg->data.lowercase, "auto"))
            snprintf(cfg->data.lowercase, sizeof cfg->data.lowercase, "%s", src->lowercase ? "true" : "false");
    }
    if (!strcmp(cfg->data.lowercase, "auto")) snprintf(cfg->data.lowercase, sizeof cfg->data.lowercase, "true");
    t->lowercase = !strcmp(cfg->data.lowercase, "true");
    if (t->vocab && bc.vocab_size != t->n_vocab) {
        hyp_set_error("the vocab has %d tokens but the BERT has %d word embeddings (model.bert_vocab)", t->n_vocab, bc.vocab_size);
        model_free(src);
        return -1;
    }
    if (!strcmp(cfg->model.pooling, "auto")) snprintf(cfg->model.pooling, sizeof cfg->model.pooling, "cls");
    Pooling pool = POOL_CLS;
    pooling_parse(cfg->model.pooling, &pool);   // the config checked it is cls or mean
    t->m.ps = paramset_new(t->dev);
    if (t->m.hypencoder) {
        HypencoderConfig hc = hypencoder_config_default(cfg->model.qnet_layers);
        hc.bert = bc;
        hc.shared_encoder = cfg->model.shared_encoder;
        hc.pooling = pool;
        hypencoder_register(&t->m.hyp, t->m.ps, &hc);
    } else {
        biencoder_register(&t->m.be, t->m.ps, &bc, cfg->model.shared_encoder);
        t->m.be.pooling = pool;
    }
    paramset_finalize(t->m.ps);
    if (t->m.hypencoder) hypencoder_init(&t->m.hyp, (uint64_t)cfg->train.seed);
    else biencoder_init(&t->m.be, (uint64_t)cfg->train.seed);
    int rc = src ? init_from_model(t, src) : 0;
    model_free(src);
    fill_model_config(t, &bc);
    if (cfg->model.freeze_encoder) {
        // BERT fixed: its parameters require no grad, so no BERT op is taped (no BERT backward),
        // AdamW skips them, and document vectors come from the cache.
        for (int i = 0; i < t->m.ps->n; i++)
            if (adamw_param_is_encoder(t->m.ps->params[i]->name)) t->m.ps->params[i]->requires_grad = false;
        t->m.doc_cache = doc_cache_new(bc.hidden);
    }
    return rc;
}

static int read_vocab(Trainer *t) {
    if (!t->cfg.data.vocab[0]) return 0;
    Tokenizer *tok = tok_load(t->cfg.data.vocab, true);   // the strings (casing does not change them)
    if (!tok) return -1;
    t->n_vocab = tok_vocab_size(tok);
    t->vocab = hyp_malloc(t->n_vocab * sizeof(char *));
    for (int i = 0; i < t->n_vocab; i++) t->vocab[i] = hyp_strdup(tok_token_str(tok, i));
    tok_free(tok);
    return 0;
}

// The training data: a shard directory, or a JSONL file pretokenized once into OUT/shards.
static int open_loader(Trainer *t) {
    const char *train = t->cfg.data.train;
    char shards[4096];
    if (!train[0]) { hyp_set_error("data.train is not set"); return -1; }
    if (is_dir(train)) {
        snprintf(shards, sizeof shards, "%s", train);
    } else {
        snprintf(shards, sizeof shards, "%s/shards", t->opt->out_dir);
        if (t->root && !is_dir(shards)) {
            if (!t->tok) { hyp_set_error("data.train is JSONL: pretokenizing needs a vocab (data.vocab or model.init_from)"); return -1; }
            PretokOptions po = pretok_options_default();
            po.tok = t->tok;
            po.vocab_name = t->cfg.data.vocab[0] ? t->cfg.data.vocab : t->cfg.model.init_from;
            po.in_path = train;
            po.out_dir = shards;
            po.query_max_len = t->cfg.data.query_max_len;
            po.doc_max_len = t->cfg.data.doc_max_len;
            po.progress = !t->opt->quiet;
            if (pretokenize(&po)) return -1;
        }
        if (t->comm && comm_barrier(t->comm)) return -1;
    }
    LoaderOptions lo = loader_options_default();
    lo.seed = (uint64_t)t->cfg.train.seed;
    lo.batch_size = t->cfg.train.batch_size;
    lo.num_negatives = t->cfg.data.num_negatives;
    lo.rank = t->comm ? t->comm->rank : 0;
    lo.world_size = t->comm ? t->comm->world : 1;
    lo.query_max_len = t->cfg.data.query_max_len;
    lo.doc_max_len = t->cfg.data.doc_max_len;
    lo.check_tok = t->tok;
    t->loader = loader_open(shards, &lo);
    return t->loader ? 0 : -1;
}

// ---------------------------------------------------------------- checkpoints
static ModelMeta model_info(const Trainer *t) {
    return (ModelMeta){.config = &t->mc, .vocab = (const char *const *)t->vocab, .n_vocab = t->n_vocab,
                           .lowercase = t->lowercase, .query_max_len = t->cfg.data.query_max_len,
                           .doc_max_len = t->cfg.data.doc_max_len,
                           .pooling = t->m.hypencoder ? t->m.hyp.cfg.pooling : t->m.be.pooling};
}

static int save_checkpoint(Trainer *t, char **written) {
    LoaderState ls = loader_state(t->loader);
    int64_t cur[LOADER_STATE_NFIELDS];
    memcpy(cur, &ls, sizeof cur);
    t->st.optim_step = t->adam->step;
    t->st.sched_step = t->adam->step;
    t->st.seed = t->ctx->seed;
    t->st.rng_offset = t->ctx->rng_offset;
    t->st.cursor = cur;
    t->st.n_cursor = LOADER_STATE_NFIELDS;
    ModelMeta mi = model_info(t);
    int rc = checkpoint_save_run(t->opt->out_dir, t->m.ps, t->adam, &t->st, t->cfg_text, &mi, t->cfg.train.keep_last, written);
    t->st.cursor = NULL;
    t->st.n_cursor = 0;
    return rc;
}

// A failed write of a checkpoint or best.h5 (nothing of the run folder changed). Returns
// true when the run goes on (train.on_save_error=continue and more steps to come).
static bool save_failed(const Trainer *t, const char *what, bool last) {
    bool cont = !strcmp(t->cfg.train.on_save_error, "continue"), go_on = cont && !last;
    fprintf(stderr, "hyp train: step %ld: cannot write %s: %s\n"
            "hyp train: the run folder %s is as it was before this save (existing checkpoints, best.h5 and `latest` "
            "untouched); %s\n", (long)t->st.step, what, hyp_last_error(), t->opt->out_dir,
            go_on ? "continuing (train.on_save_error=continue): the next save tries again"
            : cont ? "no later save to retry: stopping (resume with --resume auto)"
                   : "stopping (resume with --resume auto; train.on_save_error=continue retries at the next save instead)");
    return go_on;
}

// Every rank learns whether any rank raised `flag` (one all-reduce; world 1: flag itself).
static int any_rank(Trainer *t, bool flag, bool *any) {
    *any = flag;
    if (t->comm->world <= 1) return 0;
    double s;
    if (comm_sum_f64(t->comm, flag ? 1.0 : 0.0, &s)) return -1;
    *any = s > 0;
    return 0;
}

// ---------------------------------------------------------------- SIGINT / SIGTERM
// The first signal asks the loop to stop after the current step and write a checkpoint
// (train_run returns TRAIN_STOPPED); a second one ends the process at once, as the signal's
// default action does.
static volatile sig_atomic_t g_stop_signal;
static void on_stop_signal(int sig) {
    if (g_stop_signal) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_stop_signal = sig;
    static const char msg[] = "\nhyp train: signal received: stopping after this step with a checkpoint "
                              "(a second signal stops at once)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}
typedef struct { struct sigaction intr, term; } SavedSignals;
static void signals_catch(SavedSignals *old) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    g_stop_signal = 0;
    sigaction(SIGINT, &sa, &old->intr);
    sigaction(SIGTERM, &sa, &old->term);
}
static void signals_restore(const SavedSignals *old) {
    sigaction(SIGINT, &old->intr, NULL);
    sigaction(SIGTERM, &old->term, NULL);
}

static void log_metrics(Trainer *t, const char *json) {
    if (!t->metrics) return;
    fprintf(t->metrics, "%s\n", json);
    fflush(t->metrics);
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e9) { snprintf(buf, n, "?"); return; }
    long x = (long)s;
    if (x >= 86400) snprintf(buf, n, "%ldd %ldh", x / 86400, x % 86400 / 3600);
    else if (x >= 3600) snprintf(buf, n, "%ldh %ldm", x / 3600, x % 3600 / 60);
    else snprintf(buf, n, "%ldm %lds", x / 60, x % 60);
}

// ---------------------------------------------------------------- the run
// The config: a resumed run's own (the checkpoint's /config), else --config; then the --set
// overrides. *resume_path: the checkpoint to resume from (malloc'd) or NULL. 0 or -1.
static int resolve_config(Trainer *t, const TrainOptions *o, char **resume_path) {
    *resume_path = NULL;
    if (o->resume) {
        if (!strcmp(o->resume, "auto")) {
            *resume_path = checkpoint_find_latest(o->out_dir, NULL);
            if (!*resume_path && o->config_path)   // nothing to resume: a fresh start
                fprintf(stderr, "hyp train: no checkpoint in %s (%s): starting fresh\n", o->out_dir, hyp_last_error());
            else if (!*resume_path) return fail("--resume auto");
        } else {
            *resume_path = hyp_strdup(o->resume);
        }
    }
    if (*resume_path) {
        char *text = checkpoint_read_config(*resume_path);
        int bad = !text || config_parse_text(&t->cfg, text, *resume_path);
        free(text);
        if (bad) return fail(NULL);
    } else if (!o->config_path) {
        hyp_set_error("--config is required (or --resume)");
        return fail(NULL);
    } else if (config_parse_file(&t->cfg, o->config_path)) {
        return fail(NULL);
    }
    for (int i = 0; i < o->n_sets; i++)
        if (config_set(&t->cfg, o->sets[i])) return fail(NULL);
    return config_check(&t->cfg) ? fail(NULL) : 0;
}

// Rank 0's run folder: created, leftovers of a killed run (ckpt-*.h5.tmp, best.h5.tmp,
// latest.tmp) removed, metrics.jsonl opened for appending. 0 or -1.
static int open_run_folder(Trainer *t) {
    const char *dir = t->opt->out_dir;
    if (mkdir(dir, 0755) && errno != EEXIST) {
        hyp_set_error("%s: cannot create: %s", dir, strerror(errno));
        return fail(NULL);
    }
    if (checkpoint_clean_tmp(dir) < 0) return fail(NULL);
    char p[4096];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    t->metrics = fopen(p, "a");
    return 0;
}

// The tokenizer of the run's vocabulary (data.vocab or the init file's), for validation
// and the loader's id check. 0 or -1.
static int make_tokenizer(Trainer *t) {
    if (!t->vocab) return 0;
    size_t len = 0;
    for (int i = 0; i < t->n_vocab; i++) len += strlen(t->vocab[i]) + 1;
    char *text = hyp_malloc(len + 1), *p = text;
    for (int i = 0; i < t->n_vocab; i++) p += sprintf(p, "%s\n", t->vocab[i]);
    t->tok = tok_from_vocab_text(text, len, "vocab", t->lowercase);
    free(text);
    return t->tok ? 0 : fail(NULL);
}

// AdamW, the lr schedule and the training context from the [train] keys. 0 or -1.
static int make_optimizer(Trainer *t) {
    const Config *cfg = &t->cfg;
    AdamWConfig ac = adamw_config_default();
    ac.beta1 = cfg->train.adam_beta1;
    ac.beta2 = cfg->train.adam_beta2;
    ac.eps = cfg->train.adam_eps;
    ac.weight_decay = cfg->train.weight_decay;
    ac.max_grad_norm = cfg->train.max_grad_norm;
    ac.head_lr_mult = cfg->train.head_lr > 0 && cfg->train.lr > 0 ? cfg->train.head_lr / cfg->train.lr : 1.0;
    t->adam = adamw_new(t->m.ps, &ac);
    SchedKind sk;
    if (sched_parse(cfg->train.schedule, &sk)) { hyp_set_error("train.schedule = %s", cfg->train.schedule); return fail(NULL); }
    t->sched = (LRSchedule){.kind = sk, .lr = cfg->train.lr, .warmup_steps = cfg->train.warmup_steps,
                            .max_steps = cfg->train.max_steps};
    t->ctx = ctx_new(t->dev);
    t->ctx->training = true;
    t->ctx->matmul_precision = config_precision(cfg, t->dev);   // train.precision
    t->ctx->params = t->m.ps;   // bf16 GEMMs read its per-step bf16 copy
    t->ctx->seed = (uint64_t)cfg->train.seed;
    return 0;
}

// Parameters, AdamW state, the loader's cursor, the RNG and the step from a checkpoint. 0 or -1.
static int resume_from(Trainer *t, const char *path) {
    CkptState st;
    if (checkpoint_load(path, t->m.ps, t->adam, &st, NULL)) return fail("resume");
    int rc = -1;
    LoaderState ls;
    if (st.n_cursor != LOADER_STATE_NFIELDS) {
        hyp_set_error("%s: /state/cursor has %d fields, the loader needs %d", path, st.n_cursor, LOADER_STATE_NFIELDS);
        goto out;
    }
    memcpy(&ls, st.cursor, sizeof ls);
    if (loader_restore(t->loader, &ls)) goto out;
    t->ctx->seed = st.seed;
    t->ctx->rng_offset = st.rng_offset;
    t->st.step = st.step;
    t->st.best_metric = st.best_metric;
    t->st.best_step = st.best_step;
    t->st.lr = st.lr;
    if (t->root) fprintf(stderr, "hyp train: resumed from %s at step %ld\n", path, (long)t->st.step);
    rc = 0;
out:
    ckpt_state_free(&st);
    return rc ? fail("resume") : 0;
}

static int setup(Trainer *t, const TrainOptions *o) {
    t->opt = o;
    t->dev = o->device;
    t->st = ckpt_state_empty();
    for (int i = 0; i < VAL_METRICS; i++) t->last_eval[i] = NAN;
    config_init(&t->cfg);
    struct stat sb;
    if (stat(o->out_dir, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        hyp_set_error("--out %s: exists and is not a directory (--out names the run folder: a new or existing directory)",
                      o->out_dir);
        return fail(NULL);
    }
    char *resume_path = NULL;
    int rc = -1;
    if (resolve_config(t, o, &resume_path)) goto out;
    t->cfg_text = config_resolved_text(&t->cfg);
    CommOptions co = {.device = t->dev};
    if (!(t->comm = comm_init(t->cfg.dist.backend, &co))) { fail("dist.backend"); goto out; }
    t->root = t->comm->rank == 0;
    if (t->root && open_run_folder(t)) goto out;
    if (read_vocab(t) || build_model(t)) { fail("model"); goto out; }
    free(t->cfg_text);   // now with what build_model resolved: the init file's BERT sizes, pooling, casing
    t->cfg_text = config_resolved_text(&t->cfg);
    if (t->root) {
        if (!o->quiet) fprintf(stderr, "hyp train: resolved config\n%s", t->cfg_text);
        if (!o->quiet) fprintf(stderr, "hyp train: model: %s, %zu parameters\n", t->cfg.model.kind, t->m.ps->numel);
        char p[4096];
        snprintf(p, sizeof p, "%s/config.ini", o->out_dir);
        if (atomic_write_file(p, t->cfg_text, strlen(t->cfg_text)))   // informational: the checkpoints hold it too
            fprintf(stderr, "hyp train: warning: %s\n", hyp_last_error());
    }
    if (make_tokenizer(t) || make_optimizer(t)) goto out;
    if (open_loader(t) || validation_open(&t->val, &t->cfg, t->dev, t->tok)) { fail("data"); goto out; }
    if (resume_path && resume_from(t, resume_path)) goto out;
    rc = 0;
out:
    free(resume_path);
    return rc;
}

static void teardown(Trainer *t) {
    if (t->metrics) fclose(t->metrics);
    ctx_free(t->ctx);
    train_batch_free(&t->batch);
    loader_close(t->loader);
    adamw_free(t->adam);
    if (t->m.doc_cache && t->root && (t->m.doc_cache->hits || t->m.doc_cache->misses))
        fprintf(stderr, "hyp train: frozen encoder: %ld documents encoded, %ld cached vectors reused\n", t->m.doc_cache->misses,
                t->m.doc_cache->hits);
    doc_cache_free(t->m.doc_cache);
    t->m.doc_cache = NULL;
    if (t->m.ps) {
        if (t->m.hypencoder) hypencoder_free(&t->m.hyp);
        else biencoder_free(&t->m.be);
        paramset_free(t->m.ps);
    }
    tok_free(t->tok);
    for (int i = 0; i < t->n_vocab; i++) free(t->vocab[i]);
    free(t->vocab);
    validation_close(&t->val);
    free(t->cfg_text);
    if (t->comm) comm_free(t->comm);
}

// Validate, log, and keep best.h5 (best selection metric among steps <= select_within).
static int eval_and_select(Trainer *t) {
    double v[VAL_METRICS] = {NAN, NAN, NAN};
    int rc = 0;
    if (t->root) {
        rc = validation_run(&t->val, &t->m, t->dev, t->tok, (long)t->st.step, t->opt->quiet, v);
        if (!rc) {
            memcpy(t->last_eval, v, sizeof v);
            long sw = t->cfg.eval.select_within;
            bool eligible = sw <= 0 || t->st.step <= sw;
            double prev_best = t->st.best_metric;
            int64_t prev_step = t->st.best_step;
            if (eligible && (isnan(t->st.best_metric) || v[0] > t->st.best_metric)) {
                t->st.best_metric = v[0];
                t->st.best_step = t->st.step;
                char p[4096];
                snprintf(p, sizeof p, "%s/best.h5", t->opt->out_dir);
                ModelMeta mi = model_info(t);
                if (checkpoint_save_model(p, t->m.ps, &mi, t->cfg_text, &t->st)) {
                    t->st.best_metric = prev_best;   // the next validation tries again
                    t->st.best_step = prev_step;
                    if (!save_failed(t, "best.h5", t->st.step == t->cfg.train.max_steps)) rc = -2;
                }
            }
            const char *const *names = t->val.metric;
            char js[512];
            snprintf(js, sizeof js, "{\"step\": %ld, \"eval\": {\"%s\": %.6f, \"%s\": %.6f, \"%s\": %.6f}, "
                     "\"best_step\": %ld, \"best\": %.6f}", (long)t->st.step, names[0], v[0], names[1], v[1], names[2],
                     v[2], (long)t->st.best_step, t->st.best_metric);
            log_metrics(t, js);
        }
    }
    if (t->comm->world > 1) {
        double ok = rc ? 1.0 : 0.0, any;
        if (comm_sum_f64(t->comm, ok, &any)) return -1;
        if (any > 0 && !rc) { hyp_set_error("rank 0 stopped (validation failed or best.h5 could not be written)"); rc = -1; }
    }
    return rc;
}

// ---------------------------------------------------------------- what a step leaves on the device
// A step's losses stay on the device (each micro-batch's three loss scalars are copied into
// one device buffer), and so do the gradient norm and the non-finite guard (optim_step_async,
// train.on_nonfinite=stop). The host reads them only when it needs them: for a log line
// (train.log_steps), before validation and checkpoints, at the end; on the CPU, where a read
// is a memcpy, after every step. train.on_nonfinite=skip decides on the host before each
// update, so it reads the losses and the norm every step (optim_step).
typedef struct StepValues {
    float *dev;          // (k, 3) device: total, mmse, ce of each micro-batch
    int k;
    double sums[3];      // their means over the micro-batches (and the ranks) once read
    bool read;           // sums hold this step's values (and the guard has been checked)
} StepValues;

// The losses: one device-to-host copy; under several ranks their mean over the ranks.
static int read_losses(Trainer *t, StepValues *v) {
    const Backend *be = backend_get(t->dev);
    float *h = hyp_malloc((size_t)v->k * 3 * sizeof(float));
    be->synchronize();
    be->copy(h, v->dev, (size_t)v->k * 3 * sizeof(float), COPY_D2H);
    for (int i = 0; i < 3; i++) v->sums[i] = 0;
    for (int micro = 0; micro < v->k; micro++)
        for (int i = 0; i < 3; i++) v->sums[i] += h[micro * 3 + i] / v->k;
    free(h);
    v->read = true;
    if (t->comm->world > 1)
        for (int i = 0; i < 3; i++) {
            double s;
            if (comm_sum_f64(t->comm, v->sums[i], &s)) return -1;
            v->sums[i] = s / t->comm->world;
        }
    return 0;
}

static void nonfinite_message(const Trainer *t, long bad_step, long seen_step, double loss) {
    if (!t->root) return;
    if (bad_step <= 0)
        fprintf(stderr, "hyp train: step %ld: non-finite loss or gradient norm on another rank; stopping. ", seen_step);
    else if (bad_step == seen_step)
        fprintf(stderr, "hyp train: step %ld: non-finite loss (%g) or gradient norm; stopping. ", bad_step, loss);
    else   // the guard is read when a log line, validation or a checkpoint needs the values
        fprintf(stderr, "hyp train: step %ld: non-finite loss or gradient norm (seen after step %ld, when the values "
                "were next read; no update from step %ld on was applied); stopping. ", bad_step, seen_step, bad_step);
    fprintf(stderr, "The last checkpoint in %s is intact (resume with --resume auto; train.on_nonfinite=skip skips "
            "such steps)\n", t->opt->out_dir);
}

// After an optim_step_async step: read the losses and the guard. 0: all finite; 2: a step since
// the last read was not (message printed, t->st.step set back to the step before it: the model
// in memory is that step's); -1: an all-reduce failed.
static int settle(Trainer *t, StepValues *v, OptimStats *os) {
    if (read_losses(t, v)) return -1;
    int64_t offset = t->st.step - t->adam->step, bad_adam = 0;   // trainer step - optimizer step
    bool bad = optim_guard_read(t->adam, os, &bad_adam) == OPTIM_NONFINITE, any_bad;
    if (any_rank(t, bad, &any_bad)) return -1;
    if (!any_bad) return 0;
    long bad_step = bad ? (long)(bad_adam + offset) : 0;
    nonfinite_message(t, bad_step, (long)t->st.step, v->sums[0]);
    if (bad_step > 0) t->st.step = bad_step - 1;
    return 2;
}

// ---------------------------------------------------------------- the loop
// Throughput since the last log line: padded tokens and model FLOPs (train/flops.h), MFU
// against the device's peak (CPU: its measured sgemm rate; GPUs: a table), per rank.
typedef struct Interval {
    double time, tokens, flops;   // seconds of the steps, their tokens and FLOPs
    long steps;
    double step_time;             // smoothed seconds per step (the ETA)
    bool first;                   // no log line yet
    double peak;                  // the device's FLOP/s (0: unknown)
} Interval;

// Forward and backward of the step's k micro-batches (gradients summed, each loss scaled
// by 1/k); each micro-batch's three losses are copied into sv. With several ranks, the last
// micro-batch's backward launches the gradient buckets as it finishes them. 0 or -1.
static int forward_backward(Trainer *t, StepValues *sv, GradBuckets *buckets, Interval *iv, bool poison) {
    const Config *cfg = &t->cfg;
    const Backend *be = backend_get(t->dev);
    const int k = sv->k;
    for (int micro = 0; micro < k; micro++) {
        if (loader_next(t->loader, &t->batch)) return -1;
        const StepShape shape = {t->mc.bert.layers, t->mc.bert.hidden, t->mc.bert.ffn,
                                 t->m.hypencoder ? cfg->model.qnet_layers : 0, t->batch.n_queries, t->batch.n_items,
                                 t->batch.q_len, t->batch.d_len, cfg->train.ce_weight > 0, cfg->model.freeze_encoder};
        iv->tokens += step_tokens(&shape);
        iv->flops += step_flops(&shape);
        StepLosses l = train_forward_dist(t->ctx, &t->m, &t->batch, (float)cfg->train.margin_mse_weight,
                                          (float)cfg->train.ce_weight, t->comm, cfg->dist.cross_device_negatives);
        if (poison) l.total = op_scale(t->ctx, l.total, NAN);
        be->copy(sv->dev + micro * 3 + 0, l.total->data, sizeof(float), COPY_D2D);
        be->copy(sv->dev + micro * 3 + 1, l.mmse->data, sizeof(float), COPY_D2D);
        be->copy(sv->dev + micro * 3 + 2, l.ce->data, sizeof(float), COPY_D2D);
        Tensor *scaled = k > 1 ? op_scale(t->ctx, l.total, 1.0f / k) : l.total;
        if (t->comm->world > 1 && micro == k - 1) {   // average buckets as backward finishes them
            buckets_plan(buckets, t->ctx->tape);
            t->ctx->after_backward_node = buckets_launch;
            t->ctx->after_backward_user = buckets;
        }
        backward(t->ctx, scaled);
        t->ctx->after_backward_node = NULL;
        ctx_reset(t->ctx);
    }
    return 0;
}

// The log line (stderr) and the metrics.jsonl record of the steps since the last one.
static void log_step(Trainer *t, const TrainOptions *o, Interval *iv, const StepValues *sv, const OptimStats *os,
                     double lr, double comm_ms) {
    const Config *cfg = &t->cfg;
    const int world = t->comm->world;
    const long max_steps = cfg->train.max_steps;
    double dt = iv->time / iv->steps;
    const double tps = iv->tokens * world / iv->time;   // all ranks
    const double mfu = iv->peak > 0 ? iv->flops / iv->time / iv->peak : NAN;
    iv->step_time = iv->first ? dt : 0.9 * iv->step_time + 0.1 * dt;
    iv->first = false;
    iv->tokens = iv->flops = iv->time = 0;
    iv->steps = 0;
    if (!t->root) return;
    char eta[32];
    fmt_eta(eta, sizeof eta, iv->step_time * (max_steps - t->st.step));
    double qps = (double)cfg->train.batch_size * world * sv->k / dt;
    const double *sums = sv->sums;
    char mfu_txt[32] = "";
    if (isfinite(mfu)) snprintf(mfu_txt, sizeof mfu_txt, " | MFU %.1f%%", mfu * 100);
    if (!o->quiet)
        fprintf(stderr, "step %ld/%ld | loss %.4f (mmse %.4f, ce %.4f) | lr %.2e | gnorm %.3g | %.0f ms | %.1f q/s | "
                "%.0f tok/s%s | eta %s\n", (long)t->st.step, max_steps, sums[0], sums[1], sums[2], lr, os->grad_norm,
                dt * 1e3, qps, tps, mfu_txt, eta);
    char js[640], mfu_js[32];
    if (isfinite(mfu)) snprintf(mfu_js, sizeof mfu_js, "%.4f", mfu);
    else snprintf(mfu_js, sizeof mfu_js, "null");
    snprintf(js, sizeof js, "{\"step\": %ld, \"loss\": %.6g, \"mmse\": %.6g, \"ce\": %.6g, \"lr\": %.6g, "
             "\"grad_norm\": %.6g, \"ms\": %.2f, \"comm_ms\": %.2f, \"qps\": %.2f, \"tokens_per_s\": %.1f, "
             "\"mfu\": %s}", (long)t->st.step, sums[0], sums[1], sums[2], lr, os->grad_norm, dt * 1e3, comm_ms, qps,
             tps, mfu_js);
    log_metrics(t, js);
}

// A checkpoint at this step (rank 0 writes; every rank learns whether it failed). 0 to go
// on, else the run's status: 1 (a failed write that stops the run), or fail()'s.
static int save_step(Trainer *t, bool last, bool stop, bool *bad_stop) {
    char *written = NULL;
    bool bad = t->root && save_checkpoint(t, &written) != 0, any_bad;
    if (bad && !save_failed(t, "the checkpoint", last || stop)) *bad_stop = true;
    // the all-reduce is also the barrier after the save
    if (any_rank(t, *bad_stop, &any_bad)) { free(written); return fail("all-reduce"); }
    if (any_bad) {
        if (!t->root) fprintf(stderr, "hyp train: rank %d: stopping: rank 0 could not write the checkpoint\n", t->comm->rank);
        free(written);
        return 1;
    }
    const char *by = g_stop_signal == SIGINT ? "SIGINT" : g_stop_signal == SIGTERM ? "SIGTERM" : "a signal on another rank";
    if (stop && t->root)
        fprintf(stderr, "hyp train: stopped by %s after step %ld; checkpoint %s (continue with --resume auto)\n", by,
                (long)t->st.step, written ? written : "(none: see above)");
    else if (stop)
        fprintf(stderr, "hyp train: rank %d: stopped by %s after step %ld (rank 0 wrote the checkpoint)\n",
                t->comm->rank, by, (long)t->st.step);
    free(written);
    return 0;
}

int train_run(const TrainOptions *o, TrainSummary *summary) {
    Trainer T = {0}, *t = &T;
    int status = 0;
    if (setup(t, o)) { teardown(t); return 1; }
    const Config *cfg = &t->cfg;
    bool flushed = hyp_cpu_flush_denormals(cfg->train.flush_denormals);
    int k = cfg->train.grad_accum > 0 ? cfg->train.grad_accum : 1;
    long max_steps = cfg->train.max_steps, start = (long)t->st.step;
    long log_every = cfg->train.log_steps > 0 ? cfg->train.log_steps : 1;
    int world = t->comm->world;
    const Backend *be = backend_get(t->dev);
    const bool skip_nonfinite = !strcmp(cfg->train.on_nonfinite, "skip");
    StepValues sv = {.dev = be->alloc((size_t)k * 3 * sizeof(float)), .k = k};
    GradBuckets buckets;
    buckets_init(&buckets, t->m.ps, t->comm, t->dev, cfg->dist.bucket_mb);
    double t_start = hyp_now();
    char peak_what[320];
    Interval iv = {.first = true, .peak = device_peak_flops(t->dev, t->ctx->matmul_precision, peak_what,
                                                                sizeof peak_what)};
    if (t->root && !o->quiet) fprintf(stderr, "hyp train: MFU against %s\n", peak_what);
    double last_loss = NAN;
    long skipped = 0;
    bool bad_stop = false;   // a failed save that stops the run (set on rank 0)
    SavedSignals saved_signals;
    signals_catch(&saved_signals);
    for (long step = start; step < max_steps; step++) {
        const bool poison = fault_train_step(t->comm->rank, step + 1);   // tests only (fault.h)
        double t0 = hyp_now();
        paramset_zero_grad(t->m.ps);
        sv.read = false;
        if (forward_backward(t, &sv, &buckets, &iv, poison)) { status = fail("data"); goto done; }
        double tc = hyp_now();
        if (world > 1) {
            if (!buckets.failed && buckets.next != buckets.n)
                hyp_set_error("internal: only %d of %d gradient buckets were started", buckets.next, buckets.n);
            if (buckets.failed || buckets.next != buckets.n || comm_wait(t->comm)) { status = fail("all-reduce"); goto done; }
        }
        // Gradient all-reduce: bucket launches during backward (host engines reduce there) + the wait.
        double comm_ms = (hyp_now() - tc + (world > 1 ? buckets.seconds : 0)) * 1e3;
        double lr = lr_at(&t->sched, t->adam->step);
        OptimStats os = {0};
        if (skip_nonfinite) {   // decided on the host, before the update
            if (read_losses(t, &sv)) { status = fail("all-reduce"); goto done; }
            if (!isfinite(sv.sums[0]) || optim_step(t->adam, t->m.ps, lr, &os) == OPTIM_NONFINITE) {
                skipped++;
                if (t->root) fprintf(stderr, "hyp train: step %ld: non-finite loss or gradient, step skipped\n", step + 1);
                t->st.step = step + 1;
                continue;
            }
        } else if (optim_step_async(t->adam, t->m.ps, lr, sv.dev, 3L * k) == OPTIM_NONFINITE) {   // lr itself
            int e = settle(t, &sv, &os);   // an earlier non-finite step not yet read is reported first
            if (e < 0) { status = fail("all-reduce"); goto done; }
            if (e == 0) nonfinite_message(t, step + 1, step + 1, sv.sums[0]);
            status = 2;
            goto done;
        }
        t->st.step = step + 1;
        t->st.lr = lr;
        bool last = t->st.step == max_steps;
        bool log_due = t->st.step % log_every == 0 || last;
        bool eval_due = cfg->eval.every > 0 && validation_on(&t->val) && (t->st.step % cfg->eval.every == 0 || last);
        if (!sv.read && (t->dev == HYP_CPU || log_due || eval_due)) {
            int e = settle(t, &sv, &os);
            if (e) { status = e > 0 ? 2 : fail("all-reduce"); goto done; }
        }
        if (sv.read) last_loss = sv.sums[0];
        // Step times add up between log lines; the reads above wait for the device's work.
        iv.time += hyp_now() - t0;
        iv.steps++;
        if (log_due) log_step(t, o, &iv, &sv, &os, lr, comm_ms);
        if (eval_due) {
            int e = eval_and_select(t);
            if (e) { status = e == -2 ? 1 : fail("validation"); goto done; }
        }
        // Stop on SIGINT / SIGTERM: every rank agrees on this step (one all-reduce).
        bool stop;
        if (any_rank(t, g_stop_signal != 0, &stop)) { status = fail("all-reduce"); goto done; }
        stop = stop && !last;
        bool save_due = (cfg->train.save_steps > 0 && t->st.step % cfg->train.save_steps == 0) || last || stop;
        if (save_due && !sv.read) {   // never checkpoint a model a non-finite step has touched
            int e = settle(t, &sv, &os);
            if (e) { status = e > 0 ? 2 : fail("all-reduce"); goto done; }
            last_loss = sv.sums[0];
        }
        if (save_due && (status = save_step(t, last, stop, &bad_stop))) goto done;
        if (stop) { status = TRAIN_STOPPED; goto done; }
    }
    if (t->root && !o->quiet)
        fprintf(stderr, "hyp train: done: %ld steps in %.1f s%s; best %s %.4f at step %ld\n", (long)t->st.step - start,
                hyp_now() - t_start, skipped ? " (some skipped)" : "", cfg->eval.metric, t->st.best_metric,
                (long)t->st.best_step);
done:
    signals_restore(&saved_signals);
    hyp_cpu_flush_denormals(flushed);
    buckets_free(&buckets);
    be->free(sv.dev);
    if (summary) {
        summary->steps = (long)t->st.step;
        summary->last_loss = last_loss;
        summary->best_metric = t->st.best_metric;
        summary->best_step = (long)t->st.best_step;
        memcpy(summary->final_metric, t->last_eval, sizeof t->last_eval);
    }
    teardown(t);
    return status;
}
