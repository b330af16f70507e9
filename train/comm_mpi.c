// comm_mpi.c: the MPI engine (host buffers). MPI errors return (MPI_ERRORS_RETURN) and
// are reported with the rank; a call that blocks longer than the timeout (a stalled
// peer) is ended by the watchdog in comm.c. A rank that dies makes mpirun end the job.
//
// All-reduce is rank-ordered, whatever MPI's algorithms: each rank owns a 1/world slice
// of the buffer, receives every rank's copy of it (alltoallv), adds them in rank order
// ((b0 + b1) + b2) + ... (divides by world for a mean), and the slices are shared back
// (allgatherv). Same traffic as a
// ring all-reduce; every rank ends with the same bits, independent of arrival order.
#include "train/comm_internal.h"

#ifdef HYP_HAVE_MPI
#include <mpi.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    MPI_Comm comm;     // our duplicate of MPI_COMM_WORLD
    float *tmp;        // world slices of one segment
    size_t tmp_cap;    // floats
    int *cnt, *disp, *rcnt, *rdisp;   // world each
    bool ours;         // we called MPI_Init
} Mpi;

enum { SEG_FLOATS = 1 << 24, BCAST_SEG = 1 << 30 };

bool comm__mpi_built(void) { return true; }

static Mpi *mpi(Comm *c) { return (Mpi *)c->impl->host_state; }

static int check(Comm *c, int err, const char *what) {
    if (err == MPI_SUCCESS) return 0;
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", err);
    return comm__fail(c, "%s failed: %s", what, s);
}

static int mpi_allreduce(Comm *c, float *buf, size_t n, bool mean) {
    Mpi *m = mpi(c);
    const int W = c->world, me = c->rank;
    for (size_t base = 0; base < n; base += SEG_FLOATS) {
        size_t seg = n - base < SEG_FLOATS ? n - base : SEG_FLOATS;
        for (int r = 0, d = 0; r < W; r++) {
            m->cnt[r] = (int)(seg / (size_t)W + ((size_t)r < seg % (size_t)W));
            m->disp[r] = d;
            d += m->cnt[r];
        }
        const int mine = m->cnt[me];
        for (int r = 0; r < W; r++) { m->rcnt[r] = mine; m->rdisp[r] = r * mine; }
        size_t need = (size_t)W * (size_t)mine;
        if (need > m->tmp_cap) {
            free(m->tmp);
            m->tmp = hyp_malloc((need ? need : 1) * sizeof(float));
            m->tmp_cap = need;
        }
        float *b = buf + base;
        comm__watch_begin(c, "allreduce (MPI_Alltoallv)");
        int e = MPI_Alltoallv(b, m->cnt, m->disp, MPI_FLOAT, m->tmp, m->rcnt, m->rdisp, MPI_FLOAT, m->comm);
        comm__watch_end(c);
        if (check(c, e, "allreduce (MPI_Alltoallv)")) return -1;
        float *dst = b + m->disp[me];
        memcpy(dst, m->tmp, (size_t)mine * sizeof(float));
        for (int r = 1; r < W; r++) {
            const float *src = m->tmp + (size_t)r * (size_t)mine;
            for (int i = 0; i < mine; i++) dst[i] += src[i];
        }
        if (mean) {
            const float w = (float)W;
            for (int i = 0; i < mine; i++) dst[i] /= w;
        }
        comm__watch_begin(c, "allreduce (MPI_Allgatherv)");
        e = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b, m->cnt, m->disp, MPI_FLOAT, m->comm);
        comm__watch_end(c);
        if (check(c, e, "allreduce (MPI_Allgatherv)")) return -1;
    }
    return 0;
}

static int mpi_broadcast(Comm *c, void *buf, size_t bytes, int root) {
    for (size_t off = 0; off < bytes; off += BCAST_SEG) {
        int k = (int)(bytes - off < BCAST_SEG ? bytes - off : BCAST_SEG);
        comm__watch_begin(c, "broadcast (MPI_Bcast)");
        int e = MPI_Bcast((char *)buf + off, k, MPI_BYTE, root, mpi(c)->comm);
        comm__watch_end(c);
        if (check(c, e, "broadcast (MPI_Bcast)")) return -1;
    }
    return 0;
}

static int mpi_barrier(Comm *c) {
    comm__watch_begin(c, "barrier (MPI_Barrier)");
    int e = MPI_Barrier(mpi(c)->comm);
    comm__watch_end(c);
    return check(c, e, "barrier (MPI_Barrier)");
}

static int mpi_allgather(Comm *c, const void *send, size_t bytes, void *recv) {
    if (bytes > INT_MAX) return comm__fail(c, "allgather of %zu bytes per rank (at most %d)", bytes, INT_MAX);
    comm__watch_begin(c, "allgather (MPI_Allgather)");
    int e = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, mpi(c)->comm);
    comm__watch_end(c);
    return check(c, e, "allgather (MPI_Allgather)");
}

static void mpi_release(Comm *c) {
    Mpi *m = mpi(c);
    if (!m) return;
    free(m->tmp);
    free(m->cnt);
    free(m->disp);
    free(m->rcnt);
    free(m->rdisp);
    free(m);
    c->impl->host_state = NULL;
}

static void mpi_abort(Comm *c) {
    // Ends every rank of the job (mpirun kills them); does not return when MPI is up.
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down && c->world > 1) MPI_Abort(MPI_COMM_WORLD, 3);
}

static void mpi_finalize(Comm *c) {
    Mpi *m = mpi(c);
    bool ours = m && m->ours;
    comm__watch_begin(c, "shutdown (MPI_Finalize)");
    if (m && m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
    if (ours) MPI_Finalize();
    comm__watch_end(c);
    mpi_release(c);
}

const CommEngine comm__mpi_engine = {
    .name = "mpi", .allreduce = mpi_allreduce, .broadcast = mpi_broadcast,
    .barrier = mpi_barrier, .allgather = mpi_allgather, .abort = mpi_abort,
    .finalize = mpi_finalize,
};

int comm__mpi_init(Comm *c, bool *we_initialized) {
    int up = 0, down = 0;
    MPI_Finalized(&down);
    if (down) {
        hyp_set_error("comm (mpi): MPI was already finalized in this process (one MPI job per process)");
        return -1;
    }
    MPI_Initialized(&up);
    *we_initialized = false;
    if (!up) {
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            hyp_set_error("comm (mpi): MPI_Init_thread failed");
            return -1;
        }
        *we_initialized = true;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    Mpi *m = hyp_calloc(1, sizeof *m);
    m->ours = *we_initialized;
    m->comm = MPI_COMM_NULL;
    c->impl->host_state = m;
    if (MPI_Comm_dup(MPI_COMM_WORLD, &m->comm) != MPI_SUCCESS) {
        hyp_set_error("comm (mpi): MPI_Comm_dup failed");
        return -1;
    }
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->comm, &c->rank);
    MPI_Comm_size(m->comm, &c->world);
    m->cnt = hyp_malloc((size_t)c->world * sizeof(int));
    m->disp = hyp_malloc((size_t)c->world * sizeof(int));
    m->rcnt = hyp_malloc((size_t)c->world * sizeof(int));
    m->rdisp = hyp_malloc((size_t)c->world * sizeof(int));
    // Ranks sharing this host (any MPI launcher, not only mpirun's environment).
    MPI_Comm node;
    if (MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_rank(node, &c->local_rank);
        MPI_Comm_size(node, &c->local_world);
        MPI_Comm_free(&node);
    }
    return 0;
}

#else  // ---------------------------------------------------------------- built without MPI

bool comm__mpi_built(void) { return false; }

static int no_mpi(Comm *c) {
    return comm__fail(c, "this build has no MPI (install libopenmpi-dev and rebuild)");
}
static int stub_allreduce(Comm *c, float *b, size_t n, bool mean) { return no_mpi(c); }
static int stub_broadcast(Comm *c, void *b, size_t n, int r) { return no_mpi(c); }
static int stub_barrier(Comm *c) { return no_mpi(c); }
static int stub_allgather(Comm *c, const void *s, size_t n, void *r) { return no_mpi(c); }

const CommEngine comm__mpi_engine = {
    .name = "mpi", .allreduce = stub_allreduce, .broadcast = stub_broadcast,
    .barrier = stub_barrier, .allgather = stub_allgather,
};

int comm__mpi_init(Comm *c, bool *we_initialized) {
    *we_initialized = false;
    hyp_set_error("comm (mpi): this build has no MPI (install libopenmpi-dev and rebuild; "
                  "the Makefile enables MPI when mpicc's flags compile scripts/probes/mpi.c)");
    return -1;
}
#endif
