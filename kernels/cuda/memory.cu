// memory.cu: device allocation, copies, synchronisation, device discovery, scratch.
#include "kernels/cuda/common.cuh"

extern "C" int hyp_cuda_device_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();    // clear the sticky-free error (no driver, no device)
        return 0;
    }
    return n;
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
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        (void)cudaGetLastError();
        (void)cudaMemGetInfo(&free_b, &total_b);
        hyp_fatal_at(__FILE__, __LINE__,
                     "CUDA out of memory allocating %zu bytes (%s); device has %zu of %zu bytes free",
                     bytes, cudaGetErrorString(e), free_b, total_b);
    }
    return p;
}

extern "C" void hyp_cuda_free(void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
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
