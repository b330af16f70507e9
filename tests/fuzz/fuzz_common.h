// fuzz_common.h: the input formats of the weight-reader fuzz targets, shared with the corpus
// regression test (tests/test_fuzz_corpus.c) so that both run a corpus file the same way.
//
//   safetensors target: the input is the whole file.
//   torch.save target:  byte 0 even -> the rest is a whole file (zip archive);
//                       byte 0 odd  -> the rest is a data.pkl, wrapped by fuzz_wrap_pickle() in
//                       a stored zip with storages archive/data/{0,1,2} (F32 x 48, F16 x 8,
//                       16 bytes), so mutations reach the pickle VM without breaking the zip.
// CRC-32 checks are off (TORCHBIN_NO_CRC): the fuzzer could not fix them up.
#ifndef HYP_FUZZ_COMMON_H
#define HYP_FUZZ_COMMON_H
#include "model/weights.h"
#include <stdlib.h>
#include <string.h>

static inline void fz_put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void fz_put32(uint8_t *p, uint32_t v) { fz_put16(p, v & 0xffff); fz_put16(p + 2, v >> 16); }

// A stored zip of the given entries (malloc'd; *len set).
static inline uint8_t *fz_zip(const char *const *names, const uint8_t *const *data, const size_t *sizes, int n, size_t *len) {
    size_t total = 22;
    for (int i = 0; i < n; i++) total += 30 + 46 + 2 * strlen(names[i]) + sizes[i];
    uint8_t *z = calloc(1, total), *p = z;
    uint32_t *offs = calloc((size_t)n, sizeof *offs);
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(names[i]);
        offs[i] = (uint32_t)(p - z);
        fz_put32(p, 0x04034b50); fz_put16(p + 4, 20);
        fz_put32(p + 18, (uint32_t)sizes[i]); fz_put32(p + 22, (uint32_t)sizes[i]);
        fz_put16(p + 26, (unsigned)nl);
        memcpy(p + 30, names[i], nl);
        if (sizes[i]) memcpy(p + 30 + nl, data[i], sizes[i]);
        p += 30 + nl + sizes[i];
    }
    uint8_t *cd = p;
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(names[i]);
        fz_put32(p, 0x02014b50); fz_put16(p + 4, 20); fz_put16(p + 6, 20);
        fz_put32(p + 20, (uint32_t)sizes[i]); fz_put32(p + 24, (uint32_t)sizes[i]);
        fz_put16(p + 28, (unsigned)nl);
        fz_put32(p + 42, offs[i]);
        memcpy(p + 46, names[i], nl);
        p += 46 + nl;
    }
    fz_put32(p, 0x06054b50);
    fz_put16(p + 8, (unsigned)n); fz_put16(p + 10, (unsigned)n);
    fz_put32(p + 12, (uint32_t)(p - cd)); fz_put32(p + 16, (uint32_t)(cd - z));
    p += 22;
    free(offs);
    *len = (size_t)(p - z);
    return z;
}

static inline uint8_t *fuzz_wrap_pickle(const uint8_t *pkl, size_t n, size_t *len) {
    static uint8_t s0[192], s1[16], s2[16];
    for (int i = 0; i < 48; i++) { float f = (float)i * 0.25f - 3.f; memcpy(s0 + 4 * i, &f, 4); }
    for (int i = 0; i < 8; i++) fz_put16(s1 + 2 * i, 0x3c00u + (unsigned)i);     // fp16 1.0, ...
    for (int i = 0; i < 16; i++) s2[i] = (uint8_t)(i * 17);
    const char *names[] = {"archive/data.pkl", "archive/byteorder", "archive/data/0", "archive/data/1", "archive/data/2"};
    const uint8_t *data[] = {pkl, (const uint8_t *)"little", s0, s1, s2};
    size_t sizes[] = {n, 6, sizeof s0, sizeof s1, sizeof s2};
    return fz_zip(names, data, sizes, 5, len);
}

// Run one torch.save-target input; returns the set (or NULL with an error).
static inline WeightSet *fuzz_torchbin_one(const uint8_t *d, size_t n) {
    if (n < 1) { hyp_set_error("fuzz.bin: empty input"); return NULL; }
    if (!(d[0] & 1)) return torchbin_read_mem(d + 1, n - 1, "fuzz.bin", TORCHBIN_NO_CRC);
    size_t len;
    uint8_t *z = fuzz_wrap_pickle(d + 1, n - 1, &len);
    WeightSet *ws = torchbin_read_mem(z, len, "fuzz.bin", TORCHBIN_NO_CRC);
    free(z);
    return ws;
}

static inline WeightSet *fuzz_safetensors_one(const uint8_t *d, size_t n) {
    return safetensors_read_mem(d, n, "fuzz.safetensors");
}

// The readers' contract on any input: a set, or NULL with an error naming the input.
static inline int fuzz_check(WeightSet *ws, const char *label) {
    if (ws) {
        for (int i = 0; i < ws->n; i++) {                  // touch every value (ASan checks bounds)
            volatile float s = 0;
            for (size_t k = 0; k < ws->v[i].numel; k++) s += ws->v[i].data[k];
            (void)s;
        }
        weights_free(ws);
        return 0;
    }
    return strstr(hyp_last_error(), label) ? 0 : -1;
}
#endif
