// Pooling (model/bert.h) and its record in model files: max pooling ignores padding, L2
// normalisation as torch.nn.functional.normalize, names round-trip, hyp import's
// sentence-transformers modules and overrides land in the model file and back in model_load,
// unsupported modules and bad /pooling attributes give one error naming the file.
#include "tests/testlib.h"
#include "model/model_import.h"
#include "model/load.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BERT_ST FIXTURE_DIR "/import/bert_st"

Test(pooling, names_round_trip) {
    for (int p = 0; p < POOL_COUNT; p++) {
        Pooling q;
        cr_assert_eq(pooling_parse(pooling_name((Pooling)p), &q), 0);
        cr_assert_eq((int)q, p);
    }
    Pooling q;
    cr_assert_eq(pooling_parse("mean_sqrt_len", &q), -1);
}

Test(pooling, max_ignores_padding_and_normalize_matches_torch) {
    Ctx *c = ctx_new(HYP_CPU);
    no_grad_begin(c);
    // (B=2, T=3, H=2); row 1's padded position holds the largest values.
    const float h[] = {1, -5, 3, -2, -1, -7,   -4, -3, -6, -8, 9, 9};
    const int32_t mk[] = {1, 1, 1, 1, 1, 0};
    Tensor *H = tensor_from_floats(c, h, HYP_SHAPE(2, 3, 2), false);
    Tensor *M = tensor_new(c, HYP_I32, HYP_SHAPE(2, 3));
    tensor_from_host(M, mk);
    float got[4];
    tensor_to_host(bert_pool_max(c, H, M), got);
    const float want[] = {3, -2, -4, -3};
    for (int i = 0; i < 4; i++) cr_expect_float_eq(got[i], want[i], 0, "max[%d] = %g, want %g", i, got[i], want[i]);
    // normalize: (3, 4) -> (0.6, 0.8); a zero row stays zero (norm clamped to 1e-12).
    const float x[] = {3, 4, 0, 0};
    Tensor *X = tensor_from_floats(c, x, HYP_SHAPE(2, 2), false);
    tensor_to_host(l2_normalize_rows(c, X), got);
    cr_expect_float_eq(got[0], 0.6f, 1e-7);
    cr_expect_float_eq(got[1], 0.8f, 1e-7);
    cr_expect(got[2] == 0 && got[3] == 0);
    no_grad_end(c);
    ctx_free(c);
}

static char *tmpdir(void) {
    static char d[64];
    snprintf(d, sizeof d, "/tmp/hyp_pool_XXXXXX");
    cr_assert_not_null(mkdtemp(d));
    return d;
}
static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}
static void write_file(const char *dir, const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

#define MODULES(extra) "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"}," \
    "{\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"}" extra "]"
#define POOL_CFG(cls, mean, max, sqrt) "{\"word_embedding_dimension\": 32, \"pooling_mode_cls_token\": " cls \
    ", \"pooling_mode_mean_tokens\": " mean ", \"pooling_mode_max_tokens\": " max ", \"pooling_mode_mean_sqrt_len_tokens\": " sqrt "}"

// A sentence-transformers directory around the tiny BERT of the import fixtures.
static char *st_dir(const char *modules, const char *pool_cfg) {
    char *d = tmpdir();
    sh("cp " BERT_ST "/* %s/ && mkdir %s/1_Pooling", d, d);
    write_file(d, "modules.json", modules);
    write_file(d, "1_Pooling/config.json", pool_cfg);
    write_file(d, "sentence_bert_config.json", "{\"max_seq_length\": 24, \"do_lower_case\": false}");
    return d;
}

static Model *import_load(const char *from, const char *out, const char *pooling, int normalize) {
    ImportOptions io = {.from = from, .out = out, .lowercase = -1, .pooling = pooling, .normalize = normalize};
    cr_assert_eq(model_import(&io), 0, "%s", hyp_last_error());
    Model *m = model_load(out, HYP_CPU);
    cr_assert_not_null(m, "%s", hyp_last_error());
    return m;
}

Test(pooling, import_records_sentence_transformers_modules) {
    char *d = st_dir(MODULES(",{\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"}"),
                     POOL_CFG("false", "false", "true", "false"));
    char out[600];
    snprintf(out, sizeof out, "%s/m.h5", d);
    Model *m = import_load(d, out, NULL, IMPORT_AUTO);
    cr_expect_eq(m->pooling, POOL_MAX);
    cr_expect(m->normalize);
    cr_expect_eq(m->doc_max_len, 24);
    cr_expect_eq(m->query_max_len, 24);
    model_free(m);
    // --pooling / --normalize override the modules.
    m = import_load(d, out, "mean", IMPORT_OFF);
    cr_expect_eq(m->pooling, POOL_MEAN);
    cr_expect(!m->normalize);
    model_free(m);
    // A plain HF directory: CLS, no normalisation (what older files read as).
    m = import_load(BERT_ST, out, NULL, IMPORT_AUTO);
    cr_expect_eq(m->pooling, POOL_CLS);
    cr_expect(!m->normalize);
    model_free(m);
    sh("rm -rf %s%s", d, "");
}

static void expect_import_error(const char *modules, const char *pool_cfg, const char *needle) {
    char *d = st_dir(modules, pool_cfg);
    char out[600];
    snprintf(out, sizeof out, "%s/m.h5", d);
    ImportOptions io = {.from = d, .out = out, .lowercase = -1};
    cr_assert_neq(model_import(&io), 0, "imported despite %s", needle);
    cr_expect(strstr(hyp_last_error(), needle), "error \"%s\" does not mention %s", hyp_last_error(), needle);
    cr_expect(access(out, F_OK) != 0, "an output was left behind");
    sh("rm -rf %s%s", d, "");
}

Test(pooling, unsupported_modules_are_refused) {
    expect_import_error(MODULES(""), POOL_CFG("false", "false", "false", "true"), "pooling_mode_mean_sqrt_len_tokens");
    expect_import_error(MODULES(""), POOL_CFG("true", "true", "false", "false"), "exactly one");
    expect_import_error(MODULES(",{\"idx\": 2, \"name\": \"2\", \"path\": \"2_Dense\", \"type\": \"sentence_transformers.models.Dense\"}"),
                        POOL_CFG("false", "true", "false", "false"), "models.Dense is not supported");
    expect_import_error(MODULES(""), "{\"pooling_mode_mean_tokens\": tru", "1_Pooling/config.json");
}

Test(pooling, bad_pooling_attribute_names_the_file) {
    char *d = tmpdir();
    char out[600];
    snprintf(out, sizeof out, "%s/m.h5", d);
    Model *m = import_load(BERT_ST, out, NULL, IMPORT_AUTO);
    model_free(m);
    ModelFile *mf = model_file_read(out);
    cr_assert_not_null(mf, "%s", hyp_last_error());
    mf->pooling = (Pooling)7;   // what a damaged or future file could hold
    cr_assert_eq(model_file_write(out, mf), 0, "%s", hyp_last_error());
    model_file_free(mf);
    cr_assert_null(model_file_read(out));
    cr_expect(strstr(hyp_last_error(), "mode 7"), "%s", hyp_last_error());
    cr_assert_null(model_load(out, HYP_CPU));
    cr_expect(strstr(hyp_last_error(), out) && strstr(hyp_last_error(), "mode 7"), "%s", hyp_last_error());
    sh("rm -rf %s%s", d, "");
}
