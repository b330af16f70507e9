// train_data.h: distillation training data: the JSONL reader, `hyp pretokenize`
// (JSONL -> memory-mappable binary shard directory) and the batch loader.
//
// ---- Input: one JSON object per line, either of
//   authors' format (hypencoder_cb, reference §5):
//     {"query": {"id", "content", "tokenized_content"?}, "items": [{"id", "content",
//      "score", "tokenized_content"?, "type"?}, ...]}        (items[0] = the positive)
//     "query" may also be a plain string.
//   FlagEmbedding format (shared/data/distill/flagembedding_msmarco_kd_sample.jsonl):
//     {"query": "text", "pos": ["text"], "neg": ["text", ...], "pos_scores": [f],
//      "neg_scores": [f, ...], "prompt"?, "type"?}
//     items = pos[0] then neg[...]; further positives (pos[1..]) are dropped and
//     counted (they must not become negatives); "prompt" is ignored (instruction
//     prefixes are for instruction-tuned embedders, not BERT).
// The format is chosen per line ("items" present -> authors', else "pos").
// `tokenized_content` (ids including [CLS]/[SEP], as the authors' tokenizer_utils
// writes them) is used when present, else `content` goes through tok_encode.  Scores
// are required (any JSON number).  Blank lines are skipped; a row with no items is
// skipped and counted.  Lines stream through hyp_lines (autograd/util.h): a leading UTF-8
// BOM is dropped, a line over 16 MiB or a NUL byte is an error (so /dev/zero fails at once).  Errors name file and line: "train.jsonl:12: items[3]: missing \"score\"".
//
// ---- Shard directory (all little-endian, no headers; meta.json has the counts):
//   meta.json          format "hyp-pretok", version, counts, lengths, tokenizer facts
//   queries.bin        int32  (query_tokens)     query ids, [CLS] .. [SEP], concatenated
//   query_offsets.bin  uint64 (rows + 1)         row r's query = queries[qo[r] .. qo[r+1])
//   items.bin          int32  (item_tokens)      item ids, concatenated
//   item_offsets.bin   uint64 (items + 1)        item i = items[io[i] .. io[i+1])
//   row_items.bin      uint64 (rows + 1)         row r's items = ri[r] .. ri[r+1], positive first
//   scores.bin         float32 (items)           teacher score of every item
// Queries are truncated to query_max_len and items to doc_max_len ids, both counts
// including [CLS]/[SEP] (HF truncation; a pre-tokenized sequence that ends in [SEP]
// keeps its [SEP]).  Written into DIR.tmp and renamed to DIR at the end, so DIR is
// either absent or complete.
//
// ---- Loader: rows with fewer than 1 + num_negatives items are skipped (counted in
// LoaderInfo.rows_short) so every batch is rectangular.  Epoch e visits the usable
// rows in a Fisher-Yates permutation drawn from Philox(seed, e).  Global batch g of an
// epoch is positions [g*G, (g+1)*G) of the permutation, G = batch_size * world_size;
// rank r takes [g*G + r*B, g*G + (r+1)*B).  So world_size = 2 with B and world_size = 1
// with 2B see the same queries in the same order.  Negatives of (row, global step) are
// num_negatives distinct items of items[1..] of that row, drawn uniformly without
// replacement (Floyd's algorithm) from Philox(seed, step, row): independent of rank and
// world size.  Epochs roll over by themselves.  All randomness is counter-based, so
// the cursor (LoaderState) is all a checkpoint needs for an exact resume.  Draws are
// 64-bit words of the shared Philox4x32-10 (kernels/elementwise.h) mapped to [0, n) by
// multiply-shift; hyp_philox_uniform's 24 bits would bias a shuffle of > 2^24 rows.
// The string ids of queries and items are not kept (the authors' collator ignores them;
// the FlagEmbedding sample has none).  A Loader is not thread-safe; use one per thread.
#ifndef HYP_TRAIN_DATA_H
#define HYP_TRAIN_DATA_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "data/tokenizer.h"

#define PRETOK_FORMAT "hyp-pretok"
#define PRETOK_VERSION 1

// ---------------------------------------------------------------- reader
// One parsed and tokenized row; arrays owned by the reader, valid until the next call.
typedef struct {
    int32_t *q_ids;        // (q_len) [CLS] .. [SEP], truncated
    int q_len;
    int n_items;           // items[0] is the positive
    int32_t *item_ids;     // concatenated ids of all items
    uint64_t *item_off;    // (n_items + 1) item i = item_ids[item_off[i] .. item_off[i+1])
    float *scores;         // (n_items) teacher scores
    int extra_positives;   // FlagEmbedding pos[1..] dropped from this row
    bool pretokenized;     // ids came from tokenized_content (query or any item)
    long line;             // 1-based line number in the file
    size_t cap_q, cap_ids, cap_items; // (internal) capacities
    TokIds scratch;        // (internal) tokenizer output
} TrainRow;
void train_row_free(TrainRow *r);

// Parse one JSONL line (not NUL-terminated; len bytes) into row, tokenizing with tok
// and truncating to the max lengths (0: no truncation).  Returns 0, or -1 with
// hyp_last_error() = "<name>:<line>: reason".  Thread-safe (distinct rows).
// flags: TRAIN_RETOKENIZE ignores tokenized_content wherever content is present (use it
// when the ids were made with another vocabulary; they are only range-checked).
#define TRAIN_RETOKENIZE 1u
int train_row_parse(const char *text, size_t len, const char *name, long line, const Tokenizer *tok,
                    int query_max_len, int doc_max_len, unsigned flags, TrainRow *row);

// Streaming reader: one line at a time, constant memory.
typedef struct TrainReader TrainReader;
TrainReader *train_reader_open(const char *path, const Tokenizer *tok, int query_max_len, int doc_max_len,
                               unsigned flags);
// 1: a row (blank lines skipped), 0: end of file, -1: error (hyp_last_error: file:line).
int train_reader_next(TrainReader *r, TrainRow *row);
void train_reader_close(TrainReader *r);

// FNV-1a 64 over the vocab tokens in id order (each followed by '\n'), stored in
// meta.json as 16 hex digits: a loader can check that a model uses the same vocab.
uint64_t train_vocab_checksum(const Tokenizer *tok);

// ---------------------------------------------------------------- pretokenize
typedef struct {
    long rows, items, rows_empty, extra_positives, pretokenized_rows;
    uint64_t query_tokens, item_tokens, bytes_in;
    int min_items, max_items;
    double seconds;
} PretokStats;

typedef struct {
    const Tokenizer *tok;     // required; its lowercasing flag is recorded
    const char *vocab_name;   // recorded in meta.json (e.g. the vocab path); may be NULL
    const char *in_path;      // the JSONL file
    const char *out_dir;      // must not exist; written as out_dir.tmp then renamed
    int query_max_len;        // default 32 (paper), ids incl. [CLS]/[SEP]; >= 2
    int doc_max_len;          // default 196 (paper); >= 2
    int threads;              // parse+tokenize threads; 0 = OpenMP default
    bool retokenize;          // ignore tokenized_content where content is present
    bool progress;            // progress lines on stderr
    PretokStats *stats;       // filled on success when not NULL
} PretokOptions;
PretokOptions pretok_options_default(void);
// 0 on success; -1 with hyp_last_error() ("train.jsonl:12: ..." or "DIR: ...") and
// neither out_dir nor out_dir.tmp left behind.
int pretokenize(const PretokOptions *o);

// ---------------------------------------------------------------- loader
typedef struct {
    uint64_t seed;
    int batch_size;           // queries per rank (B)
    int num_negatives;        // per query; default 7 (released configs; the paper says 8)
    int rank, world_size;     // default 0, 1
    bool drop_last;           // default true: an epoch's incomplete last global batch is
                              // skipped.  false: it is served, ranks take their contiguous
                              // share of what is there (possibly n_queries = 0 on high ranks).
    int query_max_len;        // 0 = as stored; smaller = truncate further at load (keeps [SEP])
    int doc_max_len;          // 0 = as stored; likewise
    const Tokenizer *check_tok; // not NULL: fail unless the shard was made with this vocab
} LoaderOptions;
LoaderOptions loader_options_default(void);

// A batch; buffers are owned by the batch and reused by loader_next (grow only).
typedef struct {
    int n_queries;            // B (== batch_size except on a drop_last=false tail)
    int n_items;              // items per query: 1 + num_negatives
    int q_len, d_len;         // padded lengths: longest query / item in this batch
    int32_t *q_ids;           // (n_queries, q_len) [PAD] after the end
    int32_t *q_mask;          // (n_queries, q_len) 1 real, 0 pad
    int32_t *d_ids;           // (n_queries * n_items, d_len) query b's items at rows b*n_items.., positive first
    int32_t *d_mask;          // (n_queries * n_items, d_len)
    float *scores;            // (n_queries, n_items) teacher scores, same order as d_ids
    int64_t *rows;            // (n_queries) shard row of each query
    int64_t *items;           // (n_queries, n_items) shard item index of each item
    uint64_t epoch, step;     // this batch's epoch and global step (step counts global batches)
    size_t cap_q, cap_d, cap_n; // (internal) capacities in elements
} TrainBatch;
void train_batch_free(TrainBatch *b);
// Remove a pretokenized shards folder: its files (and nothing else) and the folder; false
// when something else is in it (the folder is then kept).
bool shards_remove(const char *dir);

// Cursor of the loader: plain uint64 fields, storable as a uint64[5] array.
typedef struct {
    uint64_t epoch;           // current epoch
    uint64_t batch;           // next global batch within the epoch
    uint64_t step;            // next global step (negatives are keyed by it)
    uint64_t rows;            // usable rows (consistency check on restore)
    uint64_t global_batch;    // batch_size * world_size (consistency check on restore)
} LoaderState;
#define LOADER_STATE_NFIELDS 5
_Static_assert(sizeof(LoaderState) == LOADER_STATE_NFIELDS * sizeof(uint64_t), "LoaderState is uint64[5]");

typedef struct {
    long rows;                // rows in the shard
    long rows_usable;         // rows with >= 1 + num_negatives items
    long rows_short;          // rows skipped: fewer items
    long items;
    long batches_per_epoch;   // global batches per epoch
    int query_max_len, doc_max_len; // effective
    int vocab_size;
    int32_t pad_id, cls_id, sep_id;
    bool lowercase;
    uint64_t vocab_checksum;
} LoaderInfo;

typedef struct Loader Loader;
// NULL with hyp_last_error() naming the file on a missing/invalid meta.json, a file
// whose size disagrees with it, bad options or no usable rows.
Loader *loader_open(const char *dir, const LoaderOptions *o);
void loader_close(Loader *l);
// Fill b with the next batch and advance.  0, or -1 with hyp_last_error() naming the
// shard file when stored data is inconsistent (offsets or ids out of range).
int loader_next(Loader *l, TrainBatch *b);
LoaderState loader_state(const Loader *l);
// 0, or -1 (hyp_last_error) when the state belongs to another shard/global batch size.
int loader_restore(Loader *l, const LoaderState *s);
const LoaderInfo *loader_info(const Loader *l);
int32_t loader_pad_id(const Loader *l);

#endif
