// encode.h: texts -> vectors with a loaded model (the corpus side of search and validation).
#ifndef HYP_ENCODE_H
#define HYP_ENCODE_H
#include "model/load.h"
#include "data/tokenizer.h"

// Pooling (POOL_CLS, POOL_MEAN, POOL_MAX): model/bert.h, via model/load.h.

typedef struct EncodeOptions {
    int max_len;          // tokens incl. [CLS]/[SEP]; 0: the model's doc_max_len
    int batch;            // texts per forward pass (default 64)
    Pooling pooling;      // CLS for Hypencoder documents
    bool progress;        // docs/s and ETA on stderr
    const char *what;     // label for progress lines ("documents")
    const char *const *ids;   // (n) names of the texts for error messages, or NULL (row numbers)
    bool nonfinite_null;  // a NaN/inf output: return NULL + error (else: exit with that error)
} EncodeOptions;

// The tokenizer stored in the model file (NULL + error when it has no vocab).
Tokenizer *model_tokenizer(const Model *m);
// Document vectors (n, d) on the host (malloc'd) from the model's document encoder.
// Texts are processed longest-first in batches (less padding); the output keeps input order.
// A non-finite vector (NaN/inf: overflow, or weights that went bad) is never returned: the
// message names the text ("document 'd7' (row 6): ..."); with o->nonfinite_null the result
// is NULL + hyp_last_error(), otherwise the process exits with status 2 and that message
// (callers that predate the flag do not check for NULL).
float *encode_texts(const Model *m, const Tokenizer *tok, const char *const *texts, int n,
                    const EncodeOptions *o);

#endif
