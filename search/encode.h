// encode.h: texts -> vectors with a loaded model (the corpus side of search and validation).
#ifndef HYP_ENCODE_H
#define HYP_ENCODE_H
#include "model/load.h"
#include "data/tokenizer.h"

typedef enum { POOL_CLS = 0, POOL_MEAN = 1 } Pooling;

typedef struct EncodeOptions {
    int max_len;          // tokens incl. [CLS]/[SEP]; 0: the model's doc_max_len
    int batch;            // texts per forward pass (default 64)
    Pooling pooling;      // CLS for Hypencoder documents
    bool progress;        // docs/s and ETA on stderr
    const char *what;     // label for progress lines ("documents")
} EncodeOptions;

// The tokenizer stored in the model file (NULL + error when it has no vocab).
Tokenizer *model_tokenizer(const Model *m);
// Document vectors (n, d) on the host (malloc'd) from the model's document encoder.
// Texts are processed longest-first in batches (less padding); the output keeps input order.
float *encode_texts(const Model *m, const Tokenizer *tok, const char *const *texts, int n,
                    const EncodeOptions *o);

#endif
