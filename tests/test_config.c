// test_config.c: the INI config: defaults, parsing, --set overrides, errors naming
// file:line (or the --set argument), the resolved text and its round trip.
#include "tests/testlib.h"
#include "train/config.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *write_tmp(const char *text) {
    char *path = hyp_strdup("/tmp/hyp_test_config_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

// Parse text as a file and expect an error containing `want` (file name and line included).
static void expect_file_error(const char *text, int line, const char *want) {
    char *path = write_tmp(text);
    Config c;
    config_init(&c);
    cr_assert_eq(config_parse_file(&c, path), -1, "accepted: %s", text);
    char loc[600];
    snprintf(loc, sizeof loc, "%s:%d: ", path, line);
    cr_assert(strstr(hyp_last_error(), loc), "error \"%s\" does not name %s", hyp_last_error(), loc);
    cr_assert(strstr(hyp_last_error(), want), "error \"%s\" does not say \"%s\"", hyp_last_error(), want);
    unlink(path);
    free(path);
}

Test(config, defaults) {
    Config c;
    config_init(&c);
    cr_assert_str_eq(c.model.kind, "hypencoder");
    cr_assert_eq(c.model.qnet_layers, 6);
    cr_assert(c.model.shared_encoder);
    cr_assert_str_eq(c.model.init_from, "");
    cr_assert_eq(c.model.dropout, 0.1);
    cr_assert_eq(c.data.num_negatives, 7);
    cr_assert_eq(c.data.query_max_len, 32);
    cr_assert_eq(c.data.doc_max_len, 196);
    cr_assert_eq(c.train.batch_size, 64);
    cr_assert_eq(c.train.lr, 2e-5);
    cr_assert_eq(c.train.warmup_steps, 6000);
    cr_assert_str_eq(c.train.schedule, "constant_with_warmup");
    cr_assert_eq(c.train.max_steps, 1000000);
    cr_assert_eq(c.train.save_steps, 2500);
    cr_assert_eq(c.train.keep_last, 3);
    cr_assert_eq(c.train.seed, 42);
    cr_assert_eq(c.train.weight_decay, 0.0);
    cr_assert_eq(c.train.max_grad_norm, 1.0);
    cr_assert_eq(c.train.adam_beta1, 0.9);
    cr_assert_eq(c.train.adam_beta2, 0.999);
    cr_assert_eq(c.train.adam_eps, 1e-8);
    cr_assert_eq(c.train.grad_accum, 1);
    cr_assert_str_eq(c.train.on_nonfinite, "stop");
    cr_assert_eq(c.train.log_steps, 10);
    cr_assert_eq(c.eval.every, 50000);
    cr_assert_eq(c.eval.select_within, 800000);
    cr_assert_str_eq(c.eval.metric, "Rprec");
    cr_assert_eq(c.eval.k, 1000);
    cr_assert_str_eq(c.dist.backend, "auto");
    cr_assert(!c.dist.cross_device_negatives);
    cr_assert_eq(config_check(&c), 0, "%s", hyp_last_error());
}

Test(config, parse_file) {
    const char *text =
        "\xEF\xBB\xBF; the paper's 2-layer run\n"
        "# another comment\n"
        "[model]\n"
        "qnet_layers = 2\n"
        "  shared_encoder=false   ; inline comment\n"
        "init_from = /models/bert base.h5 # spaces inside are kept\n"
        "\n"
        "[train]\r\n"
        "lr = 3e-5\r\n"
        "schedule = linear\n"
        "max_steps = 1000\n"
        "warmup_steps = 100\n"
        "on_nonfinite = skip\n"
        "[data]\n"
        "train = \"/data/with ; semicolon.jsonl\"  ; quoted literal\n"
        "vocab = \"\"\n"
        "[dist]\n"
        "cross_device_negatives = YES\n"
        "[train]\n"
        "seed = 7\n";
    char *path = write_tmp(text);
    Config c;
    config_init(&c);
    cr_assert_eq(config_parse_file(&c, path), 0, "%s", hyp_last_error());
    cr_assert_eq(c.model.qnet_layers, 2);
    cr_assert(!c.model.shared_encoder);
    cr_assert_str_eq(c.model.init_from, "/models/bert base.h5");
    cr_assert_eq(c.train.lr, 3e-5);
    cr_assert_str_eq(c.train.schedule, "linear");
    cr_assert_eq(c.train.max_steps, 1000);
    cr_assert_eq(c.train.warmup_steps, 100);
    cr_assert_str_eq(c.train.on_nonfinite, "skip");
    cr_assert_str_eq(c.data.train, "/data/with ; semicolon.jsonl");
    cr_assert_str_eq(c.data.vocab, "");
    cr_assert(c.dist.cross_device_negatives);
    cr_assert_eq(c.train.seed, 7);
    cr_assert_eq(c.train.batch_size, 64, "untouched keys keep their defaults");
    unlink(path);
    free(path);
}

Test(config, errors_name_file_and_line) {
    expect_file_error("[model]\nqnet_layers = 2\n[trian]\n", 3, "unknown section [trian]");
    expect_file_error("[train]\nlr = 1e-5\nlrr = 2\n", 3, "unknown key \"lrr\" in [train]");
    expect_file_error("[train]\n\nlr = fast\n", 3, "train.lr: expected a finite number, got \"fast\"");
    expect_file_error("[train]\nbatch_size = 12.5\n", 2, "train.batch_size: expected an integer");
    expect_file_error("[train]\nbatch_size = 0\n", 2, "out of range");
    expect_file_error("[train]\nmax_steps = 1e3\n", 2, "train.max_steps: expected an integer");
    expect_file_error("[data]\nnum_negatives = 0\n", 2, "data.num_negatives: 0 is out of range");
    expect_file_error("[train]\nschedule = cosine\n", 2, "\"cosine\" is not one of constant_with_warmup|linear|constant");
    expect_file_error("[model]\nshared_encoder = maybe\n", 2, "expected true or false");
    expect_file_error("[model]\nkind = crossencoder\n", 2, "not one of hypencoder|biencoder");
    expect_file_error("lr = 1\n", 1, "before any [section]");
    expect_file_error("[train]\nlr\n", 2, "expected \"key = value\"");
    expect_file_error("[train\nlr = 1\n", 1, "malformed section header");
    expect_file_error("[train]\nlr = 1e-5\nseed = 1\nlr = 2e-5\n", 4, "train.lr given twice (first on line 2)");
    expect_file_error("[data]\ntrain = \"unterminated\n", 2, "unterminated");
    expect_file_error("[train]\nlr = nan\n", 2, "finite");
    expect_file_error("[train]\nmax_grad_norm = -1\n", 2, "out of range");
    expect_file_error("[model]\nqnet_layers = 99\n", 2, "out of range");
    // a missing file
    Config c;
    config_init(&c);
    cr_assert_eq(config_parse_file(&c, "/nonexistent/x.ini"), -1);
    cr_assert(strstr(hyp_last_error(), "/nonexistent/x.ini"), "%s", hyp_last_error());
}

Test(config, set_overrides) {
    Config c;
    config_init(&c);
    cr_assert_eq(config_parse_text(&c, "[train]\nlr = 1e-5\n", "x.ini"), 0);
    cr_assert_eq(config_set(&c, "train.lr=3e-4"), 0, "%s", hyp_last_error());
    cr_assert_eq(c.train.lr, 3e-4, "--set wins over the file");
    cr_assert_eq(config_set(&c, "model.init_from="), 0);
    cr_assert_str_eq(c.model.init_from, "");
    cr_assert_eq(config_set(&c, "data.train=/a b/c;d.jsonl"), 0);
    cr_assert_str_eq(c.data.train, "/a b/c;d.jsonl");
    cr_assert_eq(config_set(&c, "train.max_steps = 50"), 0, "%s", hyp_last_error());
    cr_assert_eq(c.train.max_steps, 50);
    cr_assert_eq(config_set(&c, "dist.backend=nccl"), 0);
    cr_assert_str_eq(c.dist.backend, "nccl");
    const struct { const char *arg, *want; } bad[] = {
        {"train.lr", "expected section.key=value"},
        {"lr=3", "expected section.key=value"},
        {"optim.lr=3", "unknown section \"optim\""},
        {"train.learning_rate=3", "unknown key \"learning_rate\" in [train]"},
        {"train.lr=abc", "expected a finite number"},
        {"train.grad_accum=0", "out of range"},
        // one strict number parser (autograd/util.h): no exponent, junk or overflow for integers
        {"train.max_steps=1e3", "expected an integer"},
        {"train.batch_size=10x", "expected an integer"},
        {"train.seed=99999999999999999999", "out of range"},
        {"train.lr=3e-4x", "expected a finite number, got \"3e-4x\""},
        {"train.lr=inf", "expected a finite number"},
        {"train.lr=0x1p-3", "expected a finite number"},
        {"model.dropout=1.5", "1.5 is out of range"},
        // losses need a negative per query; 0 used to pass here and fail in train/losses.c
        {"data.num_negatives=0", "0 is out of range: expected an integer from 1"},
        {"dist.backend=gloo", "not one of auto|none|mpi|tcp|nccl"},
        {"data.train=a\"b", "double quotes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(config_set(&c, bad[i].arg), -1, "accepted --set %s", bad[i].arg);
        char want[256];
        snprintf(want, sizeof want, "--set %s", bad[i].arg);
        cr_assert(strstr(hyp_last_error(), want), "\"%s\" does not name the argument", hyp_last_error());
        cr_assert(strstr(hyp_last_error(), bad[i].want), "\"%s\" lacks \"%s\"", hyp_last_error(), bad[i].want);
    }
}

Test(config, resolved_text_roundtrip) {
    Config c;
    config_init(&c);
    cr_assert_eq(config_set(&c, "train.lr=3.3e-5"), 0);
    cr_assert_eq(config_set(&c, "model.init_from=/m/with # hash.h5"), 0);
    cr_assert_eq(config_set(&c, "data.train= leading"), 0);   // trimmed
    cr_assert_eq(config_set(&c, "model.shared_encoder=off"), 0);
    cr_assert_eq(config_set(&c, "train.weight_decay=0.1"), 0);
    cr_assert_eq(config_set(&c, "eval.corpus=/x;y"), 0);
    char *text = config_resolved_text(&c);
    // every section in order, every key
    const char *secs[] = {"[model]", "[data]", "[train]", "[eval]", "[dist]"};
    const char *prev = text;
    for (int i = 0; i < 5; i++) {
        const char *at = strstr(text, secs[i]);
        cr_assert(at && at >= prev, "section %s missing or out of order in\n%s", secs[i], text);
        prev = at;
    }
    const char *keys[] = {"qnet_layers = 6", "shared_encoder = false", "init_from = \"/m/with # hash.h5\"",
                          "lr = 3.3e-05", "weight_decay = 0.1", "max_grad_norm = 1", "warmup_steps = 6000",
                          "schedule = constant_with_warmup", "vocab = \"\"", "corpus = \"/x;y\"",
                          "cross_device_negatives = false", "backend = auto", "metric = Rprec", "select_within = 800000"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert(strstr(text, keys[i]), "\"%s\" missing from\n%s", keys[i], text);
    // keys sorted within a section
    cr_assert(strstr(text, "adam_beta1") < strstr(text, "batch_size"));
    // parse back: the same config and the same text
    Config d;
    config_init(&d);
    cr_assert_eq(config_set(&d, "train.batch_size=3"), 0);   // overwritten by the text
    cr_assert_eq(config_parse_text(&d, text, "checkpoint:/config"), 0, "%s", hyp_last_error());
    char *text2 = config_resolved_text(&d);
    cr_assert_str_eq(text2, text);
    cr_assert_str_eq(d.model.init_from, "/m/with # hash.h5");
    cr_assert_str_eq(d.eval.corpus, "/x;y");
    cr_assert_eq(d.train.lr, 3.3e-5);
    cr_assert_eq(d.train.batch_size, 64);
    char *v = config_get(&d, "train.lr");
    cr_assert_str_eq(v, "3.3e-05");
    free(v);
    cr_assert_null(config_get(&d, "train.nope"));
    free(text);
    free(text2);
}

Test(config, long_values) {
    // paths far longer than inih's 200-byte lines round-trip
    char path[900];
    memset(path, 'p', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = 0;
    char arg[1000];
    snprintf(arg, sizeof arg, "data.train=%s", path);
    Config c, d;
    config_init(&c);
    cr_assert_eq(config_set(&c, arg), 0, "%s", hyp_last_error());
    char *text = config_resolved_text(&c);
    config_init(&d);
    cr_assert_eq(config_parse_text(&d, text, "t"), 0, "%s", hyp_last_error());
    cr_assert_str_eq(d.data.train, path);
    free(text);
    char big[CONFIG_STR_MAX + 40];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    memcpy(big, "data.train=", 11);
    cr_assert_eq(config_set(&c, big), -1);
    cr_assert(strstr(hyp_last_error(), "longer than"), "%s", hyp_last_error());
}

Test(config, cross_key_checks) {
    Config c;
    config_init(&c);
    config_set(&c, "model.bert_hidden=100");
    config_set(&c, "model.bert_heads=3");
    cr_assert_eq(config_check(&c), -1);
    cr_assert(strstr(hyp_last_error(), "bert_heads"), "%s", hyp_last_error());
    config_init(&c);
    config_set(&c, "data.doc_max_len=600");
    cr_assert_eq(config_check(&c), -1);
    config_set(&c, "model.init_from=/m.h5");   // sizes come from the model file then
    cr_assert_eq(config_check(&c), 0);
    config_init(&c);
    config_set(&c, "train.schedule=linear");
    config_set(&c, "train.max_steps=100");
    cr_assert_eq(config_check(&c), -1, "warmup 6000 > max_steps 100 with a linear schedule");
}

// docs/config.md is generated from the key table: it must be exactly what the code says now,
// and every key must have a meaning.
Test(config, docs_config_md_is_current) {
    char *want = config_help_text(true);
    FILE *f = fopen("docs/config.md", "rb");
    cr_assert(f, "docs/config.md is missing (bin/hyp train --help-config --markdown > docs/config.md)");
    static char got[1 << 17];
    size_t n = fread(got, 1, sizeof got - 1, f);
    got[n] = 0;
    fclose(f);
    cr_assert(!strcmp(got, want), "docs/config.md is stale: regenerate it with bin/hyp train --help-config --markdown "
              "> docs/config.md");
    cr_assert(!strstr(want, "|  |"), "a key without a meaning");
    Config c;
    config_init(&c);
    char *resolved = config_resolved_text(&c);   // every key of the resolved text is documented
    for (char *line = strtok(resolved, "\n"); line; line = strtok(NULL, "\n")) {
        static char section[32];
        if (line[0] == '[') { sscanf(line, "[%31[^]]", section); continue; }
        char key[96], name[160];
        if (line[0] == '#' || sscanf(line, "%95s =", key) != 1) continue;
        snprintf(name, sizeof name, "`%s.%s`", section, key);
        cr_assert(strstr(want, name), "%s is not documented", name);
    }
    free(resolved);
    free(want);
}
