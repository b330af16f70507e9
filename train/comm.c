// comm.c: engine selection from the launch environment, the device dispatch of every
// collective (native, staged through host memory, or through the host engine), error
// reporting, the MPI watchdog, and the single-process engine.
#include "train/comm_internal.h"
#include "kernels/kernels.h"
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---------------------------------------------------------------- names, build

const char *comm_backend_name(CommBackend b) {
    switch (b) {
    case COMM_NONE: return "none";
    case COMM_MPI: return "mpi";
    case COMM_TCP: return "tcp";
    case COMM_NCCL: return "nccl";
    }
    return "?";
}

bool comm_backend_compiled(CommBackend b) {
    switch (b) {
    case COMM_NONE: case COMM_TCP: return true;
    case COMM_MPI: return comm__mpi_built();
    case COMM_NCCL: return comm__nccl_built();
    }
    return false;
}

const char *comm_backends_compiled(void) {
    static char buf[64];
    if (!buf[0]) {
        snprintf(buf, sizeof buf, "none%s tcp%s", comm__mpi_built() ? " mpi" : "",
                 comm__nccl_built() ? " nccl" : "");
    }
    return buf;
}

// ---------------------------------------------------------------- launch environment

// Strict integer from the environment: -2 when unset, -3 when malformed.
static int env_int(const char *name, const char **bad) {
    const char *s = getenv(name);
    if (!s || !*s) return -2;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > INT_MAX) { *bad = name; return -3; }
    return (int)v;
}

// Fill l from the environment. Return 0, or -1 with hyp_set_error (bad values).
static int detect_launch(CommLaunch *l) {
    memset(l, 0, sizeof *l);
    l->launcher = "none";
    l->world = 1;
    l->local_rank = l->local_world = -1;
    const char *bad = NULL;
    int w = env_int("OMPI_COMM_WORLD_SIZE", &bad);
    if (w >= 0) {
        l->launcher = "mpirun";
        l->world = w;
        l->rank = env_int("OMPI_COMM_WORLD_RANK", &bad);
        l->local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", &bad);
        l->local_world = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", &bad);
        if (l->local_rank < 0 || l->local_world < 0) l->local_rank = l->local_world = -1;
    } else if (w == -2 && (w = env_int("WORLD_SIZE", &bad)) >= 0) {
        l->launcher = "env";
        l->world = w;
        l->rank = env_int("RANK", &bad);
        l->local_rank = env_int("LOCAL_RANK", &bad);
        l->local_world = env_int("LOCAL_WORLD_SIZE", &bad);
        if (l->local_rank < 0) l->local_rank = -1;
        if (l->local_world < 0) l->local_world = -1;
    }
    // The TCP rendezvous (also for dist.backend=tcp under mpirun).
    const char *a = getenv("MASTER_ADDR");
    l->master_addr = (a && *a) ? a : "127.0.0.1";
    int p = env_int("MASTER_PORT", &bad);
    l->master_port = p < 0 ? 29500 : p;
    if (p >= 0 && (p == 0 || p > 65535)) bad = "MASTER_PORT";
    if (bad) {
        hyp_set_error("comm: environment variable %s=\"%s\" is not a valid value", bad, getenv(bad));
        return -1;
    }
    if (l->world < 1 || l->rank < 0 || l->rank >= l->world) {
        hyp_set_error("comm: %s launch with rank %d and world size %d (need 0 <= rank < world)",
                      l->launcher, l->rank, l->world);
        return -1;
    }
    return 0;
}

const char *comm_auto_backend(Device device) {
    CommLaunch l;
    if (detect_launch(&l) != 0 || l.world <= 1) return "none";
    if (device == HYP_CUDA && comm__nccl_built()) return "nccl";
    // Under mpirun without MPI built, "mpi" makes comm_init fail with a clear message
    // rather than run N independent copies of the job.
    if (!strcmp(l.launcher, "mpirun")) return "mpi";
    return "tcp";
}

// ---------------------------------------------------------------- errors, watchdog

static void engine_abort(Comm *c) {
    if (c->impl->nccl) comm__nccl_abort(c);
    if (c->impl->host && c->impl->host->abort) c->impl->host->abort(c);
}

int comm__fail(Comm *c, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->impl->broken = true;
    if (c->errors_return) {
        hyp_set_error("comm (%s) rank %d/%d: %s", comm_backend_name(c->backend), c->rank, c->world, msg);
        return -1;
    }
    fprintf(stderr, "hyp: comm (%s) rank %d/%d: %s\n", comm_backend_name(c->backend), c->rank,
            c->world, msg);
    fflush(stderr);
    engine_abort(c);
    exit(3);
}

void comm_abort(Comm *c, const char *why) {
    fprintf(stderr, "hyp: comm (%s) rank %d/%d: %s\n", comm_backend_name(c->backend), c->rank,
            c->world, why ? why : "aborted");
    fflush(stderr);
    engine_abort(c);
    exit(3);
}

// One watchdog thread per process (one communicator at a time uses it).
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started;
    const char *op;       // the blocking call in progress, NULL when idle
    double since, timeout;
    char who[96];
} g_wd = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, NULL, 0, 0, "" };

static void *watchdog_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&g_wd.mu);
    for (;;) {
        if (!g_wd.op) { pthread_cond_wait(&g_wd.cv, &g_wd.mu); continue; }
        double left = g_wd.since + g_wd.timeout - hyp_now();
        if (left <= 0) {
            char line[384];
            int k = snprintf(line, sizeof line,
                             "hyp: %s: %s did not complete within %.0f s (HYP_COMM_TIMEOUT): "
                             "a peer rank is stalled or dead; ending this rank\n",
                             g_wd.who, g_wd.op, g_wd.timeout);
            if (k > 0) { ssize_t unused = write(2, line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1); (void)unused; }
            _exit(3);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double t = ts.tv_sec + ts.tv_nsec * 1e-9 + (left < 1.0 ? left : 1.0);
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&g_wd.cv, &g_wd.mu, &ts);
    }
    return NULL;
}

void comm__watch_begin(Comm *c, const char *op) {
    pthread_mutex_lock(&g_wd.mu);
    if (!g_wd.started) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &at, watchdog_main, NULL) == 0) g_wd.started = true;
        pthread_attr_destroy(&at);
    }
    snprintf(g_wd.who, sizeof g_wd.who, "comm (%s) rank %d/%d", comm_backend_name(c->backend),
             c->rank, c->world);
    g_wd.op = op;
    g_wd.since = hyp_now();
    g_wd.timeout = c->timeout_s;
    pthread_cond_signal(&g_wd.cv);
    pthread_mutex_unlock(&g_wd.mu);
}

void comm__watch_end(Comm *c) {
    (void)c;
    pthread_mutex_lock(&g_wd.mu);
    g_wd.op = NULL;
    pthread_mutex_unlock(&g_wd.mu);
}

// ---------------------------------------------------------------- single-process engine

static int none_allreduce(Comm *c, float *buf, size_t n, bool mean) { return 0; }
static int none_broadcast(Comm *c, void *buf, size_t bytes, int root) { return 0; }
static int none_barrier(Comm *c) { return 0; }
static int none_allgather(Comm *c, const void *send, size_t bytes, void *recv) {
    if (bytes) memcpy(recv, send, bytes);
    return 0;
}
const CommEngine comm__none_engine = {
    .name = "none", .allreduce = none_allreduce, .broadcast = none_broadcast,
    .barrier = none_barrier, .allgather = none_allgather,
};

// ---------------------------------------------------------------- init / free

static double timeout_from_env(void) {
    const char *s = getenv("HYP_COMM_TIMEOUT");
    if (s && *s) {
        char *end;
        double v = strtod(s, &end);
        if (!*end && v > 0) return v;
        fprintf(stderr, "hyp: comm: ignoring HYP_COMM_TIMEOUT=\"%s\" (want seconds > 0); using 300\n", s);
    }
    return 300.0;
}

// Local rank from host names when the launcher did not give it.
static int local_from_hostnames(Comm *c) {
    enum { H = 256 };
    char me[H] = {0};
    if (gethostname(me, H - 1) != 0) snprintf(me, H, "?");
    char *all = hyp_malloc((size_t)c->world * H);
    int rc = c->impl->host->allgather(c, me, H, all);
    if (rc == 0) {
        c->local_rank = 0;
        c->local_world = 0;
        for (int r = 0; r < c->world; r++) {
            if (strncmp(all + (size_t)r * H, me, H) != 0) continue;
            if (r < c->rank) c->local_rank++;
            c->local_world++;
        }
    }
    free(all);
    return rc;
}

static bool parse_backend(const char *s, CommBackend *b, bool *is_auto) {
    *is_auto = false;
    if (!s || !strcmp(s, "auto")) { *is_auto = true; return true; }
    for (int i = 0; i <= COMM_NCCL; i++)
        if (!strcmp(s, comm_backend_name((CommBackend)i))) { *b = (CommBackend)i; return true; }
    return false;
}

Comm *comm_init(const char *backend, const CommOptions *opt) {
    CommOptions o = { .device = HYP_CPU };
    if (opt) o = *opt;
    CommBackend b = COMM_NONE;
    bool is_auto;
    if (!parse_backend(backend, &b, &is_auto)) {
        hyp_set_error("comm: unknown backend \"%s\" (want none, mpi, nccl, tcp or auto)", backend);
        return NULL;
    }
    CommLaunch l;
    if (detect_launch(&l) != 0) return NULL;
    if (is_auto) parse_backend(comm_auto_backend(o.device), &b, &is_auto);
    else if (b == COMM_NONE && l.world > 1) {
        // N copies of a single-process job would overwrite each other's outputs.
        hyp_set_error("comm: this process is rank %d of %d (launched by %s) but the backend is \"none\"; "
                      "use dist.backend=auto, mpi, nccl or tcp", l.rank, l.world,
                      !strcmp(l.launcher, "mpirun") ? "mpirun" : "RANK/WORLD_SIZE");
        return NULL;
    }
    if (!comm_backend_compiled(b)) {
        hyp_set_error("comm: backend %s requested but this build has no %s (built without %s; "
                      "compiled: %s)", comm_backend_name(b), comm_backend_name(b),
                      b == COMM_MPI ? "MPI: install libopenmpi-dev and rebuild"
                                    : "NCCL: needs the CUDA toolkit with nccl.h/libnccl",
                      comm_backends_compiled());
        return NULL;
    }

    Comm *c = hyp_calloc(1, sizeof *c);
    c->impl = hyp_calloc(1, sizeof *c->impl);
    c->backend = b;
    c->device = b == COMM_NCCL ? HYP_CUDA : HYP_CPU;
    c->cuda_device = -1;
    c->timeout_s = o.timeout_s > 0 ? o.timeout_s : timeout_from_env();
    c->errors_return = o.errors_return;
    c->launcher = l.launcher;
    c->rank = 0;
    c->world = 1;
    c->local_rank = -1;
    c->local_world = -1;

    // The host engine: mpi for mpi, and for nccl launched by mpirun; tcp for tcp, and
    // for nccl launched through the environment; none for a lone process.
    CommBackend host = COMM_NONE;
    if (b == COMM_MPI) host = COMM_MPI;
    else if (b == COMM_TCP) host = l.world > 1 ? COMM_TCP : COMM_NONE;
    else if (b == COMM_NCCL) {
        if (!strcmp(l.launcher, "mpirun")) {
            if (!comm__mpi_built()) {
                hyp_set_error("comm: nccl under mpirun needs MPI to share its unique id, and this "
                              "build has no MPI; launch with RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT instead");
                goto fail;
            }
            host = COMM_MPI;
        } else if (l.world > 1) host = COMM_TCP;
    }
    int rc = 0;
    bool mpi_ours = false;
    switch (host) {
    case COMM_MPI:
        c->impl->host = &comm__mpi_engine;
        rc = comm__mpi_init(c, &mpi_ours);
        break;
    case COMM_TCP:
        c->impl->host = &comm__tcp_engine;
        c->rank = l.rank;
        c->world = l.world;
        rc = comm__tcp_init(c, &l);
        break;
    default:
        c->impl->host = &comm__none_engine;
        c->local_rank = 0;
        c->local_world = 1;
        break;
    }
    if (rc != 0) goto fail;
    if (c->local_rank < 0 && l.local_rank >= 0 && l.world == c->world) {
        c->local_rank = l.local_rank;
        c->local_world = l.local_world;
    }
    if (c->local_rank < 0 || c->local_world < 1) {
        bool er = c->errors_return;
        c->errors_return = true;
        if (local_from_hostnames(c) != 0) goto fail;
        c->errors_return = er;
    }
    if (o.device == HYP_CUDA || b == COMM_NCCL) {
        if (comm__cuda_select_device(c) != 0) goto fail;
    }
    if (b == COMM_NCCL && comm__nccl_init(c) != 0) goto fail;
    return c;

fail: {
        // Keep the message: aborting the engine may overwrite nothing, but be safe.
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", hyp_last_error());
        // Under MPI a failed rank must end the job (the others would wait forever):
        // MPI_Abort does not return, so say why first.
        if (c->impl->host == &comm__mpi_engine && c->world > 1) {
            fprintf(stderr, "hyp: %s\n", msg);
            fflush(stderr);
        }
        if (c->impl->host && c->impl->host->abort) c->impl->host->abort(c);
        free(c->impl);
        free(c);
        hyp_set_error("%s", msg);
        return NULL;
    }
}

void comm_free(Comm *c) {
    if (!c) return;
    if (!c->impl->broken) {
        if (c->impl->cuda_pending) comm_wait(c);
        if (c->impl->nccl) comm__nccl_finalize(c);
        if (c->impl->host->finalize) c->impl->host->finalize(c);
    } else {
        engine_abort(c);
    }
    free(c->impl);
    free(c);
}

// ---------------------------------------------------------------- collectives

#define COMM_ENTER(c) do { if ((c)->impl->broken) { hyp_set_error("comm (%s) rank %d/%d: the " \
    "communicator is unusable after an earlier error", comm_backend_name((c)->backend), (c)->rank, \
    (c)->world); return -1; } } while (0)

static bool on_nccl(const Comm *c, Device dev) { return c->impl->nccl && dev == HYP_CUDA; }

// CUDA buffer, host engine: copy to host, run, copy back.
static void *stage_in(const void *dev_ptr, size_t bytes) {
    void *h = hyp_malloc(bytes);
    if (bytes && dev_ptr) backend_get(HYP_CUDA)->copy(h, dev_ptr, bytes, COPY_D2H);
    return h;
}
static void stage_out(void *dev_ptr, void *h, size_t bytes) {
    if (bytes) backend_get(HYP_CUDA)->copy(dev_ptr, h, bytes, COPY_H2D);
    free(h);
}

static int host_allreduce(Comm *c, float *buf, size_t n, CommOp op) {
    if (c->world == 1 || n == 0) return 0;
    return c->impl->host->allreduce(c, buf, n, op == COMM_MEAN);
}

int comm_allreduce_async(Comm *c, float *buf, size_t n, CommOp op, Device dev) {
    COMM_ENTER(c);
    if (op != COMM_SUM && op != COMM_MEAN) return comm__fail(c, "allreduce: unknown op %d", (int)op);
    if (on_nccl(c, dev)) return comm__nccl_allreduce(c, buf, n, op);
    if (c->world == 1 || n == 0) return 0;
    if (dev == HYP_CUDA) {
        float *h = stage_in(buf, n * sizeof(float));
        int rc = host_allreduce(c, h, n, op);
        stage_out(buf, h, rc == 0 ? n * sizeof(float) : 0);
        return rc;
    }
    return host_allreduce(c, buf, n, op);
}

int comm_wait(Comm *c) {
    COMM_ENTER(c);
    if (c->impl->nccl && c->impl->cuda_pending) return comm__nccl_wait(c);
    return 0;
}

int comm_allreduce(Comm *c, float *buf, size_t n, CommOp op, Device dev) {
    int rc = comm_allreduce_async(c, buf, n, op, dev);
    return rc == 0 ? comm_wait(c) : rc;
}

int comm_broadcast(Comm *c, void *buf, size_t bytes, int root, Device dev) {
    COMM_ENTER(c);
    if (root < 0 || root >= c->world)
        return comm__fail(c, "broadcast: root %d out of range (world size %d)", root, c->world);
    if (on_nccl(c, dev)) {
        int rc = comm__nccl_broadcast(c, buf, bytes, root);
        return rc == 0 ? comm_wait(c) : rc;
    }
    if (c->world == 1 || bytes == 0) return 0;
    if (dev == HYP_CUDA) {
        void *h = stage_in(c->rank == root ? buf : NULL, bytes);
        int rc = c->impl->host->broadcast(c, h, bytes, root);
        stage_out(buf, h, rc == 0 ? bytes : 0);
        return rc;
    }
    return c->impl->host->broadcast(c, buf, bytes, root);
}

int comm_barrier(Comm *c) {
    COMM_ENTER(c);
    if (c->impl->cuda_pending) {
        int rc = comm_wait(c);
        if (rc) return rc;
    }
    if (c->world == 1) return 0;
    return c->impl->host->barrier(c);
}

int comm_allgather(Comm *c, const void *send, size_t bytes, void *recv, Device dev) {
    COMM_ENTER(c);
    if (on_nccl(c, dev)) {
        int rc = comm__nccl_allgather(c, send, bytes, recv);
        return rc == 0 ? comm_wait(c) : rc;
    }
    if (dev == HYP_CUDA) {
        if (c->world == 1) {
            if (bytes) backend_get(HYP_CUDA)->copy(recv, send, bytes, COPY_D2D);
            return 0;
        }
        void *hs = stage_in(send, bytes);
        void *hr = hyp_malloc(bytes * (size_t)c->world);
        int rc = c->impl->host->allgather(c, hs, bytes, hr);
        free(hs);
        stage_out(recv, hr, rc == 0 ? bytes * (size_t)c->world : 0);
        return rc;
    }
    if (c->world == 1) {
        if (bytes) memmove(recv, send, bytes);
        return 0;
    }
    return c->impl->host->allgather(c, send, bytes, recv);
}

int comm_allgather_f64(Comm *c, double v, double *out) {
    return comm_allgather(c, &v, sizeof v, out, HYP_CPU);
}

int comm_allgather_i64(Comm *c, int64_t v, int64_t *out) {
    return comm_allgather(c, &v, sizeof v, out, HYP_CPU);
}

int comm_sum_f64(Comm *c, double v, double *out) {
    double stack[64];
    double *all = c->world <= 64 ? stack : hyp_malloc((size_t)c->world * sizeof(double));
    int rc = comm_allgather_f64(c, v, all);
    if (rc == 0) {
        double s = all[0];
        for (int r = 1; r < c->world; r++) s += all[r];
        *out = s;
    }
    if (all != stack) free(all);
    return rc;
}

int comm_allreduce_tensor(Comm *c, Tensor *t, CommOp op) {
    if (t->dtype != HYP_F32)
        return comm__fail(c, "allreduce of a %s tensor (only f32 is supported)", dtype_name(t->dtype));
    return comm_allreduce(c, tensor_f32(t), tensor_numel(t), op, t->device);
}

int comm_broadcast_tensor(Comm *c, Tensor *t, int root) {
    return comm_broadcast(c, t->data, tensor_bytes(t), root, t->device);
}
