// memory.cu: device allocation, copies, synchronisation, device discovery, scratch.
#include "kernels/cuda/common.cuh"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mutex>
#include <unordered_map>

// Bytes hyp_cuda_alloc holds now and at most (the planner's check against a real step).
static std::mutex g_mem_mu;
static std::unordered_map<void *, size_t> g_mem_sizes;
static size_t g_mem_now, g_mem_high;

extern "C" size_t hyp_cuda_mem_high_water(void) {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    return g_mem_high;
}
extern "C" size_t hyp_cuda_mem_reset_high_water(void) {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    g_mem_high = g_mem_now;
    return g_mem_now;
}

extern "C" int hyp_cuda_device_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();    // clear the sticky-free error (no driver, no device)
        return 0;
    }
    return n;
}

extern "C" void hyp_cuda_describe_no_device(char *buf, size_t n) {
    int count = 0, drv = 0, rt = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    (void)cudaGetLastError();
    (void)cudaDriverGetVersion(&drv);
    (void)cudaRuntimeGetVersion(&rt);
    (void)cudaGetLastError();
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    if (e == cudaSuccess && count > 0)
        snprintf(buf, n, "%d CUDA device%s visible", count, count == 1 ? "" : "s");
    else if (drv == 0)
        snprintf(buf, n, "no NVIDIA driver is installed or loadable (libcuda not found; the CUDA runtime is %d.%d)",
                 rt / 1000, rt % 1000 / 10);
    else if (e == cudaErrorInsufficientDriver || drv < rt)
        snprintf(buf, n, "the NVIDIA driver supports CUDA %d.%d but this build's runtime is %d.%d: update the driver",
                 drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
    else if (e == cudaErrorNoDevice || count == 0)
        snprintf(buf, n, "the NVIDIA driver (CUDA %d.%d) sees no CUDA device%s%s%s", drv / 1000, drv % 1000 / 10,
                 vis ? " (CUDA_VISIBLE_DEVICES=\"" : "", vis ? vis : "", vis ? "\")" : "");
    else
        snprintf(buf, n, "the CUDA runtime cannot use the GPU: %s (%s)", cudaGetErrorName(e), cudaGetErrorString(e));
}

extern "C" void hyp_cuda_device_name(char *buf, size_t n) {
    int dev = 0;
    cudaDeviceProp p;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(buf, n, "unknown CUDA device");
        return;
    }
    snprintf(buf, n, "%s", p.name);
}

extern "C" void hyp_cuda_check_launch(const char *file, int line) {
    static int sync = -1;
    if (sync < 0) {
        const char *s = getenv("HYP_CUDA_SYNC");
        sync = s && s[0] && strcmp(s, "0") != 0;
    }
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && sync) e = cudaDeviceSynchronize();
    if (e != cudaSuccess)
        hyp_fatal_at(file, line, "CUDA kernel launch failed: %s (%s)%s", cudaGetErrorName(e), cudaGetErrorString(e),
                     sync ? "" : "; rerun with HYP_CUDA_SYNC=1 to stop at the launch that faulted");
}

int hyp_cuda_num_sms(void) {
    static int sms = 0;
    if (sms == 0) {
        int dev = 0, v = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
        sms = v > 0 ? v : 1;
    }
    return sms;
}

extern "C" void *hyp_cuda_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 256;     // a valid, unique pointer like malloc(0) would give
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
        size_t free_b = 0, total_b = 0;
        (void)cudaGetLastError();
        (void)cudaMemGetInfo(&free_b, &total_b);
        hyp_fatal_at(__FILE__, __LINE__,
                     "CUDA out of memory: %zu bytes requested (%.2f GiB), %zu of %zu bytes free (%.2f of %.2f GiB)",
                     bytes, bytes / 1073741824.0, free_b, total_b, free_b / 1073741824.0, total_b / 1073741824.0);
    } else if (e != cudaSuccess) {   // not a memory shortage: no driver, no device, a sticky fault
        char why[512];
        (void)cudaGetLastError();
        hyp_cuda_describe_no_device(why, sizeof why);
        hyp_fatal_at(__FILE__, __LINE__, "cudaMalloc of %zu bytes failed: %s (%s); %s", bytes, cudaGetErrorName(e),
                     cudaGetErrorString(e), why);
    }
    std::lock_guard<std::mutex> lk(g_mem_mu);
    g_mem_sizes[p] = bytes;
    g_mem_now += bytes;
    if (g_mem_now > g_mem_high) g_mem_high = g_mem_now;
    return p;
}

extern "C" void hyp_cuda_free(void *p) {
    if (!p) return;
    CUDA_CHECK(cudaFree(p));
    std::lock_guard<std::mutex> lk(g_mem_mu);
    auto it = g_mem_sizes.find(p);
    if (it != g_mem_sizes.end()) g_mem_now -= it->second, g_mem_sizes.erase(it);
}

extern "C" void hyp_cuda_memset0(void *p, size_t bytes) {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, hyp_cuda_stream()));
}

extern "C" void hyp_cuda_copy(void *dst, const void *src, size_t bytes, CopyKind kind) {
    if (bytes == 0) return;
    switch (kind) {
    case COPY_H2D:   // synchronous: the host buffer may be reused as soon as we return
        CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
        break;
    case COPY_D2H:   // synchronous: waits for the work that produced src
        CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
        break;
    case COPY_D2D:
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, hyp_cuda_stream()));
        break;
    default:
        hyp_fatal_at(__FILE__, __LINE__, "hyp_cuda_copy: bad copy kind %d", (int)kind);
    }
}

extern "C" void hyp_cuda_synchronize(void) {
    CUDA_CHECK(cudaDeviceSynchronize());
}

void *hyp_cuda_scratch(int slot, size_t bytes) {
    static void *buf[HYP_SCRATCH_COUNT];
    static size_t cap[HYP_SCRATCH_COUNT];
    if (slot < 0 || slot >= HYP_SCRATCH_COUNT)
        hyp_fatal_at(__FILE__, __LINE__, "hyp_cuda_scratch: bad slot %d", slot);
    if (bytes > cap[slot]) {
        size_t want = bytes + bytes / 4;          // grow geometrically
        want = (want + 255) & ~(size_t)255;
        if (buf[slot]) {
            CUDA_CHECK(cudaStreamSynchronize(hyp_cuda_stream()));   // pending users finish first
            CUDA_CHECK(cudaFree(buf[slot]));
        }
        buf[slot] = NULL;
        cap[slot] = 0;
        buf[slot] = hyp_cuda_alloc(want);
        cap[slot] = want;
    }
    return buf[slot];
}
