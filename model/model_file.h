// model_file.h: our HDF5 model file (DESIGN §5), written by `hyp import` and training.
//
//   /params/<HF name>     fp32 datasets, HuggingFace parameter names
//   /config               the resolved ModelConfig as JSON text (scalar UTF-8 string)
//   /hf_config            the original HuggingFace config.json text, when there was one
//   /tokenizer/vocab      the WordPiece vocab, one token per id (string dataset), when known
//   /tokenizer            attributes lowercase (1/0), query_max_len, doc_max_len (int64)
//   /pooling              attributes mode (Pooling: 0 cls, 1 mean, 2 max) and normalize (1/0),
//                         int64; absent in older files: cls, no normalisation
//   /                     attribute format_version = 1
// Written atomically (h5_begin / h5_commit: PATH.tmp, fsync, rename): an error never
// leaves a partial file behind and never touches an existing PATH.
#ifndef HYP_MODEL_FILE_H
#define HYP_MODEL_FILE_H
#include "model/weights.h"
#include "model/hf_config.h"
#include "model/bert.h"

#define MODEL_FILE_VERSION 1

typedef struct {
    WeightSet *params;          // HF names -> fp32 tensors
    ModelConfig config;
    char *hf_config;            // original config.json text or NULL
    char **vocab;               // (n_vocab) tokens by id, or NULL
    int n_vocab;
    bool lowercase;
    int query_max_len, doc_max_len;
    Pooling pooling;            // how the document/sentence vector is made (sentence-transformers' module)
    bool normalize;             // L2-normalised vectors (sentence-transformers' Normalize module)
} ModelFile;

// 0 or -1 + error. Parameter names must be non-empty, without '/', not "." or "..".
int model_file_write(const char *path, const ModelFile *m);
ModelFile *model_file_read(const char *path);
// The /tokenizer part alone (vocab strings if present, else NULL; defaults lowercase 1,
// query 32, doc 512 when attributes are absent). 0 or -1 + error.
int model_file_read_tokenizer(const char *path, char ***vocab, int *n_vocab, bool *lowercase,
                              int *query_max_len, int *doc_max_len);
// The /pooling part alone (defaults POOL_CLS, false when absent). 0 or -1 + error
// (an unknown mode names the file).
int model_file_read_pooling(const char *path, Pooling *pooling, bool *normalize);
// Whether the file has a /pooling group (training checkpoints and older model files have none).
bool model_file_has_pooling(const char *path);
void model_file_free(ModelFile *m);

#endif
