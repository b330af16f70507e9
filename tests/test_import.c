// Weights in and out: safetensors and torch.save readers against torch's values, `hyp import`
// of BERT / BertForMaskedLM / Hypencoder layouts, export that HuggingFace loads, and bad input
// (truncated, corrupted, hostile pickles, wrong shapes, missing/unknown keys).
// Fixtures: tests/fixtures/make_import_fixtures.py -> tests/fixtures/import/.
#include "tests/testlib.h"
#include "model/weights.h"
#include "model/model_file.h"
#include "model/model_import.h"
#include "model/load.h"
#include "search/encode.h"
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMP FIXTURE_DIR "/import"

static H5File *expected(void) { return fx_open("import/expected.h5"); }

// Every tensor of ws equals /group/<name> (exactly: fp16/bf16/int -> fp32 is exact).
// map_prefix: strip this prefix from ws names before the lookup (NULL: none).
static void expect_all_equal(const WeightSet *ws, H5File *ex, const char *group, const char *strip) {
    for (int i = 0; i < ws->n; i++) {
        const NamedTensor *t = &ws->v[i];
        const char *nm = t->name;
        if (strip && !strncmp(nm, strip, strlen(strip))) nm += strlen(strip);
        char p[600];
        snprintf(p, sizeof p, "/%s/%s", group, nm);
        cr_assert(h5_exists(ex, p), "%s: no expected value %s", t->name, p);
        int nd, sh[HYP_MAX_DIMS];
        float *want = h5_read_f32(ex, p, &nd, sh);
        cr_assert(want, "%s", hyp_last_error());
        size_t n = 1;
        for (int d = 0; d < nd; d++) n *= (size_t)sh[d];
        cr_assert_eq(n, t->numel, "%s: %zu elements, torch has %zu", t->name, t->numel, n);
        if (t->ndim > 0) {
            cr_assert_eq(nd, t->ndim, "%s: rank %d, torch %d", t->name, t->ndim, nd);
            for (int d = 0; d < nd; d++) cr_assert_eq(sh[d], t->shape[d], "%s: dim %d", t->name, d);
        }
        cr_assert(!memcmp(want, t->data, n * sizeof(float)), "%s: values differ from torch", t->name);
        free(want);
    }
}

static int count_group(H5File *ex, const char *group) {
    char **names;
    int n = h5_list(ex, group, &names);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return n;
}

static char *tmpdir(void) {
    char *t = hyp_strdup("/tmp/hyp_test_import_XXXXXX");
    cr_assert(mkdtemp(t));
    return t;
}
static char *tmppath(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = hyp_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}
static bool exists(const char *p) { struct stat st; return !stat(p, &st); }
static void expect_no_output(const char *out) {
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    cr_assert(!exists(out), "%s was written despite the error", out);
    cr_assert(!exists(tmp), "%s was left behind", tmp);
}
static void rm_rf(const char *dir) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = hyp_malloc(*len + 1);
    cr_assert_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}
static void spit(const char *path, const void *b, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(b, 1, len, f), len);
    fclose(f);
}

static void expect_error_mentions(const char *what, const char *a, const char *b) {
    const char *e = hyp_last_error();
    cr_assert(strstr(e, a), "%s: error \"%s\" does not mention \"%s\"", what, e, a);
    if (b) cr_assert(strstr(e, b), "%s: error \"%s\" does not mention \"%s\"", what, e, b);
}

// ------------------------------------------------------------------ readers
Test(readers, safetensors_bert_equals_torch) {
    WeightSet *ws = safetensors_read(IMP "/bert_st/model.safetensors");
    cr_assert(ws, "%s", hyp_last_error());
    H5File *ex = expected();
    cr_assert_eq(ws->n, count_group(ex, "/bert"));
    expect_all_equal(ws, ex, "bert", NULL);
    for (int i = 0; i < ws->n; i++) cr_assert_eq(ws->v[i].stored, WDT_F32);
    cr_assert(ws->metadata_json && strstr(ws->metadata_json, "\"pt\""));
    h5_close(ex);
    weights_free(ws);
}

Test(readers, torchbin_bert_equals_torch_in_state_dict_order) {
    WeightSet *ws = torchbin_read(IMP "/bert_bin/pytorch_model.bin");
    cr_assert(ws, "%s", hyp_last_error());
    H5File *ex = expected();
    cr_assert_eq(ws->n, count_group(ex, "/bert"));
    expect_all_equal(ws, ex, "bert", NULL);
    cr_assert_str_eq(ws->v[0].name, "embeddings.word_embeddings.weight");
    cr_assert_str_eq(ws->v[ws->n - 1].name, "pooler.dense.bias");
    h5_close(ex);
    weights_free(ws);
}

Test(readers, torchbin_shared_storages_offsets_strides_dtypes) {
    WeightSet *ws = weights_read(IMP "/shared.bin");
    cr_assert(ws, "%s", hyp_last_error());
    H5File *ex = expected();
    cr_assert_eq(ws->n, count_group(ex, "/shared"));
    expect_all_equal(ws, ex, "shared", NULL);
    NamedTensor *a = weights_get(ws, "a"), *b = weights_get(ws, "b"), *av = weights_get(ws, "a_view");
    cr_assert(a && b && av);
    cr_assert_null(a->alias_of);
    cr_assert_str_eq(b->alias_of, "a", "the same tensor object is one tensor");
    cr_assert_str_eq(av->alias_of, "a", "the same storage view is one tensor");
    cr_assert_eq(b->data, a->data);
    cr_assert_eq(av->data, a->data);
    cr_assert_null(weights_get(ws, "rows")->alias_of, "a different view is a copy");
    cr_assert_null(weights_get(ws, "col_t")->alias_of);
    cr_assert_eq(weights_get(ws, "half")->stored, WDT_F16);
    cr_assert_eq(weights_get(ws, "half_t")->stored, WDT_F16);
    cr_assert_eq(weights_get(ws, "bf16")->stored, WDT_BF16);
    cr_assert_eq(weights_get(ws, "position_ids")->stored, WDT_I64);
    cr_assert_eq(weights_get(ws, "scalar")->ndim, 0);
    cr_assert_float_eq(weights_get(ws, "scalar")->data[0], 2.5f, 0);
    // removing the owner keeps the alias' data alive
    cr_assert(weights_remove(ws, "a"));
    cr_assert_float_eq(weights_get(ws, "b")->data[47], weights_get(ws, "a_view")->data[47], 0);
    h5_close(ex);
    weights_free(ws);
}

Test(readers, torchbin_parameters) {
    WeightSet *ws = weights_read(IMP "/parameters.bin");
    cr_assert(ws, "%s", hyp_last_error());
    H5File *ex = expected();
    cr_assert_eq(ws->n, 2);
    expect_all_equal(ws, ex, "parameters", NULL);
    h5_close(ex);
    weights_free(ws);
}

Test(readers, safetensors_dtypes) {
    WeightSet *ws = weights_read(IMP "/dtypes.safetensors");
    cr_assert(ws, "%s", hyp_last_error());
    H5File *ex = expected();
    expect_all_equal(ws, ex, "dtypes", NULL);
    cr_assert_eq(weights_get(ws, "f16")->stored, WDT_F16);
    cr_assert_eq(weights_get(ws, "bf16")->stored, WDT_BF16);
    cr_assert_eq(weights_get(ws, "i64")->stored, WDT_I64);
    h5_close(ex);
    weights_free(ws);
}

Test(readers, mlm_tied_decoder_is_an_alias) {
    WeightSet *ws = weights_read(IMP "/mlm_bin/pytorch_model.bin");
    cr_assert(ws, "%s", hyp_last_error());
    H5File *ex = expected();
    expect_all_equal(ws, ex, "mlm", NULL);
    NamedTensor *dec = weights_get(ws, "cls.predictions.decoder.weight");
    cr_assert(dec);
    cr_assert_str_eq(dec->alias_of, "bert.embeddings.word_embeddings.weight");
    h5_close(ex);
    weights_free(ws);
}

Test(readers, hypencoder_passage_encoder_aliases_query_encoder) {
    WeightSet *ws = weights_read(IMP "/hypencoder/pytorch_model.bin");
    cr_assert(ws, "%s", hyp_last_error());
    int npass = 0;
    for (int i = 0; i < ws->n; i++) {
        const NamedTensor *t = &ws->v[i];
        if (strncmp(t->name, "passage_encoder.transformer.", 28)) continue;
        npass++;
        char q[300];
        snprintf(q, sizeof q, "query_encoder.transformer.%s", t->name + 28);
        cr_assert(t->alias_of, "%s", t->name);
        cr_assert_str_eq(t->alias_of, q);
    }
    H5File *ex = expected();
    cr_assert_eq(npass, count_group(ex, "/bert"));
    h5_close(ex);
    weights_free(ws);
}

// ------------------------------------------------------------------ import
static int import_q(const char *from, const char *out, const char *config, const char *bert_config, bool allow_unknown) {
    ImportOptions o = {.from = from, .out = out, .config = config, .bert_config = bert_config, .allow_unknown = allow_unknown,
                       .lowercase = -1, .notes = NULL};
    return model_import(&o);
}

static void check_bert_model_file(const char *path, bool with_pooler) {
    ModelFile *m = model_file_read(path);
    cr_assert(m, "%s", hyp_last_error());
    cr_assert_eq(m->config.kind, MODEL_BERT);
    cr_assert_eq(m->config.bert.hidden, 32);
    cr_assert_eq(m->config.bert.layers, 2);
    cr_assert_eq(m->config.bert.heads, 4);
    cr_assert_eq(m->config.bert.ffn, 64);
    cr_assert_eq(m->config.bert.vocab_size, 100);
    cr_assert_eq(m->config.bert.max_positions, 32);
    cr_assert_float_eq(m->config.bert.ln_eps, 1e-12, 1e-20);
    cr_assert_str_eq(m->config.bert_prefix, "");
    cr_assert_eq(m->n_vocab, 100);
    cr_assert_str_eq(m->vocab[0], "[PAD]");
    cr_assert_str_eq(m->vocab[6], "[CLS]");
    cr_assert(m->lowercase);
    cr_assert_eq(m->query_max_len, 32);
    cr_assert_eq(m->doc_max_len, 32);
    cr_assert(m->hf_config && strstr(m->hf_config, "\"hidden_size\""));
    H5File *ex = expected();
    cr_assert_eq(m->params->n, count_group(ex, "/bert") - (with_pooler ? 0 : 2));
    expect_all_equal(m->params, ex, "bert", NULL);
    h5_close(ex);
    model_file_free(m);
}

Test(import, bert_directory_safetensors) {
    char *d = tmpdir(), *out = tmppath(d, "m.h5");
    cr_assert_eq(import_q(IMP "/bert_st", out, NULL, NULL, false), 0, "%s", hyp_last_error());
    check_bert_model_file(out, true);
    rm_rf(d);
    free(out); free(d);
}

Test(import, bert_directory_pytorch_bin) {
    char *d = tmpdir(), *out = tmppath(d, "m.h5");
    cr_assert_eq(import_q(IMP "/bert_bin", out, NULL, NULL, false), 0, "%s", hyp_last_error());
    check_bert_model_file(out, true);
    rm_rf(d);
    free(out); free(d);
}

Test(import, masked_lm_strips_bert_prefix_and_drops_cls_head) {
    char *d = tmpdir(), *out = tmppath(d, "m.h5");
    cr_assert_eq(import_q(IMP "/mlm_bin", out, NULL, NULL, false), 0, "%s", hyp_last_error());
    check_bert_model_file(out, false);
    rm_rf(d);
    free(out); free(d);
}

Test(import, single_file_with_config) {
    char *d = tmpdir(), *out = tmppath(d, "m.h5");
    cr_assert_eq(import_q(IMP "/bert_st/model.safetensors", out, IMP "/bert_st/config.json", NULL, false), 0, "%s", hyp_last_error());
    check_bert_model_file(out, true);   // vocab.txt found next to the file
    rm_rf(d);
    free(out); free(d);
}

Test(import, vocab_from_tokenizer_json_when_no_vocab_txt) {
    char *d = tmpdir(), *out = tmppath(d, "m.h5");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp " IMP "/bert_st/config.json " IMP "/bert_st/model.safetensors " IMP "/tokenizer.json '%s'", d);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(import_q(d, out, NULL, NULL, false), 0, "%s", hyp_last_error());
    ModelFile *m = model_file_read(out);
    cr_assert(m, "%s", hyp_last_error());
    int n;
    char **want = vocab_read(IMP "/bert_st/vocab.txt", &n);
    cr_assert(want);
    cr_assert_eq(m->n_vocab, n);
    for (int i = 0; i < n; i++) { cr_assert_str_eq(m->vocab[i], want[i], "id %d", i); free(want[i]); }
    free(want);
    cr_assert(m->lowercase, "BertNormalizer lowercase");
    model_file_free(m);
    rm_rf(d);
    free(out); free(d);
}

Test(import, single_file_without_config_cannot_guess_heads) {
    // hidden 32 is no multiple of 64: the head count is unknowable from the weights.
    char *d = tmpdir(), *out = tmppath(d, "m.h5");
    cr_assert_neq(import_q(IMP "/bert_st/model.safetensors", out, NULL, NULL, false), 0);
    expect_error_mentions("no config", "num_attention_heads", "--config");
    expect_no_output(out);
    rm_rf(d);
    free(out); free(d);
}

Test(import, hypencoder_shared_encoder) {
    char *d = tmpdir(), *out = tmppath(d, "m.h5");
    cr_assert_eq(import_q(IMP "/hypencoder", out, NULL, IMP "/hypencoder/bert_config.json", false), 0, "%s", hyp_last_error());
    ModelFile *m = model_file_read(out);
    cr_assert(m, "%s", hyp_last_error());
    cr_assert_eq(m->config.kind, MODEL_HYPENCODER);
    cr_assert(m->config.shared_encoder);
    cr_assert_eq(m->config.n_dims, 4);
    cr_assert_eq(m->config.vector_dimensions[3], 1);
    cr_assert_str_eq(m->config.activation_type, "relu");
    cr_assert_str_eq(m->config.bert_prefix, "query_encoder.transformer.");
    cr_assert_eq(m->config.bert.heads, 4);
    H5File *ex = expected();
    int nb = count_group(ex, "/bert"), nh = count_group(ex, "/hypencoder");
    cr_assert_eq(m->params->n, nb + nh, "only the query encoder's BERT is kept: %d tensors", m->params->n);
    WeightSet *bert = weights_new(), *head = weights_new();
    for (int i = 0; i < m->params->n; i++) {
        const NamedTensor *t = &m->params->v[i];
        cr_assert(strncmp(t->name, "passage_encoder.", 16), "%s kept", t->name);
        float *f = weights_alloc(t->numel);
        memcpy(f, t->data, t->numel * sizeof(float));
        weights_add(strncmp(t->name, "query_encoder.transformer.", 26) ? head : bert, t->name, t->stored, t->ndim, t->shape, f);
    }
    expect_all_equal(bert, ex, "bert", "query_encoder.transformer.");
    expect_all_equal(head, ex, "hypencoder", NULL);
    weights_free(bert);
    weights_free(head);
    h5_close(ex);
    model_file_free(m);
    rm_rf(d);
    free(out); free(d);
}

Test(import, hypencoder_unknown_backbone_without_bert_config) {
    char *d = tmpdir(), *out = tmppath(d, "m.h5");
    cr_assert_neq(import_q(IMP "/hypencoder", out, NULL, NULL, false), 0);
    expect_error_mentions("unknown backbone", "num_attention_heads", "--bert-config");
    expect_no_output(out);
    rm_rf(d);
    free(out); free(d);
}

// ------------------------------------------------------------------ export
Test(export, roundtrip_and_transformers_loads_it) {
    char *d = tmpdir(), *out = tmppath(d, "m.h5"), *st = tmppath(d, "model.safetensors"), *cfg = tmppath(d, "config.json");
    cr_assert_eq(import_q(IMP "/bert_bin", out, NULL, NULL, false), 0, "%s", hyp_last_error());
    ModelFile *m = model_file_read(out);
    cr_assert(m, "%s", hyp_last_error());
    cr_assert_eq(safetensors_write(m->params, st, NULL), 0, "%s", hyp_last_error());
    char *text = model_config_to_hf_bert_json(&m->config);
    FILE *f = fopen(cfg, "w");
    fputs(text, f);
    fclose(f);
    free(text);
    WeightSet *back = safetensors_read(st);
    cr_assert(back, "%s", hyp_last_error());
    H5File *ex = expected();
    cr_assert_eq(back->n, count_group(ex, "/bert"));
    expect_all_equal(back, ex, "bert", NULL);
    h5_close(ex);
    // and the config we wrote parses back to the same sizes
    ModelConfig c2;
    cr_assert_eq(hf_config_read(cfg, &c2), 0, "%s", hyp_last_error());
    cr_assert_eq(memcmp(&c2.bert, &m->config.bert, sizeof c2.bert), 0);
    weights_free(back);
    model_file_free(m);

    if (system("python3 -c 'import transformers, safetensors, torch' >/dev/null 2>&1") != 0) {
        rm_rf(d);
        cr_skip_test("python3 with transformers not importable: HF loading of the export is not checked");
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "python3 " FIXTURE_DIR "/check_export.py '%s' '%s' " IMP "/bert_st", st, cfg);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "transformers could not load our export (see stderr of check_export.py)");
    rm_rf(d);
    free(out); free(st); free(cfg); free(d);
}

// ------------------------------------------------------------------ bad input
typedef struct { const char *file, *mention; } BadCase;

Test(bad_input, hostile_and_malformed_files_give_one_clear_error) {
    static const BadCase cases[] = {
        {"os_system.bin", "unsupported global os.system"},
        {"exec_stack_global.bin", "unsupported global builtins.exec"},
        {"checkpoint.bin", "model: value is a dict, not a tensor"},
        {"deflated.bin", "compressed zip entry"},
        {"legacy.bin", "legacy"},
        {"overlap.safetensors", "overlaps"},
        {"shape_mismatch.safetensors", "x: data_offsets span 16 bytes but shape x F32 needs 12"},
        {"out_of_range.safetensors", "x: data_offsets [0, 32] outside the data section"},
        {"bad_dtype.safetensors", "x: unsupported dtype F8_E4M3"},
        {"duplicate.safetensors", "duplicate"},
        {"rank5.safetensors", "x: rank 5"},
    };
    char *d = tmpdir(), *out = tmppath(d, "m.h5");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, IMP "/bad/%s", cases[i].file);
        hyp_clear_error();
        cr_assert_null(weights_read(path), "%s was accepted", path);
        expect_error_mentions(path, path, cases[i].mention);
        cr_assert_neq(import_q(path, out, IMP "/bert_st/config.json", NULL, false), 0);
        expect_error_mentions(path, path, cases[i].mention);
        expect_no_output(out);
    }
    cr_assert(!exists("/tmp/pwned"), "the pickle's payload ran");
    rm_rf(d);
    free(out); free(d);
}

static void truncations(const char *src, const char *label) {
    size_t len;
    unsigned char *b = slurp(src, &len);
    char *d = tmpdir(), *p = tmppath(d, label), *out = tmppath(d, "m.h5");
    int n = 0;
    for (size_t cut = 0; cut < len; cut += cut < 300 ? 3 : cut > len - 300 ? 5 : len / 97 + 1) {
        spit(p, b, cut);
        hyp_clear_error();
        WeightSet *ws = weights_read(p);
        cr_assert_null(ws, "%s cut to %zu of %zu bytes was accepted", label, cut, len);
        expect_error_mentions(label, p, NULL);
        if (n++ % 16 == 0) {                      // the whole import too, now and then
            cr_assert_neq(import_q(p, out, IMP "/bert_st/config.json", NULL, false), 0);
            expect_no_output(out);
        }
    }
    cr_assert_gt(n, 150);
    rm_rf(d);
    free(b); free(p); free(out); free(d);
}
Test(bad_input, truncated_safetensors) { truncations(IMP "/bert_st/model.safetensors", "t.safetensors"); }
Test(bad_input, truncated_pytorch_bin) { truncations(IMP "/bert_bin/pytorch_model.bin", "t.bin"); }
Test(bad_input, truncated_shared_bin) { truncations(IMP "/shared.bin", "s.bin"); }

// Corrupt every byte of the safetensors header: an error naming the file, or (when the JSON
// stays valid and consistent, e.g. a changed name) a clean read. Never a crash.
Test(bad_input, corrupted_safetensors_header_bytes) {
    size_t len;
    unsigned char *b = slurp(IMP "/bert_st/model.safetensors", &len);
    uint64_t hl;
    memcpy(&hl, b, 8);
    int errors = 0, ok = 0;
    for (size_t i = 0; i < 8 + hl; i++) {
        static const unsigned char x[] = {0x01, 0x20, 0x80, 0xff};
        for (size_t k = 0; k < sizeof x; k++) {
            b[i] ^= x[k];
            hyp_clear_error();
            WeightSet *ws = safetensors_read_mem(b, len, "corrupt.safetensors");
            if (ws) ok++;
            else {
                errors++;
                cr_assert(strstr(hyp_last_error(), "corrupt.safetensors"), "%s", hyp_last_error());
            }
            weights_free(ws);
            b[i] ^= x[k];
        }
    }
    cr_assert_gt(errors, (int)(8 + hl) * 2);
    free(b);
}

// Every byte of data.pkl flipped: with CRC checks on, always a CRC error; without them the
// pickle VM must answer cleanly (accept or refuse) for every corrupted opcode stream.
Test(bad_input, corrupted_pickle_bytes) {
    size_t len;
    unsigned char *b = slurp(IMP "/shared.bin", &len);
    // data.pkl is the first entry (local header at 0); its size is in the central directory
    // (torch writes a data descriptor, so the local header's size is 0)
    size_t name = (size_t)(b[26] | b[27] << 8), extra = (size_t)(b[28] | b[29] << 8);
    size_t off = 30 + name + extra, size = 0;
    for (size_t i = len - 4; i-- > 0;)
        if (!memcmp(b + i, "PK\1\2", 4) && (size_t)(b[i + 42] | b[i + 43] << 8) == 0) {
            size = (size_t)(b[i + 20] | b[i + 21] << 8 | b[i + 22] << 16 | (size_t)b[i + 23] << 24);
            break;
        }
    cr_assert(size > 100 && size < 4096, "data.pkl size %zu", size);
    int refused = 0;
    for (size_t i = off; i < off + size; i++) {
        static const unsigned char x[] = {0x01, 0x02, 0x10, 0x40, 0x80, 0xff};
        for (size_t k = 0; k < sizeof x; k++) {
            b[i] ^= x[k];
            hyp_clear_error();
            cr_assert_null(torchbin_read_mem(b, len, "c.bin", 0), "byte %zu: corruption not detected", i);
            cr_assert(strstr(hyp_last_error(), "CRC"), "%s", hyp_last_error());
            WeightSet *ws = torchbin_read_mem(b, len, "c.bin", TORCHBIN_NO_CRC);
            if (!ws) { refused++; cr_assert(strstr(hyp_last_error(), "c.bin"), "%s", hyp_last_error()); }
            weights_free(ws);
            b[i] ^= x[k];
        }
    }
    cr_assert_gt(refused, (int)size);
    free(b);
}

// Same for the zip structures at the end (central directory, end records).
Test(bad_input, corrupted_zip_directory) {
    size_t len;
    unsigned char *b = slurp(IMP "/shared.bin", &len);
    for (size_t i = len > 700 ? len - 700 : 0; i < len; i++) {
        for (unsigned x = 1; x < 256; x <<= 1) {
            b[i] ^= (unsigned char)x;
            hyp_clear_error();
            WeightSet *ws = torchbin_read_mem(b, len, "z.bin", 0);
            if (!ws) cr_assert(strstr(hyp_last_error(), "z.bin"), "%s", hyp_last_error());
            weights_free(ws);
            b[i] ^= (unsigned char)x;
        }
    }
    free(b);
}

// Write a weights set after `edit`, then import it with the tiny BERT config.
static void import_edited(void (*edit)(WeightSet *), bool allow_unknown, const char *mention, const char *mention2) {
    WeightSet *ws = safetensors_read(IMP "/bert_st/model.safetensors");
    cr_assert(ws);
    edit(ws);
    char *d = tmpdir(), *st = tmppath(d, "edited.safetensors"), *out = tmppath(d, "m.h5");
    cr_assert_eq(safetensors_write(ws, st, NULL), 0, "%s", hyp_last_error());
    weights_free(ws);
    int rc = import_q(st, out, IMP "/bert_st/config.json", NULL, allow_unknown);
    if (!mention) {
        cr_assert_eq(rc, 0, "%s", hyp_last_error());
        cr_assert(exists(out));
    } else {
        cr_assert_neq(rc, 0, "the edited file was accepted");
        expect_error_mentions("edited", st, mention);
        if (mention2) expect_error_mentions("edited", mention2, NULL);
        expect_no_output(out);
    }
    rm_rf(d);
    free(st); free(out); free(d);
}
static void drop_ln_bias(WeightSet *ws) { cr_assert(weights_remove(ws, "encoder.layer.1.output.LayerNorm.bias")); }
static void add_unknown(WeightSet *ws) {
    int sh[1] = {3};
    float *f = weights_alloc(3);
    f[0] = f[1] = f[2] = 1;
    weights_add(ws, "classifier.weight", WDT_F32, 1, sh, f);
}
static void wrong_shape(WeightSet *ws) {
    NamedTensor *t = weights_get(ws, "encoder.layer.0.intermediate.dense.weight");
    t->shape[0] = 32;                                      // (64, 32) -> (32, 64): same numel
    t->shape[1] = 64;
}
static void drop_pooler_bias(WeightSet *ws) { cr_assert(weights_remove(ws, "pooler.dense.bias")); }
static void drop_pooler(WeightSet *ws) { drop_pooler_bias(ws); cr_assert(weights_remove(ws, "pooler.dense.weight")); }
static void add_bert_prefix(WeightSet *ws) {
    for (int i = 0; i < ws->n; i++) {
        char n[300];
        snprintf(n, sizeof n, "bert.%s", ws->v[i].name);
        cr_assert(weights_rename(ws, ws->v[i].name, n));
    }
}
static void gamma_beta(WeightSet *ws) {
    cr_assert(weights_rename(ws, "embeddings.LayerNorm.weight", "embeddings.LayerNorm.gamma"));
    cr_assert(weights_rename(ws, "embeddings.LayerNorm.bias", "embeddings.LayerNorm.beta"));
}

Test(bad_input, missing_key) { import_edited(drop_ln_bias, false, "missing 1 tensor: encoder.layer.1.output.LayerNorm.bias", NULL); }
Test(bad_input, unknown_key) { import_edited(add_unknown, false, "unknown tensor", "classifier.weight"); }
Test(bad_input, unknown_key_allowed) { import_edited(add_unknown, true, NULL, NULL); }
Test(bad_input, wrong_shape) { import_edited(wrong_shape, false, "encoder.layer.0.intermediate.dense.weight: shape [32, 64], but the config needs [64, 32]", NULL); }
Test(bad_input, half_a_pooler) { import_edited(drop_pooler_bias, false, "pooler.dense.bias", NULL); }
Test(import, no_pooler_is_fine) { import_edited(drop_pooler, false, NULL, NULL); }
Test(import, bert_prefix_is_stripped) { import_edited(add_bert_prefix, false, NULL, NULL); }
Test(import, gamma_beta_are_renamed) { import_edited(gamma_beta, false, NULL, NULL); }

Test(bad_input, config_shape_disagrees) {
    // intermediate_size 48 in config.json, 64 in the weights
    size_t len;
    unsigned char *c = slurp(IMP "/bert_st/config.json", &len);
    c[len] = 0;
    char *p = strstr((char *)c, "\"intermediate_size\": 64");
    cr_assert(p);
    memcpy(p, "\"intermediate_size\": 48", 23);
    char *d = tmpdir(), *cfg = tmppath(d, "config.json"), *out = tmppath(d, "m.h5");
    spit(cfg, c, len);
    cr_assert_neq(import_q(IMP "/bert_st/model.safetensors", out, cfg, NULL, false), 0);
    expect_error_mentions("config", "model.safetensors", "encoder.layer.0.intermediate.dense.weight: shape [64, 32], but the config needs [48, 32]");
    expect_no_output(out);
    rm_rf(d);
    free(c); free(cfg); free(out); free(d);
}

Test(bad_input, bad_config_json) {
    char *d = tmpdir(), *cfg = tmppath(d, "config.json"), *out = tmppath(d, "m.h5");
    const char *bad1 = "{\"hidden_size\": 32,";
    spit(cfg, bad1, strlen(bad1));
    cr_assert_neq(import_q(IMP "/bert_st/model.safetensors", out, cfg, NULL, false), 0);
    expect_error_mentions("config", cfg, "bad JSON");
    const char *bad2 = "{\"model_type\": \"bert\", \"hidden_size\": 30, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                       "\"intermediate_size\": 64, \"vocab_size\": 100}";
    spit(cfg, bad2, strlen(bad2));
    cr_assert_neq(import_q(IMP "/bert_st/model.safetensors", out, cfg, NULL, false), 0);
    expect_error_mentions("config", cfg, "num_attention_heads");
    expect_no_output(out);
    rm_rf(d);
    free(cfg); free(out); free(d);
}

Test(bad_input, missing_inputs) {
    char *d = tmpdir(), *out = tmppath(d, "m.h5");
    cr_assert_neq(import_q(IMP "/no_such_dir", out, NULL, NULL, false), 0);
    expect_error_mentions("missing", "no_such_dir", NULL);
    cr_assert_neq(import_q(d, out, NULL, NULL, false), 0);    // an empty directory
    expect_error_mentions("empty dir", "no model.safetensors or pytorch_model.bin", NULL);
    cr_assert_null(model_file_read(IMP "/bert_st/model.safetensors"));
    expect_error_mentions("not a model file", "model.safetensors", NULL);
    expect_no_output(out);
    rm_rf(d);
    free(out); free(d);
}

// ------------------------------------------------------------------ issue 12: NaN weights, old pickles
static void nan_ln_weight(WeightSet *ws) {
    NamedTensor *t = weights_get(ws, "encoder.layer.0.output.LayerNorm.weight");
    cr_assert(t);
    t->data[3] = NAN;
}
// A NaN LayerNorm weight made every embedding NaN with rc 0: the check an importer runs.
Test(bad_input, nan_weight_found_by_check) {
    WeightSet *ws = safetensors_read(IMP "/bert_st/model.safetensors");
    cr_assert(ws);
    cr_assert_eq(weights_check_finite(ws, "st"), 0, "%s", hyp_last_error());
    nan_ln_weight(ws);
    cr_assert_neq(weights_check_finite(ws, "st"), 0);
    expect_error_mentions("nan check", "encoder.layer.0.output.LayerNorm.weight", "1 non-finite value (first: nan at flat index 3");
    weights_free(ws);
}

// A model file whose weights went bad after import (a diverged run): model_load refuses it,
// so encode/score/search never compute with it.
Test(bad_input, nan_weight_refused_at_model_load) {
    char *d = tmpdir(), *out = tmppath(d, "m.h5");
    cr_assert_eq(import_q(IMP "/bert_st", out, NULL, NULL, false), 0, "%s", hyp_last_error());
    Model *m = model_load(out, HYP_CPU);
    cr_assert(m, "%s", hyp_last_error());
    model_free(m);
    hid_t f = H5Fopen(out, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t ds = H5Dopen2(f, "/params/encoder.layer.1.output.LayerNorm.weight", H5P_DEFAULT);
    cr_assert(ds >= 0);
    float w[32];
    cr_assert(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) >= 0);
    w[5] = NAN;
    w[7] = INFINITY;
    cr_assert(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) >= 0);
    H5Dclose(ds);
    H5Fclose(f);
    cr_assert_null(model_load(out, HYP_CPU), "a model with a NaN weight was loaded");
    expect_error_mentions("nan at load", "encoder.layer.1.output.LayerNorm.weight", "2 non-finite values");
    rm_rf(d);
    free(out); free(d);
}

// A protocol-0 pickle (legacy torch.save(..., pickle_protocol=0), or pickle.dump) used to get
// the safetensors reader's "header length does not fit" message.
Test(bad_input, protocol0_pickle_is_named) {
    char *d = tmpdir(), *p = tmppath(d, "old.bin");
    const char pk[] = "(dp0\nVembeddings.word_embeddings.weight\np1\nI1\ns.";
    spit(p, pk, sizeof pk - 1);
    cr_assert_null(weights_read(p));
    expect_error_mentions("protocol 0", "protocol-0/1 pickle", "expected safetensors or a zip-format torch.save");
    rm_rf(d);
    free(p); free(d);
}

// Finite weights can still overflow: encode never returns a non-finite vector (it used to
// write 100% NaN embeddings with rc 0); with nonfinite_null the caller gets NULL + a message.
Test(bad_input, encode_refuses_non_finite_vectors) {
    char *d = tmpdir(), *out = tmppath(d, "m.h5");
    cr_assert_eq(import_q(IMP "/bert_st", out, NULL, NULL, false), 0, "%s", hyp_last_error());
    Model *m = model_load(out, HYP_CPU);
    cr_assert(m, "%s", hyp_last_error());
    Tokenizer *tok = model_tokenizer(m);
    cr_assert(tok, "%s", hyp_last_error());
    const char *texts[2] = {"hello", "a longer text here"}, *ids[2] = {"d0", "d1"};
    EncodeOptions o = {.batch = 2, .ids = ids, .nonfinite_null = true};
    float *v = encode_texts(m, tok, texts, 2, &o);
    cr_assert(v, "%s", hyp_last_error());
    free(v);
    Tensor *w = paramset_get(m->ps, "embeddings.LayerNorm.weight");
    cr_assert(w);
    for (size_t i = 0; i < tensor_numel(w); i++) tensor_f32(w)[i] = 3e38f;   // LN output * 3e38: overflows
    Tensor *we = paramset_get(m->ps, "embeddings.word_embeddings.weight");
    for (size_t i = 0; i < tensor_numel(we); i++) tensor_f32(we)[i] = (float)((i * 7919) % 13) - 6.0f;
    cr_assert_null(encode_texts(m, tok, texts, 2, &o), "a non-finite vector was returned");
    expect_error_mentions("non-finite encode", "non-finite vector for document", "(row ");
    tok_free(tok);
    model_free(m);
    rm_rf(d);
    free(out); free(d);
}

// A BOM (Windows editors) at the start of config.json was a JSON syntax error; the INI
// config goes through the same hyp_read_text_file.
Test(bad_input, bom_in_small_text_files_is_dropped) {
    char *d = tmpdir(), *p = tmppath(d, "config.json");
    size_t n;
    char *orig = (char *)slurp(IMP "/bert_st/config.json", &n);
    char *bom = hyp_malloc(n + 3);
    memcpy(bom, "\xEF\xBB\xBF", 3);
    memcpy(bom + 3, orig, n);
    spit(p, bom, n + 3);
    size_t len;
    char *text = hyp_read_text_file(p, 1 << 20, &len);
    cr_assert(text, "%s", hyp_last_error());
    cr_assert_eq(len, n);
    cr_assert(!memcmp(text, orig, n));
    cr_assert_eq(text[n], 0);
    BertConfig b;
    cr_assert_eq(hf_bert_config_read(p, &b), 0, "%s", hyp_last_error());
    cr_assert_eq(b.hidden, 32);
    free(text); free(bom); free(orig);
    rm_rf(d);
    free(p); free(d);
}

// A released Hypencoder searches with the authors' retrieval query length (64), capped by the
// model's positions; plain BERT imports keep the training configs' 32.
Test(import, default_query_length_follows_the_authors_retrieval_scripts) {
    cr_assert_eq(import_default_query_len(MODEL_HYPENCODER, 512), 64);
    cr_assert_eq(import_default_query_len(MODEL_BERT, 512), 32);
    cr_assert_eq(import_default_query_len(MODEL_HYPENCODER, 32), 32);   // the tiny fixture's table
}
