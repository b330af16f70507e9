// libFuzzer target: the torch.save reader: zip directory + pickle VM (see fuzz_common.h, build.sh).
#include "tests/fuzz/fuzz_common.h"
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_check(fuzz_torchbin_one(data, size), "fuzz.bin")) {
        fprintf(stderr, "error without the file name: %s\n", hyp_last_error());
        abort();
    }
    return 0;
}
