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
#include "autograd/h5io.h"

#define MODEL_FILE_VERSION 1

// What a model file holds besides the parameters. Training writes it into checkpoints
// (under /model_config) and best.h5 through the same writer as `hyp import`.
typedef struct ModelMeta {
    const ModelConfig *config;    // stored as JSON (model_load rebuilds the model from it)
    const char *hf_config;        // the original config.json text, or NULL
    const char *const *vocab;     // (n_vocab) WordPiece tokens by id, or NULL
    int n_vocab;
    bool lowercase;
    int query_max_len, doc_max_len;
    Pooling pooling;              // stored as /pooling (model_load's encoders pool so)
    bool normalize;
} ModelMeta;

// One fp32 parameter as stored: GROUP/<name>, the given shape (ndim 0 is stored as (1)).
typedef struct ParamView {
    const char *name;
    int ndim;
    const int *shape;
    float *data;                  // host memory: read from when writing, filled when reading
} ParamView;

// The one parameter writer and reader (model files and checkpoints). put: every name is
// checked first (non-empty, no '/', not "." or "..", at most 900 bytes; an error names
// PATH and the parameter), then GROUP/<name> is written for each. get: fills each view's
// data from GROUP/<name> (the sizes must match). 0 or -1 + error.
int model_file_put_params(H5File *f, const char *path, const char *group, const ParamView *v, int n);
int model_file_get_params(H5File *f, const char *group, const ParamView *v, int n);
// The metadata: with as_model_file, /config (JSON) and the format_version attribute, as a
// model file has them; otherwise the config goes to /model_config (a checkpoint's /config
// is the training INI). Then /hf_config, /tokenizer and /pooling. 0 or -1 + error.
int model_file_put_meta(H5File *f, const ModelMeta *m, bool as_model_file);

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
