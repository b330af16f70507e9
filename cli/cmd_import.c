// cmd_import.c: `hyp import --from FILE|DIR --out MODEL.h5`: HuggingFace / PyTorch weights
// (safetensors or pytorch_model.bin), config.json and vocab.txt -> our HDF5 model file.
#include "cli/commands.h"
#include "cli/cli_util.h"
#include <sys/stat.h>
#include "model/model_import.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: hyp import --from FILE|DIR --out MODEL.h5 [options]\n"
    "  --from PATH          an HF model directory (config.json, model.safetensors or\n"
    "                       pytorch_model.bin, vocab.txt, tokenizer_config.json) or one\n"
    "                       weights file (safetensors or torch.save state dict)\n"
    "  --out MODEL.h5       model file to write (written to MODEL.h5.tmp, then renamed)\n"
    "  --config FILE        config.json (default: DIR/config.json; for a FILE the sizes\n"
    "                       are inferred from the weights when omitted)\n"
    "  --bert-config FILE   backbone BERT config.json for a Hypencoder whose backbone\n"
    "                       name is not bert-base-uncased\n"
    "  --vocab FILE         vocab.txt (default: next to the weights)\n"
    "  --allow-unknown      drop tensors that are not part of the model instead of failing\n"
    "  --query-max-len N    tokenizer max length for queries (default: 64 for a released Hypencoder,\n"
    "                       as the authors' retrieval scripts; 32 otherwise, as the training configs)\n"
    "  --doc-max-len N      tokenizer max length for documents (default min(512, positions))\n"
    "  --lowercase 0|1      override the tokenizer's lowercasing (default: tokenizer_config.json)\n"
    "  --pooling cls|mean|max  the vector every command makes by default (default: a sentence-\n"
    "                       transformers directory's Pooling module (modules.json), else cls)\n"
    "  --normalize 0|1      L2-normalise vectors (default: a Normalize module in modules.json)\n"
    "                       (sentence_bert_config.json's max_seq_length sets both max lengths)\n"
    "  -q, --quiet          no notes on stderr\n";

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "hyp import: %s%s\n%s", msg, arg ? arg : "", USAGE);
    return 1;
}

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
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(USAGE, stdout); return 0; }
        if (!strcmp(a, "--allow-unknown")) { o.allow_unknown = true; continue; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { o.notes = NULL; continue; }
        if (i + 1 >= argc) return usage_error("missing value for ", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--from")) o.from = v;
        else if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--config")) o.config = v;
        else if (!strcmp(a, "--bert-config")) o.bert_config = v;
        else if (!strcmp(a, "--vocab")) o.vocab = v;
        else if (!strcmp(a, "--query-max-len")) { if (cli_int("import", a, v, 2, 1 << 20, &o.query_max_len)) return 1; }
        else if (!strcmp(a, "--doc-max-len")) { if (cli_int("import", a, v, 2, 1 << 20, &o.doc_max_len)) return 1; }
        else if (!strcmp(a, "--lowercase")) { if (cli_int("import", a, v, 0, 1, &o.lowercase)) return 1; }
        else if (!strcmp(a, "--pooling")) {
            Pooling p;
            if (pooling_parse(v, &p)) return usage_error("--pooling: expected cls, mean or max, got ", v);
            o.pooling = v;
        } else if (!strcmp(a, "--normalize")) {
            int nz;
            if (cli_int("import", a, v, 0, 1, &nz)) return 1;
            o.normalize = nz ? IMPORT_ON : IMPORT_OFF;
        }
        else return usage_error("unknown option ", a);
    }
    if (!o.from || !o.out) return usage_error("--from and --out are required", NULL);
    if (check_paths(&o)) return 1;
    if (model_import(&o)) {
        fprintf(stderr, "hyp import: error: %s\n", hyp_last_error());
        return 1;
    }
    return 0;
}
