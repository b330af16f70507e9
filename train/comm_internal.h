// comm_internal.h: what train/comm*.c share. Not for other folders: use train/comm.h.
#ifndef HYP_COMM_INTERNAL_H
#define HYP_COMM_INTERNAL_H
#include "train/comm.h"

// How this process was launched (from the environment).
typedef struct CommLaunch {
    const char *launcher;     // "mpirun", "env" or "none"
    int rank, world;
    int local_rank, local_world;   // -1 when the launcher did not say
    const char *master_addr;  // env launcher: MASTER_ADDR (default 127.0.0.1)
    int master_port;          // env launcher: MASTER_PORT (default 29500)
} CommLaunch;

// A host collective engine: every buffer is in host memory.
typedef struct CommEngine {
    const char *name;
    // Rank-ordered sum (then / world when mean), the same bits on every rank.
    int (*allreduce)(Comm *c, float *buf, size_t n, bool mean);
    int (*broadcast)(Comm *c, void *buf, size_t bytes, int root);
    int (*barrier)(Comm *c);
    int (*allgather)(Comm *c, const void *send, size_t bytes, void *recv);
    void (*abort)(Comm *c);      // best effort; must not block
    void (*finalize)(Comm *c);   // collective shutdown after success
} CommEngine;

struct CommImpl {
    const CommEngine *host;   // host collectives
    void *host_state;         // the host engine's state
    void *nccl;               // NCCL state (backend nccl), else NULL
    bool broken;              // an error happened: every later call fails
    bool cuda_pending;        // NCCL: collectives enqueued and not yet waited for
};

extern const CommEngine comm__none_engine;
extern const CommEngine comm__mpi_engine;
extern const CommEngine comm__tcp_engine;

// Start the engine: fill c->rank/world (and local_* when the engine knows) and
// c->impl->host_state. Return 0, or -1 with hyp_set_error.
int comm__mpi_init(Comm *c, bool *we_initialized);
int comm__tcp_init(Comm *c, const CommLaunch *l);
bool comm__mpi_built(void);

// NCCL (comm_nccl.c): after the host engine is up (it broadcasts the unique id).
bool comm__nccl_built(void);
int comm__nccl_init(Comm *c);
int comm__nccl_allreduce(Comm *c, float *buf, size_t n, CommOp op);   // enqueue only
int comm__nccl_broadcast(Comm *c, void *buf, size_t bytes, int root); // enqueue only
int comm__nccl_allgather(Comm *c, const void *send, size_t bytes, void *recv);
int comm__nccl_wait(Comm *c);
void comm__nccl_abort(Comm *c);
void comm__nccl_finalize(Comm *c);
// Pick the GPU by local rank; sets c->cuda_device. Return 0, or -1 with hyp_set_error.
int comm__cuda_select_device(Comm *c);

// Report a failure: "comm (<engine>) rank r/w: <msg>". With errors_return: marks the
// communicator broken, sets hyp_last_error, returns -1. Otherwise aborts the engine,
// prints "hyp: <message>" and exits with status 3.
int comm__fail(Comm *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Watchdog for engines whose blocking calls cannot time out by themselves (MPI): if
// the call between begin and end lasts longer than c->timeout_s, print a message
// naming the rank and the operation and _exit(3) (the launcher then ends the job).
void comm__watch_begin(Comm *c, const char *op);
void comm__watch_end(Comm *c);

#endif
