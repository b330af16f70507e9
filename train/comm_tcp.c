// comm_tcp.c: the MPI-free engine for torchrun-style launches (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT). Rank 0 listens on MASTER_PORT and every other rank
// connects to it: a star. It bootstraps NCCL (rank 0 hands out the unique id) and is
// the host collective engine of CPU jobs started without mpirun; the hub makes every
// reduction rank-ordered, ((b0 + b1) + b2) + ..., and gives every rank the same bits.
// It is a fallback, not a fast path: rank 0 moves (world-1) buffers each way.
//
// Every message is a header (magic, operation, sequence number, payload bytes) and a
// payload, so ranks that call different collectives fail with a clear message instead
// of exchanging garbage. Every blocking wait polls with the timeout (no progress for
// timeout_s = error); EOF or a reset names the peer that went away. Host byte order:
// the ranks of one job share an architecture.
#include "train/comm_internal.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { TCP_MAGIC = 0x43505948u /* "HYPC" */, TCP_VERSION = 1 };
enum { OP_HELLO = 1, OP_ALLREDUCE = 2, OP_BROADCAST = 3, OP_BARRIER = 4, OP_ALLGATHER = 5 };
static const char *op_name(uint32_t op) {
    static const char *names[] = {"?", "hello", "allreduce", "broadcast", "barrier", "allgather"};
    return op < sizeof names / sizeof *names ? names[op] : "?";
}

typedef struct {
    uint32_t magic, op;
    uint64_t seq, bytes;
} Header;

typedef struct {
    int *fd;          // rank 0: fd[r] for r = 1..world-1; others: fd[0] = the link to rank 0
    uint64_t seq;     // collectives completed
    float *tmp;       // rank 0: receive chunk of allreduce
} Tcp;

enum { CHUNK_FLOATS = 1 << 16 };

static Tcp *tcp(Comm *c) { return (Tcp *)c->impl->host_state; }

// ---------------------------------------------------------------- blocking I/O with timeout

// Move exactly n bytes; no progress for timeout_s is an error. peer names the other end.
static int io_full(Comm *c, int fd, void *buf, size_t n, bool sending, int peer, const char *what) {
    char *p = buf;
    while (n > 0) {
        struct pollfd pf = { .fd = fd, .events = sending ? POLLOUT : POLLIN };
        double ms = c->timeout_s * 1000.0;
        int r = poll(&pf, 1, ms > 2e9 ? 2000000000 : (int)ms);
        if (r < 0) {
            if (errno == EINTR) continue;
            return comm__fail(c, "%s: poll: %s", what, strerror(errno));
        }
        if (r == 0)
            return comm__fail(c, "%s: %s rank %d for %.0f s (HYP_COMM_TIMEOUT): it is stalled, "
                              "dead or not calling the same collective", what,
                              sending ? "could not send to" : "no data from", peer, c->timeout_s);
        ssize_t k = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (k == 0 && !sending)
            return comm__fail(c, "%s: rank %d closed the connection (it exited or crashed)", what, peer);
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            if (errno == ECONNRESET || errno == EPIPE)
                return comm__fail(c, "%s: connection to rank %d lost (it exited or crashed): %s", what,
                                  peer, strerror(errno));
            return comm__fail(c, "%s: %s rank %d: %s", what, sending ? "send to" : "receive from",
                              peer, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int send_header(Comm *c, int fd, int peer, uint32_t op, uint64_t bytes) {
    Header h = { TCP_MAGIC, op, tcp(c)->seq, bytes };
    return io_full(c, fd, &h, sizeof h, true, peer, op_name(op));
}

static int recv_header(Comm *c, int fd, int peer, uint32_t op, uint64_t bytes) {
    Header h;
    if (io_full(c, fd, &h, sizeof h, false, peer, op_name(op))) return -1;
    if (h.magic != TCP_MAGIC)
        return comm__fail(c, "%s: garbage from rank %d (bad magic 0x%08x)", op_name(op), peer, h.magic);
    if (h.op != op || h.seq != tcp(c)->seq || h.bytes != bytes)
        return comm__fail(c, "collective mismatch: rank %d called %s #%llu with %llu bytes while this "
                          "rank called %s #%llu with %llu bytes", peer, op_name(h.op),
                          (unsigned long long)h.seq, (unsigned long long)h.bytes, op_name(op),
                          (unsigned long long)tcp(c)->seq, (unsigned long long)bytes);
    return 0;
}

static int send_msg(Comm *c, int r, uint32_t op, const void *buf, size_t bytes) {
    int fd = tcp(c)->fd[c->rank == 0 ? r : 0];
    if (send_header(c, fd, r, op, bytes)) return -1;
    return bytes ? io_full(c, fd, (void *)buf, bytes, true, r, op_name(op)) : 0;
}

static int recv_msg(Comm *c, int r, uint32_t op, void *buf, size_t bytes) {
    int fd = tcp(c)->fd[c->rank == 0 ? r : 0];
    if (recv_header(c, fd, r, op, bytes)) return -1;
    return bytes ? io_full(c, fd, buf, bytes, false, r, op_name(op)) : 0;
}

// ---------------------------------------------------------------- collectives

static int tcp_allreduce(Comm *c, float *buf, size_t n, bool mean) {
    Tcp *t = tcp(c);
    size_t bytes = n * sizeof(float);
    int rc = 0;
    if (c->rank == 0) {
        // Receive rank by rank, in rank order: buf = ((b0 + b1) + b2) + ...
        for (int r = 1; r < c->world && rc == 0; r++) {
            rc = recv_header(c, t->fd[r], r, OP_ALLREDUCE, bytes);
            for (size_t off = 0; off < n && rc == 0; off += CHUNK_FLOATS) {
                size_t m = n - off < CHUNK_FLOATS ? n - off : CHUNK_FLOATS;
                rc = io_full(c, t->fd[r], t->tmp, m * sizeof(float), false, r, "allreduce");
                float *dst = buf + off;
                for (size_t i = 0; i < m && rc == 0; i++) dst[i] += t->tmp[i];
            }
        }
        if (rc == 0 && mean) {
            const float w = (float)c->world;
            for (size_t i = 0; i < n; i++) buf[i] /= w;
        }
        for (int r = 1; r < c->world && rc == 0; r++) rc = send_msg(c, r, OP_ALLREDUCE, buf, bytes);
    } else {
        rc = send_msg(c, 0, OP_ALLREDUCE, buf, bytes);
        if (rc == 0) rc = recv_msg(c, 0, OP_ALLREDUCE, buf, bytes);
    }
    if (rc == 0) t->seq++;
    return rc;
}

static int tcp_broadcast(Comm *c, void *buf, size_t bytes, int root) {
    int rc = 0;
    if (c->rank == 0) {
        if (root != 0) rc = recv_msg(c, root, OP_BROADCAST, buf, bytes);
        for (int r = 1; r < c->world && rc == 0; r++)
            if (r != root) rc = send_msg(c, r, OP_BROADCAST, buf, bytes);
    } else if (c->rank == root) {
        rc = send_msg(c, 0, OP_BROADCAST, buf, bytes);
    } else {
        rc = recv_msg(c, 0, OP_BROADCAST, buf, bytes);
    }
    if (rc == 0) tcp(c)->seq++;
    return rc;
}

static int gather_op(Comm *c, uint32_t op, const void *send, size_t bytes, void *recv) {
    int rc = 0;
    size_t all = bytes * (size_t)c->world;
    if (c->rank == 0) {
        if (bytes) memcpy(recv, send, bytes);
        for (int r = 1; r < c->world && rc == 0; r++)
            rc = recv_msg(c, r, op, (char *)recv + (size_t)r * bytes, bytes);
        for (int r = 1; r < c->world && rc == 0; r++) rc = send_msg(c, r, op, recv, all);
    } else {
        rc = send_msg(c, 0, op, send, bytes);
        if (rc == 0) rc = recv_msg(c, 0, op, recv, all);
    }
    if (rc == 0) tcp(c)->seq++;
    return rc;
}

static int tcp_allgather(Comm *c, const void *send, size_t bytes, void *recv) {
    return gather_op(c, OP_ALLGATHER, send, bytes, recv);
}

static int tcp_barrier(Comm *c) { return gather_op(c, OP_BARRIER, NULL, 0, NULL); }

static void tcp_close_all(Comm *c) {
    Tcp *t = tcp(c);
    if (!t) return;
    int nfd = c->rank == 0 ? c->world : 1;
    for (int i = 0; i < nfd; i++)
        if (t->fd[i] >= 0) {
            shutdown(t->fd[i], SHUT_RDWR);
            close(t->fd[i]);
            t->fd[i] = -1;
        }
    free(t->fd);
    free(t->tmp);
    free(t);
    c->impl->host_state = NULL;
}

static void tcp_abort(Comm *c) { tcp_close_all(c); }

static void tcp_finalize(Comm *c) {
    // A last barrier: no rank closes while another still reads its final result.
    bool er = c->errors_return;
    c->errors_return = true;
    (void)tcp_barrier(c);
    c->errors_return = er;
    tcp_close_all(c);
}

const CommEngine comm__tcp_engine = {
    .name = "tcp", .allreduce = tcp_allreduce, .broadcast = tcp_broadcast,
    .barrier = tcp_barrier, .allgather = tcp_allgather, .abort = tcp_abort,
    .finalize = tcp_finalize,
};

// ---------------------------------------------------------------- bootstrap

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int resolve(const char *host, int port, struct sockaddr_in *sa) {
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int e = getaddrinfo(host, ps, &hints, &res);
    if (e != 0 || !res) {
        hyp_set_error("comm (tcp): cannot resolve MASTER_ADDR \"%s\": %s", host, gai_strerror(e));
        return -1;
    }
    memcpy(sa, res->ai_addr, sizeof *sa);
    freeaddrinfo(res);
    return 0;
}

static void sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

// Rank 0: listen, accept world-1 ranks (each says hello with its rank and world size),
// then greet them all.
static int bootstrap_root(Comm *c, const CommLaunch *l) {
    Tcp *t = tcp(c);
    struct sockaddr_in sa;
    if (resolve(l->master_addr, l->master_port, &sa)) return -1;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0) { hyp_set_error("comm (tcp) rank 0: socket: %s", strerror(errno)); return -1; }
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int brc = bind(ls, (struct sockaddr *)&sa, sizeof sa);
    if (brc != 0 && errno == EADDRNOTAVAIL) {   // MASTER_ADDR names this host by another address
        sa.sin_addr.s_addr = htonl(INADDR_ANY);
        brc = bind(ls, (struct sockaddr *)&sa, sizeof sa);
    }
    if (brc != 0 || listen(ls, c->world) != 0) {
        int e = errno;
        hyp_set_error("comm (tcp) rank 0: cannot listen on %s:%d (MASTER_ADDR:MASTER_PORT): %s%s",
                      l->master_addr, l->master_port, strerror(e),
                      e == EADDRINUSE ? " (another job, or a launcher's own store such as torchrun's, "
                                        "uses MASTER_PORT: pick a free port)" : "");
        close(ls);
        return -1;
    }
    double deadline = hyp_now() + c->timeout_s;
    int joined = 0;
    while (joined < c->world - 1) {
        double left = deadline - hyp_now();
        struct pollfd pf = { .fd = ls, .events = POLLIN };
        int r = left > 0 ? poll(&pf, 1, (int)(left * 1000) + 1) : 0;
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            hyp_set_error("comm (tcp) rank 0: only %d of %d ranks connected to port %d within %.0f s "
                          "(HYP_COMM_TIMEOUT); check WORLD_SIZE, MASTER_ADDR and MASTER_PORT on every rank",
                          joined + 1, c->world, l->master_port, c->timeout_s);
            close(ls);
            return -1;
        }
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        set_nodelay(fd);
        Header h;
        bool er = c->errors_return;
        c->errors_return = true;
        int rc = io_full(c, fd, &h, sizeof h, false, -1, "hello");
        c->errors_return = er;
        c->impl->broken = false;
        if (rc) { close(fd); continue; }   // not one of ours, or it went away: keep listening
        int peer = (int)h.seq;
        if (h.magic != TCP_MAGIC || h.op != OP_HELLO) { close(fd); continue; }
        if ((int)h.bytes != c->world || peer < 1 || peer >= c->world || t->fd[peer] >= 0) {
            hyp_set_error("comm (tcp) rank 0: a process connected as rank %d of world size %d, but "
                          "this job has world size %d%s", peer, (int)h.bytes, c->world,
                          (peer >= 1 && peer < c->world && t->fd[peer] >= 0) ? " and that rank is taken" : "");
            close(fd);
            close(ls);
            return -1;
        }
        t->fd[peer] = fd;
        joined++;
    }
    close(ls);
    for (int r = 1; r < c->world; r++) {
        Header h = { TCP_MAGIC, OP_HELLO, 0, (uint64_t)c->world };
        c->errors_return = true;
        if (io_full(c, t->fd[r], &h, sizeof h, true, r, "hello")) return -1;
    }
    return 0;
}

static int bootstrap_peer(Comm *c, const CommLaunch *l) {
    Tcp *t = tcp(c);
    struct sockaddr_in sa;
    if (resolve(l->master_addr, l->master_port, &sa)) return -1;
    double deadline = hyp_now() + c->timeout_s;
    int fd = -1, err = 0;
    while (hyp_now() < deadline) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) { err = errno; break; }
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
        sleep_ms(50);   // rank 0 not listening yet
    }
    if (fd < 0) {
        hyp_set_error("comm (tcp) rank %d: could not connect to rank 0 at %s:%d within %.0f s "
                      "(HYP_COMM_TIMEOUT): %s", c->rank, l->master_addr, l->master_port,
                      c->timeout_s, strerror(err));
        return -1;
    }
    set_nodelay(fd);
    t->fd[0] = fd;
    Header h = { TCP_MAGIC, OP_HELLO, (uint64_t)c->rank, (uint64_t)c->world };
    if (io_full(c, fd, &h, sizeof h, true, 0, "hello")) return -1;
    if (io_full(c, fd, &h, sizeof h, false, 0, "hello")) return -1;
    if (h.magic != TCP_MAGIC || h.op != OP_HELLO || (int)h.bytes != c->world) {
        hyp_set_error("comm (tcp) rank %d: rank 0 at %s:%d did not answer as a hyp job of world size %d",
                      c->rank, l->master_addr, l->master_port, c->world);
        return -1;
    }
    return 0;
}

int comm__tcp_init(Comm *c, const CommLaunch *l) {
    Tcp *t = hyp_calloc(1, sizeof *t);
    int nfd = c->rank == 0 ? c->world : 1;
    t->fd = hyp_malloc((size_t)nfd * sizeof(int));
    for (int i = 0; i < nfd; i++) t->fd[i] = -1;
    if (c->rank == 0) t->tmp = hyp_malloc(CHUNK_FLOATS * sizeof(float));
    c->impl->host_state = t;
    // Bootstrap failures are returned (comm_init gives NULL), whatever errors_return says.
    bool er = c->errors_return;
    c->errors_return = true;
    int rc = c->rank == 0 ? bootstrap_root(c, l) : bootstrap_peer(c, l);
    c->errors_return = er;
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", hyp_last_error());
        tcp_close_all(c);
        hyp_set_error("%s", msg);
        return -1;
    }
    c->impl->broken = false;
    return 0;
}
