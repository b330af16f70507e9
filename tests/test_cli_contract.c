// The command-line contract (issue 12, part B): every command refuses an output that is
// one of its inputs and an output it could not write, before doing any work; flag values
// are strict numbers; options are checked against the model before heavy work. Each case
// runs bin/hyp and checks the exit status, the message (what was found, what was
// expected) and that no input changed.
#include "tests/testlib.h"
#include "autograd/util.h"
#include <float.h>
#include <stdarg.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FX "tests/fixtures/hypencoder_import"

// Run a shell command (stdout and stderr captured into out); the exit status.
static int run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t cap, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(cmd, sizeof cmd, "{ ");
    n += vsnprintf(cmd + n, sizeof cmd - 32, fmt, ap);
    va_end(ap);
    snprintf(cmd + n, sizeof cmd - n, "; } 2>&1");
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen %s", cmd);
    size_t len = fread(out, 1, cap - 1, p);
    out[len] = 0;
    while (fgetc(p) != EOF) {}
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { *n = 0; return NULL; }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

// A work directory with a tiny imported Hypencoder (m.h5), its passages and queries,
// document vectors (docs.h5) and a neighbour graph (g.h5).
static char W[64], ROOT[4096];
static void setup_work(void) {
    cr_assert_not_null(getcwd(ROOT, sizeof ROOT));
    snprintf(W, sizeof W, "/tmp/hyp_contract_XXXXXX");
    cr_assert_not_null(mkdtemp(W));
    char out[4096];
    int rc = run(out, sizeof out,
                 "cd %s && cp -r %s/" FX " imp && cp imp/passages.tsv imp/queries.tsv . && "
                 "%s/" HYP_BIN " import --from imp --bert-config imp/bert_config.json --out m.h5 -q && "
                 "%s/" HYP_BIN " encode --model m.h5 --corpus passages.tsv --out docs.h5 && "
                 "%s/" HYP_BIN " index --docs docs.h5 --neighbors 1 --out g.h5",
                 W, ROOT, ROOT, ROOT, ROOT);
    cr_assert_eq(rc, 0, "setup: %s", out);
}
static void teardown_work(void) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", W, W);
    if (system(cmd)) {}
}

// The inputs every case may touch, with their bytes before the command.
static const char *const INPUTS[] = {"m.h5", "passages.tsv", "queries.tsv", "docs.h5", "g.h5", "imp/pytorch_model.bin",
                                     "imp/vocab.txt", "imp/config.json"};
#define N_INPUTS (sizeof INPUTS / sizeof INPUTS[0])
typedef struct { char *b[N_INPUTS]; size_t n[N_INPUTS]; } Snapshot;
static void snap(Snapshot *s) {
    for (size_t i = 0; i < N_INPUTS; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", W, INPUTS[i]);
        s->b[i] = slurp(p, &s->n[i]);
        cr_assert_not_null(s->b[i], "%s missing", p);
    }
}
static void expect_unchanged(const Snapshot *s, const char *what) {
    for (size_t i = 0; i < N_INPUTS; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", W, INPUTS[i]);
        size_t n;
        char *b = slurp(p, &n);
        cr_assert(b && n == s->n[i] && !memcmp(b, s->b[i], n), "%s: input %s changed", what, INPUTS[i]);
        free(b);
    }
}
static void snap_free(Snapshot *s) {
    for (size_t i = 0; i < N_INPUTS; i++) free(s->b[i]);
}

// `hyp ARGS` run in W: exit status 1, every `want` in the message, inputs untouched.
static void expect_refused(const Snapshot *s, const char *args, const char *want1, const char *want2) {
    char out[8192];
    int rc = run(out, sizeof out, "cd %s && %s/" HYP_BIN " %s", W, ROOT, args);
    cr_assert_eq(rc, 1, "hyp %s: exit %d, expected 1:\n%s", args, rc, out);
    cr_assert(strstr(out, want1), "hyp %s: message lacks \"%s\":\n%s", args, want1, out);
    if (want2) cr_assert(strstr(out, want2), "hyp %s: message lacks \"%s\":\n%s", args, want2, out);
    cr_assert(!strstr(out, "hyp: "), "hyp %s: an internal error instead of a validated one:\n%s", args, out);
    expect_unchanged(s, args);
}

TestSuite(cli_contract, .init = setup_work, .fini = teardown_work);

#define SEARCH "search --model m.h5 --docs docs.h5 --queries queries.tsv"

Test(cli_contract, output_equal_to_an_input_is_refused) {
    Snapshot s;
    snap(&s);
    const char *SAME = "is the same file as";
    expect_refused(&s, "encode --model m.h5 --corpus passages.tsv --out passages.tsv", SAME, "--corpus passages.tsv");
    expect_refused(&s, "encode --model m.h5 --corpus passages.tsv --out m.h5", SAME, "--model m.h5");
    expect_refused(&s, "encode --model m.h5 --corpus passages.tsv --vocab imp/vocab.txt --out imp/vocab.txt", SAME,
                   "--vocab");
    expect_refused(&s, "index --docs docs.h5 --out docs.h5", SAME, "--docs docs.h5");
    expect_refused(&s, SEARCH " --out queries.tsv", SAME, "--queries");
    expect_refused(&s, SEARCH " --out docs.h5", SAME, "--docs");
    expect_refused(&s, SEARCH " --out m.h5", SAME, "--model");
    expect_refused(&s, SEARCH " --graph g.h5 --out g.h5", SAME, "--graph");
    expect_refused(&s, SEARCH " --out run.trec --summary queries.tsv", "--summary queries.tsv is the same file", NULL);
    expect_refused(&s, SEARCH " --out run.trec --summary run.trec", "are the same file", NULL);
    expect_refused(&s, "export --model m.h5 --out m.h5", SAME, "--model");
    expect_refused(&s, "export --model m.h5 --out x.safetensors --config-out m.h5", SAME, "--model");
    expect_refused(&s, "import --from imp --bert-config imp/bert_config.json --out imp/pytorch_model.bin", SAME, "--from");
    expect_refused(&s, "import --from imp --bert-config imp/bert_config.json --out imp/vocab.txt", SAME, "--from");
    expect_refused(&s, "import --from imp/pytorch_model.bin --out imp/config.json", SAME, "--from");
    expect_refused(&s, "pretokenize --vocab imp/vocab.txt --in queries.tsv --out imp/vocab.txt", SAME, "--vocab");
    expect_refused(&s, "pretokenize --vocab imp/vocab.txt --in queries.tsv --out passages.tsv", "expected a directory",
                   "found a file");
    // Through a symlink, a hard link, another spelling of the path, and OUT.tmp (which the
    // writers create and rename).
    char out[4096];
    cr_assert_eq(run(out, sizeof out, "cd %s && ln -s queries.tsv q.link && ln passages.tsv p.hard && cp passages.tsv "
                     "c.tmp && cp c.tmp c.tmp.orig", W), 0, "%s", out);
    expect_refused(&s, SEARCH " --out q.link", SAME, "--queries");
    expect_refused(&s, SEARCH " --out ./imp/../queries.tsv", SAME, "--queries");
    expect_refused(&s, "encode --model m.h5 --corpus passages.tsv --out p.hard", SAME, "--corpus");
    expect_refused(&s, "encode --model m.h5 --corpus c.tmp --out c", "temporary file", "--corpus c.tmp");
    cr_assert_eq(run(out, sizeof out, "cd %s && cmp c.tmp c.tmp.orig", W), 0, "c.tmp changed: %s", out);
    snap_free(&s);
}

Test(cli_contract, unwritable_output_is_refused_before_the_work) {
    Snapshot s;
    snap(&s);
    expect_refused(&s, "encode --model m.h5 --corpus passages.tsv --out nodir/docs.h5", "directory nodir does not exist",
                   NULL);
    expect_refused(&s, "index --docs docs.h5 --out nodir/g.h5", "directory nodir does not exist", NULL);
    expect_refused(&s, SEARCH " --out nodir/run.trec", "directory nodir does not exist", NULL);
    expect_refused(&s, SEARCH " --out run.trec --summary nodir/s.json", "--summary nodir/s.json", "does not exist");
    expect_refused(&s, SEARCH " --out passages.tsv/run.trec", "passages.tsv is not a directory", NULL);
    expect_refused(&s, SEARCH " --out imp", "expected a regular file", "found a directory");
    expect_refused(&s, SEARCH " --out /dev/null", "expected a regular file", "found a device");
    expect_refused(&s, "export --model m.h5 --out nodir/x.safetensors", "does not exist", NULL);
    expect_refused(&s, "import --from imp --bert-config imp/bert_config.json --out nodir/m.h5", "does not exist", NULL);
    expect_refused(&s, "demo --steps 5 --out nodir/demo", "directory nodir does not exist", NULL);
    expect_refused(&s, "pretokenize --vocab imp/vocab.txt --in queries.tsv --out nodir/shards", "does not exist", NULL);
    // A directory nobody can create files in: read-only for a normal user; root ignores
    // permission bits, so there the test uses /sys (sysfs: nobody can create a file).
    char out[4096];
    const char *ro = "/sys";
    if (geteuid() != 0) {
        cr_assert_eq(run(out, sizeof out, "mkdir %s/ro && chmod 555 %s/ro", W, W), 0, "%s", out);
        static char rop[128];
        snprintf(rop, sizeof rop, "%s/ro", W);
        ro = rop;
    }
    char args[512];
    snprintf(args, sizeof args, SEARCH " --out %s/run.trec", ro);
    expect_refused(&s, args, "cannot create files in directory", ro);
    snprintf(args, sizeof args, "encode --model m.h5 --corpus passages.tsv --out %s/docs.h5", ro);
    expect_refused(&s, args, "cannot create files in directory", NULL);
    snprintf(args, sizeof args, "index --docs docs.h5 --out %s/g.h5", ro);
    expect_refused(&s, args, "cannot create files in directory", NULL);
    // No write-check file or OUT.tmp is left behind.
    cr_assert_eq(run(out, sizeof out, "cd %s && ls -a | grep -c 'hyp-write-check\\|run.trec'", W), 1, "left: %s", out);
    snap_free(&s);
}

Test(cli_contract, numbers_are_strict) {
    Snapshot s;
    snap(&s);
    expect_refused(&s, SEARCH " --out r --k 1e3", "--k: expected an integer", "got \"1e3\"");
    expect_refused(&s, SEARCH " --out r --k 10x", "--k: expected an integer", "got \"10x\"");
    expect_refused(&s, SEARCH " --out r --k 0", "--k: 0 is out of range", NULL);
    expect_refused(&s, SEARCH " --out r --k 99999999999999999999", "out of range", NULL);
    expect_refused(&s, SEARCH " --out r --k ' 5'", "--k: expected an integer", NULL);
    expect_refused(&s, SEARCH " --out r --seed -1", "--seed: expected a non-negative integer", NULL);
    expect_refused(&s, SEARCH " --out r --graph g.h5 --max-iter 4.5", "--max-iter: expected an integer", NULL);
    expect_refused(&s, "encode --model m.h5 --corpus passages.tsv --out d.h5 --batch 0x10", "--batch", "got \"0x10\"");
    expect_refused(&s, "index --docs docs.h5 --out g2.h5 --neighbors 1k", "--neighbors", "got \"1k\"");
    expect_refused(&s, "score --model m.h5 --queries queries.tsv --corpus passages.tsv --batch ''", "--batch", "got \"\"");
    expect_refused(&s, "tokenize --vocab imp/vocab.txt --max-len 8e1 </dev/null", "--max-len", "8e1");
    expect_refused(&s, "encode --model m.h5 --out d.h5 --corpus", "--corpus needs a value", NULL);
    expect_refused(&s, SEARCH " --out r --no-such", "unknown option '--no-such'", NULL);
    expect_refused(&s, SEARCH " --out r --dtype fp8", "--dtype: expected fp32, fp16 or bf16, got \"fp8\"", NULL);
    expect_refused(&s, SEARCH " --out r --device gpu", "--device: expected cpu or cuda, got \"gpu\"", NULL);
    expect_refused(&s, "score --model m.h5 --queries queries.tsv --corpus passages.tsv --device tpu", "--device",
                   "got \"tpu\"");
    expect_refused(&s, "index --docs docs.h5 --out g2.h5 --device 1", "--device: expected cpu or cuda", NULL);
    expect_refused(&s, "encode --model m.h5 --corpus passages.tsv --out d.h5 --side both",
                   "--side: expected one of document|query|doc, got \"both\"", NULL);
    expect_refused(&s, "encode --model m.h5 --corpus queries.tsv --out d.h5 --side query", "m.h5 is a Hypencoder",
                   "--side query is for BE-Base and plain BERT models");
    if (!hyp_cuda_available())   // the build or the machine has no GPU: said before any work
        expect_refused(&s, SEARCH " --out r --device cuda", "--device cuda, but no GPU is usable", NULL);
    expect_refused(&s, "demo --steps 0", "--steps: 0 is out of range", NULL);
    expect_refused(&s, "demo --steps abc", "--steps: expected an integer", "got \"abc\"");
    expect_refused(&s, "eval -m recall.1e3 imp/vocab.txt imp/vocab.txt", "cutoff \"1e3\"", "expected a whole number");
    expect_refused(&s, "eval -m recall.10x imp/vocab.txt imp/vocab.txt", "cutoff \"10x\"", NULL);
    expect_refused(&s, "eval -m P@10x imp/vocab.txt imp/vocab.txt", "bad @ cutoff", "got \"10x\"");
    expect_refused(&s, "eval -l 2x imp/vocab.txt imp/vocab.txt", "-l: expected an integer", NULL);
    expect_refused(&s, "eval --permutations=1e4 imp/vocab.txt imp/vocab.txt", "--permutations: expected an integer", NULL);
    snap_free(&s);
}

Test(cli_contract, options_checked_against_the_model) {
    Snapshot s;
    snap(&s);
    // The fixture's BERT has 32 positions and 34 vocabulary rows.
    expect_refused(&s, SEARCH " --out r --query-max-len 1", "--query-max-len: 1 is out of range", NULL);
    expect_refused(&s, SEARCH " --out r --query-max-len 100000", "exceeds the model's 32 positions", NULL);
    expect_refused(&s, "score --model m.h5 --queries queries.tsv --corpus passages.tsv --query-max-len 33",
                   "exceeds the model's 32 positions", NULL);
    expect_refused(&s, "score --model m.h5 --queries queries.tsv --corpus passages.tsv --doc-max-len 1", "--doc-max-len",
                   NULL);
    expect_refused(&s, "encode --model m.h5 --corpus passages.tsv --out d.h5 --max-len 33", "exceeds the model's 32", NULL);
    char out[4096];
    cr_assert_eq(run(out, sizeof out, "cd %s && (cat imp/vocab.txt; seq 1 40 | sed 's/^/extra/') > big.txt", W), 0);
    expect_refused(&s, "encode --model m.h5 --corpus passages.tsv --vocab big.txt --out d.h5",
                   "--vocab big.txt has 74 tokens", "embedding table has 34 rows");
    expect_refused(&s, "score --model m.h5 --queries queries.tsv --corpus passages.tsv --vocab big.txt",
                   "embedding table has 34 rows", NULL);
    // A model trained here stores no HF config.json: export fails before writing anything.
    cr_assert_eq(run(out, sizeof out, "cd %s && %s/" HYP_BIN " demo --steps 2 --out demo >/dev/null", W, ROOT), 0, "%s", out);
    expect_refused(&s, "export --model demo/hypencoder/best.h5 --out x.safetensors --config-out c.json",
                   "stores no HF config.json", NULL);
    char p[256];
    snprintf(p, sizeof p, "%s/x.safetensors", W);
    cr_assert(access(p, F_OK) != 0, "export left %s behind", p);
    // More neighbours than documents: the graph has every other document, and says so.
    cr_assert_eq(run(out, sizeof out, "cd %s && %s/" HYP_BIN " index --docs docs.h5 --neighbors 50 --out g50.h5", W, ROOT), 0,
                 "%s", out);
    cr_assert(strstr(out, "only 1 other documents") && strstr(out, "\"k\": 1,"), "%s", out);
    // Entry points that cover the corpus (the default 10000 here, 2 documents): the graph
    // search is exhaustive, and hyp search says so and by how much.
    cr_assert_eq(run(out, sizeof out, "cd %s && %s/" HYP_BIN " " SEARCH " --graph g.h5 --out rg --k 2", W, ROOT), 0, "%s", out);
    cr_assert(strstr(out, "the 10000 entry points cover all 2 documents (5000.0x the corpus)") &&
              strstr(out, "exhaustive search") && strstr(out, "\"entries_cover_corpus\": true"), "%s", out);
    // A query longer than --query-max-len is truncated, not an error.
    cr_assert_eq(run(out, sizeof out, "cd %s && %s/" HYP_BIN " " SEARCH " --out r --query-max-len 3 --k 2", W,
                     ROOT), 0, "%s", out);
    snap_free(&s);
}

// `hyp demo --steps N` below the embedded config's 200 warmup steps is a valid run: the
// warmup scales with the budget (it failed with "warmup_steps = 200 exceeds max_steps").
Test(cli_contract, demo_with_few_steps) {
    char out[16384];
    int rc = run(out, sizeof out, "cd %s && OMP_NUM_THREADS=1 %s/" HYP_BIN " demo --steps 10 --out demo", W, ROOT);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "| BE-Base (inner product)    |"), "%s", out);
    rc = run(out, sizeof out, "grep -h '^warmup_steps' %s/demo/biencoder/config.ini %s/demo/hypencoder/config.ini", W, W);
    cr_assert(rc == 0 && !strcmp(out, "warmup_steps = 0\nwarmup_steps = 0\n"), "10 steps: warmup 10/100 = 0, got %s", out);
}

// A run that fails on its config or data leaves no folder behind when it made the folder
// (the hostile sweep found 53 such leftovers); a folder that existed is left alone.
Test(cli_contract, failed_train_leaves_no_new_folder) {
    char out[16384];
    int rc = run(out, sizeof out, "cd %s && %s/" HYP_BIN " train --config %s/configs/tiny.ini --set data.train=none.jsonl "
                 "--out newrun", W, ROOT, ROOT);
    cr_assert_eq(rc, 1, "%s", out);
    rc = run(out, sizeof out, "test -e %s/newrun", W);
    cr_assert_neq(rc, 0, "the failed run left its new folder behind");
    rc = run(out, sizeof out, "mkdir -p %s/old && touch %s/old/notes.txt && cd %s && %s/" HYP_BIN " train --config "
             "%s/configs/tiny.ini --set data.train=none.jsonl --out old; test -f %s/old/notes.txt", W, W, W, ROOT, ROOT, W);
    cr_assert_eq(rc, 0, "an existing folder was touched: %s", out);
    // a shards folder given as data.train is an input: --out may not be it
    rc = run(out, sizeof out, "mkdir -p %s/shards && cd %s && %s/" HYP_BIN " train --config %s/configs/tiny.ini "
             "--set data.train=shards --out shards", W, W, ROOT, ROOT);
    cr_assert(rc == 1 && strstr(out, "data.train"), "--out = the data.train shards: %s", out);
}

// The strict parser itself (autograd/util.h).
Test(strict_numbers, integers) {
    int64_t v = 7;
    int x;
    cr_assert_eq(hyp_parse_i64("--k", "1000", 1, 1 << 30, &v), 0);
    cr_assert_eq(v, 1000);
    cr_assert_eq(hyp_parse_i64("--k", "-12", INT64_MIN, INT64_MAX, &v), 0);
    cr_assert_eq(v, -12);
    cr_assert_eq(hyp_parse_i64("--k", "+3", 0, 9, &v), 0);
    cr_assert_eq(v, 3);
    cr_assert_eq(hyp_parse_i64("x", "9223372036854775807", INT64_MIN, INT64_MAX, &v), 0);
    cr_assert_eq(v, INT64_MAX);
    const char *bad[] = {"", " 5", "5 ", "1e3", "10x", "0x10", "2.5", "+", "-", "--1", "١", "5\n", NULL};
    for (int i = 0; bad[i]; i++) {
        v = 7;
        cr_assert_eq(hyp_parse_i64("--k", bad[i], INT64_MIN, INT64_MAX, &v), -1, "accepted \"%s\"", bad[i]);
        cr_assert_eq(v, 7, "*out written on error");
        cr_assert(strstr(hyp_last_error(), "--k: expected an integer, got \""), "%s", hyp_last_error());
    }
    cr_assert_eq(hyp_parse_i64("--k", "9223372036854775808", INT64_MIN, INT64_MAX, &v), -1);
    cr_assert(strstr(hyp_last_error(), "9223372036854775808 is out of range"), "%s", hyp_last_error());
    cr_assert_eq(hyp_parse_int("--n", "2147483648", INT_MIN, INT_MAX, &x), -1, "int overflow");
    cr_assert_eq(hyp_parse_int("--n", "0", 1, 10, &x), -1);
    cr_assert_str_eq(hyp_last_error(), "--n: 0 is out of range: expected an integer from 1 to 10");
    cr_assert_eq(hyp_parse_int("--n", "0", 1, INT_MAX, &x), -1);
    cr_assert_str_eq(hyp_last_error(), "--n: 0 is out of range: expected an integer >= 1");
    cr_assert_eq(hyp_parse_int(NULL, "abc", 1, INT_MAX, &x), -1);
    cr_assert_str_eq(hyp_last_error(), "expected an integer >= 1, got \"abc\"");
    uint64_t u;
    cr_assert_eq(hyp_parse_u64("--seed", "18446744073709551615", &u), 0);
    cr_assert_eq(u, UINT64_MAX);
    cr_assert_eq(hyp_parse_u64("--seed", "18446744073709551616", &u), -1);
    cr_assert_eq(hyp_parse_u64("--seed", "-1", &u), -1);
    cr_assert_eq(hyp_parse_u64("--seed", "1e3", &u), -1);
}

Test(strict_numbers, doubles) {
    double d = 7;
    const char *good[] = {"3e-4", "0.1", ".5", "5.", "-2", "+1E+3", "1e-400", NULL};
    const double want[] = {3e-4, 0.1, 0.5, 5.0, -2, 1e3, 0};
    for (int i = 0; good[i]; i++) {
        cr_assert_eq(hyp_parse_f64("train.lr", good[i], -DBL_MAX, DBL_MAX, &d), 0, "%s: %s", good[i], hyp_last_error());
        cr_assert_eq(d, want[i], "%s", good[i]);
    }
    const char *bad[] = {"", "fast", "1e3x", "1e", "e3", ".", "inf", "nan", "0x1p3", " 1", "1 ", "1,5", NULL};
    for (int i = 0; bad[i]; i++) {
        d = 7;
        cr_assert_eq(hyp_parse_f64("train.lr", bad[i], -DBL_MAX, DBL_MAX, &d), -1, "accepted \"%s\"", bad[i]);
        cr_assert_eq(d, 7);
        cr_assert(strstr(hyp_last_error(), "train.lr: expected a finite number, got \""), "%s", hyp_last_error());
    }
    cr_assert_eq(hyp_parse_f64("x", "1e400", -DBL_MAX, DBL_MAX, &d), -1, "overflow to inf");
    cr_assert(strstr(hyp_last_error(), "out of range"), "%s", hyp_last_error());
    cr_assert_eq(hyp_parse_f64("x", "-1", 0, 1, &d), -1);
    cr_assert_str_eq(hyp_last_error(), "x: -1 is out of range: expected a number from 0 to 1");
}

// The flag tables (cli_parse): --help prints the table's lines on stdout and exits 0; a value
// may be attached (--set=K=V) and a list flag keeps every value in order (the later --set
// wins); a choice names its values when refused.
Test(cli_contract, flag_table_forms) {
    char out[8192];
    int rc = run(out, sizeof out, "cd %s && %s/" HYP_BIN " index --help 2>/dev/null", W, ROOT);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "usage: hyp index") && strstr(out, "--centroids N") && strstr(out, "--device cpu|cuda"), "%s", out);
    rc = run(out, sizeof out, "cd %s && %s/" HYP_BIN " train --config %s/configs/tiny.ini --set=model.kind=gpt --plan", W, ROOT,
             ROOT);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "gpt"), "the attached --set= value must reach the config:\n%s", out);
    rc = run(out, sizeof out, "cd %s && %s/" HYP_BIN " train --config %s/configs/tiny.ini --set=model.qnet_layers=3 "
             "--set model.kind=biencoder --plan", W, ROOT, ROOT);
    cr_assert_eq(rc, 0, "two --set forms in one command line:\n%s", out);
    cr_assert(strstr(out, "plan: peak"), "%s", out);
    rc = run(out, sizeof out, "cd %s && %s/" HYP_BIN " train --config %s/configs/tiny.ini --set model.qnet_layers=3 "
             "--set=model.qnet_layers=9999 --plan", W, ROOT, ROOT);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "9999"), "every --set is applied, in order:\n%s", out);
    rc = run(out, sizeof out, "cd %s && %s/" HYP_BIN " import --from imp --out m2.h5 --pooling maxx", W, ROOT);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "--pooling: expected one of cls|mean|max, got \"maxx\""), "%s", out);
    rc = run(out, sizeof out, "cd %s && %s/" HYP_BIN " index --docs docs.h5 --out g3.h5 --block-rows=x", W, ROOT);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "--block-rows"), "%s", out);
}
