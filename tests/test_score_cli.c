// The released-checkpoint path end to end: a tiny Hypencoder saved by the PyTorch twin in
// the authors' layout (HypencoderDualEncoder config.json, torch.save state dict with the
// aliased passage_encoder.transformer.* keys) -> `hyp import` -> `hyp score` gives the
// twin's scores (tests/fixtures/make_hypencoder_import_fixture.py).
#include "tests/testlib.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FX "tests/fixtures/hypencoder_import"

static int read_scores(FILE *f, char q[][16], char d[][16], double *s, int max) {
    int n = 0;
    while (n < max && fscanf(f, "%15s %15s %lf", q[n], d[n], &s[n]) == 3) n++;
    return n;
}

Test(score_cli, import_then_score_matches_twin) {
    char work[] = "/tmp/hyp_score_XXXXXX";
    cr_assert_not_null(mkdtemp(work));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, HYP_BIN " import --from " FX " --bert-config " FX "/bert_config.json --out %s/m.h5 2>%s/import.log"
             " && " HYP_BIN " score --model %s/m.h5 --queries " FX "/queries.tsv --corpus " FX "/passages.tsv > %s/scores.txt",
             work, work, work, work);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char path[1100];
    snprintf(path, sizeof path, "%s/import.log", work);
    FILE *log = fopen(path, "r");
    char buf[4096] = "";
    size_t nr = fread(buf, 1, sizeof buf - 1, log);
    buf[nr] = 0;
    fclose(log);
    cr_assert(strstr(buf, "aliased passage_encoder.transformer"), "the aliased passage keys are recognised: %s", buf);
    char q1[8][16], d1[8][16], q2[8][16], d2[8][16];
    double got[8], want[8];
    snprintf(path, sizeof path, "%s/scores.txt", work);
    FILE *g = fopen(path, "r"), *w = fopen(FX "/expected_scores.txt", "r");
    int n = read_scores(g, q1, d1, got, 8), m = read_scores(w, q2, d2, want, 8);
    fclose(g);
    fclose(w);
    cr_assert_eq(n, 4);
    cr_assert_eq(m, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(q1[i], q2[i]);
        cr_assert_str_eq(d1[i], d2[i]);
        cr_assert(fabs(got[i] - want[i]) <= TOL_E2E * fabs(want[i]), "%s %s: %.9g vs twin %.9g", q1[i], d1[i], got[i], want[i]);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", work);
    cr_assert_eq(system(cmd), 0);
}

// The search commands as a user runs them: encode the passages, build the neighbour
// graph, search exhaustively and with Algorithm 1; both runs rank every passage in the
// order of the twin's scores (the graph covers this tiny corpus).
Test(score_cli, encode_index_search) {
    char work[] = "/tmp/hyp_search_cli_XXXXXX";
    cr_assert_not_null(mkdtemp(work));
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             HYP_BIN " import --from " FX " --bert-config " FX "/bert_config.json --out %s/m.h5 2>/dev/null && "
             HYP_BIN " encode --model %s/m.h5 --corpus " FX "/passages.tsv --out %s/docs.h5 >/dev/null 2>&1 && "
             HYP_BIN " index --docs %s/docs.h5 --neighbors 1 --out %s/graph.h5 >/dev/null 2>&1 && "
             HYP_BIN " search --model %s/m.h5 --docs %s/docs.h5 --queries " FX "/queries.tsv --k 2 --out %s/exh.trec "
             "--summary %s/exh.json >/dev/null 2>&1 && "
             HYP_BIN " search --model %s/m.h5 --docs %s/docs.h5 --queries " FX "/queries.tsv --k 2 --graph %s/graph.h5 "
             "--entry-points 1 --candidates 1 --max-iter 4 --out %s/graph.trec >/dev/null 2>&1",
             work, work, work, work, work, work, work, work, work, work, work, work, work);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    // Expected order per query from the twin's scores.
    FILE *w = fopen(FX "/expected_scores.txt", "r");
    char q[4][16], d[4][16];
    double s[4];
    for (int i = 0; i < 4; i++) cr_assert_eq(fscanf(w, "%15s %15s %lf", q[i], d[i], &s[i]), 3);
    fclose(w);
    const char *runs[2] = {"exh.trec", "graph.trec"};
    for (int r = 0; r < 2; r++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", work, runs[r]);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        char qid[16], q0[8], did[16], tag[32];
        int rank;
        double score;
        int n = 0;
        while (fscanf(f, "%15s %7s %15s %d %lf %31s", qid, q0, did, &rank, &score, tag) == 6) {
            int qi = qid[1] - '0';
            const char *best = s[2 * qi] >= s[2 * qi + 1] ? d[2 * qi] : d[2 * qi + 1];
            if (rank == 1) cr_assert_str_eq(did, best, "%s: %s ranks %s first", runs[r], qid, did);
            cr_assert(fabs(score - s[2 * qi + (strcmp(did, "p1") == 0)]) <= TOL_E2E * fabs(score) + 1e-6,
                      "%s: %s %s score %.9g", runs[r], qid, did, score);
            n++;
        }
        fclose(f);
        cr_assert_eq(n, 4, "%s: 2 queries x 2 hits", runs[r]);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", work);
    cr_assert_eq(system(cmd), 0);
}
