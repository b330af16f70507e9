// Cross-encoder teacher (BertForSequenceClassification, the MS MARCO layout) imported by
// `hyp import` from a random tiny HF model: the same pair encoding as HF's tokenizer
// ([CLS] q [SEP] p [SEP], token types, longest_first truncation) and the same logits.
// Fixtures: tests/fixtures/make_cross_encoder_fixtures.py.
#include "tests/testlib.h"
#include "model/model_import.h"
#include "model/load.h"
#include "autograd/h5io.h"
#include "search/encode.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CE FIXTURE_DIR "/cross_encoder"

static Model *import_ce(Device dev, char *out) {
    int fd = mkstemp(out);
    close(fd);
    ImportOptions io = {.from = CE, .out = out, .lowercase = -1};
    cr_assert_eq(model_import(&io), 0, "%s", hyp_last_error());
    Model *m = model_load(out, dev);
    cr_assert_not_null(m, "%s", hyp_last_error());
    cr_assert_eq(m->mc.kind, MODEL_CROSS_ENCODER);
    cr_assert_eq(m->mc.num_labels, 1);
    return m;
}

static char **pairs(size_t *n, char ***passages) {
    H5File *f = h5_open(CE "/expected.h5");
    cr_assert_not_null(f, "%s", hyp_last_error());
    char **q = h5_read_strings(f, "/queries", n);
    size_t np;
    *passages = h5_read_strings(f, "/passages", &np);
    h5_close(f);
    cr_assert(q && *passages && np == *n, "%s", hyp_last_error());
    return q;
}

Test(cross_encoder, pair_encoding_equals_hf) {
    char out[] = "/tmp/hyp_ce_XXXXXX";
    Model *m = import_ce(HYP_CPU, out);
    Tokenizer *tok = model_tokenizer(m);
    cr_assert_not_null(tok, "%s", hyp_last_error());
    size_t n;
    char **d, **q = pairs(&n, &d);
    H5File *f = fx_open("cross_encoder/expected.h5");
    static const int LENS[] = {64, 20};
    for (int li = 0; li < 2; li++) {
        char name[64];
        int nd, sh[4];
        snprintf(name, sizeof name, "/len%d/ids", LENS[li]);
        int32_t *ids = h5_read_i32(f, name, &nd, sh);
        snprintf(name, sizeof name, "/len%d/types", LENS[li]);
        int32_t *types = h5_read_i32(f, name, NULL, NULL);
        snprintf(name, sizeof name, "/len%d/mask", LENS[li]);
        int32_t *mask = h5_read_i32(f, name, NULL, NULL);
        TokBatch tb = {0};
        tok_encode_pair_batch(tok, (const char *const *)q, (const char *const *)d, (int)n, LENS[li], &tb);
        cr_assert_eq(tb.batch, sh[0]);
        cr_assert_eq(tb.len, sh[1], "max_len %d: padded length %d, HF %d", LENS[li], tb.len, sh[1]);
        for (int i = 0; i < sh[0] * sh[1]; i++) {
            cr_expect_eq(tb.ids[i], ids[i], "max_len %d pair %d pos %d: id %d, HF %d", LENS[li], i / sh[1], i % sh[1], tb.ids[i], ids[i]);
            cr_expect_eq(tb.types[i], types[i], "max_len %d pair %d pos %d: type %d, HF %d", LENS[li], i / sh[1], i % sh[1], tb.types[i], types[i]);
            cr_expect_eq(tb.mask[i], mask[i], "max_len %d pair %d pos %d: mask", LENS[li], i / sh[1], i % sh[1]);
        }
        free(ids); free(types); free(mask);
        tok_batch_free(&tb);
    }
    h5_close(f);
    h5_free_strings(q, n);
    h5_free_strings(d, n);
    tok_free(tok);
    model_free(m);
    unlink(out);
}

// HF's own encodings in, logits out: the model alone (the tokenizer is checked above).
static void logits_equal_hf(Device dev) {
    char out[] = "/tmp/hyp_ce_XXXXXX";
    Model *m = import_ce(dev, out);
    H5File *f = fx_open("cross_encoder/expected.h5");
    Ctx *c = ctx_new(dev);
    no_grad_begin(c);
    static const int LENS[] = {64, 20};
    for (int li = 0; li < 2; li++) {
        char g[16];
        snprintf(g, sizeof g, "len%d", LENS[li]);
        Tensor *ids = fx_tensor(c, f, g, "ids", false), *types = fx_tensor(c, f, g, "types", false),
               *mask = fx_tensor(c, f, g, "mask", false);
        Tensor *lg = cross_encoder_logits(c, &m->ce, ids, types, mask);
        expect_fixture(lg, f, g, "logits", TOL_E2E);
        // Without token types the model computes HF's type-0 logits, which differ: types matter.
        Tensor *l0 = cross_encoder_logits(c, &m->ce, ids, NULL, mask);
        expect_fixture(l0, f, g, "logits_types0", TOL_E2E);
        float *a = tensor_host_copy(lg), *b = tensor_host_copy(l0);
        cr_assert_gt(rel_err(b, a, (size_t)lg->shape[0]), 1e-2, "token types changed nothing");
        free(a);
        free(b);
        ctx_reset(c);
    }
    no_grad_end(c);
    ctx_free(c);
    h5_close(f);
    model_free(m);
    unlink(out);
}

Test(cross_encoder, logits_equal_hf) { logits_equal_hf(HYP_CPU); }
Test(cross_encoder, logits_equal_hf_cuda) { RUN_ON_CUDA_OR_SKIP(); logits_equal_hf(HYP_CUDA); }

Test(cross_encoder, model_file_roundtrip_and_refusals) {
    char out[] = "/tmp/hyp_ce_XXXXXX";
    Model *m = import_ce(HYP_CPU, out);
    cr_assert_not_null(m->ce.bert.pool_w);
    model_free(m);
    // Two labels (a softmax classifier) are refused with a message naming the file.
    char dir[] = "/tmp/hyp_ce2_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp " CE "/vocab.txt " CE "/model.safetensors %s/ && sed 's/\"LABEL_0\": 0/\"LABEL_0\": 0, \"LABEL_1\": 1/; "
             "s/\"0\": \"LABEL_0\"/\"0\": \"LABEL_0\", \"1\": \"LABEL_1\"/' " CE "/config.json > %s/config.json", dir, dir);
    cr_assert_eq(system(cmd), 0);
    ImportOptions io = {.from = dir, .out = out, .lowercase = -1};
    cr_assert_neq(model_import(&io), 0, "two labels with a (1, H) classifier imported");
    cr_assert(strstr(hyp_last_error(), "classifier.weight"), "%s", hyp_last_error());
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    unlink(out);
}
