// testlib.h: shared helpers for the Criterion suites: fixtures, comparisons, devices.
#ifndef HYP_TESTLIB_H
#define HYP_TESTLIB_H
#include <criterion/criterion.h>
#include "autograd/ops.h"
#include "autograd/h5io.h"
#include "autograd/gradcheck.h"

// DESIGN §4 tolerances (relative error ||a-b|| / ||b||).
#define TOL_OP 1e-5
#define TOL_E2E 1e-4
#define TOL_BF16 1e-2

// The hyp binary of this build (bin/hyp, or bin-san/hyp for sanitizer builds).
#ifndef HYP_BIN
#define HYP_BIN "bin/hyp"
#endif
// The same program with the fault hooks of autograd/fault.h set from its environment
// (tests/fault/hyp_faults.c): the crash and non-finite tests run it, production never does.
#ifndef HYP_FAULTS_BIN
#define HYP_FAULTS_BIN "bin/hyp-faults"
#endif

// Repository-relative paths: tests run from the repository root.
#define FIXTURE_DIR "tests/fixtures"
#define SHARED_DATA "../shared/data"

// Open tests/fixtures/<name> or fail the test.
H5File *fx_open(const char *name);
// Load "<group>/<name>" onto the context's device; requires_grad as given.
Tensor *fx_tensor(Ctx *c, H5File *f, const char *group, const char *name, bool requires_grad);
bool fx_has(H5File *f, const char *group, const char *name);
int fx_attr_int(H5File *f, const char *group, const char *attr);   // a numeric attribute, as int

// ||got - want|| / ||want|| (NaN anywhere -> +inf).  want must not be all zeros.
double rel_err(const float *got, const float *want, size_t n);
// Compare a tensor (any device) against fixture "<group>/<name>"; fails the test on
// shape mismatch or rel_err > tol, naming what was compared.
void expect_fixture(const Tensor *got, H5File *f, const char *group, const char *name, double tol);
// Compare two tensors (any devices).
void expect_close(const Tensor *got, const Tensor *want, double tol, const char *what);

// Devices to run the same test on: the CPU always, CUDA when built and present.
// Use in a test body: RUN_ON_CUDA_OR_SKIP(); at the top of a CUDA variant.
// With HYP_REQUIRE_GPU=1 in the environment (scripts/gpu-check.sh) a CUDA variant that
// would skip fails instead, with the reason.
#define RUN_ON_CUDA_OR_SKIP() do { if (!hyp_cuda_available()) \
    CUDA_SKIP("the CUDA variant of this test cannot run: %s", hyp_cuda_why_unavailable()); } while (0)
// The CUDA backend's table for kernel-level tests (NULL in a build without CUDA; those tests
// skip first).
#ifdef HYP_HAVE_CUDA
#define GPU_BACKEND (&hyp_cuda_backend)
#else
#define GPU_BACKEND ((const Backend *)NULL)
#endif
#define CUDA_SKIP(...) do { if (hyp_require_gpu()) cr_assert_fail("HYP_REQUIRE_GPU=1: " __VA_ARGS__); \
    else cr_skip_test(__VA_ARGS__); } while (0)
bool hyp_require_gpu(void);

// Copy a host float array into a new tensor on the context's device.
Tensor *tensor_from_floats(Ctx *c, const float *host, int ndim, const int *shape, bool requires_grad);
// Random uniform tensor (deterministic in seed) on the context's device.
Tensor *tensor_rand(Ctx *c, int ndim, const int *shape, float lo, float hi, uint64_t seed, bool requires_grad);
// Host copy of a tensor (malloc'd; f32 or i32).
void *tensor_host_copy(const Tensor *t);

// Every dataset of /params in a checkpoint or model file, concatenated in name order
// (malloc'd; *n floats). Fails the test on a read error.
float *read_all_params(const char *path, size_t *n);

// A fresh temporary directory (dir of size >= 64, prefix like "/tmp/hyp_x") holding a small
// synthetic retrieval task in dir/data (data/synthetic.h).
void make_synth_task(char *dir, size_t n, const char *prefix, int n_train, int n_docs, int n_queries);

// Run a gradcheck and fail the test with its report.
void expect_gradcheck(GradFn f, Tensor **inputs, int n_in, void *user, const GradcheckOpts *o, const char *what);

#endif
