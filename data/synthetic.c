#include "data/synthetic.h"
#include "kernels/elementwise.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// Attribute words (single WordPiece tokens once they are in the vocab).
static const char *const WORDS[] = {
    "amber", "azure", "coral", "ivory", "jade", "lilac", "ochre", "olive", "pearl", "plum",
    "ruby", "sable", "sage", "slate", "teal", "umber", "beryl", "cobalt", "flax", "garnet",
    "henna", "indigo", "mauve", "onyx", "quartz", "rust", "saffron", "topaz", "wine", "zinc",
    "birch", "cedar",
};
#define N_WORDS (int)(sizeof WORDS / sizeof WORDS[0])

SynthOptions synth_default(void) {
    return (SynthOptions){.seed = 7, .n_attr = 24, .doc_attrs = 6, .n_docs = 2000, .n_train = 4000,
                          .n_items = 16, .n_trap = 3, .n_val = 40, .n_test = 60};
}

// A deterministic stream of uniforms: Philox(seed, stream) element i.
typedef struct { uint64_t seed, stream, i; } Rng;
static double rnd(Rng *r) { return hyp_philox_uniform(r->seed, r->stream << 32, r->i++); }
static int rndint(Rng *r, int n) { int k = (int)(rnd(r) * n); return k < n ? k : n - 1; }

// A document: doc_attrs distinct attributes, as a bitmask and a shuffled word list.
static uint32_t random_doc(Rng *r, int n_attr, int k, int *order) {
    uint32_t m = 0;
    int got = 0;
    while (got < k) {
        int a = rndint(r, n_attr);
        if (m & (1u << a)) continue;
        m |= 1u << a;
        order[got++] = a;
    }
    return m;
}
static bool relevant(uint32_t doc, int a, int b) { return ((doc >> a) & 1) != ((doc >> b) & 1); }

static void write_doc(FILE *f, const int *order, int k) {
    for (int i = 0; i < k; i++) fprintf(f, "%s%s", i ? " " : "", WORDS[order[i]]);
}

static FILE *open_in(const char *dir, const char *name) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) hyp_set_error("%s: cannot write: %s", p, strerror(errno));
    return f;
}

int synth_write(const char *dir, const SynthOptions *opt) {
    SynthOptions o = opt ? *opt : synth_default();
    if (o.n_attr < 4 || o.n_attr > N_WORDS || o.doc_attrs < 2 || o.doc_attrs >= o.n_attr || o.n_items < 2 ||
        o.n_trap < 0 || o.n_trap > o.n_items - 1) {
        hyp_set_error("synthetic task: need 4 <= n_attr <= %d, 2 <= doc_attrs < n_attr, n_items >= 2, "
                      "0 <= n_trap < n_items", N_WORDS);
        return -1;
    }
    int n_pairs = o.n_attr * (o.n_attr - 1) / 2;
    if (o.n_val < 0 || o.n_test < 0 || o.n_val + o.n_test >= n_pairs) {
        hyp_set_error("synthetic task: %d val + %d test queries leave none of the %d attribute pairs for training",
                      o.n_val, o.n_test, n_pairs);
        return -1;
    }
    if (mkdir(dir, 0755) && errno != EEXIST) { hyp_set_error("%s: cannot create: %s", dir, strerror(errno)); return -1; }
    FILE *f = open_in(dir, "vocab.txt");
    if (!f) return -1;
    fprintf(f, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nxor\n");
    for (int i = 0; i < N_WORDS; i++) fprintf(f, "%s\n", WORDS[i]);
    fclose(f);

    // Evaluation corpus.
    int order[32];
    uint32_t *docs = hyp_malloc((size_t)o.n_docs * sizeof(uint32_t));
    Rng r = {o.seed, 1, 0};
    if (!(f = open_in(dir, "corpus.tsv"))) { free(docs); return -1; }
    for (int d = 0; d < o.n_docs; d++) {
        docs[d] = random_doc(&r, o.n_attr, o.doc_attrs, order);
        fprintf(f, "d%d\t", d);
        write_doc(f, order, o.doc_attrs);
        fputc('\n', f);
    }
    fclose(f);

    // Validation and test queries: disjoint random pairs, each with its qrels; training
    // never uses these pairs (held[a * n_attr + b]).
    bool *held = hyp_calloc((size_t)o.n_attr * o.n_attr, sizeof(bool));
    int *pa = hyp_malloc(n_pairs * sizeof(int)), *pb = hyp_malloc(n_pairs * sizeof(int));
    int np = 0;
    for (int a = 0; a < o.n_attr; a++)
        for (int b = a + 1; b < o.n_attr; b++) { pa[np] = a; pb[np] = b; np++; }
    Rng rp = {o.seed, 2, 0};
    for (int i = np - 1; i > 0; i--) {   // Fisher-Yates
        int j = rndint(&rp, i + 1), t = pa[i];
        pa[i] = pa[j]; pa[j] = t;
        t = pb[i]; pb[i] = pb[j]; pb[j] = t;
    }
    const char *qfile[2] = {"val_queries.tsv", "test_queries.tsv"}, *rfile[2] = {"val_qrels.txt", "test_qrels.txt"};
    int counts[2] = {o.n_val, o.n_test}, base = 0;
    for (int s = 0; s < 2; s++) {
        FILE *q = open_in(dir, qfile[s]), *qr = q ? open_in(dir, rfile[s]) : NULL;
        if (!q || !qr) { if (q) fclose(q); free(docs); free(pa); free(pb); free(held); return -1; }
        for (int i = 0; i < counts[s]; i++) {
            int a = pa[base + i], b = pb[base + i];
            held[a * o.n_attr + b] = held[b * o.n_attr + a] = true;
            fprintf(q, "%s%d\t%s xor %s\n", s ? "t" : "v", i, WORDS[a], WORDS[b]);
            for (int d = 0; d < o.n_docs; d++)
                fprintf(qr, "%s%d 0 d%d %d\n", s ? "t" : "v", i, d, relevant(docs[d], a, b) ? 1 : 0);
        }
        base += counts[s];
        fclose(q);
        fclose(qr);
    }

    // Training rows (authors' JSONL): random attribute pairs other than the validation and
    // test ones, fresh random documents; item 0 the positive (a relevant document), then
    // n_trap "both" documents (the XOR trap) and the rest "neither" ones; teacher scores
    // 5 / 0 plus a little noise. The mix matters: with as many "both" as "neither"
    // negatives the average gradient of a score linear in a and b is exactly zero (a saddle
    // where a from-scratch model only learns to shrink its scores); with fewer traps the
    // model first learns "a or b", then to demote "both".
    if (!(f = open_in(dir, "train.jsonl"))) { free(docs); free(pa); free(pb); free(held); return -1; }
    Rng rt = {o.seed, 3, 0};
    int trap_every = o.n_trap ? (o.n_items - 1) / o.n_trap : 0;
    for (int row = 0; row < o.n_train; row++) {
        int a, b;
        do {
            a = rndint(&rt, o.n_attr);
            b = rndint(&rt, o.n_attr - 1);
            if (b >= a) b++;
        } while (held[a * o.n_attr + b]);
        fprintf(f, "{\"query\": {\"id\": \"tq%d\", \"content\": \"%s xor %s\"}, \"items\": [", row, WORDS[a], WORDS[b]);
        for (int it = 0; it < o.n_items; it++) {
            // want: 0 relevant, 1 both, 2 neither
            int want = it == 0 ? 0 : trap_every && it % trap_every == 0 && it / trap_every <= o.n_trap ? 1 : 2;
            uint32_t m;
            for (int tries = 0;; tries++) {
                m = random_doc(&rt, o.n_attr, o.doc_attrs, order);
                bool both = ((m >> a) & 1) && ((m >> b) & 1);
                int kind = relevant(m, a, b) ? 0 : both ? 1 : 2;
                if (kind == want || tries > 200) break;
            }
            double score = (relevant(m, a, b) ? 5.0 : 0.0) + 0.2 * (rnd(&rt) - 0.5);
            fprintf(f, "%s{\"id\": \"r%di%d\", \"content\": \"", it ? ", " : "", row, it);
            write_doc(f, order, o.doc_attrs);
            fprintf(f, "\", \"score\": %.4f}", score);
        }
        fprintf(f, "]}\n");
    }
    fclose(f);
    free(docs);
    free(pa);
    free(pb);
    free(held);
    return 0;
}
