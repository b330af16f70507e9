// fault.h: fault injection for the tests of atomic outputs (autograd/atomic.h, h5io.h).
// Test-only: production code never sets the hook. When a test sets it, every stage of
// every atomic output asks it first; a nonzero return is an errno, and that stage fails
// with it exactly as if the system call (or the HDF5 call) had failed with it.
#ifndef HYP_FAULT_H
#define HYP_FAULT_H

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

#endif
