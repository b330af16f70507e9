// encode.h: texts -> vectors with a loaded model (the corpus side of search and validation,
// the query side of dense models), and the model view every search path shares.
#ifndef HYP_ENCODE_H
#define HYP_ENCODE_H
#include "model/load.h"
#include "data/tokenizer.h"

// Pooling (POOL_CLS, POOL_MEAN, POOL_MAX): model/bert.h, via model/load.h.

// What a search, a score or a validation needs of a model: views of its encoders (nothing
// owned), built from a loaded Model (search_model_of) or from the trainer's in-memory model.
//   SEARCH_HYPENCODER  queries become q-nets (hyp), documents doc_bert vectors
//   SEARCH_BIENCODER   BE-Base: query_bert / doc_bert vectors, inner product
//   SEARCH_BERT        a plain imported BERT: the same encoder on both sides, inner product,
//                      or cosine when the model normalises its vectors
typedef enum { SEARCH_HYPENCODER = 0, SEARCH_BIENCODER = 1, SEARCH_BERT = 2 } SearchKind;
typedef struct SearchModel {
    SearchKind kind;
    const Hypencoder *hyp;      // SEARCH_HYPENCODER only
    const Bert *query_bert;     // the query side's BERT (a Hypencoder's too)
    const Bert *doc_bert;       // the document side's BERT
    Pooling pooling;            // dense vectors, and a Hypencoder's documents
    bool normalize;             // dense vectors L2-normalised (scores are cosines)
    Device device;              // where the weights live: encoders run there
    int query_max_len, doc_max_len;   // tokens incl. [CLS]/[SEP]; 0: 64 / the BERT's positions
    const char *label;          // names the model in messages (its path)
} SearchModel;

typedef enum { SIDE_QUERY = 0, SIDE_DOCUMENT = 1 } EncodeSide;

// The one place that decides a loaded model's pooling: the model file's (Model.pooling,
// Model.normalize; sentence-transformers' modules when imported from one).
Pooling search_model_pooling(const Model *m);
bool search_model_normalize(const Model *m);
SearchModel search_model_of(const Model *m);
// Views of in-memory models (the trainer's): CLS pooling, no normalisation, label "(model)",
// lengths 0 (set query_max_len / doc_max_len and label as needed).
SearchModel search_model_hypencoder(const Hypencoder *h, Device dev);
SearchModel search_model_biencoder(const BiEncoder *be, Device dev);
// "Hypencoder", "BE-Base bi-encoder", "plain BERT": for messages.
const char *search_kind_name(SearchKind k);
const Bert *search_model_bert(const SearchModel *sm, EncodeSide side);
int search_model_dim(const SearchModel *sm);   // document vector width

typedef struct EncodeOptions {
    int max_len;          // tokens incl. [CLS]/[SEP]; 0: the model's length for the side
    int batch;            // texts per forward pass (default 64)
    Pooling pooling;      // encode_texts only (encode_side uses the SearchModel's)
    bool progress;        // texts/s and ETA on stderr
    const char *what;     // label for progress lines ("documents", "queries")
    const char *const *ids;   // (n) names of the texts for error messages, or NULL (row numbers)
    bool nonfinite_null;  // a NaN/inf output: return NULL + error (else: exit with that error)
} EncodeOptions;

// The tokenizer stored in the model file (NULL + error when it has no vocab).
Tokenizer *model_tokenizer(const Model *m);
// Vectors (n, d) on the host (malloc'd) from one side's encoder: pooled as sm->pooling,
// L2-normalised when sm->normalize (SIDE_QUERY of a Hypencoder is an error: its queries are
// q-nets). Texts are processed longest-first in batches (less padding); the output keeps
// input order. A non-finite vector (NaN/inf: overflow, or weights that went bad) is never
// returned: the message names the text ("document 'd7' (row 6): ..."); with
// o->nonfinite_null the result is NULL + hyp_last_error(), otherwise the process exits with
// status 2 and that message (callers that predate the flag do not check for NULL).
float *encode_side(const SearchModel *sm, EncodeSide side, const Tokenizer *tok, const char *const *texts, int n,
                   const EncodeOptions *o);
// Document vectors of a loaded model with o->pooling and no normalisation.
float *encode_texts(const Model *m, const Tokenizer *tok, const char *const *texts, int n, const EncodeOptions *o);

#endif
