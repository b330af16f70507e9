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

static bool is_jsonl(const char *path, FILE *f) {
    size_t n = strlen(path);
    if ((n > 6 && !strcmp(path + n - 6, ".jsonl")) || (n > 5 && !strcmp(path + n - 5, ".json"))) return true;
    int ch;
    while ((ch = fgetc(f)) != EOF && isspace(ch)) {}
    bool j = ch == '{';
    rewind(f);
    return j;
}

#ifdef HYP_HAVE_JANSSON
// The string member `a` or `b` of obj (NULL if neither); numbers are accepted as ids.
static const char *member(json_t *obj, const char *a, const char *b, char *num, size_t nlen) {
    json_t *v = json_object_get(obj, a);
    if (!v && b) v = json_object_get(obj, b);
    if (!v) return NULL;
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) { snprintf(num, nlen, "%lld", (long long)json_integer_value(v)); return num; }
    return NULL;
}
#endif

Corpus *corpus_read(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { hyp_set_error("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    bool jsonl = is_jsonl(path, f);
#ifndef HYP_HAVE_JANSSON
    if (jsonl) { fclose(f); hyp_set_error("%s: JSONL needs jansson (rebuild with libjansson-dev)", path); return NULL; }
#endif
    Corpus *c = corpus_new();
    IdSet seen = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if ((size_t)len != strlen(line)) { hyp_set_error("%s:%ld: NUL byte in line", path, lineno); goto fail; }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        char *s = line;
        while (*s && isspace((unsigned char)*s)) s++;
        if (!*s) continue;
        const char *id, *text;
        char *joined = NULL;
        if (!jsonl) {
            char *tab = strchr(line, '\t');
            if (!tab) { hyp_set_error("%s:%ld: expected id<TAB>text", path, lineno); goto fail; }
            *tab = 0;
            id = strip(line);
            text = strip(tab + 1);
        } else {
#ifdef HYP_HAVE_JANSSON
            json_error_t err;
            json_t *o = json_loads(line, 0, &err);
            if (!o || !json_is_object(o)) {
                hyp_set_error("%s:%ld: invalid JSON: %s", path, lineno, o ? "not an object" : err.text);
                json_decref(o);
                goto fail;
            }
            char num[32];
            const char *jid = member(o, "id", "_id", num, sizeof num);
            const char *jt = member(o, "text", "contents", NULL, 0);
            const char *title = member(o, "title", NULL, NULL, 0);
            if (!jid || !jt) {
                hyp_set_error("%s:%ld: missing %s", path, lineno, !jid ? "\"id\" (or \"_id\")" : "\"text\" (or \"contents\")");
                json_decref(o);
                goto fail;
            }
            size_t n = strlen(jt) + (title ? strlen(title) + 1 : 0) + 1;
            joined = hyp_malloc(n);
            snprintf(joined, n, "%s%s%s", title ? title : "", title ? " " : "", jt);
            char *idc = hyp_strdup(jid);
            json_decref(o);
            id = strip(idc);
            text = strip(joined);
            if (!*id) { free(idc); free(joined); hyp_set_error("%s:%ld: empty id", path, lineno); goto fail; }
            corpus_add(c, id, text);
            free(idc);
            free(joined);
            long prev = idset_add(&seen, c->ids[c->n - 1], lineno);
            if (prev) { hyp_set_error("%s:%ld: duplicate id '%s' (first on line %ld)", path, lineno, c->ids[c->n - 1], prev); goto fail; }
            continue;
#endif
        }
        if (!*id) { hyp_set_error("%s:%ld: empty id", path, lineno); goto fail; }
        corpus_add(c, id, text);
        long prev = idset_add(&seen, c->ids[c->n - 1], lineno);
        if (prev) { hyp_set_error("%s:%ld: duplicate id '%s' (first on line %ld)", path, lineno, c->ids[c->n - 1], prev); goto fail; }
    }
    if (ferror(f)) { hyp_set_error("%s: read error", path); goto fail; }
    free(line);
    free(seen.keys);
    free(seen.lines);
    fclose(f);
    return c;
fail:
    free(line);
    free(seen.keys);
    free(seen.lines);
    fclose(f);
    corpus_free(c);
    return NULL;
}
