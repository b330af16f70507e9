// comm.h: the communicator for data-parallel jobs. One small interface, four engines:
//   none  one process (the default): every collective is a no-op (or a copy);
//   mpi   OpenMPI on host buffers (launched by mpirun; CPU training);
//   nccl  NCCL on CUDA buffers, on its own stream; the unique id travels through MPI
//         when launched by mpirun, else through the TCP bootstrap below;
//   tcp   MPI-free, torchrun-style launch (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
//         MASTER_PORT): rank 0 listens on MASTER_PORT, every rank connects to it (a
//         star). It hands out NCCL's unique id, and it is the host collective engine
//         of a CPU job started without mpirun.
// Buffers may live on either device whatever the engine: a CUDA buffer given to a host
// engine is staged through host memory, a host buffer given to NCCL goes through its
// host engine (MPI or TCP).
//
// Determinism: host engines sum in rank order, ((b0 + b1) + b2) + ..., whatever the
// arrival order, and every rank receives the same bits. Mean = sum / world.
//
// Failures: a peer that dies or stalls never hangs the others forever. A blocking
// collective that makes no progress for timeout_s (HYP_COMM_TIMEOUT, default 300 s),
// an EOF or a socket error, an MPI error (MPI_ERRORS_RETURN) or an NCCL async error
// ends the call with a message naming this rank and, where known, the peer. By default
// the process then exits (status 3) after aborting the engine (MPI_Abort, ncclCommAbort,
// closing sockets), which ends the whole job; with CommOptions.errors_return the call
// returns -1 with the message in hyp_last_error() instead, and the communicator is
// unusable afterwards (comm_abort or comm_free it). Exception: a stalled MPI call cannot
// be interrupted, so the MPI engine's watchdog ends the process (status 3) even then.
//
// One communicator per process, for the life of the program: MPI cannot be
// initialised again after comm_free finalised it.
//
// Call comm_init before creating any CUDA context: on CUDA jobs it selects the GPU by
// local rank (cudaSetDevice(local_rank % device_count)).
#ifndef HYP_COMM_H
#define HYP_COMM_H
#include "autograd/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { COMM_NONE = 0, COMM_MPI = 1, COMM_TCP = 2, COMM_NCCL = 3 } CommBackend;
typedef enum { COMM_SUM = 0, COMM_MEAN = 1 } CommOp;

typedef struct CommOptions {
    Device device;        // where the job's buffers live: "auto" picks nccl only for HYP_CUDA
    double timeout_s;     // <= 0: $HYP_COMM_TIMEOUT, else 300
    bool errors_return;   // false: a failed collective ends the process (exit 3)
} CommOptions;

typedef struct CommImpl CommImpl;
// Read-only after comm_init.
typedef struct Comm {
    CommBackend backend;
    int rank, world;            // 0 <= rank < world
    int local_rank, local_world;// among the ranks on this host
    Device device;              // HYP_CUDA for nccl (its native buffers), else HYP_CPU
    int cuda_device;            // the GPU selected by local rank, -1 if none
    double timeout_s;
    bool errors_return;
    const char *launcher;       // "mpirun", "env" (torchrun-style variables) or "none"
    CommImpl *impl;
} Comm;

// backend: "none", "mpi", "nccl", "tcp" or "auto" (NULL = "auto"). opt may be NULL
// (device HYP_CPU, defaults). "auto": under mpirun (OMPI_COMM_WORLD_SIZE > 1) nccl for
// CUDA jobs when built with NCCL, else mpi (an error when built without MPI); with
// WORLD_SIZE > 1 nccl for CUDA jobs, else tcp; otherwise none. tcp rendezvouses at
// MASTER_ADDR:MASTER_PORT (default 127.0.0.1:29500) under any launcher. "mpi" outside mpirun is a 1-rank MPI job (singleton init);
// "tcp" and "nccl" without RANK/WORLD_SIZE and outside mpirun are 1-rank jobs; "none"
// in a multi-rank launch is an error (N copies would overwrite each other's outputs).
// Returns NULL with hyp_last_error() on failure (backend not built, bad environment,
// peers not reachable within the timeout).
Comm *comm_init(const char *backend, const CommOptions *opt);
// Collective: every rank calls it. Finalizes the engine (MPI_Finalize if we initialized).
void comm_free(Comm *c);
// Print "hyp: comm (<engine>) rank r/w: <why>", abort the engine (which ends the job:
// MPI_Abort, ncclCommAbort, sockets closed), exit(3).
void comm_abort(Comm *c, const char *why) __attribute__((noreturn));

const char *comm_backend_name(CommBackend b);
bool comm_backend_compiled(CommBackend b);        // false for mpi/nccl when built without them
const char *comm_auto_backend(Device device);     // what "auto" resolves to here and now
// "none mpi tcp nccl" (the engines this build has).
const char *comm_backends_compiled(void);

// All collectives: every rank calls them in the same order with the same sizes; they
// return 0, or -1 (errors_return only). dev says where the buffer lives.

// In place: buf (n) = sum (or mean) over ranks of buf.
int comm_allreduce(Comm *c, float *buf, size_t n, CommOp op, Device dev);
// Split form for overlapping the backward pass: _async enqueues (NCCL: on the
// communicator's stream, after the work already queued on the compute stream) and
// returns; comm_wait completes every outstanding collective (the compute stream is
// ordered after them, and the host waits with the timeout). Host engines complete
// the collective in _async; comm_wait is then a no-op. Do not touch buf in between.
int comm_allreduce_async(Comm *c, float *buf, size_t n, CommOp op, Device dev);
int comm_wait(Comm *c);
// buf (bytes) on every rank = root's buf.
int comm_broadcast(Comm *c, void *buf, size_t bytes, int root, Device dev);
int comm_barrier(Comm *c);
// recv (world * bytes) = every rank's send, in rank order. send and recv must not overlap.
int comm_allgather(Comm *c, const void *send, size_t bytes, void *recv, Device dev);
static inline int comm_allgather_f32(Comm *c, const float *send, size_t n, float *recv, Device dev) {
    return comm_allgather(c, send, n * sizeof(float), recv, dev);
}
// Small host values: out (world) in rank order.
int comm_allgather_f64(Comm *c, double v, double *out);
int comm_allgather_i64(Comm *c, int64_t v, int64_t *out);
// *out = sum over ranks of v, added in rank order (the same bits on every rank).
int comm_sum_f64(Comm *c, double v, double *out);

// Tensor forms (f32 for allreduce; any dtype for broadcast), on the tensor's device.
int comm_allreduce_tensor(Comm *c, Tensor *t, CommOp op);
int comm_broadcast_tensor(Comm *c, Tensor *t, int root);

#ifdef __cplusplus
}
#endif
#endif
