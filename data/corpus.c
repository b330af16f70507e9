#include "data/corpus.h"
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#ifdef HYP_HAVE_JANSSON
#include <jansson.h>
#endif

Corpus *corpus_new(void) { return hyp_calloc(1, sizeof(Corpus)); }

void corpus_add(Corpus *c, const char *id, const char *text) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->ids = hyp_realloc(c->ids, c->cap * sizeof(char *));
        c->texts = hyp_realloc(c->texts, c->cap * sizeof(char *));
    }
    c->ids[c->n] = hyp_strdup(id);
    c->texts[c->n] = hyp_strdup(text);
    c->n++;
}

void corpus_free(Corpus *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) { free(c->ids[i]); free(c->texts[i]); }
    free(c->ids);
    free(c->texts);
    free(c);
}

// Strip leading/trailing ASCII whitespace in place; returns the start.
static char *strip(char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

// Simple open-addressing set of ids to report duplicates with both line numbers.
typedef struct { char **keys; long *lines; size_t cap, n; } IdSet;
static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}
// Returns the earlier line of id, or 0 after inserting it.
static long idset_add(IdSet *s, const char *id, long line) {
    if (2 * (s->n + 1) > s->cap) {
        IdSet g = {hyp_calloc(s->cap ? 2 * s->cap : 4096, sizeof(char *)), hyp_calloc(s->cap ? 2 * s->cap : 4096, sizeof(long)),
                   s->cap ? 2 * s->cap : 4096, 0};
        for (size_t i = 0; i < s->cap; i++)
            if (s->keys[i]) {
                size_t j = fnv(s->keys[i]) & (g.cap - 1);
                while (g.keys[j]) j = (j + 1) & (g.cap - 1);
                g.keys[j] = s->keys[i];
                g.lines[j] = s->lines[i];
                g.n++;
            }
        free(s->keys);
        free(s->lines);
        *s = g;
    }
    size_t j = fnv(id) & (s->cap - 1);
    while (s->keys[j]) {
        if (!strcmp(s->keys[j], id)) return s->lines[j];
        j = (j + 1) & (s->cap - 1);
    }
    s->keys[j] = (char *)id;
    s->lines[j] = line;
    s->n++;
    return 0;
}

static bool jsonl_by_name(const char *path) {
    size_t n = strlen(path);
    return (n > 6 && !strcmp(path + n - 6, ".jsonl")) || (n > 5 && !strcmp(path + n - 5, ".json"));
}

#ifdef HYP_HAVE_JANSSON
// The member `a` (or else `b`) of obj as a string into *out: 1 found, 0 absent, -1 present
// but of another type (*type names it). Integers are accepted where ints_ok (ids).
static int member(json_t *obj, const char *a, const char *b, bool ints_ok, char *num, size_t nlen,
                  const char **out, const char **key, const char **type) {
    json_t *v = json_object_get(obj, a);
    *key = a;
    if (!v && b) { v = json_object_get(obj, b); *key = b; }
    if (!v) return 0;
    if (json_is_string(v)) { *out = json_string_value(v); return 1; }
    if (ints_ok && json_is_integer(v)) {
        snprintf(num, nlen, "%lld", (long long)json_integer_value(v));
        *out = num;
        return 1;
    }
    *type = json_is_integer(v) ? "an integer" : json_is_real(v) ? "a number" : json_is_boolean(v) ? "a boolean"
          : json_is_null(v) ? "null" : json_is_array(v) ? "an array" : "an object";
    return -1;
}
#endif

// One line of a corpus file into (id, text): 0, or -1 with the message set. The id is
// validated (non-empty, no whitespace). *joined may be set to an allocation to free.
static int parse_line(const char *path, long lineno, char *line, bool jsonl, char **id_out, char **text_out,
                      char **idc, char **joined) {
    if (!jsonl) {
        char *tab = strchr(line, '\t');
        if (!tab) { hyp_set_error("%s:%ld: expected id<TAB>text, found no tab", path, lineno); return -1; }
        *tab = 0;
        *id_out = strip(line);
        *text_out = strip(tab + 1);
    } else {
#ifdef HYP_HAVE_JANSSON
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o || !json_is_object(o)) {
            hyp_set_error("%s:%ld: invalid JSON: %s", path, lineno, o ? "not an object" : err.text);
            json_decref(o);
            return -1;
        }
        char num[32];
        const char *jid = NULL, *jt = NULL, *title = NULL, *key = NULL, *type = NULL;
        int rid = member(o, "id", "_id", true, num, sizeof num, &jid, &key, &type);
        if (rid <= 0) {
            if (rid == 0) hyp_set_error("%s:%ld: missing \"id\" (or \"_id\")", path, lineno);
            else hyp_set_error("%s:%ld: \"%s\" is %s, expected a string or an integer", path, lineno, key, type);
            json_decref(o);
            return -1;
        }
        int rt = member(o, "text", "contents", false, NULL, 0, &jt, &key, &type);
        if (rt <= 0) {
            if (rt == 0) hyp_set_error("%s:%ld: missing \"text\" (or \"contents\")", path, lineno);
            else hyp_set_error("%s:%ld: \"%s\" is %s, expected a string", path, lineno, key, type);
            json_decref(o);
            return -1;
        }
        int rti = member(o, "title", NULL, false, NULL, 0, &title, &key, &type);
        if (rti < 0 && strcmp(type, "null")) {
            hyp_set_error("%s:%ld: \"title\" is %s, expected a string", path, lineno, type);
            json_decref(o);
            return -1;
        }
        if (rti <= 0) title = NULL;
        size_t n = strlen(jt) + (title ? strlen(title) + 1 : 0) + 1;
        *joined = hyp_malloc(n);
        snprintf(*joined, n, "%s%s%s", title ? title : "", title ? " " : "", jt);
        *idc = hyp_strdup(jid);
        json_decref(o);
        *id_out = strip(*idc);
        *text_out = strip(*joined);
#else
        (void)idc; (void)joined;
        hyp_set_error("%s: JSONL needs jansson (rebuild with libjansson-dev)", path);
        return -1;
#endif
    }
    const char *why = hyp_id_problem(*id_out);
    if (why) {
        if (**id_out) hyp_set_error("%s:%ld: id '%s' %s", path, lineno, *id_out, why);
        else hyp_set_error("%s:%ld: empty id", path, lineno);
        return -1;
    }
    return 0;
}

Corpus *corpus_read(const char *path) {
    HypLines *in = hyp_lines_open(path, 0);
    if (!in) return NULL;
    int jsonl = jsonl_by_name(path) ? 1 : -1;   // -1: decided by the first non-blank byte
    Corpus *c = corpus_new();
    IdSet seen = {0};
    char *line;
    size_t len;
    int got;
    while ((got = hyp_lines_next(in, &line, &len)) > 0) {
        long lineno = hyp_lines_lineno(in);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        char *s = line;
        while (*s && isspace((unsigned char)*s)) s++;
        if (!*s) continue;
        if (jsonl < 0) jsonl = *s == '{';
#ifndef HYP_HAVE_JANSSON
        if (jsonl) { hyp_set_error("%s: JSONL needs jansson (rebuild with libjansson-dev)", path); goto fail; }
#endif
        char *id, *text, *idc = NULL, *joined = NULL;
        int rc = parse_line(path, lineno, line, jsonl == 1, &id, &text, &idc, &joined);
        if (!rc) corpus_add(c, id, text);
        free(idc);
        free(joined);
        if (rc) goto fail;
        long prev = idset_add(&seen, c->ids[c->n - 1], lineno);
        if (prev) { hyp_set_error("%s:%ld: duplicate id '%s' (first on line %ld)", path, lineno, c->ids[c->n - 1], prev); goto fail; }
    }
    if (got < 0) goto fail;
    free(seen.keys);
    free(seen.lines);
    hyp_lines_close(in);
    return c;
fail:
    free(seen.keys);
    free(seen.lines);
    hyp_lines_close(in);
    corpus_free(c);
    return NULL;
}
