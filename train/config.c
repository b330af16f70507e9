// config.c: the typed key registry, the INI reader, --set and the resolved text (config.h).
//
// The reader is our own ~80 lines rather than libinih: the Debian build of inih reads at
// most 199 bytes per line (a longer line, e.g. a long path, is silently split into two)
// and does not pass line numbers to the handler; a config that cannot hold any path or
// say where an error is would break the "FILE:LINE" contract and resume from stored text.
// The dialect is inih's (see config.h), so files stay inih-compatible.
#include "train/config.h"
#include "model/hypencoder.h"   // QNET_MAX_LAYERS
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_INT, T_LONG, T_DOUBLE, T_BOOL, T_STR, T_ENUM } KeyType;

typedef struct {
    const char *section, *key;
    KeyType type;
    size_t off, size;
    const char *def;        // default, as text
    double lo, hi;          // numeric range (inclusive)
    const char *choices;    // T_ENUM: "a|b|c"
    const char *help;       // one line: what the key means (hyp train --help-config, docs/config.md)
} Key;

#define FIELD(sec, name) offsetof(Config, sec.name), sizeof(((Config *)0)->sec.name)
#define I(sec, name, def, lo, hi, help) {#sec, #name, T_INT, FIELD(sec, name), def, lo, hi, NULL, help}
#define L(sec, name, def, lo, hi, help) {#sec, #name, T_LONG, FIELD(sec, name), def, lo, hi, NULL, help}
#define D(sec, name, def, lo, hi, help) {#sec, #name, T_DOUBLE, FIELD(sec, name), def, lo, hi, NULL, help}
#define B(sec, name, def, help) {#sec, #name, T_BOOL, FIELD(sec, name), def, 0, 0, NULL, help}
#define S(sec, name, def, help) {#sec, #name, T_STR, FIELD(sec, name), def, 0, 0, NULL, help}
#define E(sec, name, def, choices, help) {#sec, #name, T_ENUM, FIELD(sec, name), def, 0, 0, choices, help}
#define BIG 9.2e18

static const char *const SECTIONS[] = {"model", "data", "train", "eval", "dist"};
#define N_SECTIONS 5

// Every known key. To add one: a field in config.h's Config and a line here.
static const Key KEYS[] = {
    E(model, kind, "hypencoder", "hypencoder|biencoder", "the model: a Hypencoder (q-net scoring) or the BE-Base bi-encoder baseline (inner product)"),
    I(model, qnet_layers, "6", 1, QNET_MAX_LAYERS, "q-net hidden layers (the paper's depth study: 2, 4, 6, 8)"),
    B(model, shared_encoder, "true", "one BERT for queries and documents (false: two encoders)"),
    S(model, init_from, "", "a model file (hyp import) to start from; its BERT sizes replace the bert_* keys (\"\": random init)"),
    I(model, bert_layers, "12", 1, 1000, "BERT layers when not init_from"),
    I(model, bert_hidden, "768", 1, 1 << 20, "BERT hidden size when not init_from"),
    I(model, bert_heads, "12", 1, 1 << 16, "BERT attention heads when not init_from"),
    I(model, bert_ffn, "3072", 1, 1 << 22, "BERT feed-forward size when not init_from"),
    I(model, bert_vocab, "30522", 1, 1 << 26, "BERT vocabulary size when not init_from"),
    I(model, bert_max_positions, "512", 1, 1 << 20, "BERT position embeddings when not init_from"),
    D(model, dropout, "0.1", 0, 0.999999, "BERT hidden and attention-probability dropout"),
    D(model, init_std, "0.02", 1e-6, 10, "BERT init standard deviation when not init_from (HF initializer_range)"),
    E(model, pooling, "auto", "auto|cls|mean", "document vectors (and BE-Base query vectors): the final [CLS] state (the authors') or the masked mean of the token states (sentence-transformers models such as MiniLM); auto: the init_from file's pooling (cls or mean), else cls"),
    B(model, freeze_encoder, "false", "BERT weights fixed (the authors' freeze_transformer): no BERT backward or update; document vectors computed once and cached"),

    S(data, train, "", "training data: pretokenized shards (hyp pretokenize) or the authors' JSONL (pretokenized into RUN/shards)"),
    S(data, vocab, "", "WordPiece vocab.txt for JSONL data (\"\": the init_from model file's)"),
    E(data, lowercase, "auto", "auto|true|false", "lowercase and strip accents before WordPiece (BERT's do_lower_case; false for cased vocabularies such as bert-base-cased); auto: the init_from file's setting, else true"),
    I(data, num_negatives, "7", 1, 1 << 16, "negatives per query (1 positive + this many passages a query)"),
    I(data, query_max_len, "32", 2, 1 << 20, "query length in word pieces, [CLS] and [SEP] included"),
    I(data, doc_max_len, "196", 2, 1 << 20, "passage length in word pieces, [CLS] and [SEP] included"),

    I(train, batch_size, "64", 1, 1 << 24, "queries per rank and step"),
    D(train, lr, "2e-5", 0, 1e3, "peak learning rate (AdamW)"),
    D(train, head_lr, "0", 0, 1e3, "peak learning rate of the hyperhead (the q-net's generator), which starts from random while BERT is pretrained; 0: train.lr"),
    L(train, warmup_steps, "6000", 0, BIG, "linear warm-up steps"),
    E(train, schedule, "constant_with_warmup", "constant_with_warmup|linear|constant", "learning-rate schedule after warm-up (HF's names)"),
    E(train, recompute, "none", "none|act", "memory for compute: act recomputes BERT's feed-forward activation (GELU) in backward instead of keeping it (llm.c's -r 1; 4 of ~16 hidden-size floats a token and layer); the results are bitwise the same"),
    E(train, precision, "auto", "auto|fp32|tf32|bf16", "GEMM precision (docs/precision.md): bf16 = PyTorch autocast's (bf16 operands and products, fp32 accumulation, master weights, norms and losses); tf32 = operands rounded to tf32; auto: bf16 on CUDA, fp32 on the CPU"),
    L(train, max_steps, "1000000", 1, BIG, "training steps"),
    L(train, save_steps, "2500", 0, BIG, "a checkpoint every this many steps (0: only at the end)"),
    I(train, keep_last, "3", 0, INT_MAX, "checkpoints kept besides best.h5 (0: keep all)"),
    L(train, seed, "42", 0, BIG, "seed of the init, data order and dropout streams"),
    D(train, weight_decay, "0", 0, 1e6, "AdamW weight decay"),
    D(train, adam_beta1, "0.9", 0, 0.999999999, "AdamW beta1"),
    D(train, adam_beta2, "0.999", 0, 0.999999999, "AdamW beta2"),
    D(train, adam_eps, "1e-8", 0, 1, "AdamW epsilon"),
    D(train, max_grad_norm, "1.0", 0, 1e30, "global gradient-norm clipping (0: no clipping)"),
    I(train, grad_accum, "1", 1, 1 << 20, "micro-batches accumulated per optimizer step"),
    E(train, on_nonfinite, "stop", "stop|skip", "a non-finite loss: stop with the last checkpoint intact, or skip the step"),
    E(train, on_save_error, "stop", "stop|continue", "a failed checkpoint write: stop, or retry at the next save"),
    B(train, flush_denormals, "true", "CPU threads flush denormals to zero (they slow vector units ~100x)"),
    L(train, log_steps, "10", 1, BIG, "a log line and a metrics.jsonl record every this many steps"),
    D(train, margin_mse_weight, "1", 0, 1e30, "weight of the Margin-MSE distillation loss"),
    D(train, ce_weight, "1", 0, 1e30, "weight of the in-batch cross-entropy loss"),

    L(eval, every, "50000", 0, BIG, "a validation sweep every this many steps (0: none)"),
    L(eval, select_within, "800000", 0, BIG, "best.h5 only from steps <= this (the paper: 800k; 0: no limit)"),
    S(eval, corpus, "", "validation passages (TSV id<TAB>text or JSONL)"),
    S(eval, queries, "", "validation queries (TSV id<TAB>text)"),
    S(eval, qrels, "", "validation judgments (TREC qrels)"),
    S(eval, metric, "Rprec", "model-selection metric (ir_measures name, e.g. Rprec, nDCG@10, RR@10)"),
    I(eval, k, "1000", 1, INT_MAX, "validation run depth (documents retrieved per query)"),
    E(eval, device, "auto", "auto|cpu|cuda", "where validation scores documents (auto: the training device; encoding runs where the weights are)"),

    E(dist, backend, "auto", "auto|none|mpi|tcp|nccl", "data-parallel engine (auto: mpirun -> mpi, torchrun env -> tcp, GPU -> nccl)"),
    B(dist, cross_device_negatives, "false", "in-batch negatives from every rank (false: per rank, as released)"),
    D(dist, bucket_mb, "25", 0.001, 4096, "gradient all-reduce bucket size (MB), started during backward"),
};
#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

static int find_section(const char *s, size_t n) {
    for (int i = 0; i < N_SECTIONS; i++)
        if (strlen(SECTIONS[i]) == n && !strncmp(SECTIONS[i], s, n)) return i;
    return -1;
}
static int find_key(const char *section, const char *key, size_t n) {
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].section, section) && strlen(KEYS[i].key) == n && !strncmp(KEYS[i].key, key, n)) return i;
    return -1;
}

static bool enum_has(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return true;
        if (!bar) break;
        p = bar + 1;
    }
    return false;
}

// Parse `v` into key k's field of c. On error: message without location in *why.
static int set_value(Config *c, const Key *k, const char *v, char *why, size_t wn) {
    char *field = (char *)c + k->off;
    switch (k->type) {
    case T_INT:
    case T_LONG: {
        // One strict parser for flags and config values (autograd/util.h): "1e3", "10x",
        // " 5" and overflow are errors; the message says what was given and expected.
        int64_t x;
        if (hyp_parse_i64(NULL, v, (int64_t)k->lo, (int64_t)k->hi, &x)) {
            snprintf(why, wn, "%s", hyp_last_error());
            return -1;
        }
        if (k->type == T_INT) *(int *)field = (int)x;
        else *(long *)field = (long)x;
        return 0;
    }
    case T_DOUBLE: {
        double x;
        if (hyp_parse_f64(NULL, v, k->lo, k->hi, &x)) {
            snprintf(why, wn, "%s", hyp_last_error());
            return -1;
        }
        *(double *)field = x;
        return 0;
    }
    case T_BOOL: {
        static const char *const T[] = {"true", "yes", "on", "1"}, *const F[] = {"false", "no", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (!strcasecmp(v, T[i])) { *(bool *)field = true; return 0; }
            if (!strcasecmp(v, F[i])) { *(bool *)field = false; return 0; }
        }
        snprintf(why, wn, "expected true or false, got \"%s\"", v);
        return -1;
    }
    case T_ENUM:
        if (!enum_has(k->choices, v)) {
            snprintf(why, wn, "\"%s\" is not one of %s", v, k->choices);
            return -1;
        }
        snprintf(field, k->size, "%s", v);
        return 0;
    case T_STR:
        if (strlen(v) >= k->size) {
            snprintf(why, wn, "value longer than %zu characters", k->size - 1);
            return -1;
        }
        for (const char *p = v; *p; p++)
            if (*p == '"' || (unsigned char)*p < 0x20 || *p == 0x7f) {
                snprintf(why, wn, "string values may not contain double quotes or control characters");
                return -1;
            }
        snprintf(field, k->size, "%s", v);
        return 0;
    }
    return -1;
}

void config_init(Config *c) {
    memset(c, 0, sizeof *c);
    char why[256];
    for (int i = 0; i < N_KEYS; i++)
        HYP_CHECK(set_value(c, &KEYS[i], KEYS[i].def, why, sizeof why) == 0, "config default %s.%s: %s",
                  KEYS[i].section, KEYS[i].key, why);
}

// ---------------------------------------------------------------- the INI reader
static const char *skip_ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    return p;
}
static const char *trim_end(const char *b, const char *e) {
    while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    return e;
}
// End of the value part: an inline comment starts at ';' or '#' preceded by whitespace.
static const char *value_end(const char *p, const char *e) {
    for (const char *q = p; q < e; q++)
        if ((*q == ';' || *q == '#') && q > p && (q[-1] == ' ' || q[-1] == '\t')) return q;
    return e;
}

int config_parse_text(Config *c, const char *text, const char *label) {
    int section = -1;
    int seen[sizeof KEYS / sizeof KEYS[0]] = {0};   // line where each key was set
    char why[CONFIG_STR_MAX + 128], val[CONFIG_STR_MAX + 2];
    const char *p = text;
    if (!strncmp(p, "\xEF\xBB\xBF", 3)) p += 3;     // UTF-8 byte order mark
    for (int line = 1; *p; line++) {
        const char *nl = strchr(p, '\n');
        const char *le = nl ? nl : p + strlen(p);
        const char *b = skip_ws(p, le), *e = trim_end(b, le);
        p = nl ? nl + 1 : le;
        if (b == e || *b == ';' || *b == '#') continue;
        if (*b == '[') {
            e = trim_end(b, value_end(b, e));
            const char *close = memchr(b, ']', (size_t)(e - b));
            if (!close || close != e - 1) {
                hyp_set_error("%s:%d: malformed section header (expected [name])", label, line);
                return -1;
            }
            const char *nb = skip_ws(b + 1, close), *ne = trim_end(nb, close);
            section = find_section(nb, (size_t)(ne - nb));
            if (section < 0) {
                hyp_set_error("%s:%d: unknown section [%.*s] (known: model, data, train, eval, dist)", label, line,
                              (int)(ne - nb), nb);
                return -1;
            }
            continue;
        }
        const char *eq = memchr(b, '=', (size_t)(e - b));
        if (!eq) {
            hyp_set_error("%s:%d: expected \"key = value\" or \"[section]\", got \"%.*s\"", label, line, (int)(e - b), b);
            return -1;
        }
        const char *ke = trim_end(b, eq);
        if (section < 0) {
            hyp_set_error("%s:%d: key \"%.*s\" before any [section]", label, line, (int)(ke - b), b);
            return -1;
        }
        int k = find_key(SECTIONS[section], b, (size_t)(ke - b));
        if (k < 0) {
            hyp_set_error("%s:%d: unknown key \"%.*s\" in [%s]", label, line, (int)(ke - b), b, SECTIONS[section]);
            return -1;
        }
        if (seen[k]) {
            hyp_set_error("%s:%d: %s.%s given twice (first on line %d)", label, line, KEYS[k].section, KEYS[k].key, seen[k]);
            return -1;
        }
        seen[k] = line;
        const char *vb = skip_ws(eq + 1, e), *ve;
        if (vb < e && *vb == '"') {   // quoted: literal up to the closing quote
            const char *q = memchr(vb + 1, '"', (size_t)(e - vb - 1));
            const char *rest = q ? skip_ws(q + 1, e) : NULL;
            if (!q || (rest < e && !((*rest == ';' || *rest == '#') && rest > q + 1))) {
                hyp_set_error("%s:%d: %s.%s: unterminated quoted value or text after the closing quote", label, line,
                              KEYS[k].section, KEYS[k].key);
                return -1;
            }
            vb++;
            ve = q;
        } else {
            ve = trim_end(vb, value_end(vb, e));
        }
        if ((size_t)(ve - vb) > CONFIG_STR_MAX) {
            hyp_set_error("%s:%d: %s.%s: value longer than %d characters", label, line, KEYS[k].section, KEYS[k].key,
                          CONFIG_STR_MAX - 1);
            return -1;
        }
        memcpy(val, vb, (size_t)(ve - vb));
        val[ve - vb] = 0;
        if (set_value(c, &KEYS[k], val, why, sizeof why)) {
            hyp_set_error("%s:%d: %s.%s: %s", label, line, KEYS[k].section, KEYS[k].key, why);
            return -1;
        }
    }
    return 0;
}

int config_parse_file(Config *c, const char *path) {
    size_t len;
    char *text = hyp_read_text_file(path, (size_t)1 << 20, &len);
    if (!text) return -1;
    if (strlen(text) != len) {
        hyp_set_error("%s: contains a NUL byte (not a text file?)", path);
        free(text);
        return -1;
    }
    int rc = config_parse_text(c, text, path);
    free(text);
    return rc;
}

int config_set(Config *c, const char *a) {
    const char *dot = strchr(a, '.'), *eq = strchr(a, '=');
    if (!dot || !eq || dot > eq) {
        hyp_set_error("--set %s: expected section.key=value", a);
        return -1;
    }
    int s = find_section(a, (size_t)(dot - a));
    if (s < 0) {
        hyp_set_error("--set %s: unknown section \"%.*s\" (known: model, data, train, eval, dist)", a, (int)(dot - a), a);
        return -1;
    }
    const char *kb = dot + 1;
    const char *ke = eq;
    while (ke > kb && isspace((unsigned char)ke[-1])) ke--;
    int k = find_key(SECTIONS[s], kb, (size_t)(ke - kb));
    if (k < 0) {
        hyp_set_error("--set %s: unknown key \"%.*s\" in [%s]", a, (int)(ke - kb), kb, SECTIONS[s]);
        return -1;
    }
    char why[CONFIG_STR_MAX + 128], val[CONFIG_STR_MAX + 2];
    const char *vb = eq + 1, *ve = vb + strlen(vb);
    while (vb < ve && isspace((unsigned char)*vb)) vb++;
    while (ve > vb && isspace((unsigned char)ve[-1])) ve--;
    if ((size_t)(ve - vb) > CONFIG_STR_MAX) {
        hyp_set_error("--set %.*s...: value longer than %d characters", (int)(eq - a), a, CONFIG_STR_MAX - 1);
        return -1;
    }
    memcpy(val, vb, (size_t)(ve - vb));
    val[ve - vb] = 0;
    if (set_value(c, &KEYS[k], val, why, sizeof why)) {
        hyp_set_error("--set %s: %s", a, why);
        return -1;
    }
    return 0;
}

int config_check(const Config *c) {
    if (!c->model.init_from[0]) {
        if (c->model.bert_hidden % c->model.bert_heads) {
            hyp_set_error("config: model.bert_hidden = %d is not divisible by model.bert_heads = %d",
                          c->model.bert_hidden, c->model.bert_heads);
            return -1;
        }
        if (c->data.query_max_len > c->model.bert_max_positions || c->data.doc_max_len > c->model.bert_max_positions) {
            hyp_set_error("config: data.query_max_len = %d / data.doc_max_len = %d exceed model.bert_max_positions = %d",
                          c->data.query_max_len, c->data.doc_max_len, c->model.bert_max_positions);
            return -1;
        }
    }
    if (!strcmp(c->train.schedule, "linear") && c->train.warmup_steps > c->train.max_steps) {
        hyp_set_error("config: train.warmup_steps = %ld exceeds train.max_steps = %ld with the linear schedule",
                      c->train.warmup_steps, c->train.max_steps);
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- resolved text
// Shortest %g form that reads back to the same double.
static void fmt_double(char *buf, size_t n, double x) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

static bool needs_quotes(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1])) return true;
    return strchr(s, ';') || strchr(s, '#');
}

static void format_value(const Config *c, const Key *k, char *buf, size_t n) {
    const char *field = (const char *)c + k->off;
    switch (k->type) {
    case T_INT: snprintf(buf, n, "%d", *(const int *)field); break;
    case T_LONG: snprintf(buf, n, "%ld", *(const long *)field); break;
    case T_DOUBLE: fmt_double(buf, n, *(const double *)field); break;
    case T_BOOL: snprintf(buf, n, "%s", *(const bool *)field ? "true" : "false"); break;
    case T_ENUM: snprintf(buf, n, "%s", field); break;
    case T_STR: snprintf(buf, n, needs_quotes(field) ? "\"%s\"" : "%s", field); break;
    }
}

static int key_cmp(const void *a, const void *b) {
    const Key *x = *(const Key *const *)a, *y = *(const Key *const *)b;
    int sx = find_section(x->section, strlen(x->section)), sy = find_section(y->section, strlen(y->section));
    return sx != sy ? sx - sy : strcmp(x->key, y->key);
}

char *config_resolved_text(const Config *c) {
    const Key *order[sizeof KEYS / sizeof KEYS[0]];
    for (int i = 0; i < N_KEYS; i++) order[i] = &KEYS[i];
    qsort(order, (size_t)N_KEYS, sizeof order[0], key_cmp);
    size_t cap = 4096, len = 0;
    char *out = hyp_malloc(cap), val[CONFIG_STR_MAX + 8];
    len += (size_t)snprintf(out, cap, "# hypencoder.c %s: resolved training config (every key)\n", HYP_VERSION);
    if (c->model.init_from[0]) {   // (the path is not repeated here: it can be long)
        out = hyp_realloc(out, cap = cap + 128);
        len += (size_t)snprintf(out + len, cap - len, "# model.bert_* are the sizes of the model.init_from file\n");
    }
    const char *cur = NULL;
    for (int i = 0; i < N_KEYS; i++) {
        format_value(c, order[i], val, sizeof val);
        size_t need = strlen(order[i]->section) + strlen(order[i]->key) + strlen(val) + 16;
        if (len + need >= cap) out = hyp_realloc(out, cap = 2 * cap + need);
        if (!cur || strcmp(cur, order[i]->section)) {
            len += (size_t)snprintf(out + len, cap - len, "%s[%s]\n", cur ? "\n" : "", order[i]->section);
            cur = order[i]->section;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s = %s\n", order[i]->key, val);
    }
    return out;
}

char *config_get(const Config *c, const char *dotted) {
    const char *dot = strchr(dotted, '.');
    if (!dot) return NULL;
    int s = find_section(dotted, (size_t)(dot - dotted));
    if (s < 0) return NULL;
    int k = find_key(SECTIONS[s], dot + 1, strlen(dot + 1));
    if (k < 0) return NULL;
    char val[CONFIG_STR_MAX + 8];
    format_value(c, &KEYS[k], val, sizeof val);
    return hyp_strdup(val);
}

// ---------------------------------------------------------------- documentation
static void key_type_text(const Key *k, char *buf, size_t n) {
    switch (k->type) {
    case T_INT: case T_LONG:
        if (k->hi >= BIG) snprintf(buf, n, "integer >= %.0f", k->lo);
        else snprintf(buf, n, "integer %.0f..%.0f", k->lo, k->hi);
        break;
    case T_DOUBLE:
        if (k->hi >= 1e30) snprintf(buf, n, "number >= %g", k->lo);
        else snprintf(buf, n, "number %g..%g", k->lo, k->hi);
        break;
    case T_BOOL: snprintf(buf, n, "true|false"); break;
    case T_STR: snprintf(buf, n, "text"); break;
    case T_ENUM: snprintf(buf, n, "%s", k->choices); break;
    }
}

char *config_help_text(bool markdown) {
    size_t cap = 16384, len = 0;
    char *out = hyp_malloc(cap);
    out[0] = 0;
#define PUT(...) do { \
        int k_ = snprintf(out + len, cap - len, __VA_ARGS__); \
        while ((size_t)k_ >= cap - len) { cap *= 2; out = hyp_realloc(out, cap); k_ = snprintf(out + len, cap - len, __VA_ARGS__); } \
        len += (size_t)k_; \
    } while (0)
    if (markdown)
        PUT("# Training configuration keys\n\n"
            "Generated by `hyp train --help-config --markdown` from the key table in train/config.c\n"
            "(a test checks that this file is current). Keys go in INI sections (`[train]` then\n"
            "`lr = 2e-5`) or on the command line as `--set train.lr=2e-5`; precedence: defaults <\n"
            "config file < `--set`, applied in order. Values are parsed strictly (no trailing text).\n");
    else
        PUT("hyp train configuration keys (section.key  type  default: meaning)\n");
    for (int s = 0; s < N_SECTIONS; s++) {
        if (markdown) PUT("\n## [%s]\n\n| key | type | default | meaning |\n|---|---|---|---|\n", SECTIONS[s]);
        else PUT("\n[%s]\n", SECTIONS[s]);
        for (int i = 0; i < N_KEYS; i++) {
            const Key *k = &KEYS[i];
            if (strcmp(k->section, SECTIONS[s])) continue;
            char ty[96], name[96];
            key_type_text(k, ty, sizeof ty);
            snprintf(name, sizeof name, "%s.%s", k->section, k->key);
            const char *def = k->def[0] ? k->def : "\"\"";
            if (markdown) {   // a | inside a table cell must be escaped
                char esc[192];
                size_t e = 0;
                for (const char *c = ty; *c && e + 2 < sizeof esc; c++) {
                    if (*c == '|') esc[e++] = '\\';
                    esc[e++] = *c;
                }
                esc[e] = 0;
                PUT("| `%s` | %s | `%s` | %s |\n", name, esc, def, k->help);
            } else {
                PUT("  %-32s %-26s %-22s %s\n", name, ty, def, k->help);
            }
        }
    }
#undef PUT
    return out;
}

MatmulPrecision config_precision(const Config *c, Device d) {
    const char *p = c->train.precision;
    if (!strcmp(p, "bf16") || (!strcmp(p, "auto") && d == HYP_CUDA)) return HYP_MATMUL_BF16;
    if (!strcmp(p, "tf32")) return HYP_MATMUL_TF32;
    return HYP_MATMUL_F32;
}

BertConfig config_bert(const Config *c) {
    BertConfig b = bert_base_config();
    b.layers = c->model.bert_layers;
    b.hidden = c->model.bert_hidden;
    b.heads = c->model.bert_heads;
    b.ffn = c->model.bert_ffn;
    b.vocab_size = c->model.bert_vocab;
    b.max_positions = c->model.bert_max_positions;
    config_bert_training(c, &b);
    return b;
}

void config_bert_training(const Config *c, BertConfig *b) {
    b->dropout = c->model.freeze_encoder ? 0.0f : (float)c->model.dropout;
    b->init_std = (float)c->model.init_std;
    b->pooler = false;
    b->recompute_act = !strcmp(c->train.recompute, "act");
}

void config_take_bert_sizes(Config *c, const BertConfig *b) {
    c->model.bert_layers = b->layers;
    c->model.bert_hidden = b->hidden;
    c->model.bert_heads = b->heads;
    c->model.bert_ffn = b->ffn;
    c->model.bert_vocab = b->vocab_size;
    c->model.bert_max_positions = b->max_positions;
}
