// store.h: document embeddings as `hyp encode` writes them: HDF5 /embeddings (N, d) fp32
// and /ids (N strings). Two modes:
//   in memory  the whole matrix, read in blocks (hyperslabs, so peak memory is the stored
//              matrix plus one block) and optionally kept as fp16 or bf16 (half the memory;
//              converted back to fp32 for scoring, so scores carry the rounding of the
//              stored vectors but all arithmetic is fp32);
//   streaming  nothing but the ids in memory: every block is a hyperslab read from the
//              file, so exhaustive search works on a corpus larger than memory.
// Readers return NULL / -1 and leave "path: /dataset: reason" in hyp_last_error(). Opening
// refuses ids that are empty or contain whitespace, duplicate ids (naming both rows), and
// every read (loading or streaming) refuses a block holding a NaN or infinite value.
#ifndef HYP_SEARCH_STORE_H
#define HYP_SEARCH_STORE_H
#include "autograd/util.h"
#include "autograd/tensor.h"   // Device

typedef enum { STORE_F32 = 0, STORE_F16 = 1, STORE_BF16 = 2 } StoreDType;

typedef struct DocStoreOptions {
    bool streaming;        // keep the matrix in the file; read blocks on demand
    StoreDType dtype;      // in-memory storage type (ignored when streaming)
    int block_rows;        // rows per hyperslab read while loading (0: 16384)
    bool progress;         // loading progress on stderr
} DocStoreOptions;

typedef struct DocStore DocStore;

DocStore *docstore_open(const char *path, const DocStoreOptions *o);
// A store over a copy of host rows x (n, dim); ids NULL names rows "0", "1", ...
DocStore *docstore_from_memory(const float *x, long n, int dim, const char *const *ids, StoreDType dtype);
void docstore_free(DocStore *s);

long docstore_n(const DocStore *s);
int docstore_dim(const DocStore *s);
const char *docstore_id(const DocStore *s, long i);
const char *docstore_path(const DocStore *s);      // "(memory)" for docstore_from_memory
bool docstore_streaming(const DocStore *s);
StoreDType docstore_dtype(const DocStore *s);
// Index of a document id, -1 when absent (hash lookup).
long docstore_find(const DocStore *s, const char *id);

// Rows [start, start+n) as fp32 into dst (n, dim). 0 or -1 + error (read failure, range).
// Thread-safe for in-memory stores; streaming stores serialise on the HDF5 library.
int docstore_rows(DocStore *s, long start, long n, float *dst);
// Rows idx[0..n) as fp32 into dst (n, dim).
int docstore_gather(DocStore *s, const int32_t *idx, long n, float *dst);
// fp32 view of the whole matrix when the store is in memory as fp32, else NULL.
const float *docstore_f32(const DocStore *s);

// The whole matrix resident on device dev (HYP_CUDA) in storage dt (STORE_F32 or STORE_BF16):
// uploaded in blocks on the first call and cached in the store; later calls with the same device
// and dtype return the same pointer (another dtype replaces the copy). (n, dim) float or uint16
// bf16 bits. HYP_CPU: docstore_f32(s) when the store is fp32 in memory, else NULL. NULL + error
// on a read failure or an unsupported dtype. docstore_free frees the copy.
const void *docstore_device(DocStore *s, Device dev, StoreDType dt);
// Frees the device copy (if any) now, keeping the store.
void docstore_device_free(DocStore *s);

// Write x (n, dim) and ids as `hyp encode` does (tests, tools, synthetic corpora):
// PATH.tmp then rename. ids NULL: "0", "1", ...
int docstore_write(const char *path, const float *x, long n, int dim, const char *const *ids);

// fp16 conversions (IEEE binary16, round to nearest even, inf/NaN kept).
uint16_t store_f32_to_f16(float f);
float store_f16_to_f32(uint16_t h);
const char *store_dtype_name(StoreDType t);
int store_dtype_parse(const char *s, StoreDType *out);   // "fp32"|"f32", "fp16"|"f16", "bf16"

#endif
