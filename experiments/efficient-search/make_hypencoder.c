// make_hypencoder: a Hypencoder model file around a pretrained BERT model file (`hyp import`)
// with a fixed, randomly initialised hyperhead (hypencoder_init, the reference's init
// distributions). For search experiments only: the q-nets are random functions of the query,
// so retrieval quality (nDCG) is not meaningful, but the search problem (a non-linear scorer
// over real document embeddings) is.
//   make_hypencoder --bert BERT.h5 --out HYP.h5 [--layers 6] [--seed 1]
#include "model/model_file.h"
#include "model/load.h"
#include "model/hypencoder.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *bert = NULL, *out = NULL;
    int layers = 6;
    uint64_t seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--bert")) bert = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--layers")) layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else { fprintf(stderr, "make_hypencoder: unknown option %s\n", argv[i]); return 1; }
    }
    if (!bert || !out || layers < 1 || layers > QNET_MAX_LAYERS) {
        fprintf(stderr, "usage: make_hypencoder --bert BERT.h5 --out HYP.h5 [--layers 6] [--seed 1]\n");
        return 1;
    }
    ModelFile *mf = model_file_read(bert);
    if (!mf) { fprintf(stderr, "make_hypencoder: %s\n", hyp_last_error()); return 1; }
    if (mf->config.kind != MODEL_BERT) { fprintf(stderr, "make_hypencoder: %s is not a plain BERT model file\n", bert); return 1; }
    ModelConfig *mc = &mf->config;
    int d = mc->bert.hidden;
    mc->kind = MODEL_HYPENCODER;
    mc->n_dims = layers + 2;
    for (int i = 0; i <= layers; i++) mc->vector_dimensions[i] = d;
    mc->vector_dimensions[layers + 1] = 1;
    snprintf(mc->activation_type, sizeof mc->activation_type, "relu");
    snprintf(mc->passage_pooling, sizeof mc->passage_pooling, "cls");
    snprintf(mc->bert_prefix, sizeof mc->bert_prefix, "query_encoder.transformer.");
    mc->shared_encoder = true;
    WeightSet *ws = mf->params;
    int n0 = ws->n;
    char **names = malloc(sizeof(char *) * n0);
    for (int i = 0; i < n0; i++) names[i] = strdup(ws->v[i].name);
    for (int i = 0; i < n0; i++) {
        char nn[512];
        snprintf(nn, sizeof nn, "query_encoder.transformer.%s", names[i]);
        if (!weights_rename(ws, names[i], nn)) { fprintf(stderr, "make_hypencoder: %s\n", hyp_last_error()); return 1; }
        free(names[i]);
    }
    free(names);
    HypencoderConfig hc;
    if (model_hypencoder_config(mc, &hc, bert)) { fprintf(stderr, "make_hypencoder: %s\n", hyp_last_error()); return 1; }
    ParamSet *ps = paramset_new(HYP_CPU);
    Hypencoder m;
    hypencoder_register(&m, ps, &hc);
    paramset_finalize(ps);
    hypencoder_init(&m, seed);
    int added = 0;
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->params[i];
        if (!strncmp(t->name, "query_encoder.transformer.", 26)) continue;
        size_t n = tensor_numel(t);
        float *buf = weights_alloc(n);
        memcpy(buf, t->data, n * sizeof(float));
        if (!weights_add(ws, t->name, WDT_F32, t->ndim, t->shape, buf)) { fprintf(stderr, "make_hypencoder: %s\n", hyp_last_error()); return 1; }
        added++;
    }
    free(mf->hf_config);
    mf->hf_config = NULL;
    if (model_file_write(out, mf)) { fprintf(stderr, "make_hypencoder: %s\n", hyp_last_error()); return 1; }
    fprintf(stderr, "make_hypencoder: %s: BERT from %s (hidden %d), %d-layer q-net, %d hyperhead tensors (seed %llu)\n", out,
            bert, d, layers, added, (unsigned long long)seed);
    hypencoder_free(&m);
    paramset_free(ps);
    model_file_free(mf);
    // Check that it loads as a Hypencoder.
    Model *chk = model_load(out, HYP_CPU);
    if (!chk) { fprintf(stderr, "make_hypencoder: written file does not load: %s\n", hyp_last_error()); return 1; }
    model_free(chk);
    return 0;
}
