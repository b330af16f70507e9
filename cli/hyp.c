// hyp: one subcommand per job (DESIGN §1). Thin: parse flags, call the library.
#include "cli/commands.h"
#include "autograd/util.h"
#include "kernels/kernels.h"
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} Command;

static const Command commands[] = {
    {"demo", cmd_demo, "the main job: train a tiny Hypencoder and BE-Base on an embedded task, evaluate, compare"},
    {"train", cmd_train, "distillation training: hyp train --config C.ini [--set s.k=v] --out DIR [--resume auto]"},
    {"eval", cmd_eval, "trec_eval-compatible evaluation: hyp eval [-q] [-c] [-l N] [-M N] -m MEASURE QRELS RUN"},
    {"import", cmd_import, "HF/PyTorch weights to a model file: hyp import --from FILE|DIR --out M.h5"},
    {"export", cmd_export, "model file to HF safetensors: hyp export --model M.h5 --out F.safetensors [--config-out config.json]"},
    {"encode", cmd_encode, "corpus to document vectors: hyp encode --model M.h5 --corpus C.tsv --out DOCS.h5"},
    {"search", cmd_search, "q-net retrieval, exhaustive or graph: hyp search --model M.h5 --docs DOCS.h5 --queries Q.tsv [--graph G.h5 --preset efficient1] --out RUN"},
    {"index", cmd_index, "document neighbour graph: hyp index --docs DOCS.h5 --neighbors 100 --out GRAPH.h5"},
    {"score", cmd_score, "score query/document pairs: hyp score --model M.h5 --queries Q.tsv --corpus C.tsv"},
    {"label", cmd_label, "training data from a teacher: hyp label --teacher T.h5 --queries Q --corpus C --candidates RUN --negatives 7 --out train.jsonl"},
    {"pretokenize", cmd_pretokenize, "training JSONL to memory-mapped shards: hyp pretokenize --vocab V --in train.jsonl --out DIR"},
    {"tokenize", cmd_tokenize, "text lines to BERT WordPiece ids: hyp tokenize --vocab VOCAB [--max-len N] [--tokens] < lines > ids"},
    {"plot", cmd_plot, "training/validation curves of runs as SVG: hyp plot RUN_DIR... --out curves.svg [--metric Rprec]"},
    {"selfcheck", cmd_selfcheck, "run a short check of the build: ops, autograd and backends"},
};

static void usage(FILE *out) {
    fprintf(out, "hypencoder.c %s: train, evaluate and search with Hypencoder retrieval models\n\n", HYP_VERSION);
    fprintf(out, "usage: hyp <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n  hyp --version    version and compiled backends\n  hyp <command> --help\n");
}

int hyp_main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 1; }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
#ifdef HYP_CUDA_SIM
        const char *gpu = hyp_cuda_available() ? " (simulated device)" : "";
#else
        const char *gpu = hyp_cuda_available() ? " (GPU present)" : "";
#endif
        printf("hyp %s\nbackends: %s%s\n", HYP_VERSION, hyp_backends_compiled(), gpu);
#ifdef HYP_HAVE_CUDA
        if (!hyp_cuda_available()) printf("cuda: not usable: %s\n", hyp_cuda_why_unavailable());
#endif
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "hyp: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 1;
}
