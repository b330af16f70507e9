// cmd_export.c: `hyp export --model MODEL.h5 --out FILE.safetensors [--config-out config.json]`:
// the model's parameters as F32 safetensors with their HuggingFace names (HF can load them).
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "model/model_file.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *USAGE =
    "usage: hyp export --model MODEL.h5 --out FILE.safetensors [--config-out config.json]\n"
    "  --model MODEL.h5     a model file (hyp import, training)\n"
    "  --out FILE           safetensors to write (F32, HuggingFace parameter names)\n"
    "  --config-out FILE    also write an HF config.json (BertModel config for a BERT;\n"
    "                       the original config.json for a Hypencoder)\n";

static int write_text(const char *path, const char *text) {
    size_t n = strlen(path) + 5;
    char *tmp = malloc(n);
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int bad = !f || fputs(text, f) == EOF || fputc('\n', f) == EOF;
    if (f) bad |= fclose(f) != 0;
    if (!bad) bad = rename(tmp, path) != 0;
    if (bad) { hyp_set_error("%s: cannot write: %s", path, strerror(errno)); unlink(tmp); }
    free(tmp);
    return bad ? -1 : 0;
}

int cmd_export(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *cfg_out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(USAGE, stdout); return 0; }
        if (i + 1 >= argc) { fprintf(stderr, "hyp export: missing value for %s\n%s", a, USAGE); return 1; }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--config-out")) cfg_out = v;
        else { fprintf(stderr, "hyp export: unknown option %s\n%s", a, USAGE); return 1; }
    }
    if (!model || !out) { fprintf(stderr, "hyp export: --model and --out are required\n%s", USAGE); return 1; }
    const CliPath outs[] = {CLI_FILE("--out", out), CLI_FILE("--config-out", cfg_out)};
    if (cli_check_paths("export", &(CliPath)CLI_FILE("--model", model), 1, outs, 2)) return 1;
    ModelFile *m = model_file_read(model);
    if (!m) { fprintf(stderr, "hyp export: error: %s\n", hyp_last_error()); return 1; }
    // The config text first: a model without one fails before anything is written.
    char *text = NULL;
    int rc = 0;
    if (cfg_out) {
        text = m->config.kind == MODEL_BERT ? model_config_to_hf_bert_json(&m->config)
             : m->hf_config ? hyp_strdup(m->hf_config) : NULL;
        if (!text) {
            hyp_set_error("%s: --config-out: the model file stores no HF config.json (a model trained here has none; "
                          "expected an imported model or a BERT)", model);
            rc = 1;
        }
    }
    if (!rc && safetensors_write(m->params, out, NULL)) rc = 1;
    if (!rc && cfg_out && write_text(cfg_out, text)) rc = 1;
    free(text);
    if (rc) fprintf(stderr, "hyp export: error: %s\n", hyp_last_error());
    else fprintf(stderr, "hyp export: wrote %s (%d tensors, %zu parameters)%s%s\n", out, m->params->n,
                 weights_numel_unique(m->params), cfg_out ? " and " : "", cfg_out ? cfg_out : "");
    model_file_free(m);
    return rc;
}
