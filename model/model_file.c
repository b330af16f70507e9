// model_file.c: write/read the HDF5 model file (see model_file.h).
#include "model/model_file.h"
#include "autograd/h5io.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool name_ok(const char *path, const char *n) {
    if (n && *n && !strchr(n, '/') && strcmp(n, ".") && strcmp(n, "..") && strlen(n) <= 900) return true;
    hyp_set_error("%s: parameter name \"%s\" cannot be an HDF5 dataset name", path, n ? n : "(null)");
    return false;
}

int model_file_put_params(H5File *f, const char *path, const char *group, const ParamView *v, int n) {
    for (int i = 0; i < n; i++)
        if (!name_ok(path, v[i].name)) return -1;
    char ds[1200];
    for (int i = 0; i < n; i++) {
        int one = 1;
        snprintf(ds, sizeof ds, "%s/%s", group, v[i].name);
        if (h5_write_f32(f, ds, v[i].data, v[i].ndim ? v[i].ndim : 1, v[i].ndim ? v[i].shape : &one)) return -1;
    }
    return 0;
}

int model_file_get_params(H5File *f, const char *group, const ParamView *v, int n) {
    char ds[1200];
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        for (int k = 0; k < v[i].ndim; k++) numel *= (size_t)v[i].shape[k];
        snprintf(ds, sizeof ds, "%s/%s", group, v[i].name);
        if (h5_read_f32_into(f, ds, v[i].data, numel)) return -1;
    }
    return 0;
}

int model_file_put_meta(H5File *f, const ModelMeta *m, bool as_model_file) {
    char *cfg = model_config_to_json(m->config);
    if (!cfg) return -1;
    int rc = h5_write_string(f, as_model_file ? "/config" : "/model_config", cfg);
    free(cfg);
    if (m->hf_config) rc |= h5_write_string(f, "/hf_config", m->hf_config);
    if (m->vocab) rc |= h5_write_strings(f, "/tokenizer/vocab", m->vocab, (size_t)m->n_vocab);
    rc |= h5_write_attr_i64(f, "/tokenizer", "lowercase", m->lowercase);
    rc |= h5_write_attr_i64(f, "/tokenizer", "query_max_len", m->query_max_len);
    rc |= h5_write_attr_i64(f, "/tokenizer", "doc_max_len", m->doc_max_len);
    rc |= h5_write_attr_i64(f, "/pooling", "mode", m->pooling);
    rc |= h5_write_attr_i64(f, "/pooling", "normalize", m->normalize);
    if (as_model_file) rc |= h5_write_attr_i64(f, "/", "format_version", MODEL_FILE_VERSION);
    return rc ? -1 : 0;
}

int model_file_write(const char *path, const ModelFile *m) {
    int n = m->params->n;
    ParamView *v = hyp_calloc(n ? (size_t)n : 1, sizeof *v);
    for (int i = 0; i < n; i++) {
        const NamedTensor *t = &m->params->v[i];
        v[i] = (ParamView){.name = t->name, .ndim = t->ndim, .shape = t->shape, .data = t->data};
    }
    ModelMeta meta = {.config = &m->config, .hf_config = m->hf_config, .vocab = (const char *const *)m->vocab,
                      .n_vocab = m->n_vocab, .lowercase = m->lowercase, .query_max_len = m->query_max_len,
                      .doc_max_len = m->doc_max_len, .pooling = m->pooling, .normalize = m->normalize};
    H5File *f = h5_begin(path);
    int rc = -1;
    if (f && (model_file_put_params(f, path, "/params", v, n) || model_file_put_meta(f, &meta, true))) h5_abort(f);
    else if (f) rc = h5_commit(f);
    free(v);
    return rc;
}

void model_file_free(ModelFile *m) {
    if (!m) return;
    weights_free(m->params);
    free(m->hf_config);
    h5_free_strings(m->vocab, (size_t)m->n_vocab);
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
    if (!(cfg = h5_read_string(f, "/config")) || model_config_from_json(cfg, path, &m->config)) goto fail;
    if (h5_exists(f, "/hf_config") && !(m->hf_config = h5_read_string(f, "/hf_config"))) goto fail;
    h5_close(f);
    f = NULL;
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

// An integer attribute: 1 and *v when present, 0 when absent, -1 on a read error.
static int attr_int(H5File *f, const char *obj, const char *attr, int64_t *v) {
    if (!h5_has_attr(f, obj, attr)) return 0;
    return h5_read_attr_i64(f, obj, attr, v) ? -1 : 1;
}

int model_file_read_tokenizer(const char *path, char ***vocab, int *n_vocab, bool *lowercase,
                              int *query_max_len, int *doc_max_len) {
    H5File *f = h5_open(path);
    if (!f) return -1;
    *vocab = NULL;
    *n_vocab = 0;
    int rc = -1;
    if (h5_exists(f, "/tokenizer/vocab")) {
        size_t nv;
        if (!(*vocab = h5_read_strings(f, "/tokenizer/vocab", &nv))) goto out;
        *n_vocab = (int)nv;
    }
    int64_t v;
    int r;
    if ((r = attr_int(f, "/tokenizer", "lowercase", &v)) < 0) goto out;
    *lowercase = r ? v != 0 : true;
    if ((r = attr_int(f, "/tokenizer", "query_max_len", &v)) < 0) goto out;
    *query_max_len = r ? (int)v : 32;
    if ((r = attr_int(f, "/tokenizer", "doc_max_len", &v)) < 0) goto out;
    *doc_max_len = r ? (int)v : 512;
    rc = 0;
out:
    h5_close(f);
    return rc;
}

bool model_file_has_pooling(const char *path) {
    H5File *f = h5_open(path);
    if (!f) return false;
    bool has = h5_has_attr(f, "/pooling", "mode");
    h5_close(f);
    return has;
}

int model_file_read_pooling(const char *path, Pooling *pooling, bool *normalize) {
    H5File *f = h5_open(path);
    if (!f) return -1;
    int64_t v = 0, nv = 0;
    int r = attr_int(f, "/pooling", "mode", &v), rn = r < 0 ? -1 : attr_int(f, "/pooling", "normalize", &nv);
    h5_close(f);
    if (r < 0 || rn < 0) return -1;
    if (r && (v < 0 || v >= POOL_COUNT)) {
        hyp_set_error("%s: /pooling: mode %lld is not a pooling (0 cls, 1 mean, 2 max)", path, (long long)v);
        return -1;
    }
    *pooling = r ? (Pooling)v : POOL_CLS;
    *normalize = rn && nv != 0;
    return 0;
}
