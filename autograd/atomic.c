// atomic.c: atomic replacement of output files (atomic.h) and the test fault hooks (fault.h).
#include "autograd/atomic.h"
#include "autograd/fault.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static FaultHook g_hook;
static void *g_hook_user;
void fault_set_hook(FaultHook hook, void *user) {
    g_hook = hook;
    g_hook_user = user;
}
int fault_check(FaultStage stage, const char *path) {
    return g_hook ? g_hook(stage, path, g_hook_user) : 0;
}

static TrainFaultHook g_train_hook;
static void *g_train_hook_user;
void fault_set_train_hook(TrainFaultHook hook, void *user) {
    g_train_hook = hook;
    g_train_hook_user = user;
}
bool fault_train_step(int rank, long step) {
    return g_train_hook ? g_train_hook(rank, step, g_train_hook_user) : false;
}

const char *atomic_errstr(int e, char *buf, size_t n) {
    snprintf(buf, n, "%s (errno %d)", strerror(e), e);
    return buf;
}

char *atomic_tmp_path(const char *path) {
    size_t n = strlen(path) + 5;
    char *t = hyp_malloc(n);
    snprintf(t, n, "%s.tmp", path);
    return t;
}

int atomic_tmp_clear(const char *tmp) {
    char eb[96];
    int fd = open(tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        if (unlink(tmp) == 0 || errno == ENOENT) return 0;   // e.g. a dangling link
        hyp_set_error("%s: cannot remove the leftover temporary: %s", tmp, atomic_errstr(errno, eb, sizeof eb));
        return -1;
    }
    // HDF5 holds an exclusive flock on a file it writes: a lock we cannot take means a
    // live process is writing this output right now.
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        close(fd);
        hyp_set_error("%s: another process is writing this output now (its temporary is locked)", tmp);
        return -1;
    }
    int rc = unlink(tmp) == 0 || errno == ENOENT ? 0 : -1;
    if (rc) hyp_set_error("%s: cannot remove the leftover temporary: %s", tmp, atomic_errstr(errno, eb, sizeof eb));
    close(fd);
    return rc;
}

static int fsync_fd_path(const char *path, bool dir) {
    char eb[96];
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) { hyp_set_error("%s: cannot open to flush: %s", path, atomic_errstr(errno, eb, sizeof eb)); return -1; }
    int injected = dir ? 0 : fault_check(FAULT_FSYNC, path);
    int rc = injected ? -1 : fsync(fd);
    int e = injected ? injected : errno;
    // Some file systems refuse fsync on directories (EINVAL): the rename is still atomic.
    if (rc && dir && (e == EINVAL || e == EBADF)) rc = 0;
    if (rc) hyp_set_error("%s: fsync failed: %s", path, atomic_errstr(e, eb, sizeof eb));
    close(fd);
    return rc ? -1 : 0;
}

int atomic_fsync_dir(const char *dir) { return fsync_fd_path(dir, true); }

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return hyp_strdup(".");
    if (slash == path) return hyp_strdup("/");
    char *d = hyp_malloc((size_t)(slash - path) + 1);
    memcpy(d, path, (size_t)(slash - path));
    d[slash - path] = 0;
    return d;
}

int atomic_commit(const char *tmp, const char *path) {
    char eb[96];
    if (fsync_fd_path(tmp, false)) { unlink(tmp); return -1; }
    int injected = fault_check(FAULT_RENAME, path);
    if (injected || rename(tmp, path)) {
        hyp_set_error("%s: cannot rename %s into place: %s", path, tmp, atomic_errstr(injected ? injected : errno, eb, sizeof eb));
        unlink(tmp);
        return -1;
    }
    char *d = dir_of(path);
    int rc = atomic_fsync_dir(d);
    free(d);
    return rc;
}

int atomic_write_file(const char *path, const void *data, size_t n) {
    char eb[96];
    char *tmp = atomic_tmp_path(path);
    int rc = -1;
    if (atomic_tmp_clear(tmp)) goto out;
    int e = fault_check(FAULT_CREATE, path);
    int fd = e ? -1 : open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        hyp_set_error("%s: cannot create %s: %s", path, tmp, atomic_errstr(e ? e : errno, eb, sizeof eb));
        goto out;
    }
    const char *p = data;
    size_t left = n;
    e = fault_check(FAULT_WRITE, path);
    while (!e && left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { e = w < 0 ? errno : EIO; break; }
        p += w;
        left -= (size_t)w;
    }
    if (!e) e = fault_check(FAULT_CLOSE, path);
    if (close(fd) && !e) e = errno;
    if (e) {
        hyp_set_error("%s: cannot write %s: %s", path, tmp, atomic_errstr(e, eb, sizeof eb));
        unlink(tmp);
        goto out;
    }
    rc = atomic_commit(tmp, path);
out:
    free(tmp);
    return rc;
}
