// cmd_eval.c: `hyp eval`, a drop-in for trec_eval on its qrels/trec_results measures,
// plus ir_measures names and a paired significance report (--compare).
#include "cli/commands.h"
#include "autograd/util.h"
#include "eval/metrics.h"
#include "eval/signif.h"
#include "eval/trec.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: hyp eval [options] QRELS RUN\n"
    "  trec_eval options:\n"
    "    -q                 per-query values, then the summary\n"
    "    -c                 average over every qrels query (missing ones score 0)\n"
    "    -n                 no summary\n"
    "    -l N               minimum grade counted relevant (default 1)\n"
    "    -M N               evaluate only the top N documents per query\n"
    "    -J                 drop unjudged documents first\n"
    "    -N N               documents in the collection (utility)\n"
    "    -m MEASURE[.P,..]  measure (repeatable): map, P.5,10, ndcg_cut.10, recip_rank,\n"
    "                       all_trec, official (default), set; or ir_measures names:\n"
    "                       nDCG@10, RR@10, RR(rel=2)@10, R@1000, AP, P@10, Rprec\n"
    "  significance:\n"
    "    --compare RUN_B    compare RUN (A) with RUN_B per measure: means, B-A,\n"
    "                       paired t-test p and randomization test p (two-sided)\n"
    "    --permutations N   randomization test permutations (default 10000)\n"
    "    --seed N           randomization test seed (default 42)\n";

typedef struct {
    TrecEvalOptions opt;
    TrecMeasureSet *ms;
    bool per_query, summary;
    const char *compare;
    long permutations;
    unsigned long long seed;
    const char *qrels_path, *run_path;
} EvalArgs;

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "hyp eval: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", USAGE);
    return 1;
}

// Integer option values through the strict parser: "-l 2x" or "-M 1e3" is an error
// naming the option, not a silent 2 or 1.
static bool parse_long_arg(const char *flag, const char *s, long *out) {
    return hyp_parse_long(flag, s, LONG_MIN, LONG_MAX, out) == 0;
}

// Value of an option given as "-lN", "-l N", "--opt=N" or "--opt N".
static const char *option_value(int argc, char **argv, int *i, const char *attached) {
    if (attached && *attached) return attached;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

// Not cli_parse: `hyp eval` takes trec_eval's own getopt grammar (grouped switches "-qc",
// attached values "-l2" "-mP.10", its long names), so scripts written for trec_eval run as is.
// Long by design: a flat dispatch over the options, a few lines each.
static int parse_args(int argc, char **argv, EvalArgs *a) {
    const char *pos[2];
    int npos = 0;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        char *s = argv[i];
        if (options_done || s[0] != '-' || !s[1]) {
            if (npos == 2) return usage_error("too many arguments at '%s'", s);
            pos[npos++] = s;
            continue;
        }
        if (!strcmp(s, "--")) {
            options_done = true;
            continue;
        }
        if (s[1] == '-') {
            // long options, trec_eval's and ours; "--name=value" or "--name value"
            char name[64];
            const char *eq = strchr(s, '=');
            size_t len = eq ? (size_t)(eq - s) : strlen(s);
            if (len >= sizeof name) return usage_error("unknown option '%s'", s);
            memcpy(name, s, len);
            name[len] = '\0';
            const char *attached = eq ? eq + 1 : NULL;
            const char *v = NULL;
            long n;
            if (!strcmp(name, "--help")) {
                fputs(USAGE, stdout);
                return -1;
            } else if (!strcmp(name, "--query_eval_wanted")) {
                a->per_query = true;
            } else if (!strcmp(name, "--complete_rel_info_wanted")) {
                a->opt.complete = true;
            } else if (!strcmp(name, "--nosummary")) {
                a->summary = false;
            } else if (!strcmp(name, "--Judged_docs_only")) {
                a->opt.judged_only = true;
            } else if (!strcmp(name, "--compare")) {
                if (!(v = option_value(argc, argv, &i, attached))) return usage_error("%s needs a run file", name);
                a->compare = v;
            } else if (!strcmp(name, "--measure")) {
                if (!(v = option_value(argc, argv, &i, attached))) return usage_error("%s needs a measure", name);
                if (trec_measures_add(a->ms, v)) return usage_error("%s", hyp_last_error());
            } else if (!strcmp(name, "--seed") || !strcmp(name, "--permutations") ||
                       !strcmp(name, "--level_for_rel") || !strcmp(name, "--Max_retrieved_per_topic") ||
                       !strcmp(name, "--Number_docs_in_coll")) {
                if (!(v = option_value(argc, argv, &i, attached))) return usage_error("%s needs an integer", name);
                if (!parse_long_arg(name, v, &n)) return usage_error("%s", hyp_last_error());
                if (!strcmp(name, "--seed")) a->seed = (unsigned long long)n;
                else if (!strcmp(name, "--permutations")) {
                    if (n < 1) return usage_error("%s must be at least 1", name);
                    a->permutations = n;
                } else if (!strcmp(name, "--level_for_rel")) a->opt.relevance_level = n;
                else if (!strcmp(name, "--Max_retrieved_per_topic")) a->opt.max_docs = n;
                else a->opt.num_docs_in_coll = n;
            } else {
                return usage_error("unknown option '%s'", s);
            }
            continue;
        }
        // short options; flags may be grouped ("-qc"), values attached ("-l2", "-mP.10")
        for (char *f = s + 1; *f; f++) {
            const char *v;
            long n;
            switch (*f) {
            case 'q': a->per_query = true; break;
            case 'c': a->opt.complete = true; break;
            case 'n': a->summary = false; break;
            case 'J': a->opt.judged_only = true; break;
            case 'h': fputs(USAGE, stdout); return -1;
            case 'v': printf("hyp eval (hypencoder.c %s), trec_eval 10 compatible\n", HYP_VERSION); return -1;
            case 'm':
                if (!(v = option_value(argc, argv, &i, f + 1))) return usage_error("%s", "-m needs a measure");
                if (trec_measures_add(a->ms, v)) return usage_error("%s", hyp_last_error());
                f += strlen(f) - 1;
                break;
            case 'l':
            case 'M':
            case 'N': {
                char opt = *f;
                char flag[3] = {'-', opt, 0};
                if (!(v = option_value(argc, argv, &i, f + 1))) {
                    char msg[] = "-X needs an integer";
                    msg[1] = opt;
                    return usage_error("%s", msg);
                }
                if (!parse_long_arg(flag, v, &n)) return usage_error("%s", hyp_last_error());
                if (opt == 'l') a->opt.relevance_level = n;
                else if (opt == 'M') a->opt.max_docs = n;
                else a->opt.num_docs_in_coll = n;
                f += strlen(f) - 1;
                break;
            }
            case 'D': case 'R': case 'T': case 'Z': case 'o': {
                char msg[] = "option -X is not supported";
                msg[8] = *f;
                return usage_error("%s", msg);
            }
            default: {
                char opt[3] = {'-', *f, 0};
                return usage_error("unknown option '%s'", opt);
            }
            }
        }
    }
    if (npos != 2) return usage_error("%s", "expected QRELS and RUN files");
    a->qrels_path = pos[0];
    a->run_path = pos[1];
    return 0;
}

// Per-measure paired comparison of two evaluations over the queries both evaluated.
static int print_comparison(const TrecEvalResult *ra, const TrecEvalResult *rb,
                            const EvalArgs *a) {
    size_t n = 0;
    size_t *ia = hyp_malloc((ra->num_queries + 1) * sizeof *ia);
    size_t *ib = hyp_malloc((ra->num_queries + 1) * sizeof *ib);
    // both row lists are in qid strcmp order: merge
    for (size_t i = 0, j = 0; i < ra->num_queries && j < rb->num_queries;) {
        int c = strcmp(ra->qids[i], rb->qids[j]);
        if (c == 0) {
            ia[n] = i++;
            ib[n++] = j++;
        } else if (c < 0) {
            i++;
        } else {
            j++;
        }
    }
    if (n != ra->num_queries || n != rb->num_queries)
        fprintf(stderr, "hyp eval: note: runs cover different queries (%zu and %zu); comparing "
                "the %zu in both (use -c to score missing queries as 0)\n",
                ra->num_queries, rb->num_queries, n);
    if (n == 0) {
        fprintf(stderr, "hyp eval: no query evaluated in both runs\n");
        free(ia);
        free(ib);
        return 1;
    }
    printf("# A: %s (runid %s)  B: %s (runid %s)  queries: %zu\n", a->run_path, ra->runid,
           a->compare, rb->runid, n);
    printf("# two-sided p-values: paired t-test; paired randomization test, %ld permutations, "
           "seed %llu\n", a->permutations, a->seed);
    printf("%-22s\t%s\t%s\t%s\t%s\t%s\n", "measure", "mean_A", "mean_B", "B-A", "p_t", "p_rand");
    double *va = hyp_malloc(n * sizeof *va), *vb = hyp_malloc(n * sizeof *vb);
    for (size_t c = 0; c < ra->num_cols; c++) {
        const TrecColumn *col = &ra->cols[c];
        if (col->kind != TREC_COL_FLOAT || !col->per_query) continue;
        double ma = 0, mb = 0;
        for (size_t k = 0; k < n; k++) {
            va[k] = ra->values[ia[k] * ra->num_cols + c];
            vb[k] = rb->values[ib[k] * rb->num_cols + c];
            ma += va[k];
            mb += vb[k];
        }
        ma /= (double)n;
        mb /= (double)n;
        double pt = signif_paired_t(va, vb, n, NULL);
        double pr = signif_randomization(va, vb, n, a->permutations, a->seed);
        printf("%-22s\t%6.4f\t%6.4f\t%+.4f\t%6.4f\t%6.4f\n", col->name, ma, mb, mb - ma, pt, pr);
    }
    free(va);
    free(vb);
    free(ia);
    free(ib);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    EvalArgs a = {.opt = trec_eval_default_options(), .ms = trec_measures_new(),
                  .per_query = false, .summary = true, .permutations = 10000, .seed = 42};
    TrecQrels *qrels = NULL;
    TrecRun *run = NULL, *run_b = NULL;
    TrecEvalResult *res = NULL, *res_b = NULL;
    int rc = parse_args(argc, argv, &a);
    if (rc) {
        rc = rc < 0 ? 0 : 1;
        goto done;
    }
    rc = 1;
    if (!(qrels = trec_qrels_read(a.qrels_path)) || !(run = trec_run_read(a.run_path)) ||
        (a.compare && !(run_b = trec_run_read(a.compare)))) {
        fprintf(stderr, "hyp eval: %s\n", hyp_last_error());
        goto done;
    }
    if (!(res = trec_evaluate(qrels, run, a.ms, &a.opt)) ||
        (run_b && !(res_b = trec_evaluate(qrels, run_b, a.ms, &a.opt)))) {
        fprintf(stderr, "hyp eval: %s\n", hyp_last_error());
        goto done;
    }
    if (res_b) {
        rc = print_comparison(res, res_b, &a);
    } else {
        trec_result_print(res, stdout, a.per_query, a.summary);
        rc = 0;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "hyp eval: cannot write output: %s\n", strerror(errno));
        rc = 1;
    }
done:
    trec_result_free(res);
    trec_result_free(res_b);
    trec_run_free(run);
    trec_run_free(run_b);
    trec_qrels_free(qrels);
    trec_measures_free(a.ms);
    return rc;
}
