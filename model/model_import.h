// model_import.h: `hyp import`: HuggingFace / PyTorch weights + config + vocab -> model file.
#ifndef HYP_MODEL_IMPORT_H
#define HYP_MODEL_IMPORT_H
#include "model/model_file.h"
#include <stdio.h>

enum { IMPORT_AUTO = 0, IMPORT_OFF = 1, IMPORT_ON = 2 };

typedef struct {
    const char *from;           // a weights file (safetensors or torch.save) or an HF model directory
    const char *out;            // model file to write
    const char *config;         // config.json (default: <dir>/config.json; optional for a file)
    const char *bert_config;    // BERT config.json of a Hypencoder's backbone when its name is unknown
    const char *vocab;          // vocab.txt (default: <dir>/vocab.txt or next to the weights file)
    bool allow_unknown;         // drop unknown tensors (with a note) instead of failing
    int query_max_len, doc_max_len;   // 0: import_default_query_len() and min(512, max_position_embeddings)
    int lowercase;              // -1: tokenizer_config.json do_lower_case, else from the name
    const char *pooling;        // NULL: the sentence-transformers Pooling module's (else CLS); "cls", "mean", "max"
    int normalize;              // IMPORT_AUTO: a Normalize module in modules.json; IMPORT_OFF, IMPORT_ON
    FILE *notes;                // progress/notes (stderr), NULL for quiet
} ImportOptions;

// 0 on success; -1 with "file: key: reason" in hyp_last_error() and no output file.
// A sentence-transformers directory (modules.json) records its Pooling module's mode (cls,
// mean, max), its Normalize module and sentence_bert_config.json's max_seq_length (both max
// lengths unless given) in the model file; other modules (Dense, ...) are refused.
int model_import(const ImportOptions *o);

// What a sentence-transformers directory says (read by model_import).
typedef struct {
    bool found;             // modules.json present
    Pooling pooling;        // the Pooling module's mode (CLS without one)
    bool normalize;         // a Normalize module
    int max_seq_length;     // sentence_bert_config.json (0: absent)
    char transformer_path[256];   // the Transformer module's folder ("" = the directory itself)
} STModules;
// 0 (found = false without modules.json) or -1 + "file: reason".
int st_modules_read(const char *dir, STModules *out);
// The query max length an import records when --query-max-len is not given: 64 for a
// released Hypencoder (the authors' retrieve.py / approx_retrieve.py default, so scores of
// long queries match theirs), 32 otherwise (the training configs'), at most max_positions.
int import_default_query_len(ModelKind kind, int max_positions);

// The checking core, also used on its own: normalise names in place (strip "bert.", drop
// "cls.*" heads and position_ids/token_type_ids buffers, LayerNorm gamma/beta -> weight/bias,
// drop passage_encoder.transformer.* aliases of a shared Hypencoder encoder), fill config
// fields that only the weights know (a FILE imported without config.json, a Hypencoder whose
// backbone name is unknown), then require every key of the architecture with the config's
// shapes and refuse unknown keys unless allow_unknown. `have_config`: *c came from a
// config.json (else the kind and sizes are inferred from the weights).
int model_weights_normalize(WeightSet *ws, ModelConfig *c, bool have_config, bool allow_unknown,
                            const char *label, FILE *notes);

// Read a vocab.txt (one token per line, id = line number). NULL + error.
char **vocab_read(const char *path, int *n);
// The WordPiece vocab of an HF tokenizer.json (used when a model directory has no vocab.txt);
// *lowercase gets its BertNormalizer flag or -1. NULL + error.
char **vocab_from_tokenizer_json(const char *path, int *n, int *lowercase);

#endif
