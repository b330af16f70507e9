// bounded_child.h: run a check in a child process under a 1 GiB address-space limit and a
// 20 s alarm, so a test of an endless input (/dev/zero) fails instead of hanging CI or
// exhausting the machine when the code regresses. Header-only (tests/test_*.c include it).
#ifndef HYP_TESTS_BOUNDED_CHILD_H
#define HYP_TESTS_BOUNDED_CHILD_H
#include <criterion/criterion.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

// AddressSanitizer reserves terabytes of address space for its shadow memory, so under
// ASan (make test SAN=address,...) the address-space limit is left out; the alarm (and
// `timeout` for commands) still bounds the time.
#if defined(__SANITIZE_ADDRESS__)
#define HYP_BOUNDED_AS 0
#define HYP_ULIMIT_V ""
#else
#define HYP_BOUNDED_AS 1
#define HYP_ULIMIT_V "ulimit -v 2097152; "   // 2 GiB, for commands run through system()
#endif

// Fails the test unless check(arg) returns true in the bounded child; what names it.
static inline void expect_in_bounded_child(bool (*check)(void *), void *arg, const char *what) {
    pid_t pid = fork();
    cr_assert(pid >= 0, "%s: fork failed", what);
    if (pid == 0) {
        struct rlimit rl = {(rlim_t)1 << 30, (rlim_t)1 << 30};
        if (HYP_BOUNDED_AS) setrlimit(RLIMIT_AS, &rl);
        alarm(20);
        _exit(check(arg) ? 0 : 1);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid, "%s: waitpid", what);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the bounded child %s %d", what,
              WIFEXITED(st) ? "failed with status" : "was killed by signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}
#endif
