// checkpoint.c: HDF5 training checkpoints, best.h5 and the run folder (checkpoint.h).
#include "train/checkpoint.h"
#include "autograd/atomic.h"
#include "autograd/h5io.h"
#include "kernels/kernels.h"
#include "model/model_file.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_FORMAT 1

CkptState ckpt_state_empty(void) {
    return (CkptState){.best_metric = NAN, .best_step = -1};
}
void ckpt_state_free(CkptState *st) {
    if (!st) return;
    free(st->cursor);
    st->cursor = NULL;
    st->n_cursor = 0;
}

// ---------------------------------------------------------------- small helpers
static char *str_cat(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = hyp_malloc(n);
    snprintf(s, n, "%s%s", a, b);
    return s;
}
static const char *base_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}
static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = hyp_malloc(n);
    snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static const char *shape_s(int nd, const int *sh, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%d", i ? ", " : "", sh[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

static size_t param_offset(const ParamSet *ps, int i) {
    return (size_t)(tensor_f32(ps->params[i]) - ps->data);
}

// A device buffer of n floats as host memory: the buffer itself on the CPU, else a copy.
static float *host_view(Device dev, const float *d, size_t n) {
    if (dev == HYP_CPU) return (float *)d;
    float *h = hyp_malloc((n ? n : 1) * sizeof(float));
    const Backend *be = backend_get(dev);
    be->synchronize();
    be->copy(h, d, n * sizeof(float), COPY_D2H);
    return h;
}
static void host_view_free(Device dev, float *h) {
    if (dev != HYP_CPU) free(h);
}

static int write_state(H5File *f, const CkptState *st, int64_t optim_step) {
    h5_write_attr_i64(f, "/state", "format", CKPT_FORMAT);
    h5_write_attr_i64(f, "/state", "step", st->step);
    h5_write_attr_i64(f, "/state", "optim_step", optim_step);
    h5_write_attr_i64(f, "/state", "sched_step", st->sched_step);
    h5_write_attr_u64(f, "/state", "seed", st->seed);
    h5_write_attr_u64(f, "/state", "rng_offset", st->rng_offset);
    h5_write_attr_f64(f, "/state", "lr", st->lr);
    h5_write_attr_f64(f, "/state", "best_metric", st->best_metric);
    h5_write_attr_i64(f, "/state", "best_step", st->best_step);
    return h5_write_i64(f, "/state/cursor", st->cursor, 1, (int[]){st->n_cursor > 0 ? st->n_cursor : 0});
}

static const char *const STATE_I64[] = {"format", "step", "optim_step", "sched_step", "best_step"};
static const char *const STATE_U64[] = {"seed", "rng_offset"};
static const char *const STATE_F64[] = {"lr", "best_metric"};

// Read /state into st (cursor malloc'd). check_only: verify presence only.
static int read_state(const char *path, CkptState *st, bool check_only) {
    H5File *f = h5_open(path);
    if (!f) { hyp_set_error("%s: cannot open as HDF5", path); return -1; }
    int rc = -1;
    int64_t i64[5], *cur = NULL;
    uint64_t u64[2];
    double f64[2];
    int sh[HYP_MAX_DIMS], nd;
    if (!h5_exists(f, "/state")) { hyp_set_error("%s: /state: missing (not a training checkpoint)", path); goto out; }
    for (int i = 0; i < 5; i++)
        if (h5_read_attr_i64(f, "/state", STATE_I64[i], &i64[i])) {
            hyp_set_error("%s: /state: attribute %s missing or unreadable", path, STATE_I64[i]);
            goto out;
        }
    for (int i = 0; i < 2; i++)
        if (h5_read_attr_u64(f, "/state", STATE_U64[i], &u64[i])) {
            hyp_set_error("%s: /state: attribute %s missing or unreadable", path, STATE_U64[i]);
            goto out;
        }
    for (int i = 0; i < 2; i++)
        if (h5_read_attr_f64(f, "/state", STATE_F64[i], &f64[i])) {
            hyp_set_error("%s: /state: attribute %s missing or unreadable", path, STATE_F64[i]);
            goto out;
        }
    if (i64[0] != CKPT_FORMAT) {
        hyp_set_error("%s: /state: format %lld, this build reads format %d", path, (long long)i64[0], CKPT_FORMAT);
        goto out;
    }
    if (!h5_exists(f, "/state/cursor")) { hyp_set_error("%s: /state/cursor: missing", path); goto out; }
    nd = h5_shape(f, "/state/cursor", sh);
    if (nd != 1 || sh[0] > (1 << 20)) {
        hyp_set_error("%s: /state/cursor: expected a 1-D int64 dataset", path);
        goto out;
    }
    if (!check_only && sh[0] > 0 && !(cur = h5_read_i64(f, "/state/cursor", NULL, NULL))) {
        hyp_set_error("%s: /state/cursor: read error", path);
        goto out;
    }
    if (!check_only) {
        *st = (CkptState){.step = i64[1], .optim_step = i64[2], .sched_step = i64[3], .best_step = i64[4],
                          .seed = u64[0], .rng_offset = u64[1], .lr = f64[0], .best_metric = f64[1],
                          .n_cursor = sh[0], .cursor = cur};
    }
    rc = 0;
out:
    h5_close(f);
    return rc;
}

// ---------------------------------------------------------------- writing
// ps's parameters over the flat buffer `host` (laid out like ps->data), as the model-file
// writer and reader take them (malloc'd, n = ps->n).
static ParamView *param_views(const ParamSet *ps, float *host) {
    ParamView *v = hyp_calloc(ps->n ? (size_t)ps->n : 1, sizeof *v);
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = ps->params[i];
        v[i] = (ParamView){.name = t->name, .ndim = t->ndim, .shape = t->shape, .data = host + param_offset(ps, i)};
    }
    return v;
}

// GROUP/<name> for every parameter, from the device buffer d laid out like ps->data.
static int put_params(H5File *f, const char *path, const char *group, const ParamSet *ps, Device dev, const float *d) {
    float *host = host_view(dev, d, ps->numel);
    ParamView *v = param_views(ps, host);
    int rc = model_file_put_params(f, path, group, v, ps->n);
    free(v);
    host_view_free(dev, host);
    return rc;
}

int checkpoint_save(const char *path, const ParamSet *ps, const AdamW *opt, const CkptState *st,
                    const char *config_text, const ModelMeta *model) {
    if (opt && (opt->numel != ps->numel || opt->device != ps->device)) {
        hyp_set_error("%s: the optimizer state does not belong to this parameter set", path);
        return -1;
    }
    if (st->n_cursor > 0 && !st->cursor) {
        hyp_set_error("%s: n_cursor = %d without a cursor", path, st->n_cursor);
        return -1;
    }
    H5File *f = h5_begin(path);
    if (!f) return -1;
    int rc = put_params(f, path, "/params", ps, ps->device, ps->data);
    for (int k = 0; k < 2 && opt && !rc; k++)
        rc = put_params(f, path, k ? "/optim/v" : "/optim/m", ps, opt->device, k ? opt->v : opt->m);
    if (!rc) {
        write_state(f, st, opt ? opt->step : st->optim_step);
        h5_write_string(f, "/config", config_text ? config_text : "");
    }
    if (rc || (model && model_file_put_meta(f, model, false))) { h5_abort(f); return -1; }
    return h5_commit(f);
}

int checkpoint_save_model(const char *path, const ParamSet *ps, const ModelMeta *model,
                          const char *config_text, const CkptState *st) {
    if (!model || !model->config) {
        hyp_set_error("%s: a model file needs the model config", path);
        return -1;
    }
    H5File *f = h5_begin(path);
    if (!f) return -1;
    if (put_params(f, path, "/params", ps, ps->device, ps->data) || model_file_put_meta(f, model, true)) {
        h5_abort(f);
        return -1;
    }
    if (config_text) h5_write_string(f, "/train_config", config_text);
    if (st) {
        h5_write_attr_i64(f, "/state", "step", st->step);
        h5_write_attr_f64(f, "/state", "best_metric", st->best_metric);
    }
    return h5_commit(f);
}

// ---------------------------------------------------------------- validation and loading
static bool in_paramset(const ParamSet *ps, const char *name) {
    return paramset_get(ps, name) != NULL;
}

// Every dataset of group: its name in ps (when given) with the right shape; every ps
// parameter present. ref (ps == NULL): the names and shapes of /params instead.
static int check_group(H5File *f, const char *path, const char *group, const ParamSet *ps, char **ref, int n_ref) {
    char **names = NULL;
    int n = h5_list(f, group, &names);
    if (n < 0) { hyp_set_error("%s: %s: missing", path, group); return -1; }
    int rc = 0;
    char ds[1200], b1[96], b2[96];
    for (int i = 0; i < n && !rc; i++) {
        bool known = ps ? in_paramset(ps, names[i]) : false;
        for (int j = 0; !ps && j < n_ref && !known; j++) known = !strcmp(ref[j], names[i]);
        if (!known) {
            hyp_set_error("%s: %s/%s: unexpected parameter (the model has no parameter of this name; "
                          "was the checkpoint written for another model config?)", path, group, names[i]);
            rc = -1;
        }
    }
    int want_n = ps ? ps->n : n_ref;
    for (int i = 0; i < want_n && !rc; i++) {
        const char *name = ps ? ps->params[i]->name : ref[i];
        snprintf(ds, sizeof ds, "%s/%s", group, name);
        int sh[HYP_MAX_DIMS], nd = h5_exists(f, ds) ? h5_shape(f, ds, sh) : -2;
        if (nd == -2) {
            hyp_set_error("%s: %s: missing (the model has this parameter)", path, ds);
            rc = -1;
            break;
        }
        if (nd < 0) { hyp_set_error("%s: %s: not a readable dataset", path, ds); rc = -1; break; }
        int wsh[HYP_MAX_DIMS], wnd;
        if (ps) {
            wnd = ps->params[i]->ndim;
            memcpy(wsh, ps->params[i]->shape, sizeof wsh);
        } else {
            char rds[1200];
            snprintf(rds, sizeof rds, "/params/%s", name);
            wnd = h5_shape(f, rds, wsh);
        }
        bool same = nd == wnd;
        for (int d = 0; same && d < nd; d++) same = sh[d] == wsh[d];
        if (!same) {
            hyp_set_error("%s: %s: shape %s in the file, %s expected", path, ds, shape_s(nd, sh, b1, sizeof b1),
                          shape_s(wnd, wsh, b2, sizeof b2));
            rc = -1;
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int checkpoint_validate(const char *path, const ParamSet *ps) {
    H5File *f = h5_open(path);
    if (!f) return -1;
    int rc = -1;
    char **ref = NULL;
    int n_ref = 0;
    if (!h5_exists(f, "/params")) { hyp_set_error("%s: /params: missing (not a checkpoint)", path); goto out; }
    if (!h5_exists(f, "/config")) { hyp_set_error("%s: /config: missing (not a training checkpoint)", path); goto out; }
    if (!ps && (n_ref = h5_list(f, "/params", &ref)) < 0) goto out;
    if (check_group(f, path, "/params", ps, ref, n_ref)) goto out;
    if (h5_exists(f, "/optim")) {
        if (check_group(f, path, "/optim/m", ps, ref, n_ref) || check_group(f, path, "/optim/v", ps, ref, n_ref)) goto out;
    }
    h5_close(f);
    f = NULL;
    CkptState dummy;
    rc = read_state(path, &dummy, true);
out:
    h5_close(f);
    for (int i = 0; i < n_ref; i++) free(ref[i]);
    free(ref);
    return rc;
}

// Read every parameter of `group` into the device buffer dst laid out like ps->data.
static int read_into(H5File *f, const char *group, const ParamSet *ps, Device dev, float *dst) {
    float *host = dev == HYP_CPU ? dst : hyp_malloc((ps->numel ? ps->numel : 1) * sizeof(float));
    ParamView *v = param_views(ps, host);
    int rc = model_file_get_params(f, group, v, ps->n);
    free(v);
    if (dev != HYP_CPU) {
        if (!rc) backend_get(dev)->copy(dst, host, ps->numel * sizeof(float), COPY_H2D);
        free(host);
    }
    return rc;
}

int checkpoint_load(const char *path, ParamSet *ps, AdamW *opt, CkptState *st, char **config_text) {
    if (config_text) *config_text = NULL;
    if (checkpoint_validate(path, ps)) return -1;
    if (opt && (opt->numel != ps->numel || opt->device != ps->device)) {
        hyp_set_error("%s: the optimizer does not belong to this parameter set", path);
        return -1;
    }
    CkptState s;
    if (read_state(path, &s, false)) return -1;
    H5File *f = h5_open(path);
    char *cfg = f ? h5_read_string(f, "/config") : NULL;
    int rc = -1;
    if (!cfg) goto fail;
    if (opt && !h5_exists(f, "/optim")) {
        hyp_set_error("%s: /optim: missing (a model-only file cannot resume training)", path);
        goto fail;
    }
    if (read_into(f, "/params", ps, ps->device, ps->data)) goto fail;
    if (opt && (read_into(f, "/optim/m", ps, opt->device, opt->m) || read_into(f, "/optim/v", ps, opt->device, opt->v)))
        goto fail;
    if (opt) opt->step = s.optim_step;
    rc = 0;
fail:
    h5_close(f);
    if (rc) {
        ckpt_state_free(&s);
        free(cfg);
        return -1;
    }
    if (st) *st = s;
    else ckpt_state_free(&s);
    if (config_text) *config_text = cfg;
    else free(cfg);
    return 0;
}

char *checkpoint_read_config(const char *path) {
    H5File *f = h5_open(path);
    if (!f) return NULL;
    bool ok = h5_exists(f, "/config") && h5_exists(f, "/state/cursor");
    bool model_file = h5_exists(f, "/params") && h5_exists(f, "/tokenizer");
    char *cfg = ok ? h5_read_string(f, "/config") : NULL;
    h5_close(f);
    if (!ok && model_file) {
        hyp_set_error("%s: a model file (hyp import or best.h5), not a training checkpoint (no /state/cursor): "
                      "--resume takes a run folder's ckpt-*.h5 or `auto`; to train from these weights use "
                      "--set model.init_from=%s", path, path);
        return NULL;
    }
    if (!ok) {
        hyp_set_error("%s: not a training checkpoint (expected /config and /state/cursor, as in a run folder's ckpt-*.h5)", path);
        return NULL;
    }
    return cfg;
}

// ---------------------------------------------------------------- the run folder
char *checkpoint_path(const char *dir, int64_t step) {
    char name[64];
    snprintf(name, sizeof name, "ckpt-%08lld.h5", (long long)step);
    return join(dir, name);
}

// Step of a checkpoint file name "ckpt-<digits>.h5", or -1.
static int64_t ckpt_step(const char *name) {
    if (strncmp(name, "ckpt-", 5)) return -1;
    const char *p = name + 5, *q = p;
    while (*q >= '0' && *q <= '9') q++;
    if (q == p || q - p > 18 || strcmp(q, ".h5")) return -1;
    return strtoll(p, NULL, 10);
}

typedef struct { int64_t step; char *name; } CkptEntry;
static int entry_cmp(const void *a, const void *b) {
    const CkptEntry *x = a, *y = b;
    return x->step < y->step ? -1 : x->step > y->step;
}
// ckpt-*.h5 files of dir sorted by step (ascending); count or -1.
static int list_ckpts(const char *dir, CkptEntry **out) {
    DIR *d = opendir(dir);
    if (!d) { hyp_set_error("%s: cannot open directory: %s", dir, strerror(errno)); return -1; }
    int n = 0, cap = 0;
    CkptEntry *v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s = ckpt_step(e->d_name);
        if (s < 0) continue;
        if (n == cap) v = hyp_realloc(v, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *v);
        v[n++] = (CkptEntry){s, hyp_strdup(e->d_name)};
    }
    closedir(d);
    if (n) qsort(v, (size_t)n, sizeof *v, entry_cmp);
    *out = v;
    return n;
}
static void free_entries(CkptEntry *v, int n) {
    for (int i = 0; i < n; i++) free(v[i].name);
    free(v);
}

// The file name `latest` holds (malloc'd), or NULL (missing, empty or not a plain name).
static char *read_latest(const char *dir) {
    char *p = join(dir, "latest");
    FILE *f = fopen(p, "r");
    free(p);
    if (!f) return NULL;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = 0;
    if (!n || strchr(buf, '/') || strlen(buf) != n) return NULL;
    return hyp_strdup(buf);
}

int checkpoint_set_latest(const char *dir, const char *ckpt_path) {
    char *dst = join(dir, "latest");
    const char *name = base_of(ckpt_path);
    char *line = str_cat(name, "\n");
    int rc = atomic_write_file(dst, line, strlen(line));
    free(line);
    free(dst);
    return rc;
}

int checkpoint_prune(const char *dir, int keep_last) {
    if (keep_last <= 0) return 0;
    CkptEntry *v;
    int n = list_ckpts(dir, &v);
    if (n < 0) return -1;
    char *latest = read_latest(dir);
    int deleted = 0, rc = 0;
    for (int i = 0; i < n - keep_last; i++) {
        if (latest && !strcmp(latest, v[i].name)) continue;
        char *p = join(dir, v[i].name);
        if (unlink(p) == 0) deleted++;
        else if (errno != ENOENT) { hyp_set_error("%s: cannot delete: %s", p, strerror(errno)); rc = -1; }
        free(p);
    }
    free(latest);
    free_entries(v, n);
    return rc ? -1 : deleted;
}

int checkpoint_clean_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { hyp_set_error("%s: cannot open directory: %s", dir, strerror(errno)); return -1; }
    int removed = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".tmp")) continue;
        char base[512];
        if (n - 4 >= sizeof base) continue;
        memcpy(base, e->d_name, n - 4);
        base[n - 4] = 0;
        if (ckpt_step(base) < 0 && strcmp(base, "best.h5") && strcmp(base, "latest")) continue;
        char *p = join(dir, e->d_name);
        if (atomic_tmp_clear(p) == 0) removed++;   // one a live writer holds stays (error)
        else rc = -1;
        free(p);
    }
    closedir(d);
    return rc ? -1 : removed;
}

char *checkpoint_find_latest(const char *dir, const ParamSet *ps) {
    if (checkpoint_clean_tmp(dir) < 0) return NULL;
    char *latest = read_latest(dir), *why = NULL;
    if (latest) {
        char *p = join(dir, latest);
        if (checkpoint_validate(p, ps) == 0) { free(latest); return p; }
        why = hyp_strdup(hyp_last_error());
        free(p);
    }
    CkptEntry *v;
    int n = list_ckpts(dir, &v);
    if (n < 0) { free(latest); free(why); return NULL; }
    char *found = NULL;
    for (int i = n - 1; i >= 0 && !found; i--) {
        if (latest && !strcmp(latest, v[i].name)) continue;   // already rejected
        char *p = join(dir, v[i].name);
        if (checkpoint_validate(p, ps) == 0) found = p;
        else {
            fprintf(stderr, "hyp: resume: skipping %s\n", hyp_last_error());
            free(p);
        }
    }
    if (found && latest)
        fprintf(stderr, "hyp: resume: %s/latest names %s, which is unusable (%s); using %s\n", dir, latest, why, found);
    else if (found && !latest)
        fprintf(stderr, "hyp: resume: %s/latest is missing or empty; using the newest valid checkpoint %s\n", dir, found);
    if (!found) {
        if (why) hyp_set_error("%s: no usable checkpoint (latest: %s)", dir, why);
        else hyp_set_error("%s: no checkpoint to resume from (no valid ckpt-*.h5)", dir);
    }
    free_entries(v, n);
    free(latest);
    free(why);
    return found;
}

int checkpoint_save_run(const char *dir, const ParamSet *ps, const AdamW *opt, const CkptState *st,
                        const char *config_text, const ModelMeta *model, int keep_last, char **out_path) {
    if (out_path) *out_path = NULL;
    char *p = checkpoint_path(dir, st->step);
    bool existed = access(p, F_OK) == 0;
    // A failed save changes nothing: no new file, `latest` as it was, nothing pruned.
    if (checkpoint_save(p, ps, opt, st, config_text, model)) { free(p); return -1; }
    if (checkpoint_set_latest(dir, p)) {
        if (!existed) unlink(p);   // complete, but nothing points at it: the folder as before
        free(p);
        return -1;
    }
    if (checkpoint_prune(dir, keep_last) < 0) { free(p); return -1; }
    if (out_path) *out_path = p;
    else free(p);
    return 0;
}
