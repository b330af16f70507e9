// atomic.h: replacing an output file atomically (DESIGN §5). Every output goes through
// here (HDF5 outputs through h5_begin / h5_commit in h5io.h, which use these):
//
//   write PATH.tmp -> every close checked -> fsync PATH.tmp -> rename over PATH -> fsync dir
//
// A failure at any stage removes PATH.tmp and leaves PATH (and every other file) as it was.
//
// Temporaries are named PATH.tmp, in PATH's directory (so the rename is atomic). A leftover
// PATH.tmp of a killed run is removed by the next writer of PATH before it starts
// (atomic_tmp_clear); one that a live process still holds locked (HDF5 locks the files it
// writes) is left alone and the new write fails, naming it. `hyp train` also removes the
// leftovers of its run folder (ckpt-*.h5.tmp, best.h5.tmp, latest.tmp) when it starts.
// Errors: -1 with "path: what: strerror (errno N)" in hyp_last_error().
#ifndef HYP_ATOMIC_H
#define HYP_ATOMIC_H
#include "autograd/util.h"

// "PATH.tmp" (malloc'd).
char *atomic_tmp_path(const char *path);
// Remove a leftover temporary: 0 when tmp is gone (or never existed), -1 when it is locked
// by a live writer or cannot be removed.
int atomic_tmp_clear(const char *tmp);
// tmp is complete and closed: fsync it, rename it over path, fsync path's directory. On
// failure tmp is removed and path is unchanged (as far as the rename is concerned).
int atomic_commit(const char *tmp, const char *path);
// Write n bytes as path through path.tmp (the whole rule above).
int atomic_write_file(const char *path, const void *data, size_t n);
// fsync a directory (file systems that refuse fsync on directories count as success).
int atomic_fsync_dir(const char *dir);
// "strerror (errno N)" for e into buf.
const char *atomic_errstr(int e, char *buf, size_t n);

#endif
