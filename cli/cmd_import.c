// cmd_import.c: `hyp import --from FILE|DIR --out MODEL.h5`: HuggingFace / PyTorch weights
// (safetensors or pytorch_model.bin), config.json and vocab.txt -> our HDF5 model file.
#include "cli/commands.h"
#include "cli/cli_util.h"
#include <sys/stat.h>
#include "model/model_import.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SYNOPSIS = "--from FILE|DIR --out MODEL.h5 [options]";

// Every file `import` may read: the named ones and, in the weights' directory (--from DIR,
// or the directory of --from FILE), the files the importer looks for there.
static int check_paths(const ImportOptions *o) {
    static const char *const NAMES[] = {"model.safetensors", "pytorch_model.bin", "config.json", "vocab.txt",
                                        "tokenizer.json", "tokenizer_config.json", "modules.json",
                                        "sentence_bert_config.json"};
    enum { N_NAMES = sizeof NAMES / sizeof NAMES[0] };
    struct stat st;
    bool is_dir = stat(o->from, &st) == 0 && S_ISDIR(st.st_mode);
    const char *slash = strrchr(o->from, '/');
    char dir[4096];
    if (is_dir) snprintf(dir, sizeof dir, "%s", o->from);
    else if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - o->from), o->from);
    else snprintf(dir, sizeof dir, ".");
    char paths[N_NAMES][4200];
    CliPath in[4 + N_NAMES] = {CLI_FILE("--from", o->from), CLI_FILE("--config", o->config),
                               CLI_FILE("--bert-config", o->bert_config), CLI_FILE("--vocab", o->vocab)};
    int n = 4;
    for (int i = 0; i < N_NAMES; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", dir, NAMES[i]);
        in[n++] = (CliPath)CLI_FILE("--from", paths[i]);
    }
    return cli_check_paths("import", in, n, &(CliPath)CLI_FILE("--out", o->out), 1);
}

int cmd_import(int argc, char **argv) {
    ImportOptions o = {.lowercase = -1, .notes = stderr};
    bool quiet = false;
    int pooling = -1, normalize = -1;
    const CliFlag flags[] = {
        {.name = "--from", .kind = FLAG_STR, .dst = &o.from, .meta = "PATH",
         .help = "an HF model directory (config.json, model.safetensors or pytorch_model.bin, vocab.txt, "
                 "tokenizer_config.json) or one weights file (safetensors or a torch.save state dict)"},
        {.name = "--out", .kind = FLAG_STR, .dst = &o.out, .meta = "MODEL.h5", .help = "model file to write (MODEL.h5.tmp, then renamed)"},
        {.name = "--config", .kind = FLAG_STR, .dst = &o.config, .meta = "FILE",
         .help = "config.json (default DIR/config.json; for a FILE the sizes are inferred from the weights)"},
        {.name = "--bert-config", .kind = FLAG_STR, .dst = &o.bert_config, .meta = "FILE",
         .help = "backbone BERT config.json for a Hypencoder whose backbone is not bert-base-uncased"},
        {.name = "--vocab", .kind = FLAG_STR, .dst = &o.vocab, .meta = "FILE", .help = "vocab.txt (default: next to the weights)"},
        {.name = "--allow-unknown", .kind = FLAG_SWITCH, .dst = &o.allow_unknown, .help = "drop tensors that are not part of the model instead of failing"},
        {.name = "--query-max-len", .kind = FLAG_INT, .dst = &o.query_max_len, .lo = 2, .hi = 1 << 20, .meta = "N",
         .help = "query length (default 64 for a released Hypencoder, as the authors' retrieval scripts; else 32)"},
        {.name = "--doc-max-len", .kind = FLAG_INT, .dst = &o.doc_max_len, .lo = 2, .hi = 1 << 20, .meta = "N", .help = "document length (default min(512, positions))"},
        {.name = "--lowercase", .kind = FLAG_INT, .dst = &o.lowercase, .lo = 0, .hi = 1, .meta = "0|1", .help = "override the tokenizer's lowercasing (default: tokenizer_config.json)"},
        {.name = "--pooling", .kind = FLAG_CHOICE, .dst = &pooling, .meta = "cls|mean|max",
         .help = "the vector every command makes by default (default: a sentence-transformers Pooling module, else cls)"},
        {.name = "--normalize", .kind = FLAG_INT, .dst = &normalize, .lo = 0, .hi = 1, .meta = "0|1", .help = "L2-normalise vectors (default: a Normalize module in modules.json)"},
        {.name = "--quiet", .kind = FLAG_SWITCH, .dst = &quiet, .help = "no notes on stderr (also -q)"},
        {.name = "-q", .kind = FLAG_SWITCH, .dst = &quiet},
    };
    const int parsed = cli_parse("import", SYNOPSIS, CLI_FLAGS(flags), argc, argv);
    if (parsed) return parsed == CLI_HELP ? 0 : 1;
    static const char *const POOLINGS[] = {"cls", "mean", "max"};
    if (pooling >= 0) o.pooling = POOLINGS[pooling];
    if (normalize >= 0) o.normalize = normalize ? IMPORT_ON : IMPORT_OFF;
    if (quiet) o.notes = NULL;
    if (!o.from || !o.out) {
        fprintf(stderr, "hyp import: --from and --out are required\n");
        cli_usage(stderr, "import", SYNOPSIS, CLI_FLAGS(flags));
        return 1;
    }
    if (check_paths(&o)) return 1;
    if (model_import(&o)) {
        fprintf(stderr, "hyp import: error: %s\n", hyp_last_error());
        return 1;
    }
    return 0;
}
