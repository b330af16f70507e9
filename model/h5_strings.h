// h5_strings.h: the HDF5 pieces autograd/h5io.h does not cover: UTF-8 string datasets and
// integer attributes. Each call opens the file by path (read-write for writers), so they
// combine with an H5File that has been closed first.
// Errors: -1 / NULL with "path: object: reason" in hyp_last_error().
#ifndef HYP_H5_STRINGS_H
#define HYP_H5_STRINGS_H
#include "autograd/util.h"

// A 1-D dataset of n variable-length UTF-8 strings (creates intermediate groups).
int h5s_write_strings(const char *path, const char *dset, const char *const *strs, size_t n);
// A scalar variable-length UTF-8 string dataset.
int h5s_write_string(const char *path, const char *dset, const char *s);
// An int attribute on an existing object ("/" or a group/dataset path); creates the group
// `obj` if it does not exist.
int h5s_write_attr_int(const char *path, const char *obj, const char *attr, int64_t v);

// Read a 1-D (or scalar) string dataset: *n strings, each malloc'd, in a malloc'd array.
char **h5s_read_strings(const char *path, const char *dset, size_t *n);
// Read a scalar string dataset (malloc'd).
char *h5s_read_string(const char *path, const char *dset);
// 0 and *v on success; 1 when the attribute does not exist; -1 on error.
int h5s_read_attr_int(const char *path, const char *obj, const char *attr, int64_t *v);
void h5s_free_strings(char **v, size_t n);

#endif
