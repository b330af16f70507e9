// hyp tokenize: text lines -> BERT WordPiece ids (debugging and parity checks).
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "data/tokenizer.h"
#include "autograd/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SYNOPSIS =
    "--vocab VOCAB [options] < lines > ids\n"
    "  One output line per input line: space-separated ids of [CLS] wordpieces [SEP]\n"
    "  (BERT WordPiece, identical to HuggingFace BertTokenizerFast). Input lines end at LF;\n"
    "  invalid UTF-8 bytes are dropped (see data/tokenizer.h).";

int cmd_tokenize(int argc, char **argv) {
    const char *vocab = NULL;
    long max_len = 0;
    bool tokens = false, no_specials = false, cased = false;
    const CliFlag flags[] = {
        {.name = "--vocab", .kind = FLAG_STR, .dst = &vocab, .meta = "FILE", .help = "vocab.txt"},
        {.name = "--max-len", .kind = FLAG_LONG, .dst = &max_len, .lo = 2, .hi = 1000000, .meta = "N", .help = "truncate to N ids including [CLS] and [SEP] (default: none)"},
        {.name = "--tokens", .kind = FLAG_SWITCH, .dst = &tokens, .help = "print the wordpiece strings instead of ids"},
        {.name = "--no-specials", .kind = FLAG_SWITCH, .dst = &no_specials, .help = "leave out [CLS] and [SEP]"},
        {.name = "--cased", .kind = FLAG_SWITCH, .dst = &cased, .help = "do not lowercase or strip accents (cased vocabularies)"},
    };
    const int parsed = cli_parse("tokenize", SYNOPSIS, CLI_FLAGS(flags), argc, argv);
    if (parsed) return parsed == CLI_HELP ? 0 : 1;
    if (!vocab) {
        fprintf(stderr, "hyp tokenize: --vocab is required\n");
        cli_usage(stderr, "tokenize", SYNOPSIS, CLI_FLAGS(flags));
        return 1;
    }
    const bool lowercase = !cased, specials = !no_specials;
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
