// bench_dist: data-parallel training on the CPU: the same global batch (32 queries x 8
// passages) as 1 process with 2 OpenMP threads and as 2 MPI ranks with 1 thread each,
// on a 4-layer 256-wide BERT + 2-layer q-net (synthetic task), 20 steps. Prints the median
// step time after 5 warm-up steps and the gradient all-reduce time and share.
// Needs bin/hyp and mpirun (skips otherwise).
#include "data/synthetic.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Median "ms" and "comm_ms" of steps > 5 from metrics.jsonl.
static void medians(const char *path, double *ms, double *comm) {
    FILE *f = fopen(path, "r");
    double a[64], b[64];
    int n = 0;
    char line[1024];
    while (f && n < 64 && fgets(line, sizeof line, f)) {
        long step;
        char *p = strstr(line, "\"ms\": "), *q = strstr(line, "\"comm_ms\": ");
        if (sscanf(line, "{\"step\": %ld", &step) != 1 || step <= 5 || !p || !q) continue;
        a[n] = atof(p + 6);
        b[n++] = atof(q + 11);
    }
    if (f) fclose(f);
    qsort(a, n, sizeof(double), cmp);
    qsort(b, n, sizeof(double), cmp);
    *ms = n ? a[n / 2] : 0;
    *comm = n ? b[n / 2] : 0;
}

int main(void) {
    if (system("mpirun --version >/dev/null 2>&1") || access("bin/hyp", X_OK)) {
        printf("bench_dist: needs mpirun and bin/hyp; skipped\n");
        return 0;
    }
    char dir[] = "/tmp/hyp_bench_dist_XXXXXX", d[128], cmd[2048];
    if (!mkdtemp(dir)) return 1;
    snprintf(d, sizeof d, "%s/data", dir);
    SynthOptions o = synth_default();
    o.n_train = 1000;
    if (synth_write(d, &o)) { fprintf(stderr, "%s\n", hyp_last_error()); return 1; }
    const char *common = "--set train.max_steps=20 --set eval.every=0 --set model.dropout=0 --set model.bert_hidden=256 "
                         "--set model.bert_heads=4 --set model.bert_ffn=1024 --set model.bert_layers=4 --set train.log_steps=1 --quiet";
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 bin/hyp train --config configs/tiny.ini --out %s/one %s "
             "--set data.train=%s/train.jsonl --set data.vocab=%s/vocab.txt --set train.batch_size=32", dir, common, d, d);
    if (system(cmd)) return 1;
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS "
             "bin/hyp train --config configs/tiny.ini --out %s/two %s --set data.train=%s/train.jsonl "
             "--set data.vocab=%s/vocab.txt --set train.batch_size=16 --set dist.backend=mpi", dir, common, d, d);
    if (system(cmd)) return 1;
    double ms1, c1, ms2, c2;
    snprintf(cmd, sizeof cmd, "%s/one/metrics.jsonl", dir);
    medians(cmd, &ms1, &c1);
    snprintf(cmd, sizeof cmd, "%s/two/metrics.jsonl", dir);
    medians(cmd, &ms2, &c2);
    printf("data-parallel training, 32 queries x 8 passages per global step (BERT 4 x 256 + 2-layer q-net)\n");
    printf("  1 rank,  2 threads, batch 32:        %7.1f ms/step\n", ms1);
    printf("  2 ranks, 1 thread,  batch 16 each:   %7.1f ms/step, all-reduce %.1f ms (%.0f%%)\n", ms2, c2,
           ms2 > 0 ? 100 * c2 / ms2 : 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) ? 1 : 0;
}
