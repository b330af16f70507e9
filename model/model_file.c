// model_file.c: write/read the HDF5 model file (see model_file.h).
#include "model/model_file.h"
#include "model/h5_strings.h"
#include "autograd/h5io.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool good_name(const char *n) {
    return *n && !strchr(n, '/') && strcmp(n, ".") && strcmp(n, "..");
}

int model_file_write(const char *path, const ModelFile *m) {
    for (int i = 0; i < m->params->n; i++)
        if (!good_name(m->params->v[i].name)) { hyp_set_error("%s: %s: parameter name unusable as an HDF5 dataset name", path, m->params->v[i].name); return -1; }
    char *cfg = model_config_to_json(&m->config);
    if (!cfg) return -1;
    H5File *f = h5_begin(path);
    if (!f) { free(cfg); return -1; }
    char ds[1200];
    for (int i = 0; i < m->params->n; i++) {
        const NamedTensor *t = &m->params->v[i];
        int one = 1;
        snprintf(ds, sizeof ds, "/params/%s", t->name);
        if (h5_write_f32(f, ds, t->data, t->ndim ? t->ndim : 1, t->ndim ? t->shape : &one)) break;
    }
    h5_write_string(f, "/config", cfg);
    free(cfg);
    if (m->hf_config) h5_write_string(f, "/hf_config", m->hf_config);
    if (m->vocab) h5_write_strings(f, "/tokenizer/vocab", (const char *const *)m->vocab, (size_t)m->n_vocab);
    h5_write_attr_i64(f, "/tokenizer", "lowercase", m->lowercase);
    h5_write_attr_i64(f, "/tokenizer", "query_max_len", m->query_max_len);
    h5_write_attr_i64(f, "/tokenizer", "doc_max_len", m->doc_max_len);
    h5_write_attr_i64(f, "/pooling", "mode", m->pooling);
    h5_write_attr_i64(f, "/pooling", "normalize", m->normalize);
    h5_write_attr_i64(f, "/", "format_version", MODEL_FILE_VERSION);
    return h5_commit(f);
}

void model_file_free(ModelFile *m) {
    if (!m) return;
    weights_free(m->params);
    free(m->hf_config);
    h5s_free_strings(m->vocab, (size_t)m->n_vocab);
    free(m);
}

ModelFile *model_file_read(const char *path) {
    H5File *f = h5_open(path);
    if (!f) return NULL;
    ModelFile *m = hyp_calloc(1, sizeof *m);
    m->params = weights_new();
    char **names = NULL;
    int n = -1;
    char *cfg = NULL;
    if (!h5_exists(f, "/params") || !h5_exists(f, "/config")) {
        hyp_set_error("%s: not a model file (no /params or /config; made by `hyp import` or training?)", path);
        goto fail;
    }
    // HDF5 lists names alphabetically (the writer's order is not kept): deterministic.
    n = h5_list(f, "/params", &names);
    if (n < 0) goto fail;
    for (int i = 0; i < n; i++) {
        char ds[1200];
        snprintf(ds, sizeof ds, "/params/%s", names[i]);
        int nd, sh[HYP_MAX_DIMS];
        float *d = h5_read_f32(f, ds, &nd, sh);
        if (!d) goto fail;
        size_t numel = 1;
        for (int k = 0; k < nd; k++) numel *= (size_t)sh[k];
        float *buf = weights_alloc(numel);
        memcpy(buf, d, numel * sizeof(float));
        free(d);
        weights_add(m->params, names[i], WDT_F32, nd, sh, buf);
    }
    h5_close(f);
    f = NULL;
    if (!(cfg = h5s_read_string(path, "/config")) || model_config_from_json(cfg, path, &m->config)) goto fail;
    {
        H5File *g = h5_open(path);
        bool has_hf = g && h5_exists(g, "/hf_config");
        h5_close(g);
        if (has_hf && !(m->hf_config = h5s_read_string(path, "/hf_config"))) goto fail;
    }
    if (model_file_read_tokenizer(path, &m->vocab, &m->n_vocab, &m->lowercase, &m->query_max_len, &m->doc_max_len))
        goto fail;
    if (model_file_read_pooling(path, &m->pooling, &m->normalize)) goto fail;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(cfg);
    return m;
fail:
    if (f) h5_close(f);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(cfg);
    model_file_free(m);
    return NULL;
}

int model_file_read_tokenizer(const char *path, char ***vocab, int *n_vocab, bool *lowercase,
                              int *query_max_len, int *doc_max_len) {
    H5File *g = h5_open(path);
    if (!g) return -1;
    bool has_vocab = h5_exists(g, "/tokenizer/vocab");
    h5_close(g);
    *vocab = NULL;
    *n_vocab = 0;
    if (has_vocab) {
        size_t nv;
        if (!(*vocab = h5s_read_strings(path, "/tokenizer/vocab", &nv))) return -1;
        *n_vocab = (int)nv;
    }
    int64_t v;
    int r;
    *lowercase = (r = h5s_read_attr_int(path, "/tokenizer", "lowercase", &v)) == 0 ? v != 0 : true;
    if (r < 0) return -1;
    *query_max_len = (r = h5s_read_attr_int(path, "/tokenizer", "query_max_len", &v)) == 0 ? (int)v : 32;
    if (r < 0) return -1;
    *doc_max_len = (r = h5s_read_attr_int(path, "/tokenizer", "doc_max_len", &v)) == 0 ? (int)v : 512;
    return r < 0 ? -1 : 0;
}

bool model_file_has_pooling(const char *path) {
    int64_t v;
    return h5s_read_attr_int(path, "/pooling", "mode", &v) == 0;
}

int model_file_read_pooling(const char *path, Pooling *pooling, bool *normalize) {
    int64_t v;
    int r = h5s_read_attr_int(path, "/pooling", "mode", &v);
    if (r < 0) return -1;
    if (r == 0 && (v < 0 || v >= POOL_COUNT)) {
        hyp_set_error("%s: /pooling: mode %lld is not a pooling (0 cls, 1 mean, 2 max)", path, (long long)v);
        return -1;
    }
    *pooling = r == 0 ? (Pooling)v : POOL_CLS;
    if ((r = h5s_read_attr_int(path, "/pooling", "normalize", &v)) < 0) return -1;
    *normalize = r == 0 && v != 0;
    return 0;
}
