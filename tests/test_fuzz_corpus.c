// Replays the kept libFuzzer corpora (tests/fuzz/corpus_*, made by tests/fuzz/build.sh run)
// through the weight readers: each input must give a set or one error naming the input, never
// a crash (run under `make SAN=address,undefined test` for the memory checks).
#include "tests/testlib.h"
#include "tests/fuzz/fuzz_common.h"
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

typedef WeightSet *(*RunOne)(const uint8_t *, size_t);

static int replay(const char *dir, RunOne run, const char *label) {
    DIR *d = opendir(dir);
    cr_assert(d, "%s: missing (tests/fuzz/build.sh run recreates it)", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        FILE *f = fopen(p, "rb");
        cr_assert(f, "%s", p);
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *b = hyp_malloc((size_t)len + 1);
        cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
        fclose(f);
        hyp_clear_error();
        cr_assert_eq(fuzz_check(run(b, (size_t)len), label), 0, "%s: error without the input's name: %s", p, hyp_last_error());
        free(b);
        n++;
    }
    closedir(d);
    return n;
}

Test(fuzz_corpus, safetensors) {
    int n = replay("tests/fuzz/corpus_safetensors", fuzz_safetensors_one, "fuzz.safetensors");
    cr_assert_gt(n, 10, "only %d corpus files", n);
}

Test(fuzz_corpus, torchbin) {
    int n = replay("tests/fuzz/corpus_torchbin", fuzz_torchbin_one, "fuzz.bin");
    cr_assert_gt(n, 10, "only %d corpus files", n);
}
