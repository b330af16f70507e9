#include "kernels/kernels.h"
#include <string.h>
#ifdef HYP_HAVE_CUDA
#include "kernels/cuda/cuda_kernels.h"
#endif

#define COUNT_SLOT(s) +1
_Static_assert(sizeof(Backend) == offsetof(Backend, alloc) + (0 HYP_BACKEND_SLOTS(COUNT_SLOT)) * sizeof(void (*)(void)),
               "a Backend slot missing from HYP_BACKEND_SLOTS (kernels/kernels.h)");
#undef COUNT_SLOT

int backend_check(const Backend *be) {
#define CHECK_SLOT(s)                                                  \
    if (!be->s) {                                                      \
        hyp_set_error("backend %s: slot %s is NULL", be->name, #s);    \
        return -1;                                                     \
    }
    HYP_BACKEND_SLOTS(CHECK_SLOT)
#undef CHECK_SLOT
    return 0;
}

// The table of a real device, checked once (an incomplete table stops the program here,
// not at a NULL call in the middle of a run).
static const Backend *checked(const Backend *be, bool *done) {
    if (!*done && backend_check(be)) HYP_FATAL("%s", hyp_last_error());
    *done = true;
    return be;
}

const Backend *backend_get(Device d) {
    const Backend *meta = backend_meta_for(d);   // the memory planner's no-op table
    if (meta) return meta;
    static bool cpu_ok;
    if (d == HYP_CPU) return checked(&hyp_cpu_backend, &cpu_ok);
#ifdef HYP_HAVE_CUDA
    static bool cuda_ok;
    if (d == HYP_CUDA) return checked(&hyp_cuda_backend, &cuda_ok);
#endif
    HYP_FATAL("device %s requested but this build has no %s backend (rebuild with CUDA=1)",
              device_name(d), device_name(d));
}

bool hyp_cuda_available(void) {
#ifdef HYP_HAVE_CUDA
    static int count = -1;
    if (count < 0) count = hyp_cuda_device_count();
    return count > 0;
#else
    return false;
#endif
}

const char *hyp_cuda_why_unavailable(void) {
#ifdef HYP_HAVE_CUDA
    static char why[512];
    if (hyp_cuda_available()) return "";
    hyp_cuda_describe_no_device(why, sizeof why);
    return why;
#else
    return "this build has no CUDA backend (rebuild with make CUDA=1, or CUDA=sim for the simulator)";
#endif
}

const char *hyp_backends_compiled(void) {
#if defined(HYP_CUDA_SIM)
    return "cpu cuda-sim (the CUDA kernels on the SIMT simulator, make CUDA=sim)";
#elif defined(HYP_HAVE_CUDA)
    return "cpu cuda";
#else
    return "cpu";
#endif
}

#define HYP_UNARY_NAME(e, name, f, df) [e] = name,
static const char *const UNARY_NAMES[] = {HYP_UNARY_OPS(HYP_UNARY_NAME)};
#undef HYP_UNARY_NAME
_Static_assert(sizeof UNARY_NAMES / sizeof *UNARY_NAMES == UN_COUNT, "a unary op without a name");

const char *hyp_unary_name(UnaryOp op) {
    return (int)op >= 0 && op < UN_COUNT ? UNARY_NAMES[op] : NULL;
}

int hyp_unary_from_name(const char *name) {
    for (int i = 0; i < UN_COUNT; i++)
        if (!strcmp(UNARY_NAMES[i], name)) return i;
    return -1;
}
