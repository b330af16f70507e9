// fault.h: fault injection for the tests of atomic outputs (autograd/atomic.h, h5io.h) and of
// the training loop. Test-only: production code never sets a hook; the unit tests do, and so
// does bin/hyp-faults (tests/fault/hyp_faults.c) from its environment. When a test sets the
// output hook, every stage of every atomic output asks it first; a nonzero return is an errno, and that stage fails
// with it exactly as if the system call (or the HDF5 call) had failed with it.
#ifndef HYP_FAULT_H
#define HYP_FAULT_H

#include <stdbool.h>

typedef enum {
    FAULT_CREATE,    // creating PATH.tmp
    FAULT_WRITE,     // each dataset or attribute written
    FAULT_FLUSH,     // H5Fflush before the close
    FAULT_CLOSE,     // H5Fclose / close(2) of the temporary
    FAULT_FSYNC,     // fsync of the temporary
    FAULT_RENAME,    // rename over PATH
} FaultStage;

// path: the output being written (the final PATH, not the temporary).
typedef int (*FaultHook)(FaultStage stage, const char *path, void *user);
void fault_set_hook(FaultHook hook, void *user);   // NULL: no faults
// The errno to inject at this stage (0: none).
int fault_check(FaultStage stage, const char *path);

// Training faults, asked once per optimizer step on every rank. step: the 1-based global step
// about to run. A true return makes that step's loss NaN (the non-finite-step policy's test);
// the hook may also end the process itself, as a crashed node would.
typedef bool (*TrainFaultHook)(int rank, long step, void *user);
void fault_set_train_hook(TrainFaultHook hook, void *user);
bool fault_train_step(int rank, long step);

#endif
