// libFuzzer target: the safetensors reader (see fuzz_common.h, build.sh).
#include "tests/fuzz/fuzz_common.h"
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_check(fuzz_safetensors_one(data, size), "fuzz.safetensors")) {
        fprintf(stderr, "error without the file name: %s\n", hyp_last_error());
        abort();
    }
    return 0;
}
