// hyp pretokenize: training JSONL -> memory-mappable shard directory (data/train_data.h).
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "data/train_data.h"
#include "autograd/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SYNOPSIS =
    "--vocab VOCAB --in train.jsonl --out DIR [options]\n"
    "  One streaming pass over the training JSONL, in the authors' format\n"
    "    {\"query\": {\"id\",\"content\"}, \"items\": [{\"id\",\"content\",\"score\"}, ...]}  (items[0] = positive;\n"
    "     \"tokenized_content\" ids are used when present)\n"
    "  or FlagEmbedding's {\"query\", \"pos\", \"neg\", \"pos_scores\", \"neg_scores\"}, into DIR:\n"
    "  int32 token ids, offsets, float32 teacher scores and meta.json, for `hyp train`'s loader.\n"
    "  DIR must not exist; it is written as DIR.tmp and renamed when complete.";

int cmd_pretokenize(int argc, char **argv) {
    PretokOptions o = pretok_options_default();
    const char *vocab = NULL;
    bool uncased = false, cased = false, quiet = false;
    const CliFlag flags[] = {
        {.name = "--vocab", .kind = FLAG_STR, .dst = &vocab, .meta = "FILE", .help = "vocab.txt"},
        {.name = "--in", .kind = FLAG_STR, .dst = &o.in_path, .meta = "FILE", .help = "training JSONL"},
        {.name = "--out", .kind = FLAG_STR, .dst = &o.out_dir, .meta = "DIR", .help = "the shard directory to create"},
        {.name = "--query-max-len", .kind = FLAG_INT, .dst = &o.query_max_len, .lo = 2, .hi = 1000000, .meta = "N",
         .help = "truncate queries to N ids including [CLS]/[SEP] (default 32, the paper's)"},
        {.name = "--doc-max-len", .kind = FLAG_INT, .dst = &o.doc_max_len, .lo = 2, .hi = 1000000, .meta = "N",
         .help = "truncate passages to N ids including [CLS]/[SEP] (default 196)"},
        {.name = "--uncased", .kind = FLAG_SWITCH, .dst = &uncased, .help = "lowercase and strip accents (default; bert-base-uncased)"},
        {.name = "--cased", .kind = FLAG_SWITCH, .dst = &cased, .help = "keep case (cased vocabularies)"},
        {.name = "--retokenize", .kind = FLAG_SWITCH, .dst = &o.retokenize,
         .help = "tokenize \"content\" even where \"tokenized_content\" is given (ids of another vocabulary)"},
        {.name = "--threads", .kind = FLAG_INT, .dst = &o.threads, .lo = 1, .hi = 4096, .meta = "N", .help = "parse/tokenize threads (default: all)"},
        {.name = "--quiet", .kind = FLAG_SWITCH, .dst = &quiet, .help = "no progress on stderr"},
    };
    const int parsed = cli_parse("pretokenize", SYNOPSIS, CLI_FLAGS(flags), argc, argv);
    if (parsed) return parsed == CLI_HELP ? 0 : 1;
    if (cased && uncased) { fprintf(stderr, "hyp pretokenize: --cased and --uncased contradict each other\n"); return 1; }
    if (!vocab || !o.in_path || !o.out_dir) {
        fprintf(stderr, "hyp pretokenize: --vocab, --in and --out are required\n");
        cli_usage(stderr, "pretokenize", SYNOPSIS, CLI_FLAGS(flags));
        return 1;
    }
    if (quiet) o.progress = false;
    const bool lowercase = !cased;
    const CliPath ins[] = {CLI_FILE("--vocab", vocab), CLI_FILE("--in", o.in_path)};
    if (cli_check_paths("pretokenize", ins, 2, &(CliPath)CLI_DIR("--out", o.out_dir), 1)) return 1;
    Tokenizer *t = tok_load(vocab, lowercase);
    if (!t) { fprintf(stderr, "hyp pretokenize: %s\n", hyp_last_error()); return 1; }
    o.tok = t;
    o.vocab_name = vocab;
    int rc = pretokenize(&o);
    if (rc) fprintf(stderr, "hyp pretokenize: %s\n", hyp_last_error());
    tok_free(t);
    return rc ? 1 : 0;
}
