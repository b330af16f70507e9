// config.h: the training configuration: INI sections [model] [data] [train] [eval] [dist]
// (DESIGN §5), a typed registry of every known key with its default, `--set
// section.key=value` overrides, and the resolved config text stored in checkpoints.
//
// Order of precedence: defaults < config file < --set overrides (applied in order).
// Resume: config_init, config_parse_text(checkpoint's /config), then the --set overrides.
//
// INI syntax (inih's dialect): `[section]`; `key = value`; whole-line comments start with
// ';' or '#'; an inline comment starts at ';' or '#' preceded by whitespace; whitespace
// around keys and values is trimmed; a value in double quotes is taken literally (e.g.
// `init_from = ""`, or a path containing " ;"). Unknown sections or keys, a key given twice
// in one file, or a bad value is an error "FILE:LINE: ..." (or "--set ARG: ...").
#ifndef HYP_CONFIG_H
#define HYP_CONFIG_H
#include "autograd/util.h"
#include "autograd/tensor.h"
#include "model/bert.h"

#define CONFIG_STR_MAX 1024   // longest string value (paths), including the NUL

typedef struct Config {
    struct {
        char kind[16];               // hypencoder | biencoder
        int qnet_layers;             // 6: q-net hidden layers (paper: 2, 4, 6, 8)
        bool shared_encoder;         // true: one BERT for queries and documents
        char init_from[CONFIG_STR_MAX];  // "" = random init from the bert_* sizes; else a model file
        int bert_layers, bert_hidden, bert_heads, bert_ffn, bert_vocab, bert_max_positions;
        double dropout;              // 0.1: BERT hidden and attention dropout
        double init_std;             // 0.02: BERT init std when not init_from (HF initializer_range)
        bool freeze_encoder;         // false; true: BERT weights fixed (the authors' freeze_transformer): no BERT
                                     // backward or update, document vectors computed once and cached
        char pooling[8];             // auto (init_from's, else cls) | cls (the reference's) | mean: document
                                     // vectors (and BE-Base's queries); build_model resolves auto
    } model;
    struct {
        char train[CONFIG_STR_MAX];  // pre-tokenized shards (hyp pretokenize) or the authors' JSONL
        char vocab[CONFIG_STR_MAX];  // WordPiece vocab.txt ("" = the init_from model file's)
        char lowercase[8];           // auto (init_from's, else true) | true | false: BERT's do_lower_case;
                                     // build_model resolves auto
        int num_negatives;           // 7 (reference configs)
        int query_max_len;           // 32
        int doc_max_len;             // 196
    } data;
    struct {
        int batch_size;              // 64 queries per rank
        double lr;                   // 2e-5
        double head_lr;              // 0: lr; else the peak lr of the hyperhead (and q-net), same schedule shape
        long warmup_steps;           // 6000
        char schedule[32];           // constant_with_warmup | linear | constant
        char precision[8];           // auto (bf16 on CUDA, fp32 on the CPU) | fp32 | tf32 | bf16
        char recompute[8];           // none | act (the FFN activation recomputed in backward)
        long max_steps;              // 1000000
        long save_steps;             // 2500 (0: only at the end)
        int keep_last;               // 3 checkpoints kept besides best.h5 (0: keep all)
        long seed;                   // 42
        double weight_decay;         // 0
        double adam_beta1, adam_beta2, adam_eps;   // 0.9, 0.999, 1e-8
        double max_grad_norm;        // 1.0 (0: no clipping)
        int grad_accum;              // 1
        char on_nonfinite[8];        // stop | skip
        char on_save_error[12];      // stop | continue (a failed checkpoint write: stop, or retry at the next save)
        bool flush_denormals;        // true: CPU threads flush denormals to 0 (hyp_cpu_flush_denormals)
        long log_steps;              // 10
        double margin_mse_weight;    // 1
        double ce_weight;            // 1
    } train;
    struct {
        long every;                  // 50000 (0: no validation)
        long select_within;          // 800000: best.h5 only from steps <= this (0: no limit)
        char corpus[CONFIG_STR_MAX], queries[CONFIG_STR_MAX], qrels[CONFIG_STR_MAX];
        char metric[32];             // Rprec (selection metric, ir_measures name)
        int k;                       // 1000: run depth
        char device[8];              // auto (the training device) | cpu | cuda: where validation searches
    } eval;
    struct {
        char backend[8];             // auto (mpirun -> mpi, torchrun env -> tcp, GPU -> nccl) | none | mpi | tcp | nccl
        bool cross_device_negatives; // false (as released: negatives per GPU); true: all-gather positives
        double bucket_mb;            // 25: gradient all-reduce bucket size (MB), started during backward
    } dist;
} Config;

// Every key at its default.
void config_init(Config *c);
// Apply an INI file / INI text on top of c. 0, or -1 with "label:line: reason" in
// hyp_last_error() (c may then be partly updated).
int config_parse_file(Config *c, const char *path);
int config_parse_text(Config *c, const char *text, const char *label);
// One override "section.key=value" (the argument of --set). 0 or -1 + "--set ARG: reason".
int config_set(Config *c, const char *assignment);
// Cross-key checks after all sources are applied (e.g. lengths vs BERT positions).
// 0 or -1 + error.
int config_check(const Config *c);
// The full resolved INI: every key, sections in the order model, data, train, eval, dist,
// keys sorted within each; parses back to the same Config. malloc'd.
char *config_resolved_text(const Config *c);
// The value of "section.key" as the resolved text writes it (malloc'd), or NULL if unknown.
char *config_get(const Config *c, const char *dotted_key);
// Every key with its type, default, range and meaning (malloc'd): plain text for
// `hyp train --help-config`, or Markdown (docs/config.md is exactly that text).
char *config_help_text(bool markdown);
// train.precision for a run on device d ("auto": bf16 on CUDA, fp32 on the CPU).
MatmulPrecision config_precision(const Config *c, Device d);

// The [model] section's BERT: bert_base_config() with the bert_* sizes, then
// config_bert_training. The one INI -> BertConfig conversion (the trainer, the planner).
BertConfig config_bert(const Config *c);
// What training sets on any BERT, random or from model.init_from: dropout (0 when
// model.freeze_encoder: a frozen BERT is a fixed function), init_std, no pooler.
void config_bert_training(const Config *c, BertConfig *b);
// The other way: the bert_* keys state b's sizes (an init file decides them; the resolved
// config then says so).
void config_take_bert_sizes(Config *c, const BertConfig *b);

#endif
