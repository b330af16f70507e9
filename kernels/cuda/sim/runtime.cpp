// runtime.cpp: the CUDA simulator's runtime: device memory, copies, streams and events,
// errors, and the SIMT execution of a launch (blocks in turn, each block's threads as
// cooperative fibers with their own stacks).
//
// Scheduling: the threads of a block run one at a time, each until it blocks (at a
// barrier or a warp collective) or returns. The last thread to arrive at a barrier or a
// collective completes it and wakes the others. When no thread can run and some have
// not finished, the block is stuck: on a GPU that is a hang; here it is a launch failure
// with a report of who waits where (file, kernel, block, thread).
#include <cuda_runtime.h>
#include "kernels/cuda/sim/hyp_sim.h"
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>
#include <sys/mman.h>
#include <unistd.h>
// Under AddressSanitizer (make CUDA=sim SAN=address) the fibers tell ASan about each stack
// switch, so kernels run with ASan's checks: device memory is host memory, and an
// out-of-bounds index in a kernel is reported like any heap overflow.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define SIM_ASAN 1
#else
#define SIM_ASAN 0
#endif

namespace hyp_sim {

thread_local Tls tls;

// ---------------------------------------------------------------- errors and stats
static thread_local cudaError_t g_last_error = cudaSuccess;
static std::string g_report;
static bool g_quiet = false;
static HypSimStats g_stats;

static void set_error(cudaError_t e) {
    if (g_last_error == cudaSuccess) g_last_error = e;
}

static void report(cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(cudaError_t e, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_report = buf;
    g_stats.launch_errors++;
    if (!g_quiet) fprintf(stderr, "hyp-sim: %s\n", buf);
    set_error(e);
}

// ---------------------------------------------------------------- fibers
// A fiber's saved context is its stack pointer; hyp_sim_switch pushes the callee-saved
// registers, stores the stack pointer in *save, loads `to` and pops the other fiber's.
extern "C" void hyp_sim_switch(void **save, void *to);
#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".globl hyp_sim_switch\n"
    ".type hyp_sim_switch,@function\n"
    "hyp_sim_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size hyp_sim_switch,.-hyp_sim_switch\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".globl hyp_sim_switch\n"
    ".type hyp_sim_switch,%function\n"
    "hyp_sim_switch:\n"
    "  sub sp, sp, #176\n"
    "  stp x19, x20, [sp, #0]\n  stp x21, x22, [sp, #16]\n  stp x23, x24, [sp, #32]\n"
    "  stp x25, x26, [sp, #48]\n  stp x27, x28, [sp, #64]\n  stp x29, x30, [sp, #80]\n"
    "  stp d8, d9, [sp, #96]\n  stp d10, d11, [sp, #112]\n  stp d12, d13, [sp, #128]\n"
    "  stp d14, d15, [sp, #144]\n"
    "  mov x9, sp\n  str x9, [x0]\n  mov sp, x1\n"
    "  ldp x19, x20, [sp, #0]\n  ldp x21, x22, [sp, #16]\n  ldp x23, x24, [sp, #32]\n"
    "  ldp x25, x26, [sp, #48]\n  ldp x27, x28, [sp, #64]\n  ldp x29, x30, [sp, #80]\n"
    "  ldp d8, d9, [sp, #96]\n  ldp d10, d11, [sp, #112]\n  ldp d12, d13, [sp, #128]\n"
    "  ldp d14, d15, [sp, #144]\n"
    "  add sp, sp, #176\n"
    "  ret\n"
    ".size hyp_sim_switch,.-hyp_sim_switch\n");
#else
#error "the CUDA simulator's fiber switch is written for x86-64 and aarch64"
#endif

#define STACK_BYTES ((size_t)128 << 10)   // per fiber; kernels are shallow, printf is not
#define GUARD_BYTES ((size_t)4 << 10)

enum TState { T_READY, T_BAR, T_WARP, T_DONE, T_FAILED };

struct Thread {
    void *sp;
    void *asan_fake;     // ASan's fake stack of this fiber while it is switched out
    uint3 idx;
    int linear, lane, warp;
    TState state;
    // the warp collective this thread waits at
    int wparam, wwidth;
    uint64_t wval, wres;
    WarpOp wop;          // the warp-wide operation of a W_WMMA_* collective
};

struct WarpGroup {       // a warp collective in progress
    unsigned mask, arrived;
    WarpKind kind;
    const char *file;
    int line;
};

struct Warp {
    int size;            // lanes that exist (the last warp of a block may be partial)
    unsigned exited;
    WarpGroup groups[32];
    int ngroups;
};

struct Block {
    const LaunchSite *site;
    Thread *threads;
    int n, done;
    Warp warps[32];
    int bar_arrived;
    const char *bar_file;
    int bar_line;
    bool failed;
    void *sched_sp;
    const void *sched_stack;   // the scheduler's stack (for ASan's switch annotations)
    size_t sched_stack_size;
    ThreadEntry entry;
    void *ctx;
};

static const char *kind_name(WarpKind k) {
    static const char *names[W_KINDS] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync",
                                         "__ballot_sync", "__any_sync", "__all_sync", "__syncwarp",
                                         "wmma::fill_fragment", "wmma::load_matrix_sync",
                                         "wmma::store_matrix_sync", "wmma::mma_sync"};
    return k >= 0 && k < W_KINDS ? names[k] : "?";
}

const uint3 &thread_idx() {
    if (!tls.thread) {
        fprintf(stderr, "hyp-sim: threadIdx read outside a kernel\n");
        abort();
    }
    return tls.thread->idx;
}

// Stacks for up to 1024 fibers, each with a guard page below it (mapped once, lazily
// committed by the kernel, reused by every launch of this host thread).
static thread_local unsigned char *g_stacks;
static unsigned char *stack_top(int i) {
    if (!g_stacks) {
        const size_t total = (STACK_BYTES + GUARD_BYTES) * HYP_SIM_MAX_THREADS;
        void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            perror("hyp-sim: mmap of fiber stacks");
            abort();
        }
        g_stacks = (unsigned char *)m;
        for (int k = 0; k < HYP_SIM_MAX_THREADS; k++)
            mprotect(g_stacks + (size_t)k * (STACK_BYTES + GUARD_BYTES), GUARD_BYTES, PROT_NONE);
    }
    return g_stacks + (size_t)i * (STACK_BYTES + GUARD_BYTES) + GUARD_BYTES + STACK_BYTES;
}

[[maybe_unused]] static unsigned char *stack_bottom(int i) { return stack_top(i) - STACK_BYTES; }

static void yield_to_scheduler() {
    Thread *t = tls.thread;
    Block *b = tls.block;
#if SIM_ASAN
    __sanitizer_start_switch_fiber(t->state == T_DONE ? NULL : &t->asan_fake, b->sched_stack, b->sched_stack_size);
#endif
    hyp_sim_switch(&t->sp, b->sched_sp);
#if SIM_ASAN
    __sanitizer_finish_switch_fiber(t->asan_fake, &b->sched_stack, &b->sched_stack_size);
#endif
}

// Marks the block failed with a report and parks the calling fiber for good.
static void fail_block(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail_block(const char *fmt, ...) {
    Block *b = tls.block;
    Thread *t = tls.thread;
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    report(cudaErrorLaunchFailure, "%s:%d: kernel %s, block (%u,%u,%u), thread (%u,%u,%u): %s", b->site->file,
           b->site->line, b->site->kernel, tls.block_idx.x, tls.block_idx.y, tls.block_idx.z, t->idx.x, t->idx.y,
           t->idx.z, msg);
    b->failed = true;
    t->state = T_FAILED;
    for (;;) yield_to_scheduler();
}

static void fiber_exit_checks(Block *b, Thread *t);

extern "C" void hyp_sim_fiber_main() {
    Block *b = tls.block;
    Thread *t = tls.thread;
#if SIM_ASAN
    __sanitizer_finish_switch_fiber(NULL, &b->sched_stack, &b->sched_stack_size);
#endif
    b->entry(b->ctx);
    t->state = T_DONE;
    b->done++;
    fiber_exit_checks(b, t);
    for (;;) yield_to_scheduler();   // never resumed
}

static void fiber_init(Thread *t, int i) {
    void **sp = (void **)stack_top(i);          // 16-byte aligned
#if defined(__x86_64__)
    *--sp = NULL;                               // fake return address: entry sees rsp = 8 mod 16
    *--sp = (void *)hyp_sim_fiber_main;         // popped by `ret`
    for (int r = 0; r < 6; r++) *--sp = NULL;   // rbp rbx r12 r13 r14 r15
#else
    sp -= 22;                                   // 176 bytes, x30 (lr) at offset 88
    memset(sp, 0, 176);
    sp[11] = (void *)hyp_sim_fiber_main;
#endif
    t->sp = sp;
}

// ---------------------------------------------------------------- shared memory
struct SharedVar { void *p; size_t bytes; };
static std::vector<SharedVar> g_shared;
// Dynamic shared memory: 128-byte aligned, as the hardware's (a vector's data is only 16-byte
// aligned, and wmma loads need 32).
struct DynShared {
    unsigned char *p = nullptr;
    size_t bytes = 0;
    unsigned char *reserve(size_t n) {
        if (n > bytes) {
            free(p);
            p = static_cast<unsigned char *>(aligned_alloc(128, (n + 127) / 128 * 128));
            if (!p) { fprintf(stderr, "hyp-sim: out of host memory for %zu bytes of dynamic shared memory\n", n); abort(); }
            bytes = n;
        }
        return p;
    }
};
static DynShared g_dyn_shared;
static std::map<const void *, int> g_max_dyn_shared;

static std::map<const void *, size_t> g_static_shared;   // kernel -> bytes of its HYP_SHARED variables

SharedReg::SharedReg(void *p, size_t bytes, const char *name, const char *file, int line) {
    (void)name; (void)file; (void)line;
    g_shared.push_back(SharedVar{p, bytes});
    // Counted for the kernel that reaches it first: a HYP_SHARED inside a __device__ helper
    // that several kernels call would count (for the limit check) toward the first one only.
    // Every registered variable is poisoned at every block start, whichever kernel runs.
    if (tls.kernel) g_static_shared[tls.kernel] += bytes;
    memset(p, 0xff, bytes);    // the first block that reaches it has not written it yet
}

// Static shared memory is limited to 48 KiB; static + dynamic to the kernel's dynamic limit
// (48 KiB, or what cudaFuncSetAttribute raised it to). Static sizes are known once a launch
// of the kernel has reached its HYP_SHARED declarations.
static bool shared_fits(const LaunchSite &site, const void *kernel, size_t dyn) {
    auto st = g_static_shared.find(kernel);
    const size_t stat = st == g_static_shared.end() ? 0 : st->second;
    auto it = g_max_dyn_shared.find(kernel);
    const size_t allowed = it == g_max_dyn_shared.end() ? HYP_SIM_SHARED_DEFAULT
                                                        : (size_t)it->second > HYP_SIM_SHARED_DEFAULT ? (size_t)it->second
                                                                                                       : HYP_SIM_SHARED_DEFAULT;
    if (stat > HYP_SIM_SHARED_DEFAULT || stat + dyn > allowed) {
        // over 48 KiB static: nvcc would not have compiled it; too much in total: the runtime says no
        report(stat > HYP_SIM_SHARED_DEFAULT ? cudaErrorLaunchOutOfResources : cudaErrorInvalidValue,
               "%s:%d: kernel %s: %zu bytes of static and %zu bytes of dynamic shared memory exceed the %zu bytes "
               "allowed for it (static at most %d; cudaFuncSetAttribute raises the total up to %d)", site.file,
               site.line, site.kernel, stat, dyn, allowed, HYP_SIM_SHARED_DEFAULT, HYP_SIM_SHARED_OPTIN);
        return false;
    }
    return true;
}

unsigned char *dynamic_shared() {
    return tls.dyn_shared;
}

static void poison_shared(size_t dyn_bytes) {
    for (const SharedVar &v : g_shared) memset(v.p, 0xff, v.bytes);
    if (dyn_bytes) memset(g_dyn_shared.p, 0xff, dyn_bytes);
}

// ---------------------------------------------------------------- barrier
void syncthreads(const char *file, int line) {
    Block *b = tls.block;
    Thread *t = tls.thread;
    if (!b || !t) {
        fprintf(stderr, "hyp-sim: %s:%d: __syncthreads outside a kernel\n", file, line);
        abort();
    }
    if (b->bar_arrived == 0) {
        b->bar_file = file;
        b->bar_line = line;
    } else if (b->bar_line != line || strcmp(b->bar_file, file) != 0) {
        fail_block("divergent __syncthreads: this thread reached the one at %s:%d while %d thread(s) wait at "
                   "%s:%d", file, line, b->bar_arrived, b->bar_file, b->bar_line);
    }
    {   // this lane's warp-mates waiting for it at a collective never get it
        const Warp &w = b->warps[t->warp];
        for (int i = 0; i < w.ngroups; i++)
            if (w.groups[i].mask >> t->lane & 1u)
                fail_block("__syncthreads at %s:%d while lanes 0x%08x of its warp wait for it at %s (%s:%d)", file,
                           line, w.groups[i].arrived, kind_name(w.groups[i].kind), w.groups[i].file,
                           w.groups[i].line);
    }
    b->bar_arrived++;
    if (b->bar_arrived + b->done == b->n && b->done > 0)
        fail_block("__syncthreads at %s:%d: %d thread(s) of the block have exited and never arrive", file, line,
                   b->done);
    if (b->bar_arrived == b->n) {      // the last one: release everybody, carry on
        for (int i = 0; i < b->n; i++)
            if (b->threads[i].state == T_BAR) b->threads[i].state = T_READY;
        b->bar_arrived = 0;
        return;
    }
    t->state = T_BAR;
    yield_to_scheduler();
}

// ---------------------------------------------------------------- warp collectives
static unsigned lanes_of(const Warp &w) { return w.size >= 32 ? 0xffffffffu : ((1u << w.size) - 1u); }

// The lane whose value lane `l` receives (or l itself where CUDA returns the own value).
static int shfl_source(WarpKind k, int l, int param, int width) {
    const int base = l & ~(width - 1), off = l & (width - 1);
    switch (k) {
    case W_SHFL: return base + (param & (width - 1));
    case W_SHFL_UP: return off - param < 0 ? l : l - param;
    case W_SHFL_DOWN: return off + param >= width ? l : l + param;
    case W_SHFL_XOR: {
        const int s = l ^ param;
        return s >= base + width || s > 31 ? l : s;   // later groups: own value
    }
    default: return l;
    }
}

static void complete_group(Block *b, int wi, int gi) {
    Warp &w = b->warps[wi];
    WarpGroup g = w.groups[gi];
    w.groups[gi] = w.groups[--w.ngroups];
    Thread *lane0 = &b->threads[wi * 32];
    if (g.kind >= W_WMMA_FILL) {   // one warp-wide operation on every lane's arguments
        void *args[32];
        for (int l = 0; l < 32; l++) {
            args[l] = (void *)(uintptr_t)lane0[l].wval;
            if (lane0[l].wop != lane0[0].wop)
                fail_block("%s (%s:%d): lane %d calls it with another fragment type or layout than lane 0 (every "
                           "lane of the warp must make the same call)", kind_name(g.kind), g.file, g.line, l);
        }
        if (const char *why = lane0[0].wop(args))
            fail_block("%s (%s:%d): %s", kind_name(g.kind), g.file, g.line, why);
    }
    uint64_t vote = 0;
    int count = 0;
    for (int l = 0; l < 32; l++)
        if (g.mask >> l & 1u) {
            vote |= (lane0[l].wval != 0 ? 1ull : 0ull) << l;
            count += lane0[l].wval != 0;
        }
    for (int l = 0; l < 32; l++) {
        if (!(g.mask >> l & 1u)) continue;
        Thread *t = &lane0[l];
        switch (g.kind) {
        case W_SHFL: case W_SHFL_UP: case W_SHFL_DOWN: case W_SHFL_XOR: {
            const int s = shfl_source(g.kind, l, t->wparam, t->wwidth);
            if (!(g.mask >> s & 1u))
                fail_block("%s (%s:%d): lane %d reads lane %d, which is not in the mask 0x%08x (undefined on a "
                           "GPU)", kind_name(g.kind), g.file, g.line, l, s, g.mask);
            t->wres = lane0[s].wval;
            break;
        }
        case W_BALLOT: t->wres = vote; break;
        case W_ANY: t->wres = count > 0; break;
        case W_ALL: t->wres = count == __builtin_popcount(g.mask); break;
        default: t->wres = 0; break;
        }
        if (t != tls.thread) t->state = T_READY;
    }
}

uint64_t warp_collective(WarpKind kind, unsigned mask, uint64_t value, int param, int width, const char *file,
                         int line) {
    Block *b = tls.block;
    Thread *t = tls.thread;
    if (!b || !t) {
        fprintf(stderr, "hyp-sim: %s:%d: %s outside a kernel\n", file, line, kind_name(kind));
        abort();
    }
    Warp &w = b->warps[t->warp];
    const int l = t->lane;
    if (width < 1 || width > 32 || (width & (width - 1)))
        fail_block("%s at %s:%d: width %d is not a power of two in [1, 32]", kind_name(kind), file, line, width);
    if (!(mask >> l & 1u))
        fail_block("%s at %s:%d: the calling lane %d is not in its mask 0x%08x", kind_name(kind), file, line, l,
                   mask);
    if (mask & ~lanes_of(w))
        fail_block("%s at %s:%d: mask 0x%08x names lanes that do not exist (warp %d has %d lanes)", kind_name(kind),
                   file, line, mask, t->warp, w.size);
    if (mask & w.exited)
        fail_block("%s at %s:%d: mask 0x%08x names lanes that have exited (0x%08x)", kind_name(kind), file, line,
                   mask, mask & w.exited);
    for (int k = 0; k < 32; k++)
        if ((mask >> k & 1u) && b->threads[t->warp * 32 + k].state == T_BAR)
            fail_block("%s at %s:%d: lane %d of the mask 0x%08x waits at __syncthreads (%s:%d) instead",
                       kind_name(kind), file, line, k, mask, b->bar_file, b->bar_line);
    int gi = -1;
    for (int i = 0; i < w.ngroups; i++)
        if (w.groups[i].mask & mask) { gi = i; break; }
    if (gi < 0) {
        gi = w.ngroups++;
        w.groups[gi] = WarpGroup{mask, 0u, kind, file, line};
    } else {
        const WarpGroup &g = w.groups[gi];
        if (g.mask != mask)
            fail_block("%s at %s:%d with mask 0x%08x while lanes 0x%08x wait at %s (%s:%d) with mask 0x%08x",
                       kind_name(kind), file, line, mask, g.arrived, kind_name(g.kind), g.file, g.line, g.mask);
        if (g.kind != kind)
            fail_block("divergent warp: this lane reached %s at %s:%d while lanes 0x%08x wait at %s (%s:%d)",
                       kind_name(kind), file, line, g.arrived, kind_name(g.kind), g.file, g.line);
    }
    t->wval = value;
    t->wparam = param;
    t->wwidth = width;
    w.groups[gi].arrived |= 1u << l;
    if (w.groups[gi].arrived == mask) {
        complete_group(b, t->warp, gi);
        return t->wres;
    }
    t->state = T_WARP;
    yield_to_scheduler();
    return t->wres;
}

void warp_op(WarpKind kind, WarpOp op, void *mine, const char *file, int line) {
    Block *b = tls.block;
    Thread *t = tls.thread;
    if (!b || !t) {
        fprintf(stderr, "hyp-sim: %s:%d: %s outside a kernel\n", file, line, kind_name(kind));
        abort();
    }
    if (b->warps[t->warp].size < 32)
        fail_block("%s at %s:%d: warp %d has only %d lanes (wmma needs a full warp of 32)", kind_name(kind), file,
                   line, t->warp, b->warps[t->warp].size);
    t->wop = op;
    warp_collective(kind, 0xffffffffu, (uint64_t)(uintptr_t)mine, 0, 32, file, line);
}

unsigned active_mask() {
    Block *b = tls.block;
    Thread *t = tls.thread;
    const Warp &w = b->warps[t->warp];
    return lanes_of(w) & ~w.exited;
}

static void fiber_exit_checks(Block *b, Thread *t) {
    Warp &w = b->warps[t->warp];
    w.exited |= 1u << t->lane;
    for (int i = 0; i < w.ngroups; i++)
        if (w.groups[i].mask >> t->lane & 1u)
            fail_block("exited while lanes 0x%08x wait for it at %s (%s:%d, mask 0x%08x)", w.groups[i].arrived,
                       kind_name(w.groups[i].kind), w.groups[i].file, w.groups[i].line, w.groups[i].mask);
    if (b->bar_arrived > 0)
        fail_block("exited while %d thread(s) wait at __syncthreads (%s:%d)", b->bar_arrived, b->bar_file,
                   b->bar_line);
}

// ---------------------------------------------------------------- running a grid
static void describe_stuck(Block *b) {
    std::string s;
    char line[512];
    int shown = 0;
    for (int i = 0; i < b->n && shown < 8; i++) {
        const Thread &t = b->threads[i];
        if (t.state == T_DONE) continue;
        snprintf(line, sizeof line, "%s thread (%u,%u,%u) %s", shown ? ";" : "", t.idx.x, t.idx.y, t.idx.z,
                 t.state == T_BAR ? "at __syncthreads" : t.state == T_WARP ? "at a warp collective" : "runnable");
        s += line;
        shown++;
    }
    report(cudaErrorLaunchFailure, "%s:%d: kernel %s, block (%u,%u,%u): stuck (a GPU would hang): %d of %d threads "
           "finished;%s", b->site->file, b->site->line, b->site->kernel, tls.block_idx.x, tls.block_idx.y,
           tls.block_idx.z, b->done, b->n, s.c_str());
}

static bool run_block(Block *b) {
    [[maybe_unused]] static thread_local bool dirty_stacks = false;   // a failed block left frames behind
#if SIM_ASAN
    if (dirty_stacks)
        for (int i = 0; i < HYP_SIM_MAX_THREADS; i++) __asan_unpoison_memory_region(stack_bottom(i), STACK_BYTES);
#endif
    dirty_stacks = false;
    for (int i = 0; i < b->n; i++) {
        Thread &t = b->threads[i];
        t.state = T_READY;
        t.asan_fake = NULL;
        fiber_init(&t, i);
    }
    for (int w = 0; w < (b->n + 31) / 32; w++) {
        b->warps[w].size = b->n - 32 * w < 32 ? b->n - 32 * w : 32;
        b->warps[w].exited = 0;
        b->warps[w].ngroups = 0;
    }
    b->done = 0;
    b->bar_arrived = 0;
    b->failed = false;
    while (b->done < b->n) {
        bool ran = false;
        for (int i = 0; i < b->n && !b->failed; i++) {
            Thread &t = b->threads[i];
            if (t.state != T_READY) continue;
            tls.thread = &t;
#if SIM_ASAN
            void *fake = NULL;
            __sanitizer_start_switch_fiber(&fake, stack_bottom(i), STACK_BYTES);
            hyp_sim_switch(&b->sched_sp, t.sp);
            __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
            hyp_sim_switch(&b->sched_sp, t.sp);
#endif
            ran = true;
        }
        tls.thread = NULL;
        if (b->failed || !ran) {
            if (!b->failed) describe_stuck(b);
            dirty_stacks = true;
            return false;
        }
    }
    return true;
}

static bool dims_ok(dim3 d, unsigned mx, unsigned my, unsigned mz) {
    return d.x >= 1 && d.y >= 1 && d.z >= 1 && d.x <= mx && d.y <= my && d.z <= mz;
}

void run_grid(const LaunchSite &site, const void *kernel, dim3 grid, dim3 block, size_t shmem, cudaStream_t stream,
              ThreadEntry entry, void *ctx) {
    (void)stream;
    if (tls.thread) {
        fprintf(stderr, "hyp-sim: %s:%d: kernel %s launched from device code (dynamic parallelism is not "
                "simulated)\n", site.file, site.line, site.kernel);
        abort();
    }
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (!dims_ok(block, 1024, 1024, 64) || threads > HYP_SIM_MAX_THREADS) {
        report(cudaErrorInvalidConfiguration, "%s:%d: kernel %s: invalid block (%u,%u,%u): at most 1024 threads, "
               "x,y <= 1024, z <= 64", site.file, site.line, site.kernel, block.x, block.y, block.z);
        return;
    }
    if (!dims_ok(grid, 0x7fffffffu, 65535, 65535)) {
        report(cudaErrorInvalidConfiguration, "%s:%d: kernel %s: invalid grid (%u,%u,%u): x in [1, 2^31-1], "
               "y, z in [1, 65535]", site.file, site.line, site.kernel, grid.x, grid.y, grid.z);
        return;
    }
    if (!shared_fits(site, kernel, shmem)) return;
    g_stats.launches++;
    unsigned char *dyn = g_dyn_shared.reserve(shmem);
    static thread_local std::vector<Thread> threads_buf;
    threads_buf.resize(threads);
    Block b;
    memset(&b, 0, sizeof b);
    b.site = &site;
    b.threads = threads_buf.data();
    b.n = (int)threads;
    b.entry = entry;
    b.ctx = ctx;
    tls.block = &b;
    tls.block_dim = block;
    tls.grid_dim = grid;
    tls.dyn_shared = shmem ? dyn : NULL;
    tls.kernel = kernel;
    const bool sized = g_static_shared.count(kernel) != 0;
    int i = 0;
    for (unsigned z = 0; z < block.z; z++)
        for (unsigned y = 0; y < block.y; y++)
            for (unsigned x = 0; x < block.x; x++, i++) {
                Thread &t = threads_buf[i];
                t.idx = uint3{x, y, z};
                t.linear = i;
                t.lane = i & 31;
                t.warp = i >> 5;
            }
    bool ok = true;
    for (unsigned bz = 0; bz < grid.z && ok; bz++)
        for (unsigned by = 0; by < grid.y && ok; by++)
            for (unsigned bx = 0; bx < grid.x && ok; bx++) {
                tls.block_idx = uint3{bx, by, bz};
                poison_shared(shmem);
                ok = run_block(&b);
                // The first launch of a kernel learns its static shared size in its first block.
                if (ok && !sized && bx + by + bz == 0 && g_static_shared.count(kernel)) ok = shared_fits(site, kernel, shmem);
            }
    tls.block = NULL;
    tls.thread = NULL;
    tls.kernel = NULL;
}

// ---------------------------------------------------------------- device memory
struct Alloc { size_t bytes; };
static std::map<uintptr_t, Alloc> g_allocs;
static size_t g_allocated;

// True when [p, p + bytes) lies inside one live device allocation.
bool is_device_range(const void *p, size_t bytes) {
    const uintptr_t a = (uintptr_t)p;
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin()) return false;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second.bytes;
}
bool is_device_pointer(const void *p) { return is_device_range(p, 1); }

}  // namespace hyp_sim

using namespace hyp_sim;

// ---------------------------------------------------------------- the C API of hyp_sim.h
extern "C" HypSimStats hyp_sim_stats(void) {
    HypSimStats s = g_stats;
    s.bytes_allocated = g_allocated;
    return s;
}
extern "C" void hyp_sim_reset_stats(void) {
    const size_t peak = g_allocated;
    memset(&g_stats, 0, sizeof g_stats);
    g_stats.peak_allocated = peak;
}
extern "C" const char *hyp_sim_last_report(void) { return g_report.c_str(); }
extern "C" void hyp_sim_clear_report(void) { g_report.clear(); }
extern "C" void hyp_sim_set_quiet(int quiet) { g_quiet = quiet != 0; }

// ---------------------------------------------------------------- the runtime API
static int sim_device_count() {
    const char *e = getenv("HYP_SIM_DEVICES");   // HYP_SIM_DEVICES=0: a machine without a GPU
    if (e && *e) return atoi(e);
    return 1;
}

static cudaError_t ret(cudaError_t e) {
    set_error(e);
    return e;
}

extern "C" {

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchFailure: return "unspecified launch failure (simulator: see the hyp-sim report)";
    case cudaErrorNotSupported: return "operation not supported";
    default: return "unknown error";
    }
}

cudaError_t cudaGetLastError(void) {
    const cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return g_last_error; }

cudaError_t cudaGetDeviceCount(int *count) {
    const int n = sim_device_count();
    *count = n > 0 ? n : 0;
    return n > 0 ? cudaSuccess : ret(cudaErrorNoDevice);
}
cudaError_t cudaGetDevice(int *dev) {
    if (sim_device_count() <= 0) return ret(cudaErrorNoDevice);
    *dev = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) {
    if (sim_device_count() <= 0) return ret(cudaErrorNoDevice);
    return dev >= 0 && dev < sim_device_count() ? cudaSuccess : ret(cudaErrorInvalidDevice);
}
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int dev) {
    if (dev < 0 || dev >= sim_device_count()) return ret(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = HYP_SIM_MAX_THREADS; break;
    case cudaDevAttrMaxBlockDimX: *value = 1024; break;
    case cudaDevAttrMaxGridDimX: *value = 0x7fffffff; break;
    case cudaDevAttrMaxGridDimY: *value = 65535; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = HYP_SIM_SHARED_DEFAULT; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMultiProcessorCount: {
        // Few SMs, so that the grids sized from it are small and grid-stride loops loop.
        const char *e = getenv("HYP_SIM_SMS");
        *value = e && atoi(e) > 0 ? atoi(e) : 4;
        break;
    }
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = HYP_SIM_SHARED_OPTIN; break;
    default: return ret(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int dev) {
    if (dev < 0 || dev >= sim_device_count()) return ret(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "hypencoder.c SIMT simulator");
    p->totalGlobalMem = HYP_SIM_TOTAL_MEMORY;
    cudaDeviceGetAttribute(&p->multiProcessorCount, cudaDevAttrMultiProcessorCount, dev);
    p->major = 9;
    p->minor = 0;
    p->maxThreadsPerBlock = HYP_SIM_MAX_THREADS;
    p->sharedMemPerBlock = HYP_SIM_SHARED_DEFAULT;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int *v) { *v = 13000; return cudaSuccess; }

cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = NULL;
    if (sim_device_count() <= 0) return ret(cudaErrorNoDevice);
    if (bytes > HYP_SIM_TOTAL_MEMORY - g_allocated) return ret(cudaErrorMemoryAllocation);
    void *m = NULL;   // exactly `bytes`, so that ASan builds see any overrun
    if (posix_memalign(&m, 256, bytes ? bytes : 1)) return ret(cudaErrorMemoryAllocation);
    memset(m, 0xff, bytes);   // fresh device memory is garbage: NaN bytes show reads of it
    g_allocs[(uintptr_t)m] = Alloc{bytes};
    g_allocated += bytes;
    if (g_allocated > g_stats.peak_allocated) g_stats.peak_allocated = g_allocated;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    auto it = g_allocs.find((uintptr_t)p);
    if (it == g_allocs.end()) return ret(cudaErrorInvalidDevicePointer);
    g_allocated -= it->second.bytes;
    g_allocs.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    *total_bytes = HYP_SIM_TOTAL_MEMORY;
    *free_bytes = HYP_SIM_TOTAL_MEMORY - g_allocated;
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind) {
    if (bytes == 0) return cudaSuccess;
    const bool dd = is_device_range(dst, bytes), sd = is_device_range(src, bytes);
    bool ok;
    switch (kind) {
    case cudaMemcpyHostToDevice: ok = dd && !is_device_pointer(src); g_stats.copies_h2d++; g_stats.bytes_h2d += bytes; break;
    case cudaMemcpyDeviceToHost: ok = sd && !is_device_pointer(dst); g_stats.copies_d2h++; g_stats.bytes_d2h += bytes; break;
    case cudaMemcpyDeviceToDevice: ok = dd && sd; g_stats.copies_d2d++; break;
    case cudaMemcpyHostToHost: ok = !is_device_pointer(dst) && !is_device_pointer(src); break;
    case cudaMemcpyDefault: ok = true; break;
    default: return ret(cudaErrorInvalidMemcpyDirection);
    }
    if (!ok) {
        report(cudaErrorInvalidValue, "cudaMemcpy of %zu bytes (kind %d): a pointer is not on the side the kind "
               "says (or the range leaves its allocation)", bytes, (int)kind);
        return cudaErrorInvalidValue;
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind, cudaStream_t s) {
    (void)s;
    return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    if (bytes == 0) return cudaSuccess;
    if (!is_device_range(p, bytes)) {
        report(cudaErrorInvalidValue, "cudaMemset of %zu bytes outside any device allocation", bytes);
        return cudaErrorInvalidValue;
    }
    memset(p, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s) {
    (void)s;
    return cudaMemset(p, value, bytes);
}

// Work runs when it is enqueued: every stream is always idle.
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaStreamCreate(cudaStream_t *s) { *s = (cudaStream_t) new char[1]; return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t s) { delete[] (char *)s; return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t s) { (void)s; return cudaSuccess; }

struct CUevent_st { std::chrono::steady_clock::time_point t; bool recorded; };
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new CUevent_st{{}, false}; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    (void)s;
    e->t = std::chrono::steady_clock::now();
    e->recorded = true;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) { (void)e; return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a->recorded || !b->recorded) return ret(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
    return cudaSuccess;
}

cudaError_t hyp_sim_func_set_max_dynamic_shared(const void *fn, int bytes) {
    if (bytes < 0 || bytes > HYP_SIM_SHARED_OPTIN) return ret(cudaErrorInvalidValue);
    g_max_dyn_shared[fn] = bytes;
    return cudaSuccess;
}

}  // extern "C"

namespace hyp_sim {
void note_gemm() { g_stats.gemms++; }
}
