// cmd_import.c: `hyp import --from FILE|DIR --out MODEL.h5`: HuggingFace / PyTorch weights
// (safetensors or pytorch_model.bin), config.json and vocab.txt -> our HDF5 model file.
#include "cli/commands.h"
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
    "  --query-max-len N    tokenizer max length for queries (default 32)\n"
    "  --doc-max-len N      tokenizer max length for documents (default min(512, positions))\n"
    "  --lowercase 0|1      override the tokenizer's lowercasing (default: tokenizer_config.json)\n"
    "  -q, --quiet          no notes on stderr\n";

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "hyp import: %s%s\n%s", msg, arg ? arg : "", USAGE);
    return 1;
}

static bool parse_int(const char *s, int lo, int hi, int *out) {
    char *e;
    long v = strtol(s, &e, 10);
    if (!*s || *e || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
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
        else if (!strcmp(a, "--query-max-len")) { if (!parse_int(v, 1, 1 << 20, &o.query_max_len)) return usage_error("bad --query-max-len ", v); }
        else if (!strcmp(a, "--doc-max-len")) { if (!parse_int(v, 1, 1 << 20, &o.doc_max_len)) return usage_error("bad --doc-max-len ", v); }
        else if (!strcmp(a, "--lowercase")) { if (!parse_int(v, 0, 1, &o.lowercase)) return usage_error("--lowercase takes 0 or 1, not ", v); }
        else return usage_error("unknown option ", a);
    }
    if (!o.from || !o.out) return usage_error("--from and --out are required", NULL);
    if (model_import(&o)) {
        fprintf(stderr, "hyp import: error: %s\n", hyp_last_error());
        return 1;
    }
    return 0;
}
