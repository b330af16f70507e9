// synthetic.h: the embedded default task of the main job (`hyp demo`): a small retrieval
// problem whose relevance no inner product can express (paper §3, the Radon argument).
//
// Documents are sets of `doc_attrs` distinct attribute words out of `n_attr`. A query
// names two attributes, "a xor b", and a document is relevant iff it contains exactly one
// of them. For a fixed query, any linear score w.x over attribute indicators that ranks
// "a only" and "b only" documents above "neither" must also rank "both" above them (XOR
// is not linearly separable), so a bi-encoder whose document vectors are narrower than
// the number of attribute pairs cannot rank every query well; a q-net with one hidden
// layer can. Validation and test queries use attribute pairs that no training row uses.
//
// Training rows hold a positive, n_trap "both" negatives and otherwise "neither" ones.
// Fewer traps than "neither" negatives matter for a from-scratch model: with as many of
// each, "a or b" earns nothing on average (the first-order signal cancels) and the model
// drifts to constant scores (the q-net's last ReLU layer dies) instead of learning XOR.
#ifndef HYP_SYNTHETIC_H
#define HYP_SYNTHETIC_H
#include "autograd/util.h"

typedef struct SynthOptions {
    uint64_t seed;
    int n_attr;          // attribute words (default 24)
    int doc_attrs;       // attributes per document (default 6)
    int n_docs;          // evaluation corpus size (default 2000)
    int n_train;         // training rows (queries with items; default 4000)
    int n_items;         // items per training row: 1 positive + negatives (default 16)
    int n_trap;          // of the negatives, documents with both attributes (default 3); the
                         // others have neither
    int n_val, n_test;   // validation / test queries: disjoint attribute pairs that no
                         // training row uses (40 / 60)
} SynthOptions;
SynthOptions synth_default(void);

// Writes into dir (created if needed): vocab.txt, train.jsonl (the authors' training format
// with teacher scores), corpus.tsv, val_queries.tsv, val_qrels.txt, test_queries.tsv,
// test_qrels.txt. 0 or -1 + error.
int synth_write(const char *dir, const SynthOptions *o);

#endif
