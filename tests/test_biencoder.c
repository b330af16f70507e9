// BE-Base baseline: scores are inner products of [CLS] vectors; gradients flow to both sides.
#include "tests/testlib.h"
#include "model/biencoder.h"

Test(biencoder, scores_are_inner_products) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *q = tensor_rand(c, HYP_SHAPE(3, 5), -1, 1, 1, false);
    Tensor *items = tensor_rand(c, HYP_SHAPE(3, 4, 5), -1, 1, 2, false);
    Tensor *s = biencoder_score(c, q, items), *S = biencoder_score_shared(c, q, op_reshape(c, items, HYP_SHAPE(12, 5)));
    const float *Q = q->data, *X = items->data;
    for (int b = 0; b < 3; b++)
        for (int k = 0; k < 4; k++) {
            double dot = 0;
            for (int i = 0; i < 5; i++) dot += (double)Q[b * 5 + i] * X[(b * 4 + k) * 5 + i];
            cr_assert_float_eq(tensor_f32(s)[b * 4 + k], dot, 1e-5);
            cr_assert_float_eq(tensor_f32(S)[b * 12 + b * 4 + k], dot, 1e-5);
        }
    ctx_free(c);
}

static Tensor *be_fn(Ctx *c, Tensor **in, void *u) { return biencoder_score(c, in[0], in[1]); }
Test(biencoder, gradcheck) {
    Ctx *c = ctx_new(HYP_CPU);
    Tensor *in[2] = {tensor_rand(c, HYP_SHAPE(2, 3), -1, 1, 3, true), tensor_rand(c, HYP_SHAPE(2, 4, 3), -1, 1, 4, true)};
    expect_gradcheck(be_fn, in, 2, NULL, NULL, "biencoder_score");
    ctx_free(c);
}

// Separate encoders register both name sets; shared registers one.
Test(biencoder, shared_and_separate_encoders) {
    BertConfig cfg = {.vocab_size = 20, .hidden = 8, .layers = 1, .heads = 2, .ffn = 16, .max_positions = 8,
                      .type_vocab_size = 2, .ln_eps = 1e-12f};
    ParamSet *a = paramset_new(HYP_CPU), *b = paramset_new(HYP_CPU);
    BiEncoder sa, sb;
    biencoder_register(&sa, a, &cfg, true);
    biencoder_register(&sb, b, &cfg, false);
    cr_assert_eq(b->numel, 2 * a->numel);
    cr_assert_not_null(paramset_get(b, "passage_encoder.transformer.encoder.layer.0.output.dense.weight"));
    cr_assert_null(paramset_get(a, "passage_encoder.transformer.encoder.layer.0.output.dense.weight"));
    cr_assert_eq(sa.doc_bert, &sa.query_bert);
    biencoder_free(&sa);
    biencoder_free(&sb);
    paramset_free(a);
    paramset_free(b);
}
