// corpus.h: corpus and query files (DESIGN §5): TSV "id<TAB>text" or JSONL with
// {"id"|"_id", "title"?, "text"|"contents"}. The document text is title + " " + text,
// stripped (the reference's ir_datasets convention). Format by extension (.jsonl/.json)
// or by the first non-blank byte ('{' = JSONL).
#ifndef HYP_CORPUS_H
#define HYP_CORPUS_H
#include "autograd/util.h"

typedef struct {
    int n, cap;
    char **ids;     // (n) NUL-terminated
    char **texts;   // (n) NUL-terminated UTF-8 (bytes kept as read)
} Corpus;

// Reads the whole file (line by line through hyp_lines: a leading UTF-8 BOM is dropped, a
// line over 16 MiB or a NUL byte is an error). NULL + "file:line: reason" on malformed lines
// (missing tab or id, bad JSON, a missing or non-string text field, an id that is empty or
// contains whitespace, a duplicate id), unreadable files. Blank lines are skipped.
Corpus *corpus_read(const char *path);
void corpus_add(Corpus *c, const char *id, const char *text);
Corpus *corpus_new(void);
void corpus_free(Corpus *c);

#endif
