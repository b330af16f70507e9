// test_comm.c: the communicator (train/comm.h).
//  * single process: every collective's semantics in one process, engine selection
//    from the launch environment, clear errors for bad environments and missing engines;
//  * 2 ranks under `mpirun -np 2 --oversubscribe` (skipped, visibly, without MPI or when
//    mpirun cannot start here) and 2 and 3 ranks over the TCP bootstrap (RANK,
//    WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT): all-reduce sum/mean bit-exact
//    against a rank-ordered sum, broadcast from every root, barrier, all-gathers;
//  * faults: a rank exits in the middle of the job, or stalls: the others end with a
//    clear error naming the rank within HYP_COMM_TIMEOUT, never hang.
// The ranks are this same binary re-executed in worker mode: HYP_COMM_TEST_WORKER set in
// the environment runs worker_main() from a constructor instead of Criterion.
#include "tests/testlib.h"
#include "train/comm.h"
#include "kernels/kernels.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// ================================================================ worker mode

static int g_rank = -1;
#define WCHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL rank %d: ", g_rank); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__); fflush(stderr); \
    _exit(1); } } while (0)

static void sleep_s(double s) {
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

// Rank r's contribution to element i (not zeros: DESIGN §6).
static float contrib(int r, size_t i) { return sinf((float)i * 0.37f + (float)r) * (float)(1 + r) + 0.001f * (float)r; }

// The rank-ordered sum ((v0 + v1) + v2) + ... the engines promise, bit for bit.
static float ordered_sum(int world, size_t i) {
    float acc = contrib(0, i);
    for (int r = 1; r < world; r++) acc += contrib(r, i);
    return acc;
}

static void check_allreduce(Comm *c, size_t n, CommOp op) {
    float *buf = hyp_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) buf[i] = contrib(c->rank, i);
    WCHECK(comm_allreduce(c, buf, n, op, HYP_CPU) == 0, "allreduce: %s", hyp_last_error());
    for (size_t i = 0; i < n; i++) {
        float want = ordered_sum(c->world, i);
        if (op == COMM_MEAN) want /= (float)c->world;
        WCHECK(memcmp(&buf[i], &want, sizeof want) == 0, "allreduce %s n=%zu: [%zu] = %.9g, want %.9g",
               op == COMM_SUM ? "sum" : "mean", n, i, buf[i], want);
    }
    free(buf);
}

static int worker_basic(Comm *c, int want_world) {
    const int W = c->world, r = c->rank;
    WCHECK(W == want_world, "world %d, want %d", W, want_world);
    WCHECK(r >= 0 && r < W, "rank %d", r);
    WCHECK(c->local_world == W && c->local_rank == r, "local rank %d/%d (all ranks share this host)",
           c->local_rank, c->local_world);

    int64_t ids[16];
    WCHECK(comm_allgather_i64(c, 10 * r + 1, ids) == 0, "allgather_i64: %s", hyp_last_error());
    for (int k = 0; k < W; k++) WCHECK(ids[k] == 10 * k + 1, "allgather_i64[%d] = %lld", k, (long long)ids[k]);

    check_allreduce(c, 1000, COMM_SUM);
    check_allreduce(c, 1000, COMM_MEAN);
    check_allreduce(c, 1, COMM_SUM);            // fewer elements than ranks
    check_allreduce(c, 0, COMM_SUM);            // nothing to do, still in step
    check_allreduce(c, (1 << 18) + 7, COMM_SUM);   // many chunks, uneven slices

    for (int root = 0; root < W; root++) {      // every root, an odd size
        unsigned char b[37];
        for (int j = 0; j < 37; j++) b[j] = r == root ? (unsigned char)(root * 50 + j) : 0xEE;
        WCHECK(comm_broadcast(c, b, sizeof b, root, HYP_CPU) == 0, "broadcast: %s", hyp_last_error());
        for (int j = 0; j < 37; j++) WCHECK(b[j] == (unsigned char)(root * 50 + j), "broadcast root %d [%d]", root, j);
    }

    float send[5], recv[5 * 16];
    for (int j = 0; j < 5; j++) send[j] = contrib(r, (size_t)j);
    WCHECK(comm_allgather_f32(c, send, 5, recv, HYP_CPU) == 0, "allgather_f32: %s", hyp_last_error());
    for (int k = 0; k < W; k++)
        for (int j = 0; j < 5; j++) WCHECK(recv[5 * k + j] == contrib(k, (size_t)j), "allgather_f32 [%d][%d]", k, j);

    double vals[16], s;
    WCHECK(comm_allgather_f64(c, 0.1 * (r + 1), vals) == 0, "allgather_f64: %s", hyp_last_error());
    WCHECK(comm_sum_f64(c, 0.1 * (r + 1), &s) == 0, "sum_f64: %s", hyp_last_error());
    double want = 0.1;
    for (int k = 1; k < W; k++) want += 0.1 * (k + 1);
    for (int k = 0; k < W; k++) WCHECK(vals[k] == 0.1 * (k + 1), "allgather_f64[%d] = %g", k, vals[k]);
    WCHECK(s == want, "sum_f64 = %.17g, want %.17g", s, want);

    float tb[4];
    for (int j = 0; j < 4; j++) tb[j] = contrib(r, (size_t)j);
    Tensor t = { .dtype = HYP_F32, .device = HYP_CPU, .ndim = 2, .shape = {2, 2}, .data = tb };
    WCHECK(comm_allreduce_tensor(c, &t, COMM_MEAN) == 0, "allreduce_tensor: %s", hyp_last_error());
    for (int j = 0; j < 4; j++) WCHECK(tb[j] == ordered_sum(W, (size_t)j) / (float)W, "allreduce_tensor [%d]", j);

    // Barrier: nobody leaves before the last rank arrives (it comes 0.3 s late).
    if (r == W - 1) sleep_s(0.3);
    double t0 = hyp_now();
    WCHECK(comm_barrier(c) == 0, "barrier: %s", hyp_last_error());
    if (r != W - 1) WCHECK(hyp_now() - t0 > 0.2, "barrier returned after %.3f s, before the late rank came", hyp_now() - t0);

    comm_free(c);
    printf("rank %d ok\n", r);
    fflush(stdout);
    return 0;
}

static int worker_main(const char *mode) {
    const char *backend = getenv("HYP_COMM_TEST_BACKEND");
    const char *ws = getenv("HYP_COMM_TEST_WORLD");
    int want_world = ws ? atoi(ws) : 2;
    Comm *c = comm_init(backend ? backend : "auto", NULL);
    if (!c) {
        fprintf(stderr, "FAIL: comm_init: %s\n", hyp_last_error());
        return 1;
    }
    g_rank = c->rank;
    if (!strcmp(mode, "basic")) return worker_basic(c, want_world);
    if (!strcmp(mode, "single")) {   // the mpi engine without mpirun: a 1-rank MPI job
        WCHECK(c->world == 1 && c->rank == 0 && c->backend == COMM_MPI, "singleton: rank %d/%d %s",
               c->rank, c->world, comm_backend_name(c->backend));
        check_allreduce(c, 100, COMM_SUM);
        WCHECK(comm_barrier(c) == 0, "barrier");
        comm_free(c);
        printf("singleton ok\n");
        return 0;
    }
    // Faults. One collective works, then the victim leaves (die) or hangs (stall) while
    // the others are in an all-reduce; they must end with an error, never return.
    const char *v = getenv("HYP_COMM_TEST_VICTIM");
    int victim = v ? atoi(v) : 1;
    check_allreduce(c, 1000, COMM_SUM);
    printf("ready (rank %d)\n", c->rank);
    fflush(stdout);
    if (c->rank == victim) {
        if (!strcmp(mode, "die")) _exit(7);
        if (!strcmp(mode, "stall")) { sleep_s(60); _exit(8); }
        if (!strcmp(mode, "mismatch")) {
            unsigned char b[8] = {0};
            comm_broadcast(c, b, sizeof b, victim, HYP_CPU);   // sends, while rank 0 all-reduces
            _exit(9);
        }
    }
    for (int k = 0; k < 20; k++) check_allreduce(c, (size_t)1 << 16, COMM_SUM);
    printf("UNEXPECTED rank %d: the all-reduces returned without the victim\n", c->rank);
    fflush(stdout);
    _exit(0);
}

__attribute__((constructor)) static void maybe_worker(void) {
    const char *mode = getenv("HYP_COMM_TEST_WORKER");
    if (!mode) return;
    int rc = worker_main(mode);
    fflush(stdout);
    fflush(stderr);
    _exit(rc);
}

// ================================================================ launching ranks

static char g_self[4096];
static const char *self_exe(void) {
    ssize_t k = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    cr_assert(k > 0, "readlink /proc/self/exe");
    g_self[k] = 0;
    return g_self;
}

// Daemons that outlive their parent (OpenMPI's singleton starts an orted) are
// re-parented to the nearest subreaper. Make that this test process, not Criterion's
// runner (which would find unknown children), and collect them before the test ends.
static void adopt_orphans(void) { prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }
static void reap_orphans(double secs) {
    double end = hyp_now() + secs;
    for (;;) {
        int st;
        pid_t r = waitpid(-1, &st, WNOHANG);
        if (r < 0 && errno == ECHILD) return;
        if (r == 0 && hyp_now() > end) return;
        if (r == 0) sleep_s(0.01);
    }
}

// Start argv (argv[0] searched in PATH) in its own process group with extra "K=V"
// variables (a value-less "K" unsets K); stdout and stderr go to outfile.
static pid_t spawn(char *const argv[], const char *const *env, const char *outfile) {
    adopt_orphans();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        static const char *clean[] = {"HYP_COMM_TEST_WORKER", "HYP_COMM_TEST_BACKEND", "HYP_COMM_TEST_WORLD",
                                      "HYP_COMM_TEST_VICTIM", "HYP_COMM_TIMEOUT", "OMPI_COMM_WORLD_SIZE",
                                      "OMPI_COMM_WORLD_RANK", "RANK", "WORLD_SIZE", "LOCAL_RANK",
                                      "MASTER_ADDR", "MASTER_PORT", NULL};
        for (int i = 0; clean[i]; i++) unsetenv(clean[i]);
        for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
        // Sanitizer builds: MPI and the launcher keep memory until exit by design.
        setenv("ASAN_OPTIONS", "detect_leaks=0", 0);
        int fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    return pid;
}

// Wait for pid up to secs; on timeout kill its process group. Returns the wait status,
// or -1 on timeout.
static int wait_for(pid_t pid, double secs) {
    double end = hyp_now() + secs;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return st;
        if (hyp_now() > end) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        sleep_s(0.02);
    }
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return hyp_strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = hyp_malloc((size_t)n + 1);
    size_t k = fread(s, 1, (size_t)n, f);
    s[k] = 0;
    fclose(f);
    return s;
}

static void tmp_path(char *buf, size_t n, const char *tag) {
    snprintf(buf, n, "/tmp/hyp_test_comm_%d_%s.log", (int)getpid(), tag);
}

static int free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0 };
    cr_assert(bind(s, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s", strerror(errno));
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

// ---- TCP: world processes of this binary with torchrun-style variables.
typedef struct { int status[8]; char *out[8]; double secs; } Job;

static void job_free(Job *j, int world) { for (int r = 0; r < world; r++) free(j->out[r]); }

static Job run_tcp(const char *mode, int world, const char *timeout, int victim, double limit) {
    Job j = {0};
    int port = free_port();
    pid_t pid[8];
    char logs[8][128];
    double t0 = hyp_now();
    for (int r = 0; r < world; r++) {
        char *env[16];
        int k = 0;
        char e_rank[32], e_world[32], e_port[32], e_tw[32], e_mode[64], e_to[64], e_victim[48];
        snprintf(e_mode, sizeof e_mode, "HYP_COMM_TEST_WORKER=%s", mode);
        snprintf(e_rank, sizeof e_rank, "RANK=%d", r);
        snprintf(e_world, sizeof e_world, "WORLD_SIZE=%d", world);
        snprintf(e_port, sizeof e_port, "MASTER_PORT=%d", port);
        snprintf(e_tw, sizeof e_tw, "HYP_COMM_TEST_WORLD=%d", world);
        snprintf(e_to, sizeof e_to, "HYP_COMM_TIMEOUT=%s", timeout);
        snprintf(e_victim, sizeof e_victim, "HYP_COMM_TEST_VICTIM=%d", victim);
        env[k++] = e_mode; env[k++] = e_rank; env[k++] = e_world; env[k++] = e_port; env[k++] = e_tw;
        env[k++] = e_to; env[k++] = e_victim;
        env[k++] = "MASTER_ADDR=127.0.0.1";
        env[k++] = "HYP_COMM_TEST_BACKEND=tcp";
        env[k++] = "OMP_NUM_THREADS=1";
        env[k] = NULL;
        char tag[32];
        snprintf(tag, sizeof tag, "tcp%s%d", mode, r);
        tmp_path(logs[r], sizeof logs[r], tag);
        char *argv[] = {(char *)self_exe(), NULL};
        pid[r] = spawn(argv, (const char *const *)env, logs[r]);
    }
    // The survivors first; then the victim gets a short grace (a staller is killed).
    for (int pass = 0; pass < 2; pass++)
        for (int r = 0; r < world; r++) {
            if ((r == victim) != (pass == 1)) continue;
            double left = limit - (hyp_now() - t0);
            if (pass == 1 && left > 1) left = 1;
            j.status[r] = wait_for(pid[r], left > 0.1 ? left : 0.1);
        }
    j.secs = hyp_now() - t0;
    for (int r = 0; r < world; r++) {
        j.out[r] = slurp(logs[r]);
        unlink(logs[r]);
    }
    return j;
}

static bool exited_with(int st, int code) { return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == code; }

// ---- MPI: mpirun -np 2 on this binary.
static const char *mpirun_path(void) {
    static char path[4096];
    const char *p = getenv("PATH");
    if (!p) return NULL;
    char *dup = hyp_strdup(p), *save = NULL;
    const char *found = NULL;
    for (char *d = strtok_r(dup, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, sizeof path, "%s/mpirun", d);
        if (access(path, X_OK) == 0) { found = path; break; }
    }
    free(dup);
    return found;
}

static char g_mpirun_err[2048];
// Skip (visibly) when this build has no MPI or mpirun cannot start 2 processes here.
static void require_mpirun(void) {
    if (!comm_backend_compiled(COMM_MPI))
        cr_skip_test("MPI tests skipped: this build has no MPI (libopenmpi-dev not found by the Makefile probe)");
    const char *mp = mpirun_path();
    if (!mp) cr_skip_test("MPI tests skipped: mpirun is not in PATH (apt-get install openmpi-bin)");
    char log[128];
    tmp_path(log, sizeof log, "mpiprobe");
    char *argv[] = {"mpirun", "-np", "2", "--oversubscribe", "--allow-run-as-root", "true", NULL};
    int st = wait_for(spawn(argv, NULL, log), 20);
    char *out = slurp(log);
    unlink(log);
    if (!exited_with(st, 0)) {
        snprintf(g_mpirun_err, sizeof g_mpirun_err, "%s", out);
        free(out);
        cr_skip_test("MPI tests skipped: `mpirun -np 2 --oversubscribe --allow-run-as-root true` cannot "
                     "run here (status %d): %s", st, g_mpirun_err);
    }
    free(out);
}

static int run_mpi(const char *mode, const char *timeout, double limit, char **out, double *secs) {
    char log[128], e_mode[64], e_to[64];
    tmp_path(log, sizeof log, mode);
    snprintf(e_mode, sizeof e_mode, "HYP_COMM_TEST_WORKER=%s", mode);
    snprintf(e_to, sizeof e_to, "HYP_COMM_TIMEOUT=%s", timeout);
    const char *env[] = {e_mode, e_to, "HYP_COMM_TEST_BACKEND=mpi", "HYP_COMM_TEST_WORLD=2",
                         "HYP_COMM_TEST_VICTIM=1", "OMP_NUM_THREADS=1", NULL};
    char *argv[] = {"mpirun", "-np", "2", "--oversubscribe", "--allow-run-as-root",
                    "-x", "HYP_COMM_TEST_WORKER", "-x", "HYP_COMM_TIMEOUT", "-x", "HYP_COMM_TEST_BACKEND",
                    "-x", "HYP_COMM_TEST_WORLD", "-x", "HYP_COMM_TEST_VICTIM", "-x", "OMP_NUM_THREADS",
                    "-x", "ASAN_OPTIONS", (char *)self_exe(), NULL};
    double t0 = hyp_now();
    int st = wait_for(spawn(argv, env, log), limit);
    *secs = hyp_now() - t0;
    *out = slurp(log);
    unlink(log);
    return st;
}

// ================================================================ single process

Test(comm, single_process_semantics) {
    Comm *c = comm_init("none", &(CommOptions){ .errors_return = true });
    cr_assert(c, "%s", hyp_last_error());
    cr_assert_eq(c->backend, COMM_NONE);
    cr_assert(c->rank == 0 && c->world == 1 && c->local_rank == 0 && c->local_world == 1);
    cr_assert_eq(c->device, HYP_CPU);
    cr_assert_eq(c->timeout_s, 300.0);

    float b[5], keep[5];
    for (int i = 0; i < 5; i++) b[i] = keep[i] = contrib(0, (size_t)i);
    cr_assert_eq(comm_allreduce(c, b, 5, COMM_SUM, HYP_CPU), 0);
    cr_assert(!memcmp(b, keep, sizeof b), "sum over 1 rank is the identity");
    cr_assert_eq(comm_allreduce(c, b, 5, COMM_MEAN, HYP_CPU), 0);
    cr_assert(!memcmp(b, keep, sizeof b), "mean over 1 rank is the identity");
    cr_assert_eq(comm_allreduce_async(c, b, 5, COMM_MEAN, HYP_CPU), 0);
    cr_assert_eq(comm_wait(c), 0);
    cr_assert_eq(comm_broadcast(c, b, sizeof b, 0, HYP_CPU), 0);
    cr_assert(!memcmp(b, keep, sizeof b));
    cr_assert_eq(comm_barrier(c), 0);
    float g[5];
    cr_assert_eq(comm_allgather_f32(c, b, 5, g, HYP_CPU), 0);
    cr_assert(!memcmp(g, keep, sizeof g), "allgather over 1 rank copies");
    double d[1], s = 0;
    int64_t i64[1];
    cr_assert_eq(comm_allgather_f64(c, 2.5, d), 0);
    cr_assert_eq(d[0], 2.5);
    cr_assert_eq(comm_allgather_i64(c, -7, i64), 0);
    cr_assert_eq(i64[0], -7);
    cr_assert_eq(comm_sum_f64(c, 0.25, &s), 0);
    cr_assert_eq(s, 0.25);
    Tensor t = { .dtype = HYP_F32, .device = HYP_CPU, .ndim = 1, .shape = {5}, .data = b };
    cr_assert_eq(comm_allreduce_tensor(c, &t, COMM_SUM), 0);
    cr_assert_eq(comm_broadcast_tensor(c, &t, 0), 0);
    cr_assert(!memcmp(b, keep, sizeof b));

    // A bad root is an error naming it; the communicator is unusable afterwards.
    cr_assert_eq(comm_broadcast(c, b, sizeof b, 1, HYP_CPU), -1);
    cr_assert(strstr(hyp_last_error(), "root 1 out of range"), "%s", hyp_last_error());
    cr_assert_eq(comm_barrier(c), -1);
    cr_assert(strstr(hyp_last_error(), "unusable"), "%s", hyp_last_error());
    comm_free(c);
}

Test(comm, default_is_single_process_with_timeout_from_env) {
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("WORLD_SIZE");
    cr_assert_str_eq(comm_auto_backend(HYP_CPU), "none");
    cr_assert_str_eq(comm_auto_backend(HYP_CUDA), "none");
    setenv("HYP_COMM_TIMEOUT", "7.5", 1);
    Comm *c = comm_init(NULL, NULL);
    cr_assert(c, "%s", hyp_last_error());
    cr_assert_eq(c->backend, COMM_NONE);
    cr_assert_eq(c->timeout_s, 7.5);
    cr_assert_str_eq(c->launcher, "none");
    comm_free(c);
    c = comm_init("tcp", &(CommOptions){ .timeout_s = 2 });   // tcp without a launch: 1 rank
    cr_assert(c, "%s", hyp_last_error());
    cr_assert(c->world == 1 && c->timeout_s == 2);
    comm_free(c);
}

Test(comm, auto_follows_the_launch_environment) {
    unsetenv("OMPI_COMM_WORLD_SIZE");
    setenv("WORLD_SIZE", "2", 1);
    setenv("RANK", "1", 1);
    cr_assert_str_eq(comm_auto_backend(HYP_CPU), "tcp");
    cr_assert_str_eq(comm_auto_backend(HYP_CUDA), comm_backend_compiled(COMM_NCCL) ? "nccl" : "tcp");
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    cr_assert_str_eq(comm_auto_backend(HYP_CPU), "mpi");   // fails clearly in comm_init when MPI is not built
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
    cr_assert_str_eq(comm_auto_backend(HYP_CPU), "none", "mpirun -np 1 is a single process");
}

Test(comm, bad_environment_and_names_are_clear_errors) {
    cr_assert_null(comm_init("gloo", NULL));
    cr_assert(strstr(hyp_last_error(), "unknown backend \"gloo\""), "%s", hyp_last_error());

    unsetenv("OMPI_COMM_WORLD_SIZE");
    setenv("WORLD_SIZE", "2", 1);
    setenv("RANK", "5", 1);
    cr_assert_null(comm_init("tcp", NULL));
    cr_assert(strstr(hyp_last_error(), "rank 5 and world size 2"), "%s", hyp_last_error());
    setenv("RANK", "x1", 1);
    cr_assert_null(comm_init("tcp", NULL));
    cr_assert(strstr(hyp_last_error(), "RANK=\"x1\""), "%s", hyp_last_error());
    setenv("RANK", "1", 1);
    cr_assert_null(comm_init("none", NULL));
    cr_assert(strstr(hyp_last_error(), "rank 1 of 2 (launched by RANK/WORLD_SIZE) but the backend is \"none\""),
              "%s", hyp_last_error());
    setenv("MASTER_PORT", "70000", 1);
    cr_assert_null(comm_init("tcp", NULL));
    cr_assert(strstr(hyp_last_error(), "MASTER_PORT"), "%s", hyp_last_error());
}

Test(comm, tcp_rank_without_its_peers_times_out) {
    unsetenv("OMPI_COMM_WORLD_SIZE");
    char port[16];
    snprintf(port, sizeof port, "%d", free_port());
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("MASTER_PORT", port, 1);
    setenv("WORLD_SIZE", "2", 1);
    setenv("RANK", "1", 1);   // rank 0 never comes
    double t0 = hyp_now();
    cr_assert_null(comm_init("tcp", &(CommOptions){ .timeout_s = 0.5 }));
    cr_assert(strstr(hyp_last_error(), "could not connect to rank 0 at 127.0.0.1"), "%s", hyp_last_error());
    setenv("RANK", "0", 1);   // nobody joins rank 0
    cr_assert_null(comm_init("tcp", &(CommOptions){ .timeout_s = 0.5 }));
    cr_assert(strstr(hyp_last_error(), "only 1 of 2 ranks connected"), "%s", hyp_last_error());
    cr_assert_lt(hyp_now() - t0, 5.0);
}

Test(comm, engines_missing_from_the_build_say_so) {
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("WORLD_SIZE");
    if (!comm_backend_compiled(COMM_NCCL)) {
        cr_assert_null(comm_init("nccl", NULL));
        cr_assert(strstr(hyp_last_error(), "no nccl"), "%s", hyp_last_error());
    } else if (!hyp_cuda_available()) {
        cr_assert_null(comm_init("nccl", NULL));
        cr_assert(strstr(hyp_last_error(), "no CUDA device visible"), "%s", hyp_last_error());
    }
    if (!comm_backend_compiled(COMM_MPI)) {
        cr_assert_null(comm_init("mpi", NULL));
        cr_assert(strstr(hyp_last_error(), "no mpi"), "%s", hyp_last_error());
    }
    cr_assert(strstr(comm_backends_compiled(), "none") && strstr(comm_backends_compiled(), "tcp"));
}

// The mpi engine outside mpirun: OpenMPI's singleton init, a 1-rank job.
Test(comm, mpi_singleton_without_mpirun) {
    if (!comm_backend_compiled(COMM_MPI)) cr_skip_test("this build has no MPI");
    char log[128];
    tmp_path(log, sizeof log, "single");
    const char *env[] = {"HYP_COMM_TEST_WORKER=single", "HYP_COMM_TEST_BACKEND=mpi", NULL};
    char *argv[] = {(char *)self_exe(), NULL};
    int st = wait_for(spawn(argv, env, log), 20);
    reap_orphans(5);
    char *out = slurp(log);
    unlink(log);
    cr_assert(exited_with(st, 0) && strstr(out, "singleton ok"), "status %d, output:\n%s", st, out);
    free(out);
}

// ================================================================ 2 ranks over TCP

static void expect_job_ok(Job *j, int world) {
    for (int r = 0; r < world; r++) {
        char want[32];
        snprintf(want, sizeof want, "rank %d ok", r);
        cr_assert(exited_with(j->status[r], 0) && strstr(j->out[r], want),
                  "tcp rank %d/%d: status %d, output:\n%s", r, world, j->status[r], j->out[r]);
    }
}

Test(comm, tcp_two_ranks_collectives) {
    Job j = run_tcp("basic", 2, "20", 1, 30);
    expect_job_ok(&j, 2);
    job_free(&j, 2);
}

Test(comm, tcp_three_ranks_collectives) {
    Job j = run_tcp("basic", 3, "20", 1, 30);
    expect_job_ok(&j, 3);
    job_free(&j, 3);
}

static void expect_fault(Job *j, int world, int victim, int victim_code, const char *why) {
    for (int r = 0; r < world; r++) {
        if (r == victim) {
            cr_assert(j->status[r] == -1 || exited_with(j->status[r], victim_code), "victim rank %d: status %d:\n%s",
                      r, j->status[r], j->out[r]);
            continue;
        }
        char who[64];
        snprintf(who, sizeof who, "comm (tcp) rank %d/%d", r, world);
        cr_assert(exited_with(j->status[r], 3), "rank %d must end with status 3 (hung or crashed: %d):\n%s",
                  r, j->status[r], j->out[r]);
        cr_assert(strstr(j->out[r], who) && strstr(j->out[r], why), "rank %d: want \"%s ... %s\" in:\n%s",
                  r, who, why, j->out[r]);
        cr_assert(!strstr(j->out[r], "UNEXPECTED"), "%s", j->out[r]);
    }
}

Test(comm, tcp_peer_exits_mid_job) {
    Job j = run_tcp("die", 2, "20", 1, 15);   // EOF is seen at once, not after the timeout
    expect_fault(&j, 2, 1, 7, "rank 1 closed the connection");
    cr_assert_lt(j.secs, 10.0);
    job_free(&j, 2);
}

Test(comm, tcp_rank0_exits_mid_job) {
    Job j = run_tcp("die", 3, "20", 0, 15);
    for (int r = 1; r < 3; r++) {
        cr_assert(exited_with(j.status[r], 3) && strstr(j.out[r], "rank 0 "), "rank %d (status %d):\n%s",
                  r, j.status[r], j.out[r]);
    }
    cr_assert_lt(j.secs, 10.0);
    job_free(&j, 3);
}

Test(comm, tcp_stalled_peer_times_out) {
    // Rank 1 sleeps inside the job; rank 0 gives up after HYP_COMM_TIMEOUT = 1 s.
    Job j = run_tcp("stall", 2, "1", 1, 8);
    cr_assert(exited_with(j.status[0], 3), "rank 0 status %d:\n%s", j.status[0], j.out[0]);
    cr_assert(strstr(j.out[0], "comm (tcp) rank 0/2") && strstr(j.out[0], "rank 1 for 1 s (HYP_COMM_TIMEOUT)"),
              "%s", j.out[0]);
    job_free(&j, 2);
}

Test(comm, tcp_mismatched_collectives_are_named) {
    Job j = run_tcp("mismatch", 2, "5", 1, 15);
    cr_assert(exited_with(j.status[0], 3) && strstr(j.out[0], "collective mismatch: rank 1 called broadcast"),
              "rank 0 status %d:\n%s", j.status[0], j.out[0]);
    job_free(&j, 2);
}

// ================================================================ 2 ranks under mpirun

Test(comm, mpi_two_ranks_collectives) {
    require_mpirun();
    char *out;
    double secs;
    int st = run_mpi("basic", "20", 40, &out, &secs);
    cr_assert(exited_with(st, 0) && strstr(out, "rank 0 ok") && strstr(out, "rank 1 ok"),
              "mpirun status %d after %.1f s, output:\n%s", st, secs, out);
    free(out);
}

Test(comm, mpi_peer_exits_mid_job) {
    require_mpirun();
    char *out;
    double secs;
    int st = run_mpi("die", "20", 30, &out, &secs);
    // mpirun notices the dead rank and ends the job; it names the rank.
    cr_assert(st != -1, "mpirun hung (killed after %.1f s):\n%s", secs, out);
    cr_assert(!exited_with(st, 0), "mpirun must fail, output:\n%s", out);
    // mpirun's report names the process that failed first: [[jobid,1],1], exit code 7.
    cr_assert(strstr(out, ",1],1]") && strstr(out, "7"), "mpirun's report must name rank 1:\n%s", out);
    cr_assert(!strstr(out, "UNEXPECTED"), "%s", out);
    cr_assert_lt(secs, 15.0);
    free(out);
}

Test(comm, mpi_stalled_peer_times_out) {
    require_mpirun();
    char *out;
    double secs;
    int st = run_mpi("stall", "1", 30, &out, &secs);
    cr_assert(st != -1, "mpirun hung (killed after %.1f s):\n%s", secs, out);
    cr_assert(!exited_with(st, 0), "mpirun must fail, output:\n%s", out);
    cr_assert(strstr(out, "comm (mpi) rank 0/2") && strstr(out, "did not complete within 1 s"),
              "rank 0's watchdog message is missing:\n%s", out);
    cr_assert_lt(secs, 15.0);
    free(out);
}

// ================================================================ CUDA (when a GPU is lent)

Test(comm, cuda_buffers_single_rank) {
    RUN_ON_CUDA_OR_SKIP();
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("WORLD_SIZE");
    const Backend *be = backend_get(HYP_CUDA);
    const char *engines[] = {"none", comm_backend_compiled(COMM_NCCL) ? "nccl" : NULL};
    for (int e = 0; e < 2 && engines[e]; e++) {
        Comm *c = comm_init(engines[e], &(CommOptions){ .device = HYP_CUDA, .timeout_s = 30 });
        cr_assert(c, "%s: %s", engines[e], hyp_last_error());
        cr_assert_eq(c->cuda_device, 0);
        enum { N = 1000 };
        float h[N], back[N], g[N];
        for (int i = 0; i < N; i++) h[i] = contrib(0, (size_t)i);
        float *d = be->alloc(N * sizeof(float)), *dg = be->alloc(N * sizeof(float));
        be->copy(d, h, sizeof h, COPY_H2D);
        cr_assert_eq(comm_allreduce(c, d, N, COMM_SUM, HYP_CUDA), 0, "%s", hyp_last_error());
        cr_assert_eq(comm_allreduce_async(c, d, N, COMM_MEAN, HYP_CUDA), 0);
        cr_assert_eq(comm_wait(c), 0);
        cr_assert_eq(comm_broadcast(c, d, N * sizeof(float), 0, HYP_CUDA), 0);
        cr_assert_eq(comm_allgather_f32(c, d, N, dg, HYP_CUDA), 0);
        cr_assert_eq(comm_barrier(c), 0);
        be->copy(back, d, sizeof back, COPY_D2H);
        be->copy(g, dg, sizeof g, COPY_D2H);
        cr_assert(!memcmp(back, h, sizeof h) && !memcmp(g, h, sizeof h), "%s: a 1-rank job changes nothing", engines[e]);
        // Host buffers on an NCCL communicator go through its host engine.
        cr_assert_eq(comm_allreduce(c, h, N, COMM_SUM, HYP_CPU), 0);
        be->free(d);
        be->free(dg);
        comm_free(c);
    }
}
