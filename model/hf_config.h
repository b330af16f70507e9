// hf_config.h: model configuration from HuggingFace config.json (BERT, Hypencoder) and the
// resolved config we store in model files (/config).
#ifndef HYP_HF_CONFIG_H
#define HYP_HF_CONFIG_H
#include "autograd/util.h"
#include "kernels/kernels.h"
#include "model/bert.h"

#define HYP_MAX_QNET_DIMS 34            // vector_dimensions entries: up to 32 hidden layers

// BIENCODER: BE-Base, trained here; CROSS_ENCODER: BertForSequenceClassification (a teacher).
typedef enum { MODEL_BERT = 0, MODEL_HYPENCODER = 1, MODEL_BIENCODER = 2, MODEL_CROSS_ENCODER = 3 } ModelKind;

typedef struct {
    ModelKind kind;
    BertConfig bert;                      // the (query) encoder backbone (model/bert.h: the one BERT config)
    // Hypencoder only (reference §1, §4):
    int n_dims;                         // length of vector_dimensions: [d_0 .. d_L, 1]
    int vector_dimensions[HYP_MAX_QNET_DIMS];
    char activation_type[32];           // q-net activation ("relu")
    bool shared_encoder;                // passage encoder = query encoder's BERT
    char model_name_or_path[256];       // backbone name in the HF config
    char passage_pooling[16];           // "cls" (default) or "mean"
    int num_labels;                     // cross-encoder only: classifier outputs (1: a relevance logit)
    // Parameter-name prefix of the BERT backbone in the weight set:
    // "" for a plain BERT, "query_encoder.transformer." for a Hypencoder.
    char bert_prefix[64];
} ModelConfig;

// Known backbone names (google-bert/bert-base-uncased, bert-base-uncased): true + *b filled.
bool bert_config_known(const char *name, BertConfig *b);
// Check ranges (positive sizes, heads divide hidden, ...), named by their HF config.json keys.
// 0 or -1 + "label: key: reason".
int bert_config_validate(const BertConfig *b, const char *label);

// Parse HF config.json text. kind from "architectures"/"model_type": BERT-family models
// (BertModel, BertForMaskedLM, ...) -> MODEL_BERT; BertForSequenceClassification ->
// MODEL_CROSS_ENCODER (num_labels from id2label, HF's rule; 2 when absent); HypencoderDualEncoder (or a config with
// query_encoder_kwargs) -> MODEL_HYPENCODER, whose BERT dims come from the known-name table
// (or stay 0 when unknown: fill them from a backbone config or the weights).
int hf_config_parse(const char *text, size_t len, const char *label, ModelConfig *out);
int hf_config_read(const char *path, ModelConfig *out);     // + reads the file
// Parse only the BERT part of an HF BERT config.json into *b.
int hf_bert_config_read(const char *path, BertConfig *b);

// The resolved config as JSON (malloc'd) and back.
char *model_config_to_json(const ModelConfig *c);
int model_config_from_json(const char *text, const char *label, ModelConfig *c);
// "bert", "hypencoder", "biencoder", "cross_encoder" (the /config "kind").
const char *model_kind_name(ModelKind k);
// An HF BertModel config.json for `hyp export --config-out` (malloc'd).
char *model_config_to_hf_bert_json(const ModelConfig *c);


// HF `hidden_act` spellings -> our activation (kernels/unary_ops.h): "gelu" (exact erf),
// "relu", "gelu_new" / "gelu_pytorch_tanh" (tanh approximation), "silu" / "swish". "" means
// HF's default "gelu". 0, or -1 + error naming `label`.
int hf_activation(const char *hidden_act, UnaryOp *out, const char *label);
// The spelling we write for op in config files ("gelu", "relu", "gelu_pytorch_tanh", "silu").
const char *hf_activation_name(UnaryOp op);

#endif
