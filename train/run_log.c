#include "train/run_log.h"
#include "autograd/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef HYP_HAVE_JANSSON
#include <jansson.h>
#endif

static const char *canonical(const char *m) {
    if (!strcmp(m, "gnorm")) return "grad_norm";
    if (!strcmp(m, "q/s")) return "qps";
    if (!strcmp(m, "tok/s")) return "tokens_per_s";
    if (!strcmp(m, "MFU")) return "mfu";
    return m;
}

#ifdef HYP_HAVE_JANSSON
// Adds the keys of obj (numbers only) to the "seen" list for the error message.
static void note_keys(json_t *obj, const char *prefix, char *seen, size_t n) {
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        if (!json_is_number(v) || !strcmp(k, "step") || !strcmp(k, "best") || !strcmp(k, "best_step")) continue;
        char item[160], padded[2100], key[164];
        snprintf(item, sizeof item, "%s%s", prefix, k);
        snprintf(padded, sizeof padded, ", %s,", seen);   // whole names only ("ms" is not in "mmse")
        snprintf(key, sizeof key, ", %s,", item);
        if (strstr(padded, key)) continue;
        if (strlen(seen) + strlen(item) + 3 < n) {
            if (*seen) strcat(seen, ", ");
            strcat(seen, item);
        }
    }
}
#endif

int runlog_series(const char *run, const char *metric, double **steps, double **values) {
    *steps = *values = NULL;
#ifndef HYP_HAVE_JANSSON
    (void)run; (void)metric; (void)canonical;
    hyp_set_error("%s: this build has no jansson (apt-get install libjansson-dev): metrics.jsonl cannot be read", run);
    return -1;
#else
    char path[4200];
    struct stat st;
    if (stat(run, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    else snprintf(path, sizeof path, "%s", run);
    HypLines *r = hyp_lines_open(path, 0);
    if (!r) return -1;
    const char *key = canonical(metric);
    size_t n = 0, cap = 0;
    char seen[2048] = "";
    char *line;
    size_t len;
    int rc;
    while ((rc = hyp_lines_next(r, &line, &len)) == 1) {
        if (len == 0) continue;
        json_error_t err;
        json_t *o = json_loadb(line, len, 0, &err);
        if (!o || !json_is_object(o)) {
            hyp_set_error("%s:%ld: not a JSON object (%s)", path, hyp_lines_lineno(r), o ? "another JSON value" : err.text);
            json_decref(o);
            hyp_lines_close(r);
            free(*steps); free(*values);
            *steps = *values = NULL;
            return -1;
        }
        json_t *step = json_object_get(o, "step"), *ev = json_object_get(o, "eval");
        json_t *v = json_is_object(ev) ? json_object_get(ev, key) : json_object_get(o, key);
        note_keys(o, "", seen, sizeof seen);
        if (json_is_object(ev)) note_keys(ev, "", seen, sizeof seen);
        if (json_is_number(step) && json_is_number(v)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                *steps = hyp_realloc(*steps, cap * sizeof(double));
                *values = hyp_realloc(*values, cap * sizeof(double));
            }
            (*steps)[n] = json_number_value(step);
            (*values)[n] = json_number_value(v);
            n++;
        }
        json_decref(o);
    }
    hyp_lines_close(r);
    if (rc < 0) { free(*steps); free(*values); *steps = *values = NULL; return -1; }
    if (n == 0) hyp_set_error("%s: no '%s' in this run's log (it has: %s)", path, metric, *seen ? seen : "nothing");
    return (int)n;
#endif
}
