// hyp pretokenize: training JSONL -> memory-mappable shard directory (data/train_data.h).
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "data/train_data.h"
#include "autograd/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *o) {
    fprintf(o,
            "usage: hyp pretokenize --vocab VOCAB --in train.jsonl --out DIR [--query-max-len 32] [--doc-max-len 196]\n"
            "                       [--uncased|--cased] [--retokenize] [--threads N] [--quiet]\n"
            "  One streaming pass over the training JSONL, in the authors' format\n"
            "    {\"query\": {\"id\",\"content\"}, \"items\": [{\"id\",\"content\",\"score\"}, ...]}  (items[0] = positive;\n"
            "     \"tokenized_content\" ids are used when present)\n"
            "  or FlagEmbedding's {\"query\", \"pos\", \"neg\", \"pos_scores\", \"neg_scores\"}, into DIR:\n"
            "  int32 token ids, offsets, float32 teacher scores and meta.json, for `hyp train`'s loader.\n"
            "  --query-max-len N  truncate queries to N ids including [CLS]/[SEP] (default 32, the paper's)\n"
            "  --doc-max-len N    truncate passages to N ids including [CLS]/[SEP] (default 196)\n"
            "  --uncased          lowercase and strip accents (default; bert-base-uncased)\n"
            "  --cased            keep case (cased vocabularies)\n"
            "  --retokenize       tokenize \"content\" even where \"tokenized_content\" is given (ids made\n"
            "                     with another vocabulary; otherwise they are trusted, only range-checked)\n"
            "  --threads N        parse/tokenize threads (default: all)\n"
            "  --quiet            no progress on stderr\n"
            "  DIR must not exist; it is written as DIR.tmp and renamed when complete.\n");
}

static int parse_len(const char *flag, const char *s, int *out) {
    return cli_int("pretokenize", flag, s, 2, 1000000, out);
}

int cmd_pretokenize(int argc, char **argv) {
    PretokOptions o = pretok_options_default();
    const char *vocab = NULL;
    bool lowercase = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--vocab") && i + 1 < argc) vocab = argv[++i];
        else if (!strcmp(a, "--in") && i + 1 < argc) o.in_path = argv[++i];
        else if (!strcmp(a, "--out") && i + 1 < argc) o.out_dir = argv[++i];
        else if (!strcmp(a, "--query-max-len") && i + 1 < argc) { if (parse_len(a, argv[++i], &o.query_max_len)) return 1; }
        else if (!strcmp(a, "--doc-max-len") && i + 1 < argc) { if (parse_len(a, argv[++i], &o.doc_max_len)) return 1; }
        else if (!strcmp(a, "--threads") && i + 1 < argc) {
            if (cli_int("pretokenize", a, argv[++i], 1, 4096, &o.threads)) return 1;
        } else if (!strcmp(a, "--uncased")) lowercase = true;
        else if (!strcmp(a, "--cased")) lowercase = false;
        else if (!strcmp(a, "--quiet")) o.progress = false;
        else if (!strcmp(a, "--retokenize")) o.retokenize = true;
        else {
            cli_bad_option("pretokenize", a, "--vocab --in --out --query-max-len --doc-max-len --threads");
            usage(stderr);
            return 1;
        }
    }
    if (!vocab || !o.in_path || !o.out_dir) {
        fprintf(stderr, "hyp pretokenize: --vocab, --in and --out are required\n");
        usage(stderr);
        return 1;
    }
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
