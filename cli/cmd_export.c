// cmd_export.c: `hyp export --model MODEL.h5 --out FILE.safetensors [--config-out config.json]`:
// the model's parameters as F32 safetensors with their HuggingFace names (HF can load them).
#include "cli/commands.h"
#include "cli/cli_util.h"
#include "model/model_file.h"
#include "autograd/atomic.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SYNOPSIS = "--model MODEL.h5 --out FILE.safetensors [--config-out config.json]";

// The config text and a newline, through the atomic writer (temporary, fsync, rename).
static int write_text(const char *path, const char *text) {
    size_t n = strlen(text);
    char *buf = hyp_malloc(n + 2);
    memcpy(buf, text, n);
    buf[n] = '\n';
    int rc = atomic_write_file(path, buf, n + 1);
    free(buf);
    return rc;
}

int cmd_export(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *cfg_out = NULL;
    const CliFlag flags[] = {
        {.name = "--model", .kind = FLAG_STR, .dst = &model, .meta = "MODEL.h5", .help = "a model file (hyp import, training)"},
        {.name = "--out", .kind = FLAG_STR, .dst = &out, .meta = "FILE", .help = "safetensors to write (F32, HuggingFace parameter names)"},
        {.name = "--config-out", .kind = FLAG_STR, .dst = &cfg_out, .meta = "FILE",
         .help = "also write an HF config.json (BertModel's for a BERT; the original one for a Hypencoder)"},
    };
    const int parsed = cli_parse("export", SYNOPSIS, CLI_FLAGS(flags), argc, argv);
    if (parsed) return parsed == CLI_HELP ? 0 : 1;
    if (!model || !out) {
        fprintf(stderr, "hyp export: --model and --out are required\n");
        cli_usage(stderr, "export", SYNOPSIS, CLI_FLAGS(flags));
        return 1;
    }
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
