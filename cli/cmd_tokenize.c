// hyp tokenize: text lines -> BERT WordPiece ids (debugging and parity checks).
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "data/tokenizer.h"
#include "autograd/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *o) {
    fprintf(o,
            "usage: hyp tokenize --vocab VOCAB [--max-len N] [--tokens] [--no-specials] [--cased] < lines > ids\n"
            "  One output line per input line: space-separated ids of [CLS] wordpieces [SEP]\n"
            "  (BERT uncased WordPiece, identical to HuggingFace BertTokenizerFast).\n"
            "  --max-len N     truncate to N ids including [CLS] and [SEP] (N >= 2; default: none)\n"
            "  --tokens        print the wordpiece strings instead of ids\n"
            "  --no-specials   leave out [CLS] and [SEP]\n"
            "  --cased         do not lowercase or strip accents (cased vocabularies)\n"
            "  Input lines end at LF; invalid UTF-8 bytes are dropped (see data/tokenizer.h).\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *vocab = NULL;
    long max_len = 0;
    bool tokens = false, specials = true, lowercase = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--vocab") && i + 1 < argc) vocab = argv[++i];
        else if (!strcmp(a, "--max-len") && i + 1 < argc) {
            if (cli_long("tokenize", a, argv[++i], 2, 1000000, &max_len)) return 1;
        } else if (!strcmp(a, "--tokens")) tokens = true;
        else if (!strcmp(a, "--no-specials")) specials = false;
        else if (!strcmp(a, "--cased")) lowercase = false;
        else {
            cli_bad_option("tokenize", a, "--vocab --max-len");
            usage(stderr);
            return 1;
        }
    }
    if (!vocab) { fprintf(stderr, "hyp tokenize: --vocab is required\n"); usage(stderr); return 1; }
    Tokenizer *t = tok_load(vocab, lowercase);
    if (!t) { fprintf(stderr, "hyp tokenize: %s\n", hyp_last_error()); return 1; }

    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    // The bounded line reader: a line over 16 MiB (an endless input such as /dev/zero) or a
    // read error stops with "stdin:LINE: ..." instead of growing without limit.
    int rc = tok_lines(t, stdin, "stdin", stdout, &(TokLinesOptions){(int)max_len, specials, tokens}) ? 1 : 0;
    if (rc) fprintf(stderr, "hyp tokenize: %s\n", hyp_last_error());
    if (fflush(stdout) != 0 || ferror(stdout)) { fprintf(stderr, "hyp tokenize: error writing stdout\n"); rc = 1; }
    tok_free(t);
    return rc;
}
