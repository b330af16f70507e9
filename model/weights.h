// weights.h: named tensor sets read from / written to pretrained-weight files.
//
//   safetensors  8-byte little-endian header length, JSON header, raw data (F32/F16/BF16 and
//                the integer/bool buffer dtypes), strictly validated like the safetensors crate.
//   torch.save   a zip archive (stored entries) holding <prefix>/data.pkl, <prefix>/data/<key>,
//                <prefix>/byteorder, <prefix>/version: the pickle is run by a small strict VM
//                that only knows what a state dict of tensors needs (no arbitrary globals).
//
// Every tensor is converted to fp32 on load; the stored dtype is kept for reporting. Entries
// keep the file's order. Tensors that are the same storage view (torch: the same tensor object
// or the same storage/offset/size/stride, e.g. tied or shared modules) share one buffer and
// record the first name in `alias_of`.
// Readers return NULL and leave "file: key: reason" in hyp_last_error(); they never crash on
// hostile input and never allocate more than a small multiple of the input size.
#ifndef HYP_WEIGHTS_H
#define HYP_WEIGHTS_H
#include "autograd/util.h"
#include "autograd/tensor.h"   // HYP_MAX_DIMS

typedef enum {
    WDT_F32 = 0, WDT_F16, WDT_BF16, WDT_F64, WDT_I64, WDT_I32, WDT_I16, WDT_I8, WDT_U8, WDT_BOOL,
    WDT_COUNT
} WDType;
const char *wdtype_name(WDType t);    // safetensors spelling: "F32", "BF16", ...
size_t wdtype_size(WDType t);

typedef struct WBuf WBuf;             // refcounted fp32 storage shared by aliases

typedef struct {
    char *name;
    WDType stored;                    // dtype in the source file (data is always fp32)
    int ndim;                         // 0..HYP_MAX_DIMS (0: a scalar, numel 1)
    int shape[HYP_MAX_DIMS];
    size_t numel;
    float *data;                      // (numel) fp32, row-major
    char *alias_of;                   // name of the earlier tensor sharing this buffer, or NULL
    WBuf *buf;
} NamedTensor;

typedef struct {
    NamedTensor *v;                   // (n) in insertion order
    int n, cap;
    char *metadata_json;              // safetensors __metadata__ (JSON object text) or NULL
    // name -> index hash (private)
    int *slots; int nslots;
} WeightSet;

WeightSet *weights_new(void);
void weights_free(WeightSet *ws);
// fp32 buffer for weights_add (64-byte aligned, refcounted; freed by the set).
float *weights_alloc(size_t numel);
// Convert n little-endian elements of dtype t at src (any alignment) to fp32.
void weights_convert(float *dst, const uint8_t *src, WDType t, size_t n);
// Add a tensor, taking ownership of `data` (from weights_alloc, numel floats). NULL + error on a
// duplicate name (the data is freed then).
NamedTensor *weights_add(WeightSet *ws, const char *name, WDType stored, int ndim, const int *shape, float *data);
// Add `name` as another name for the existing tensor `target` (shares its buffer).
NamedTensor *weights_add_alias(WeightSet *ws, const char *name, const char *target);
NamedTensor *weights_get(const WeightSet *ws, const char *name);
int weights_index(const WeightSet *ws, const char *name);     // -1 when absent
bool weights_remove(WeightSet *ws, const char *name);          // false when absent
// Rename keeping the position; false (+ error) when absent or new_name exists.
bool weights_rename(WeightSet *ws, const char *name, const char *new_name);
size_t weights_numel_unique(const WeightSet *ws);              // aliases counted once
bool weights_same_data(const NamedTensor *a, const NamedTensor *b);  // shape and bits equal

// Readers. `label` names the input in error messages (usually its path).
WeightSet *weights_read(const char *path);         // by content: zip -> torch.save, else safetensors
WeightSet *safetensors_read(const char *path);
WeightSet *safetensors_read_mem(const void *buf, size_t len, const char *label);
WeightSet *torchbin_read(const char *path);
#define TORCHBIN_NO_CRC 1u                          // skip CRC-32 checks (fuzzing only)
WeightSet *torchbin_read_mem(const void *buf, size_t len, const char *label, unsigned flags);

// 0 when every tensor is finite, else -1 + "label: NAME: K non-finite values (first: nan at
// flat index I of N) ...". The readers keep NaN/inf (they are valid tensor values); an
// importer of model weights should refuse them (model_load does, for model files).
int weights_check_finite(const WeightSet *ws, const char *label);

// Map a whole file read-only (for the readers). 0 or -1 + error.
int weights_map_file(const char *path, const uint8_t **map, size_t *len);
void weights_unmap_file(const uint8_t *map, size_t len);

// Write all tensors as F32 safetensors (aliases written as separate copies, since safetensors
// has no sharing). meta: NULL or "key", "value", ..., NULL for __metadata__ ("format":"pt" is
// always written, HF requires it). Written to PATH.tmp then renamed. 0 or -1 + error.
int safetensors_write(const WeightSet *ws, const char *path, const char *const *meta);

#endif
