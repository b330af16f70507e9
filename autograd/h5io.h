// h5io.h: the project's HDF5 access (checkpoints, model files, embeddings, test fixtures).
// Readers return NULL / -1 and leave "path: /dataset: reason" in hyp_last_error().
//
// Outputs: the one atomic writer (DESIGN §5, autograd/atomic.h). h5_begin(PATH) creates
// PATH.tmp (a leftover of a killed run is removed first); the h5_write_* calls fill it;
// h5_commit flushes and closes it (both checked), fsyncs it, renames it over PATH and
// fsyncs the directory. Any failure (an HDF5 error on write, flush or close; ENOSPC, EIO)
// removes PATH.tmp, closes every HDF5 handle and leaves PATH and all other files as they
// were; the error names PATH and the errno ("out.h5: cannot write dataset /x: No space
// left on device (errno 28)"). After the first failed write the others are skipped, so a
// writer may check only h5_commit's result. HDF5's error printing is off: we report.
#ifndef HYP_H5IO_H
#define HYP_H5IO_H
#include "autograd/tensor.h"

typedef struct H5File H5File;

H5File *h5_open(const char *path);                 // read-only
H5File *h5_create(const char *path);               // truncates (not atomic: tests, scratch files)
// Close (every handle, even on failure). A writable file's close is checked: 0 or -1.
int h5_close(H5File *f);
// The atomic writer (above). h5_commit and h5_abort release f whatever happens.
H5File *h5_begin(const char *path);
int h5_commit(H5File *f);
void h5_abort(H5File *f);                          // NULL is fine; keeps hyp_last_error()
bool h5_exists(H5File *f, const char *name);       // dataset or group, e.g. "/linear/case0/x"
// Names of the members of a group in creation/alphabetical order (caller frees each and the
// array); returns the count or -1.
int h5_list(H5File *f, const char *group, char ***names);
// Shape of a dataset (rank <= HYP_MAX_DIMS); returns rank or -1.
int h5_shape(H5File *f, const char *name, int shape[HYP_MAX_DIMS]);
// Read a whole dataset converted to f32 / i32 into a malloc'd buffer (caller frees).
float *h5_read_f32(H5File *f, const char *name, int *ndim, int shape[HYP_MAX_DIMS]);
int32_t *h5_read_i32(H5File *f, const char *name, int *ndim, int shape[HYP_MAX_DIMS]);
int64_t *h5_read_i64(H5File *f, const char *name, int *ndim, int shape[HYP_MAX_DIMS]);
// A 1-D (or scalar) variable-length string dataset: *n strings, each malloc'd, in a malloc'd
// array (h5_free_strings); h5_read_string: exactly one (malloc'd).
char **h5_read_strings(H5File *f, const char *name, size_t *n);
char *h5_read_string(H5File *f, const char *name);
void h5_free_strings(char **v, size_t n);
// Read into a caller buffer whose size must match exactly (n elements).
int h5_read_f32_into(H5File *f, const char *name, float *dst, size_t n);
// Write a dataset, creating intermediate groups. 0 on success.
int h5_write_f32(H5File *f, const char *name, const float *data, int ndim, const int *shape);
int h5_write_i32(H5File *f, const char *name, const int32_t *data, int ndim, const int *shape);
int h5_write_i64(H5File *f, const char *name, const int64_t *data, int ndim, const int *shape);
// UTF-8 variable-length strings: a 1-D dataset of n, or one scalar string.
int h5_write_strings(H5File *f, const char *name, const char *const *strs, size_t n);
int h5_write_string(H5File *f, const char *name, const char *s);
// Scalar attributes on the root group (or any object path). Writers create a missing
// group `obj` (with its parents) and replace an attribute of the same name.
bool h5_has_attr(H5File *f, const char *obj, const char *attr);   // obj exists and carries attr
int h5_read_attr_f64(H5File *f, const char *obj, const char *attr, double *out);
int h5_read_attr_i64(H5File *f, const char *obj, const char *attr, int64_t *out);
int h5_read_attr_u64(H5File *f, const char *obj, const char *attr, uint64_t *out);
int h5_write_attr_f64(H5File *f, const char *obj, const char *attr, double v);
int h5_write_attr_i64(H5File *f, const char *obj, const char *attr, int64_t v);
int h5_write_attr_u64(H5File *f, const char *obj, const char *attr, uint64_t v);
int h5_write_attr_str(H5File *f, const char *obj, const char *attr, const char *v);   // fixed-length
// A string attribute (fixed or variable length) into buf (cap bytes incl. the NUL).
int h5_read_attr_str(H5File *f, const char *obj, const char *attr, char *buf, size_t cap);

// Every parameter of ps from "<group>/<name>" (shapes must match exactly); parameters
// absent from the file are an error unless allow_missing. Returns 0 or -1.
int h5_load_params(H5File *f, const char *group, ParamSet *ps, bool allow_missing);

// A dataset as a tensor on the context's device (f32 or i32 as stored).
Tensor *h5_read_tensor(Ctx *c, H5File *f, const char *name);

#endif
