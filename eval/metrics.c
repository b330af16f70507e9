// metrics.c: trec_eval's measures, its option semantics and its output format.
//
// The numbers must agree with NIST trec_eval to the last printed digit, so each
// measure keeps trec_eval's arithmetic (same operations, same order, same special
// cases) even where a textbook formula would be shorter. Where trec_eval's behaviour
// is a quirk, the comment says so.
//
// Per query: the run's documents are sorted once (score desc, docno desc), cut at -M,
// looked up in the qrels hash, and reduced to a list of relevance values:
//   grade >= 0  judged,   -1 not in the qrels ("nonpool"),   -2 judged < 0 ("unjudged").
// Every measure is a function of that list and of the query's grade counts.
// Queries are independent, so they are evaluated in parallel; sums over queries run in
// qid order afterwards so the averages are bit-identical to trec_eval's.
#include "eval/metrics.h"
#include "eval/trec_internal.h"
#include "autograd/util.h"

#include <ctype.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define REL_NONPOOL (-1)
#define REL_UNJUDGED (-2)
#define MIN_GEO_MEAN 0.00001
#define INFAP_EPSILON 0.00001
#define LEVEL_FROM_OPTIONS LONG_MIN

static char *xstrndup(const char *s, size_t n) {
    char *d = hyp_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

TrecEvalOptions trec_eval_default_options(void) {
    return (TrecEvalOptions){.relevance_level = 1, .max_docs = LONG_MAX, .complete = false,
                             .judged_only = false, .num_docs_in_coll = 0};
}

// ---------------------------------------------------------------- measure families
// In trec_eval's table order: output lines follow it whatever the -m order.
typedef enum {
    F_RUNID, F_NUM_Q, F_NUM_RET, F_NUM_REL, F_NUM_REL_RET, F_MAP, F_GM_MAP, F_RPREC, F_BPREF,
    F_RECIP_RANK, F_IPREC_AT_RECALL, F_P, F_RELSTRING, F_RECALL, F_INFAP, F_GM_BPREF,
    F_RPREC_MULT, F_UTILITY, F_11PT_AVG, F_BING, F_G, F_DCG, F_IDEAL_DCG, F_NDCG, F_NDCG_REL,
    F_RNDCG, F_NDCG_CUT, F_MAP_CUT, F_RELATIVE_P, F_SUCCESS, F_SET_P, F_SET_RELATIVE_P,
    F_SET_RECALL, F_SET_MAP, F_SET_F, F_NUM_NONREL_JUDGED_RET, F_RBP, F_RBP_RESID, F_UNJ,
    F_COUNT
} Family;

typedef enum { PK_NONE, PK_LONG_CUTS, PK_DOUBLE_CUTS, PK_DOUBLES, PK_PAIRS } ParamKind;

// How a family is printed and averaged.
typedef enum {
    AG_MEAN,      // %6.4f per query, arithmetic mean
    AG_SUM,       // %ld per query, summed (num_ret, ...)
    AG_GEO,       // summary only: exp(mean(log(value)))
    AG_RUNID,     // summary only, a string
    AG_NUM_Q,     // summary only, number of queries
    AG_STRING     // per query only, quoted string (relstring)
} Aggregation;

static const long CUTS_STD[] = {5, 10, 15, 20, 30, 100, 200, 500, 1000};
static const long CUTS_SUCCESS[] = {1, 5, 10};
static const long CUTS_UNJ[] = {5, 10, 20};
static const double CUTS_RECALL_PTS[] = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
static const double CUTS_RPREC_MULT[] = {0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0};
static const double PARAMS_RELSTRING[] = {10.0};
static const double PARAMS_UTILITY[] = {1.0, -1.0, 0.0, 0.0};
static const double PARAMS_SET_F[] = {1.0};

typedef struct {
    const char *name;
    ParamKind pk;
    Aggregation ag;
    const long *lcuts;        // default long cutoffs
    const double *dvals;      // default double cutoffs / params
    size_t ndefault;
} FamilyInfo;

#define N_(a) (sizeof(a) / sizeof((a)[0]))
// Unsized: the assert below then fails to compile when the last families have no entry;
// trec_families_check() (tested) finds holes inside.
static const FamilyInfo FAMILIES[] = {
    [F_RUNID] = {"runid", PK_NONE, AG_RUNID, NULL, NULL, 0},
    [F_NUM_Q] = {"num_q", PK_NONE, AG_NUM_Q, NULL, NULL, 0},
    [F_NUM_RET] = {"num_ret", PK_NONE, AG_SUM, NULL, NULL, 0},
    [F_NUM_REL] = {"num_rel", PK_NONE, AG_SUM, NULL, NULL, 0},
    [F_NUM_REL_RET] = {"num_rel_ret", PK_NONE, AG_SUM, NULL, NULL, 0},
    [F_MAP] = {"map", PK_NONE, AG_MEAN, NULL, NULL, 0},
    [F_GM_MAP] = {"gm_map", PK_NONE, AG_GEO, NULL, NULL, 0},
    [F_RPREC] = {"Rprec", PK_NONE, AG_MEAN, NULL, NULL, 0},
    [F_BPREF] = {"bpref", PK_NONE, AG_MEAN, NULL, NULL, 0},
    [F_RECIP_RANK] = {"recip_rank", PK_NONE, AG_MEAN, NULL, NULL, 0},
    [F_IPREC_AT_RECALL] = {"iprec_at_recall", PK_DOUBLE_CUTS, AG_MEAN, NULL, CUTS_RECALL_PTS,
                           N_(CUTS_RECALL_PTS)},
    [F_P] = {"P", PK_LONG_CUTS, AG_MEAN, CUTS_STD, NULL, N_(CUTS_STD)},
    [F_RELSTRING] = {"relstring", PK_DOUBLES, AG_STRING, NULL, PARAMS_RELSTRING,
                     N_(PARAMS_RELSTRING)},
    [F_RECALL] = {"recall", PK_LONG_CUTS, AG_MEAN, CUTS_STD, NULL, N_(CUTS_STD)},
    [F_INFAP] = {"infAP", PK_NONE, AG_MEAN, NULL, NULL, 0},
    [F_GM_BPREF] = {"gm_bpref", PK_NONE, AG_GEO, NULL, NULL, 0},
    [F_RPREC_MULT] = {"Rprec_mult", PK_DOUBLE_CUTS, AG_MEAN, NULL, CUTS_RPREC_MULT,
                      N_(CUTS_RPREC_MULT)},
    [F_UTILITY] = {"utility", PK_DOUBLES, AG_MEAN, NULL, PARAMS_UTILITY, N_(PARAMS_UTILITY)},
    [F_11PT_AVG] = {"11pt_avg", PK_DOUBLES, AG_MEAN, NULL, CUTS_RECALL_PTS,
                    N_(CUTS_RECALL_PTS)},
    [F_BING] = {"binG", PK_NONE, AG_MEAN, NULL, NULL, 0},
    [F_G] = {"G", PK_PAIRS, AG_MEAN, NULL, NULL, 0},
    [F_DCG] = {"dcg", PK_PAIRS, AG_MEAN, NULL, NULL, 0},
    [F_IDEAL_DCG] = {"ideal_dcg", PK_PAIRS, AG_MEAN, NULL, NULL, 0},
    [F_NDCG] = {"ndcg", PK_PAIRS, AG_MEAN, NULL, NULL, 0},
    [F_NDCG_REL] = {"ndcg_rel", PK_PAIRS, AG_MEAN, NULL, NULL, 0},
    [F_RNDCG] = {"Rndcg", PK_PAIRS, AG_MEAN, NULL, NULL, 0},
    [F_NDCG_CUT] = {"ndcg_cut", PK_LONG_CUTS, AG_MEAN, CUTS_STD, NULL, N_(CUTS_STD)},
    [F_MAP_CUT] = {"map_cut", PK_LONG_CUTS, AG_MEAN, CUTS_STD, NULL, N_(CUTS_STD)},
    [F_RELATIVE_P] = {"relative_P", PK_LONG_CUTS, AG_MEAN, CUTS_STD, NULL, N_(CUTS_STD)},
    [F_SUCCESS] = {"success", PK_LONG_CUTS, AG_MEAN, CUTS_SUCCESS, NULL, N_(CUTS_SUCCESS)},
    [F_SET_P] = {"set_P", PK_NONE, AG_MEAN, NULL, NULL, 0},
    [F_SET_RELATIVE_P] = {"set_relative_P", PK_NONE, AG_MEAN, NULL, NULL, 0},
    [F_SET_RECALL] = {"set_recall", PK_NONE, AG_MEAN, NULL, NULL, 0},
    [F_SET_MAP] = {"set_map", PK_NONE, AG_MEAN, NULL, NULL, 0},
    [F_SET_F] = {"set_F", PK_DOUBLES, AG_MEAN, NULL, PARAMS_SET_F, N_(PARAMS_SET_F)},
    [F_NUM_NONREL_JUDGED_RET] = {"num_nonrel_judged_ret", PK_NONE, AG_SUM, NULL, NULL, 0},
    [F_RBP] = {"rbp", PK_PAIRS, AG_MEAN, NULL, NULL, 0},
    [F_RBP_RESID] = {"rbp_resid", PK_PAIRS, AG_MEAN, NULL, NULL, 0},
    [F_UNJ] = {"unj", PK_LONG_CUTS, AG_MEAN, CUTS_UNJ, NULL, N_(CUTS_UNJ)},
};
_Static_assert(N_(FAMILIES) == F_COUNT, "one FamilyInfo per family");

int trec_families_check(void) {
    for (int f = 0; f < F_COUNT; f++)
        if (!FAMILIES[f].name) return f;
    return -1;
}

static const Family NICK_OFFICIAL[] = {F_RUNID, F_NUM_Q, F_NUM_RET, F_NUM_REL, F_NUM_REL_RET,
                                       F_MAP, F_GM_MAP, F_RPREC, F_BPREF, F_RECIP_RANK,
                                       F_IPREC_AT_RECALL, F_P};
static const Family NICK_SET[] = {F_RUNID, F_NUM_Q, F_NUM_RET, F_NUM_REL, F_NUM_REL_RET,
                                  F_UTILITY, F_SET_P, F_SET_RECALL, F_SET_RELATIVE_P,
                                  F_SET_MAP, F_SET_F};
// all_trec: every family computable from qrels + trec results except dcg/ideal_dcg,
// which trec_eval 10 leaves out of the nickname.
static const Family NICK_ALL_TREC[] = {
    F_RUNID, F_NUM_Q, F_NUM_RET, F_NUM_REL, F_NUM_REL_RET, F_MAP, F_GM_MAP, F_RPREC, F_BPREF,
    F_RECIP_RANK, F_IPREC_AT_RECALL, F_P, F_RELSTRING, F_RECALL, F_INFAP, F_GM_BPREF,
    F_RPREC_MULT, F_UTILITY, F_11PT_AVG, F_BING, F_G, F_NDCG, F_NDCG_REL, F_RNDCG, F_NDCG_CUT,
    F_MAP_CUT, F_RELATIVE_P, F_SUCCESS, F_SET_P, F_SET_RELATIVE_P, F_SET_RECALL, F_SET_MAP,
    F_SET_F, F_NUM_NONREL_JUDGED_RET, F_RBP, F_RBP_RESID, F_UNJ};

// ---------------------------------------------------------------- measure instances
typedef struct {
    char *name;      // parameter name ("1", "p")
    double value;
} Pair;

typedef struct {
    Family fam;
    bool params_given;
    long *lcuts;         // (nl) ascending, > 0, unique
    size_t nl;
    double *dvals;       // (nd) ascending cutoffs (PK_DOUBLE_CUTS) or raw params (PK_DOUBLES)
    size_t nd;
    Pair *pairs;         // (np)
    size_t np;
    char *printable;     // parameter text as given (names "utility_2,-1,0,0")
    long level;          // LEVEL_FROM_OPTIONS or a per-measure -l (ir_measures rel=)
    long depth;          // 0 or a per-measure -M (ir_measures RR@k)
    char *display;       // ir_measures name: one column with this name
} Inst;

struct TrecMeasureSet {
    bool marked[F_COUNT];
    Inst trec[F_COUNT];  // params of trec_eval-style measures (first list given wins)
    Inst *ir;            // (nir) ir_measures-style instances, in the order given
    size_t nir, capir;
};

TrecMeasureSet *trec_measures_new(void) {
    TrecMeasureSet *ms = hyp_calloc(1, sizeof *ms);
    for (int f = 0; f < F_COUNT; f++) ms->trec[f] = (Inst){.fam = (Family)f, .level = LEVEL_FROM_OPTIONS};
    return ms;
}

static void inst_free(Inst *m) {
    free(m->lcuts);
    free(m->dvals);
    for (size_t i = 0; i < m->np; i++) free(m->pairs[i].name);
    free(m->pairs);
    free(m->printable);
    free(m->display);
}

void trec_measures_free(TrecMeasureSet *ms) {
    if (!ms) return;
    for (int f = 0; f < F_COUNT; f++) inst_free(&ms->trec[f]);
    for (size_t i = 0; i < ms->nir; i++) inst_free(&ms->ir[i]);
    free(ms->ir);
    free(ms);
}

bool trec_measures_empty(const TrecMeasureSet *ms) {
    if (ms->nir) return false;
    for (int f = 0; f < F_COUNT; f++)
        if (ms->marked[f]) return false;
    return true;
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static size_t count_commas(const char *s) {
    size_t n = 1;
    for (; *s; s++) n += *s == ',';
    return n;
}

// Parses "a,b,c" into the instance according to its family's parameter kind,
// with trec_eval's checks (positive unique long cutoffs, unique double cutoffs,
// well-formed name=value pairs). Numbers go through the strict parser (autograd/util.h):
// "1e3" or "10x" is an error, not trec_eval's silent 1 or 10; the one leniency kept is
// trec_eval's reading of a decimal cutoff in its own test outputs, "23.4" -> 23.
static int inst_parse_params(Inst *m, const char *params) {
    const FamilyInfo *fi = &FAMILIES[m->fam];
    const char *mname = fi->name;
    if (fi->pk == PK_NONE) {
        hyp_set_error("measure '%s' takes no parameters (got '%s')", mname, params);
        return -1;
    }
    size_t n = count_commas(params);
    char *copy = hyp_strdup(params);
    char *tok = copy, *next;
    int rc = 0;
    switch (fi->pk) {
    case PK_LONG_CUTS:
        m->lcuts = hyp_malloc(n * sizeof(long));
        for (m->nl = 0; tok; tok = next) {
            next = strchr(tok, ',');
            if (next) *next++ = '\0';
            long v;
            if (hyp_parse_long(NULL, tok, LONG_MIN, LONG_MAX, &v)) {
                // digits '.' digits: the fraction is dropped, as trec_eval does
                size_t ip = strspn(tok, "0123456789");
                bool decimal = ip && tok[ip] == '.' && tok[ip + 1 + strspn(tok + ip + 1, "0123456789")] == '\0';
                if (decimal) tok[ip] = '\0';
                if (!decimal || hyp_parse_long(NULL, tok, 0, LONG_MAX, &v)) {
                    if (decimal) tok[ip] = '.';
                    hyp_set_error("measure '%s': cutoff \"%s\": expected a whole number of documents", mname, tok);
                    rc = -1;
                    goto done;
                }
            }
            m->lcuts[m->nl++] = v;
        }
        qsort(m->lcuts, m->nl, sizeof(long), cmp_long);
        if (m->lcuts[0] <= 0) {
            hyp_set_error("measure '%s': cutoffs must be positive", mname);
            rc = -1;
        }
        for (size_t i = 1; i < m->nl && !rc; i++)
            if (m->lcuts[i] == m->lcuts[i - 1]) {
                hyp_set_error("measure '%s': duplicate cutoff %ld", mname, m->lcuts[i]);
                rc = -1;
            }
        break;
    case PK_DOUBLE_CUTS:
    case PK_DOUBLES:
        m->dvals = hyp_malloc(n * sizeof(double));
        for (m->nd = 0; tok; tok = next) {
            next = strchr(tok, ',');
            if (next) *next++ = '\0';
            if (hyp_parse_f64(NULL, tok, -DBL_MAX, DBL_MAX, &m->dvals[m->nd])) {
                hyp_set_error("measure '%s': parameter \"%s\": expected a number", mname, tok);
                rc = -1;
                goto done;
            }
            m->nd++;
        }
        if (fi->pk == PK_DOUBLE_CUTS) {
            qsort(m->dvals, m->nd, sizeof(double), cmp_double);
            for (size_t i = 1; i < m->nd && !rc; i++)
                if (m->dvals[i] == m->dvals[i - 1]) {
                    hyp_set_error("measure '%s': duplicate cutoff %g", mname, m->dvals[i]);
                    rc = -1;
                }
        }
        if (m->fam == F_UTILITY && m->nd != 4) {
            hyp_set_error("measure 'utility' needs 4 coefficients, got %zu", m->nd);
            rc = -1;
        }
        break;
    case PK_PAIRS:
        m->pairs = hyp_calloc(n, sizeof(Pair));
        for (m->np = 0; tok; tok = next) {
            next = strchr(tok, ',');
            if (next) *next++ = '\0';
            char *eq = strchr(tok, '=');
            if (!eq || eq == tok || strchr(eq + 1, '=') || !eq[1]) {
                hyp_set_error("measure '%s': malformed pair parameters in '%s' "
                              "(expected name=value,...)", mname, params);
                rc = -1;
                goto done;
            }
            *eq = '\0';
            double val;
            if (hyp_parse_f64(NULL, eq + 1, -DBL_MAX, DBL_MAX, &val)) {
                hyp_set_error("measure '%s': value \"%s\" of %s: expected a number", mname, eq + 1, tok);
                rc = -1;
                goto done;
            }
            m->pairs[m->np].name = hyp_strdup(tok);
            m->pairs[m->np].value = val;
            m->np++;
        }
        break;
    case PK_NONE:
        break;
    }
    if (!rc) m->printable = hyp_strdup(params);
done:
    free(copy);
    if (rc) {   // leave the measure as if no parameters had been given
        Inst clean = {.fam = m->fam, .level = m->level, .depth = m->depth, .display = m->display};
        m->display = NULL;
        inst_free(m);
        *m = clean;
        return rc;
    }
    m->params_given = true;
    return rc;
}

static long family_by_name(const char *name) {
    for (int f = 0; f < F_COUNT; f++)
        if (!strcmp(FAMILIES[f].name, name)) return f;
    return -1;
}

static int mark_nickname(TrecMeasureSet *ms, const Family *list, size_t n) {
    for (size_t i = 0; i < n; i++) ms->marked[list[i]] = true;
    return 0;
}

// ir_measures names -> trec_eval family. `at` says what @k means for it.
typedef enum { AT_NONE, AT_DEPTH, AT_CUTOFF, AT_DOUBLE_CUTOFF } AtKind;
typedef struct {
    const char *name;
    Family plain;        // family without @k
    Family with_at;      // family with @k
    AtKind at;           // meaning of @k
    bool at_required;
    bool gains;          // graded measure: rel= makes no sense
} IrName;

static const IrName IR_NAMES[] = {
    {"AP", F_MAP, F_MAP_CUT, AT_CUTOFF, false, false},
    {"MAP", F_MAP, F_MAP_CUT, AT_CUTOFF, false, false},
    {"nDCG", F_NDCG, F_NDCG_CUT, AT_CUTOFF, false, true},
    {"NDCG", F_NDCG, F_NDCG_CUT, AT_CUTOFF, false, true},
    {"RR", F_RECIP_RANK, F_RECIP_RANK, AT_DEPTH, false, false},
    {"MRR", F_RECIP_RANK, F_RECIP_RANK, AT_DEPTH, false, false},
    {"P", F_P, F_P, AT_CUTOFF, true, false},
    {"R", F_RECALL, F_RECALL, AT_CUTOFF, true, false},
    {"Recall", F_RECALL, F_RECALL, AT_CUTOFF, true, false},
    {"Success", F_SUCCESS, F_SUCCESS, AT_CUTOFF, true, false},
    {"Rprec", F_RPREC, F_RPREC, AT_DEPTH, false, false},
    {"RPrec", F_RPREC, F_RPREC, AT_DEPTH, false, false},
    {"Bpref", F_BPREF, F_BPREF, AT_DEPTH, false, false},
    {"BPref", F_BPREF, F_BPREF, AT_DEPTH, false, false},
    {"infAP", F_INFAP, F_INFAP, AT_DEPTH, false, false},
    {"IPrec", F_IPREC_AT_RECALL, F_IPREC_AT_RECALL, AT_DOUBLE_CUTOFF, true, false},
    {"NumQ", F_NUM_Q, F_NUM_Q, AT_NONE, false, false},
    {"NumRet", F_NUM_RET, F_NUM_RET, AT_DEPTH, false, false},
    {"NumRel", F_NUM_REL, F_NUM_REL, AT_NONE, false, false},
    {"NumRelRet", F_NUM_REL_RET, F_NUM_REL_RET, AT_DEPTH, false, false},
    {"SetP", F_SET_P, F_SET_P, AT_DEPTH, false, false},
    {"SetR", F_SET_RECALL, F_SET_RECALL, AT_DEPTH, false, false},
    {"SetF", F_SET_F, F_SET_F, AT_DEPTH, false, false},
    {"SetAP", F_SET_MAP, F_SET_MAP, AT_DEPTH, false, false},
    {"SetRelP", F_SET_RELATIVE_P, F_SET_RELATIVE_P, AT_DEPTH, false, false},
};

// NAME [ '(' key=value {, key=value} ')' ] [ '@' NUMBER ]
static int parse_ir_measure(TrecMeasureSet *ms, const char *spec, bool *handled) {
    *handled = false;
    size_t nlen = strcspn(spec, "(@");
    const IrName *ir = NULL;
    for (size_t i = 0; i < N_(IR_NAMES); i++)
        if (strlen(IR_NAMES[i].name) == nlen && !strncmp(IR_NAMES[i].name, spec, nlen))
            ir = &IR_NAMES[i];
    if (!ir) return 0;
    *handled = true;
    long level = LEVEL_FROM_OPTIONS;
    const char *p = spec + nlen;
    if (*p == '(') {
        const char *close = strchr(p, ')');
        if (!close) {
            hyp_set_error("measure '%s': missing ')'", spec);
            return -1;
        }
        char *args = xstrndup(p + 1, (size_t)(close - p - 1));
        int rc = 0;
        for (char *tok = args, *next; tok && *tok && !rc; tok = next) {
            next = strchr(tok, ',');
            if (next) *next++ = '\0';
            while (isspace((unsigned char)*tok)) tok++;
            long v;
            if (!strncmp(tok, "rel=", 4)) {
                if (hyp_parse_long(NULL, tok + 4, LONG_MIN, LONG_MAX, &v)) {
                    hyp_set_error("measure '%s': rel= needs an integer", spec);
                    rc = -1;
                } else if (ir->gains) {
                    hyp_set_error("measure '%s': rel= does not apply to a graded measure "
                                  "(trec_eval's nDCG uses every grade as its gain)", spec);
                    rc = -1;
                } else {
                    level = v;
                }
            } else {
                hyp_set_error("measure '%s': unknown parameter '%s' (only rel=N)", spec, tok);
                rc = -1;
            }
        }
        free(args);
        if (rc) return -1;
        p = close + 1;
    }
    bool has_at = false;
    double at = 0;
    if (*p == '@') {
        long cut = 0;
        if (ir->at == AT_NONE) {
            hyp_set_error("measure '%s': %s takes no @ cutoff", spec, ir->name);
            return -1;
        }
        if (ir->at == AT_DOUBLE_CUTOFF ? hyp_parse_f64(NULL, p + 1, -DBL_MAX, DBL_MAX, &at)
                                       : hyp_parse_long(NULL, p + 1, 1, LONG_MAX, &cut)) {
            char why[256];
            snprintf(why, sizeof why, "%s", hyp_last_error());
            hyp_set_error("measure '%s': bad @ cutoff: %s", spec, why);
            return -1;
        }
        if (ir->at != AT_DOUBLE_CUTOFF) at = (double)cut;
        has_at = true;
        p += strlen(p);
    }
    if (*p) {
        hyp_set_error("measure '%s': unexpected text '%s'", spec, p);
        return -1;
    }
    if (ir->at_required && !has_at) {
        hyp_set_error("measure '%s' needs a cutoff, e.g. %s@10", spec, ir->name);
        return -1;
    }
    if (ms->nir == ms->capir) {
        ms->capir = ms->capir ? 2 * ms->capir : 8;
        ms->ir = hyp_realloc(ms->ir, ms->capir * sizeof *ms->ir);
    }
    Inst *m = &ms->ir[ms->nir];
    *m = (Inst){.fam = has_at ? ir->with_at : ir->plain, .level = level,
                .display = hyp_strdup(spec)};
    if (has_at) {
        switch (ir->at) {
        case AT_DEPTH: m->depth = (long)at; break;
        case AT_CUTOFF:
            m->lcuts = hyp_malloc(sizeof(long));
            m->lcuts[0] = (long)at;
            m->nl = 1;
            break;
        case AT_DOUBLE_CUTOFF:
            m->dvals = hyp_malloc(sizeof(double));
            m->dvals[0] = at;
            m->nd = 1;
            break;
        case AT_NONE: break;
        }
        m->params_given = ir->at != AT_DEPTH;
    }
    ms->nir++;
    return 0;
}

int trec_measures_add(TrecMeasureSet *ms, const char *spec) {
    if (!spec || !*spec) {
        hyp_set_error("empty measure name");
        return -1;
    }
    if (!strpbrk(spec, "@(")) {
        // trec_eval style: name[.params]
        const char *dot = strchr(spec, '.');
        size_t nlen = dot ? (size_t)(dot - spec) : strlen(spec);
        char *name = xstrndup(spec, nlen);
        long f = family_by_name(name);
        int rc = 0;
        if (f < 0) {
            if (!dot && !strcmp(name, "official")) rc = mark_nickname(ms, NICK_OFFICIAL, N_(NICK_OFFICIAL));
            else if (!dot && !strcmp(name, "all_trec")) rc = mark_nickname(ms, NICK_ALL_TREC, N_(NICK_ALL_TREC));
            else if (!dot && !strcmp(name, "set")) rc = mark_nickname(ms, NICK_SET, N_(NICK_SET));
            else f = -2;
        } else {
            if (dot && !dot[1]) {
                hyp_set_error("improper measure '%s': empty parameter list", spec);
                rc = -1;
            } else if (dot && !ms->trec[f].params_given) {
                rc = inst_parse_params(&ms->trec[f], dot + 1);
            }
            if (!rc) ms->marked[f] = true;
        }
        free(name);
        if (f != -2) return rc;
    }
    bool handled;
    int rc = parse_ir_measure(ms, spec, &handled);
    if (!handled) {
        hyp_set_error("unknown measure '%s' (trec_eval names like map, P.10, ndcg_cut.10, "
                      "all_trec; or ir_measures names like nDCG@10, RR@10, R@1000, AP)", spec);
        return -1;
    }
    return rc;
}

// ---------------------------------------------------------------- resolved instances
// An instance with its defaults filled in and its place among the output columns.
typedef struct {
    Family fam;
    const long *lcuts;
    size_t nl;
    const double *dvals;
    size_t nd;
    const Pair *pairs;
    size_t np;
    bool named_params;   // printed name carries parameters ("utility_2,-1,0,0")
    long level;          // LEVEL_FROM_OPTIONS or per measure
    long depth;          // 0 or per measure
    size_t col0, ncols;
} Resolved;

static Resolved resolve(const Inst *m) {
    const FamilyInfo *fi = &FAMILIES[m->fam];
    Resolved r = {.fam = m->fam, .level = m->level, .depth = m->depth,
                  .named_params = m->printable != NULL};
    bool given = m->params_given;
    r.lcuts = given && m->nl ? m->lcuts : fi->lcuts;
    r.nl = given && m->nl ? m->nl : (fi->lcuts ? fi->ndefault : 0);
    r.dvals = given && m->nd ? m->dvals : fi->dvals;
    r.nd = given && m->nd ? m->nd : (fi->dvals ? fi->ndefault : 0);
    r.pairs = m->pairs;
    r.np = m->np;
    switch (fi->pk) {
    case PK_LONG_CUTS: r.ncols = m->display ? 1 : r.nl; break;
    case PK_DOUBLE_CUTS: r.ncols = m->display ? 1 : r.nd; break;
    default: r.ncols = 1; break;
    }
    return r;
}

// ---------------------------------------------------------------- per-query context
typedef struct {
    const long *rels;      // (n) relevance value of the document at each rank
    long n;                // documents evaluated
    long level;            // relevance threshold (-l)
    long num_rel;          // judgments with grade >= level
    long num_rel_ret;      // retrieved judged documents with grade >= level
    long num_nonpool;      // retrieved documents absent from the qrels
    long num_unjudged;     // retrieved documents judged < 0 ("in pool, unjudged")
    const long *counts;    // (num_levels) judgments per grade >= 0
    long num_levels;
    long num_docs_in_coll;
} QCtx;

static void ctx_init(QCtx *c, const long *rels, long n, long level, const long *counts,
                     long num_levels, long num_docs_in_coll) {
    *c = (QCtx){.rels = rels, .n = n, .level = level, .counts = counts,
                .num_levels = num_levels, .num_docs_in_coll = num_docs_in_coll};
    for (long i = level > 0 ? level : 0; i < num_levels; i++) c->num_rel += counts[i];
    for (long i = 0; i < n; i++) {
        long r = rels[i];
        if (r == REL_NONPOOL) c->num_nonpool++;
        else if (r == REL_UNJUDGED) c->num_unjudged++;
        else if (r >= level) c->num_rel_ret++;
    }
}

// Gains for the graded measures: grade g has gain g unless a "g=gain" parameter says
// otherwise. Kept sorted by increasing gain; the ideal ranking walks it from the top.
typedef struct {
    long level;
    long count;    // judgments at this grade
    double gain;
} Gain;

static bool valid_int(const char *s) {
    if (*s == '-' || *s == '+') s++;
    if (!*s) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

static long setup_gains(const Resolved *m, const QCtx *c, Gain *g) {
    long n = 0;
    for (size_t i = 0; i < m->np; i++) {
        if (!valid_int(m->pairs[i].name)) continue;   // e.g. rbp's "p"
        g[n++] = (Gain){strtol(m->pairs[i].name, NULL, 10), 0, m->pairs[i].value};
    }
    for (long lvl = 0; lvl < c->num_levels; lvl++) {
        long j = 0;
        while (j < n && g[j].level != lvl) j++;
        if (j < n) g[j].count = c->counts[lvl];
        else g[n++] = (Gain){lvl, c->counts[lvl], (double)lvl};
    }
    // trec_eval sorts with a comparator returning (int)(gain1 - gain2), so gains less
    // than 1 apart compare equal and keep their order; a stable insertion sort with the
    // same comparator reproduces that.
    for (long i = 1; i < n; i++) {
        Gain x = g[i];
        long j = i;
        while (j > 0 && (int)(g[j - 1].gain - x.gain) > 0) {
            g[j] = g[j - 1];
            j--;
        }
        g[j] = x;
    }
    return n;
}

static double get_gain(long rel, const Gain *g, long n) {
    for (long i = 0; i < n; i++)
        if (g[i].level == rel) return g[i].gain;
    return 0.0;
}

// Moves the ideal ranking one position down: *cur indexes the gain level in use,
// *num_at counts documents used at it. Returns the ideal gain at this position.
static double ideal_step(const Gain *g, long *cur, long *num_at, double ideal_gain) {
    (*num_at)++;
    while (*cur >= 0 && *num_at > g[*cur].count) {
        *num_at = 1;
        (*cur)--;
        ideal_gain = *cur >= 0 ? g[*cur].gain : 0.0;
    }
    return ideal_gain;
}

static double log2i(long i) { return log2((double)i); }

// dcg, ideal dcg, ndcg with trec_eval's gains.
static double calc_ndcg(const Resolved *m, const QCtx *c, Gain *g) {
    long ng = setup_gains(m, c, g);
    double rdcg = 0.0, idcg = 0.0;
    long cur = ng - 1, num_at = 0, i;
    double ig = cur >= 0 ? g[cur].gain : 0.0;
    for (i = 0; i < c->n && ig > 0.0; i++) {
        double rg = get_gain(c->rels[i], g, ng);
        if (rg != 0) rdcg += rg / log2i(i + 2);
        ig = ideal_step(g, &cur, &num_at, ig);
        if (ig > 0.0) idcg += ig / log2i(i + 2);
    }
    for (; i < c->n; i++) {
        double rg = get_gain(c->rels[i], g, ng);
        if (rg != 0) rdcg += rg / log2i(i + 2);
    }
    while (ig > 0.0) {
        ig = ideal_step(g, &cur, &num_at, ig);
        if (ig > 0.0) idcg += ig / log2i(i + 2);
        i++;
    }
    if (m->fam == F_DCG) return rdcg;
    if (m->fam == F_IDEAL_DCG) return idcg;
    return idcg > 0.0 ? rdcg / idcg : 0.0;
}

// ndcg averaged over the relevant documents (positive gain); unretrieved ones
// contribute the final dcg / ideal dcg.
static double calc_ndcg_rel(const Resolved *m, const QCtx *c, Gain *g) {
    long ng = setup_gains(m, c, g);
    double rdcg = 0.0, idcg = 0.0, sum = 0.0;
    long num_rel_ret = 0, num_rel = 0;
    long cur = ng - 1, num_at = 0, i;
    double ig = cur >= 0 ? g[cur].gain : 0.0;
    for (i = 0; i < c->n && ig > 0.0; i++) {
        double rg = get_gain(c->rels[i], g, ng);
        if (rg != 0) rdcg += rg / log2i(i + 2);
        ig = ideal_step(g, &cur, &num_at, ig);
        if (ig > 0.0) {
            num_rel++;
            idcg += ig / log2i(i + 2);
        }
        if (rg > 0) {
            sum += rdcg / idcg;
            num_rel_ret++;
        }
    }
    for (; i < c->n; i++) {
        double rg = get_gain(c->rels[i], g, ng);
        if (rg != 0) rdcg += rg / log2i(i + 2);
        if (rg > 0) {
            sum += rdcg / idcg;
            num_rel_ret++;
        }
    }
    while (ig > 0.0) {
        ig = ideal_step(g, &cur, &num_at, ig);
        if (ig > 0.0) {
            num_rel++;
            idcg += ig / log2i(i + 2);
        }
        i++;
    }
    sum += (double)(num_rel - num_rel_ret) * rdcg / idcg;
    return sum > 0.0 ? sum / num_rel : 0.0;
}

// ndcg averaged at the ranks where the ideal gain changes (the "R levels").
static double calc_rndcg(const Resolved *m, const QCtx *c, Gain *g) {
    long ng = setup_gains(m, c, g);
    if (c->num_rel == 0) return 0.0;
    double rdcg = 0.0, idcg = 0.0, sum = 0.0;
    long num_changes = 0;
    long cur = ng - 1, num_at = 0, i;
    double ig = cur >= 0 ? g[cur].gain : 0.0, old_ig = ig;
    for (i = 0; i < c->n && ig > 0.0; i++) {
        double rg = get_gain(c->rels[i], g, ng);
        ig = ideal_step(g, &cur, &num_at, ig);
        if (old_ig != ig) {
            if (idcg > 0.0) {
                sum += rdcg / idcg;
                num_changes++;
            }
            old_ig = ig;
        }
        if (rg != 0) rdcg += rg / log2i(i + 2);
        if (ig > 0.0) idcg += ig / log2i(i + 2);
    }
    if (i < c->n) {
        for (; i < c->n; i++) {
            double rg = get_gain(c->rels[i], g, ng);
            if (rg != 0) rdcg += rg / log2i(i + 2);
        }
        if (idcg > 0.0) {
            sum += rdcg / idcg;
            num_changes++;
        }
    }
    while (ig > 0.0) {
        ig = ideal_step(g, &cur, &num_at, ig);
        if (old_ig != ig) {
            if (idcg > 0.0) {
                sum += rdcg / idcg;
                num_changes++;
            }
            old_ig = ig;
        }
        if (ig > 0.0) idcg += ig / log2i(i + 2);
        i++;
    }
    // trec_eval divides unconditionally (0/0 = NaN when no gain is positive)
    return num_changes ? sum / num_changes : 0.0;
}

// G: gain discounted by log2(2 + ideal cost so far - gain obtained so far).
static double calc_G(const Resolved *m, const QCtx *c, Gain *g) {
    long ng = setup_gains(m, c, g);
    double results_g = 0.0, sum_results = 0.0, sum_ideal = 0.0, sum_cost = 0.0;
    const double min_cost = 1.0;
    long cur = ng - 1, num_at = 0, i;
    double ig = cur >= 0 ? g[cur].gain : 0.0;
    for (i = 0; i < c->n && ig > 0.0; i++) {
        double rg = get_gain(c->rels[i], g, ng);
        sum_results += rg;
        ig = ideal_step(g, &cur, &num_at, ig);
        if (ig > 0.0) sum_ideal += ig;
        sum_cost += ig >= min_cost ? ig : min_cost;
        if (rg != 0) results_g += rg / log2(2 + sum_cost - sum_results);
    }
    for (; i < c->n; i++) {
        double rg = get_gain(c->rels[i], g, ng);
        sum_results += rg;
        sum_cost += min_cost;
        if (rg != 0) results_g += rg / log2(2 + sum_cost - sum_results);
    }
    while (ig > 0.0) {
        ig = ideal_step(g, &cur, &num_at, ig);
        if (ig > 0.0) sum_ideal += ig;
        i++;
    }
    return sum_ideal > 0.0 ? results_g / sum_ideal : 0.0;
}

static double rbp_persistence(const Resolved *m) {
    double p = 0.9;
    for (size_t i = 0; i < m->np; i++)
        if (!strcmp(m->pairs[i].name, "p")) p = m->pairs[i].value;
    return p;
}

// Rank-biased precision with gains squeezed into [0, 1] when any falls outside.
// (trec_eval starts its min/max search from uninitialized values; we start from the
// first gain, which is what it computes whenever its garbage happens to be harmless.)
static double calc_rbp(const Resolved *m, const QCtx *c, Gain *g) {
    double p = rbp_persistence(m);
    long ng = setup_gains(m, c, g);
    if (ng > 0) {
        double lo = g[0].gain, hi = g[0].gain;
        for (long i = 0; i < ng; i++) {
            if (g[i].gain < lo) lo = g[i].gain;
            if (g[i].gain > hi) hi = g[i].gain;
        }
        if ((lo < 0 || hi > 1) && hi > lo)
            for (long i = 0; i < ng; i++) g[i].gain = (g[i].gain - lo) / (hi - lo);
    }
    double sum = 0.0, cur_p = 1.0;
    for (long i = 0; i < c->n; i++) {
        double gain = get_gain(c->rels[i], g, ng);
        if (gain != 0) sum += gain * cur_p;
        cur_p = cur_p * p;
    }
    return (1.0 - p) * sum;
}

static double calc_rbp_resid(const Resolved *m, const QCtx *c) {
    double p = rbp_persistence(m);
    double sum = 0.0, cur_p = 1.0;
    long unj = 0;
    for (long i = 0; i < c->n; i++) {
        if (c->rels[i] < 0) {
            unj++;
            sum += cur_p;
        }
        cur_p = cur_p * p;
    }
    return unj ? cur_p + (1 - p) * sum : 0.0;
}

// Average precision (0 when nothing relevant is retrieved; gm_map clamps it first).
static double calc_ap(const QCtx *c) {
    long rsf = 0;
    double sum = 0.0;
    for (long i = 0; i < c->n; i++)
        if (c->rels[i] >= c->level) {
            rsf++;
            sum += (double)rsf / (double)(i + 1);
        }
    return rsf && c->num_rel ? sum / (double)c->num_rel : 0.0;
}

static double calc_bpref(const QCtx *c) {
    long num_nonrel = 0;
    for (long j = 0; j < c->level && j < c->num_levels; j++) num_nonrel += c->counts[j];
    long nonrel_so_far = 0;
    double bpref = 0.0;
    for (long j = 0; j < c->n; j++) {
        long r = c->rels[j];
        if (r == REL_NONPOOL || r == REL_UNJUDGED) continue;
        if (r >= 0 && r < c->level) {
            nonrel_so_far++;
        } else if (nonrel_so_far > 0) {
            long a = nonrel_so_far < c->num_rel ? nonrel_so_far : c->num_rel;
            long b = num_nonrel < c->num_rel ? num_nonrel : c->num_rel;
            bpref += 1.0 - ((double)a / (double)b);
        } else {
            bpref += 1.0;
        }
    }
    if (c->num_rel) bpref /= c->num_rel;
    return bpref;
}

static double calc_infap(const QCtx *c) {
    long nonrel_so_far = 0, rel_so_far = 0, unjudged_so_far = 0;
    double inf_ap = 0.0;
    for (long j = 0; j < c->n; j++) {
        long r = c->rels[j];
        if (r == REL_NONPOOL) continue;
        if (r == REL_UNJUDGED) {
            unjudged_so_far++;
            continue;
        }
        if (r >= 0 && r < c->level) {
            nonrel_so_far++;
            continue;
        }
        rel_so_far++;
        if (j == 0) {
            inf_ap += 1.0;
        } else {
            double fj = (double)j;
            inf_ap += 1.0 / (fj + 1.0) +
                      (fj / (fj + 1.0)) *
                          ((rel_so_far - 1 + nonrel_so_far + unjudged_so_far) / fj) *
                          ((rel_so_far - 1 + INFAP_EPSILON) /
                           (rel_so_far - 1 + nonrel_so_far + 2 * INFAP_EPSILON));
        }
    }
    if (c->num_rel) inf_ap /= c->num_rel;
    return inf_ap;
}

// Interpolated precision at recall points (iprec_at_recall) and their mean (11pt_avg).
// Recall points become counts of relevant documents by rounding (trec_eval 10; 9.x
// added 0.9 and truncated).
static void calc_iprec(const QCtx *c, const double *pts, size_t npts, double *out) {
    long cuts_stack[32];
    long *cuts = npts <= 32 ? cuts_stack : hyp_malloc(npts * sizeof(long));
    for (size_t i = 0; i < npts; i++) cuts[i] = lround(pts[i] * c->num_rel);
    long cur = (long)npts - 1;
    while (cur >= 0 && cuts[cur] > c->num_rel_ret) cur--;
    double precis = c->n ? (double)c->num_rel_ret / (double)c->n : 0.0;
    double int_precis = precis;
    long rsf = c->num_rel_ret;
    for (long i = c->n; i > 0 && rsf > 0; i--) {
        precis = (double)rsf / (double)i;
        if (int_precis < precis) int_precis = precis;
        if (c->rels[i - 1] >= c->level) {
            while (cur >= 0 && rsf == cuts[cur]) out[cur--] = int_precis;
            rsf--;
        }
    }
    while (cur >= 0) out[cur--] = int_precis;
    if (cuts != cuts_stack) free(cuts);
}

static void calc_rprec_mult(const QCtx *c, const double *pts, size_t npts, double *out) {
    long cuts_stack[32];
    long *cuts = npts <= 32 ? cuts_stack : hyp_malloc(npts * sizeof(long));
    for (size_t i = 0; i < npts; i++) cuts[i] = (long)(pts[i] * c->num_rel + 0.9);
    long cur = (long)npts - 1;
    while (cur >= 0 && cuts[cur] > c->n) {
        out[cur] = (double)c->num_rel_ret / (double)cuts[cur];
        cur--;
    }
    long rsf = c->num_rel_ret;
    for (long i = c->n; i > 0 && rsf > 0; i--) {
        double precis = (double)rsf / (double)i;
        while (cur >= 0 && i == cuts[cur]) out[cur--] = precis;
        if (c->rels[i - 1] >= c->level) rsf--;
    }
    if (cuts != cuts_stack) free(cuts);
}

// The cutoff families share trec_eval's loop: a running statistic is read when rank
// i reaches a cutoff; cutoffs past the end of the ranking see the final statistic.
static void calc_cut(Family fam, const QCtx *c, const long *cuts, size_t nc, double *out) {
    if ((fam == F_RECALL || fam == F_RELATIVE_P || fam == F_MAP_CUT) && c->num_rel == 0) return;
    long rsf = 0, unj = 0;
    double sum = 0.0;
    size_t ci = 0;
    long i;
    for (i = 0; i <= c->n; i++) {
        bool at_end = i == c->n;
        while (ci < nc && (at_end || i == cuts[ci])) {
            long k = at_end ? cuts[ci] : i;
            double v = 0.0;
            switch (fam) {
            case F_P: v = (double)rsf / (double)k; break;
            case F_RECALL: v = (double)rsf / (double)c->num_rel; break;
            case F_RELATIVE_P: v = (double)rsf / (double)(k > c->num_rel ? c->num_rel : k); break;
            case F_SUCCESS: v = rsf ? 1.0 : 0.0; break;
            case F_MAP_CUT: v = sum / (double)c->num_rel; break;
            case F_NDCG_CUT: v = sum; break;
            case F_UNJ: v = (double)unj / (double)k; break;
            default: break;
            }
            out[ci++] = v;
            if (!at_end) break;   // cutoffs are unique: one per rank
        }
        if (at_end || ci == nc) break;
        long r = c->rels[i];
        switch (fam) {
        case F_MAP_CUT:
            if (r >= c->level) {
                rsf++;
                sum += (double)rsf / (double)(i + 1);
            }
            break;
        case F_NDCG_CUT:
            if (r > 0) sum += (double)r / log2i(i + 2);
            break;
        case F_UNJ:
            if (r == REL_NONPOOL || r == REL_UNJUDGED) unj++;
            break;
        default:
            if (r >= c->level) rsf++;
            break;
        }
    }
    if (fam != F_NDCG_CUT) return;
    // Ideal dcg for ndcg_cut: grades >= 1 in decreasing order, gain = grade.
    ci = 0;
    long cur = c->num_levels - 1, count = 0;
    double ideal = 0.0;
    for (i = 0;; i++) {
        count++;
        while (cur > 0 && count > c->counts[cur]) {
            cur--;
            count = 1;
        }
        if (cur <= 0) break;
        if (i == cuts[ci]) {
            if (ideal > 0.0) out[ci] /= ideal;
            if (++ci == nc) break;
        }
        ideal += (double)cur / log2i(i + 2);
    }
    for (; ci < nc; ci++)
        if (ideal > 0.0) out[ci] /= ideal;
}

static void calc_relstring(const QCtx *c, double len_param, char **out) {
    long len = (long)len_param;
    if (len > c->n) len = c->n;
    if (len < 0) len = 0;
    char *s = hyp_malloc((size_t)len + 1);
    for (long i = 0; i < len; i++) {
        long r = c->rels[i];
        s[i] = r > 9 ? '>' : r >= 0 ? (char)('0' + r) : r == REL_NONPOOL ? '-'
             : r == REL_UNJUDGED ? '.' : '<';
    }
    s[len] = '\0';
    *out = s;
}

// Computes one instance for one query into out[0 .. ncols).
static void compute(const Resolved *m, const QCtx *c, Gain *gains, double *out, char **str) {
    const Resolved *rm = m;   // resolved parameters (defaults filled in)
    switch (m->fam) {
    case F_RUNID:
    case F_NUM_Q: break;
    case F_NUM_RET: out[0] = (double)c->n; break;
    case F_NUM_REL: out[0] = (double)c->num_rel; break;
    case F_NUM_REL_RET: out[0] = (double)c->num_rel_ret; break;
    case F_MAP: out[0] = calc_ap(c); break;
    case F_GM_MAP: {
        double ap = calc_ap(c);
        out[0] = log(ap > MIN_GEO_MEAN ? ap : MIN_GEO_MEAN);
        break;
    }
    case F_RPREC: {
        long k = c->n < c->num_rel ? c->n : c->num_rel, rsf = 0;
        for (long i = 0; i < k; i++) rsf += c->rels[i] >= c->level;
        out[0] = k ? (double)rsf / (double)c->num_rel : 0.0;
        break;
    }
    case F_BPREF: out[0] = calc_bpref(c); break;
    case F_GM_BPREF: {
        double b = calc_bpref(c);
        out[0] = log(b > MIN_GEO_MEAN ? b : MIN_GEO_MEAN);
        break;
    }
    case F_RECIP_RANK:
        for (long i = 0; i < c->n; i++)
            if (c->rels[i] >= c->level) {
                out[0] = 1.0 / (double)(i + 1);
                break;
            }
        break;
    case F_IPREC_AT_RECALL: calc_iprec(c, rm->dvals, rm->nd, out); break;
    case F_11PT_AVG: {
        double tmp_stack[32];
        double *tmp = rm->nd <= 32 ? tmp_stack : hyp_calloc(rm->nd, sizeof(double));
        for (size_t i = 0; i < rm->nd; i++) tmp[i] = 0.0;
        calc_iprec(c, rm->dvals, rm->nd, tmp);
        double sum = 0.0;
        // trec_eval adds the values from the last cutoff down
        for (size_t i = rm->nd; i-- > 0;) sum += tmp[i];
        out[0] = rm->nd ? sum / (double)rm->nd : 0.0;
        if (tmp != tmp_stack) free(tmp);
        break;
    }
    case F_P:
    case F_RECALL:
    case F_RELATIVE_P:
    case F_SUCCESS:
    case F_MAP_CUT:
    case F_NDCG_CUT:
    case F_UNJ: calc_cut(m->fam, c, rm->lcuts, rm->nl, out); break;
    case F_RELSTRING: calc_relstring(c, rm->nd ? rm->dvals[0] : 10.0, str); break;
    case F_INFAP: out[0] = calc_infap(c); break;
    case F_RPREC_MULT: calc_rprec_mult(c, rm->dvals, rm->nd, out); break;
    case F_UTILITY: {
        const double *p = rm->dvals;
        out[0] = p[0] * c->num_rel_ret + p[1] * (c->n - c->num_rel_ret) +
                 p[2] * (c->num_rel - c->num_rel_ret) +
                 p[3] * (c->num_docs_in_coll + c->num_rel_ret - c->n - c->num_rel);
        break;
    }
    case F_BING: {
        long rsf = 0;
        double sum = 0.0;
        for (long i = 0; i < c->n; i++)
            if (c->rels[i] >= c->level) {
                rsf++;
                sum += 1.0 / log2i(3 + i - rsf);
            }
        out[0] = rsf && c->num_rel ? sum / (double)c->num_rel : 0.0;
        break;
    }
    case F_G: out[0] = calc_G(m, c, gains); break;
    case F_DCG:
    case F_IDEAL_DCG:
    case F_NDCG: out[0] = calc_ndcg(m, c, gains); break;
    case F_NDCG_REL: out[0] = calc_ndcg_rel(m, c, gains); break;
    case F_RNDCG: out[0] = calc_rndcg(m, c, gains); break;
    case F_SET_P: out[0] = c->n ? (double)c->num_rel_ret / (double)c->n : 0.0; break;
    case F_SET_RELATIVE_P:
        if (c->n && c->num_rel)
            out[0] = (double)c->num_rel_ret / (double)(c->n < c->num_rel ? c->n : c->num_rel);
        break;
    case F_SET_RECALL:
        if (c->num_rel) out[0] = (double)c->num_rel_ret / (double)c->num_rel;
        break;
    case F_SET_MAP:
        if (c->n && c->num_rel)
            out[0] = ((double)c->num_rel_ret * (double)c->num_rel_ret) /
                     ((double)c->n * (double)c->num_rel);
        break;
    case F_SET_F:
        if (c->num_rel_ret) {
            double P = (double)c->num_rel_ret / (double)c->n;
            double R = (double)c->num_rel_ret / (double)c->num_rel;
            double x = rm->nd ? rm->dvals[0] : 1.0;
            out[0] = (x + 1.0) * P * R / (x * P + R);
        }
        break;
    case F_NUM_NONREL_JUDGED_RET:
        out[0] = (double)(c->n - c->num_nonpool - c->num_unjudged - c->num_rel_ret);
        break;
    case F_RBP: out[0] = calc_rbp(m, c, gains); break;
    case F_RBP_RESID: out[0] = calc_rbp_resid(m, c); break;
    case F_COUNT: break;
    }
}

// ---------------------------------------------------------------- evaluation driver
static const char *BOGUS_DOCNO = "ceci_nest_pas_un_docno";

typedef struct {
    size_t qi;                    // index among the qrels queries
    const TrecRunQuery *rq;       // NULL: missing from the run (evaluated only with -c)
} Row;

typedef struct {
    int code;                     // 0 ok, 1 duplicate docid
    const char *docid;
    uint32_t line1, line2;
} RowError;

typedef struct {
    TrecRunEntry *sorted;         // (cap)
    long *rels;                   // (cap)
    uint64_t *hashes;             // (cap)
    uint32_t *set;                // (set_cap) 1-based indices into sorted, 0 empty
    size_t cap, set_cap;
    Gain *gains;                  // (gains_cap)
    size_t gains_cap;
    uint32_t *jt;                 // (jt_cap) this query's judgments by docid hash, 1-based
    size_t jt_cap;
    struct SortKey *keys, *keys_tmp;   // (cap) merge sort buffers
} Scratch;

// trec_eval's order (score desc, docno desc) by a merge sort on compact keys with the
// comparison inlined: qsort's indirect calls on 24-byte records cost twice as much.
typedef struct SortKey {
    double score;
    const char *docid;
    uint32_t idx;
} SortKey;

static inline bool key_before(const SortKey *a, const SortKey *b) {
    if (a->score != b->score) return a->score > b->score;
    return strcmp(a->docid, b->docid) > 0;
}

static void rank_entries(const TrecRunEntry *in, size_t n, TrecRunEntry *out, SortKey *k,
                         SortKey *tmp) {
    for (size_t i = 0; i < n; i++) k[i] = (SortKey){in[i].score, in[i].docid, (uint32_t)i};
    // insertion-sort runs of 16, then merge bottom-up
    const size_t RUN = 16;
    for (size_t lo = 0; lo < n; lo += RUN) {
        size_t hi = lo + RUN < n ? lo + RUN : n;
        for (size_t i = lo + 1; i < hi; i++) {
            SortKey x = k[i];
            size_t j = i;
            while (j > lo && key_before(&x, &k[j - 1])) {
                k[j] = k[j - 1];
                j--;
            }
            k[j] = x;
        }
    }
    SortKey *src = k, *dst = tmp;
    for (size_t w = RUN; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi) dst[o++] = key_before(&src[b], &src[a]) ? src[b++] : src[a++];
            while (a < mid) dst[o++] = src[a++];
            while (b < hi) dst[o++] = src[b++];
        }
        SortKey *t = src;
        src = dst;
        dst = t;
    }
    for (size_t i = 0; i < n; i++) out[i] = in[src[i].idx];
}

static void scratch_reserve(Scratch *s, size_t n, size_t ngains) {
    if (n > s->cap) {
        s->cap = n;
        s->sorted = hyp_realloc(s->sorted, n * sizeof *s->sorted);
        s->rels = hyp_realloc(s->rels, n * sizeof *s->rels);
        s->hashes = hyp_realloc(s->hashes, n * sizeof *s->hashes);
        s->keys = hyp_realloc(s->keys, n * sizeof *s->keys);
        s->keys_tmp = hyp_realloc(s->keys_tmp, n * sizeof *s->keys_tmp);
    }
    size_t want = 16;
    while (want < 2 * n) want *= 2;
    if (want > s->set_cap) {
        s->set_cap = want;
        s->set = hyp_realloc(s->set, want * sizeof *s->set);
    }
    if (ngains > s->gains_cap) {
        s->gains_cap = ngains;
        s->gains = hyp_realloc(s->gains, ngains * sizeof *s->gains);
    }
}

static void scratch_free(Scratch *s) {
    free(s->sorted);
    free(s->rels);
    free(s->hashes);
    free(s->set);
    free(s->gains);
    free(s->jt);
    free(s->keys);
    free(s->keys_tmp);
}

// A small open-addressing table over one query's judgments: lookups stay in cache,
// unlike probes into the table of every judgment of every query.
static void build_judgment_table(Scratch *s, const TrecJudgment *j, size_t nj) {
    size_t cap = 16;
    while (cap < 2 * nj) cap *= 2;
    if (cap > s->jt_cap) {
        s->jt_cap = cap;
        s->jt = hyp_realloc(s->jt, cap * sizeof *s->jt);
    }
    memset(s->jt, 0, s->jt_cap * sizeof *s->jt);
    for (size_t i = 0; i < nj; i++) {
        size_t k = j[i].hash & (s->jt_cap - 1);
        while (s->jt[k]) k = (k + 1) & (s->jt_cap - 1);
        s->jt[k] = (uint32_t)(i + 1);
    }
}

static bool judgment_of(const Scratch *s, const TrecJudgment *j, const char *docid, uint64_t h,
                        long *rel) {
    for (size_t k = h & (s->jt_cap - 1);; k = (k + 1) & (s->jt_cap - 1)) {
        uint32_t i = s->jt[k];
        if (!i) return false;
        if (j[i - 1].hash == h && !strcmp(j[i - 1].docid, docid)) {
            *rel = j[i - 1].rel;
            return true;
        }
    }
}

typedef struct {
    const TrecQrels *qrels;
    const TrecEvalOptions *opt;
    const Resolved *res;
    size_t nres, ncols;
} EvalJob;

static void evaluate_row(const EvalJob *job, const Row *row, Scratch *s, double *out,
                         char **strs, RowError *err) {
    const TrecRunQuery *rq = row->rq;
    TrecRunEntry bogus = {BOGUS_DOCNO, 1.0, 0};
    const TrecRunEntry *entries = rq ? rq->entries : &bogus;
    size_t n_in = rq ? rq->n : 1;
    long num_levels;
    const long *counts = trec_qrels_level_counts(job->qrels, row->qi, &num_levels);
    size_t max_gains = (size_t)num_levels;
    for (size_t k = 0; k < job->nres; k++)
        if (job->res[k].np > 0 && job->res[k].np + (size_t)num_levels > max_gains)
            max_gains = job->res[k].np + (size_t)num_levels;
    scratch_reserve(s, n_in, max_gains + 1);

    // Runs usually arrive ranked already (ours are written that way): check first.
    const TrecRunEntry *ranked = entries;
    for (size_t i = 1; i < n_in; i++)
        if (trec_entry_cmp(&entries[i - 1], &entries[i]) > 0) {
            rank_entries(entries, n_in, s->sorted, s->keys, s->keys_tmp);
            ranked = s->sorted;
            break;
        }
    long n = (long)n_in;
    if (job->opt->max_docs < n) n = job->opt->max_docs < 0 ? 0 : job->opt->max_docs;

    // trec_eval refuses duplicate docnos among the documents it evaluates.
    memset(s->set, 0, s->set_cap * sizeof *s->set);
    for (long i = 0; i < n; i++) {
        uint64_t h = trec_hash_str(ranked[i].docid);
        s->hashes[i] = h;
        for (size_t k = h & (s->set_cap - 1);; k = (k + 1) & (s->set_cap - 1)) {
            if (!s->set[k]) {
                s->set[k] = (uint32_t)(i + 1);
                break;
            }
            const TrecRunEntry *other = &ranked[s->set[k] - 1];
            if (s->hashes[s->set[k] - 1] == h && !strcmp(other->docid, ranked[i].docid)) {
                uint32_t a = other->line, b = ranked[i].line;
                *err = (RowError){1, ranked[i].docid, a < b ? a : b, a < b ? b : a};
                return;
            }
        }
    }
    size_t nj;
    const TrecJudgment *judg = trec_qrels_judgments(job->qrels, row->qi, &nj);
    build_judgment_table(s, judg, nj);
    long m = 0;
    for (long i = 0; i < n; i++) {
        long rel;
        long r = judgment_of(s, judg, ranked[i].docid, s->hashes[i], &rel)
                     ? (rel >= 0 ? rel : REL_UNJUDGED)
                     : REL_NONPOOL;
        if (job->opt->judged_only && r < 0) continue;   // -J: unjudged documents vanish
        s->rels[m++] = r;
    }
    n = m;

    for (size_t k = 0; k < job->nres; k++) {
        const Resolved *r = &job->res[k];
        long level = r->level == LEVEL_FROM_OPTIONS ? job->opt->relevance_level : r->level;
        long nn = r->depth > 0 && r->depth < n ? r->depth : n;
        QCtx c;
        ctx_init(&c, s->rels, nn, level, counts, num_levels, job->opt->num_docs_in_coll);
        compute(r, &c, s->gains, out + r->col0, strs + r->col0);
        if (!rq) {
            // trec_eval's clean-up after evaluating the placeholder ranking of a query
            // missing from the run: these measures would otherwise see its one document.
            switch (r->fam) {
            case F_NUM_RET:
            case F_UNJ:
                for (size_t j = 0; j < r->ncols; j++) out[r->col0 + j] = 0.0;
                break;
            case F_UTILITY:
            case F_RBP_RESID:
                if (!r->named_params) out[r->col0] = 0.0;
                break;
            case F_RELSTRING:
                free(strs[r->col0]);
                strs[r->col0] = hyp_strdup("");
                break;
            default: break;
            }
        }
    }
}

static Aggregation col_aggregation(Family f) { return FAMILIES[f].ag; }

static char *column_name(const Inst *m, const Resolved *r, size_t j) {
    char buf[512];
    const char *base = FAMILIES[m->fam].name;
    if (m->display) return hyp_strdup(m->display);
    switch (FAMILIES[m->fam].pk) {
    case PK_LONG_CUTS: snprintf(buf, sizeof buf, "%s_%ld", base, r->lcuts[j]); break;
    case PK_DOUBLE_CUTS: snprintf(buf, sizeof buf, "%s_%3.2f", base, r->dvals[j]); break;
    case PK_DOUBLES:
    case PK_PAIRS:
        if (m->printable) snprintf(buf, sizeof buf, "%s_%s", base, m->printable);
        else snprintf(buf, sizeof buf, "%s", base);
        break;
    default: snprintf(buf, sizeof buf, "%s", base); break;
    }
    return hyp_strdup(buf);
}

TrecEvalResult *trec_evaluate(const TrecQrels *qrels, const TrecRun *run,
                              const TrecMeasureSet *ms_in, const TrecEvalOptions *opt_in) {
    if (trec_qrels_validate(qrels)) return NULL;
    TrecEvalOptions opt = opt_in ? *opt_in : trec_eval_default_options();
    TrecMeasureSet *official = NULL;
    const TrecMeasureSet *ms = ms_in;
    if (!ms || trec_measures_empty(ms)) {   // trec_eval's default: -m official
        official = trec_measures_new();
        trec_measures_add(official, "official");
        ms = official;
    }

    // Instances in output order: trec_eval families in table order, then ir_measures.
    size_t ninst = 0;
    const Inst **inst = hyp_malloc((F_COUNT + ms->nir) * sizeof *inst);
    for (int f = 0; f < F_COUNT; f++)
        if (ms->marked[f]) inst[ninst++] = &ms->trec[f];
    for (size_t i = 0; i < ms->nir; i++) inst[ninst++] = &ms->ir[i];
    Resolved *res = hyp_malloc((ninst ? ninst : 1) * sizeof *res);
    size_t ncols = 0;
    for (size_t i = 0; i < ninst; i++) {
        res[i] = resolve(inst[i]);
        res[i].col0 = ncols;
        ncols += res[i].ncols;
    }

    TrecEvalResult *out = hyp_calloc(1, sizeof *out);
    out->num_cols = ncols;
    out->cols = hyp_calloc(ncols ? ncols : 1, sizeof *out->cols);
    for (size_t i = 0; i < ninst; i++) {
        Aggregation ag = col_aggregation(res[i].fam);
        for (size_t j = 0; j < res[i].ncols; j++) {
            TrecColumn *col = &out->cols[res[i].col0 + j];
            col->name = column_name(inst[i], &res[i], j);
            col->kind = ag == AG_MEAN || ag == AG_GEO ? TREC_COL_FLOAT
                      : ag == AG_SUM || ag == AG_NUM_Q ? TREC_COL_INT : TREC_COL_STRING;
            col->per_query = ag == AG_MEAN || ag == AG_SUM || ag == AG_STRING;
            col->summary = ag != AG_STRING;
        }
    }
    out->runid = hyp_strdup(trec_run_tag(run));

    // Which qrels queries are evaluated: those in the run, or all of them with -c.
    size_t nq = trec_qrels_num_queries(qrels);
    Row *rows = hyp_malloc((nq ? nq : 1) * sizeof *rows);
    size_t nrows = 0;
    for (size_t qi = 0; qi < nq; qi++) {
        const TrecRunQuery *rq = trec_run_find(run, trec_qrels_qid(qrels, qi));
        if (rq && rq->n == 0) rq = NULL;
        if (rq || opt.complete) rows[nrows++] = (Row){qi, rq};
    }
    if (nrows == 0) {
        hyp_set_error("no queries with both results and relevance info (qrels %s, run %s)",
                      trec_qrels_path(qrels), trec_run_path(run) ? trec_run_path(run) : "in memory");
        free(rows);
        free(res);
        free(inst);
        trec_measures_free(official);
        trec_result_free(out);
        return NULL;
    }
    out->num_queries = nrows;
    out->qids = hyp_malloc(nrows * sizeof *out->qids);
    for (size_t r = 0; r < nrows; r++) out->qids[r] = hyp_strdup(trec_qrels_qid(qrels, rows[r].qi));
    out->values = hyp_calloc(nrows * (ncols ? ncols : 1), sizeof(double));
    out->strings = hyp_calloc(nrows * (ncols ? ncols : 1), sizeof(char *));
    out->summary = hyp_calloc(ncols ? ncols : 1, sizeof(double));
    RowError *errs = hyp_calloc(nrows, sizeof *errs);

    EvalJob job = {qrels, &opt, res, ninst, ncols};
    #pragma omp parallel
    {
        Scratch s = {0};
        #pragma omp for schedule(dynamic, 8)
        for (long r = 0; r < (long)nrows; r++)
            evaluate_row(&job, &rows[r], &s, out->values + (size_t)r * ncols,
                         out->strings + (size_t)r * ncols, &errs[r]);
        scratch_free(&s);
    }

    int failed = 0;
    for (size_t r = 0; r < nrows && !failed; r++) {
        if (!errs[r].code) continue;
        const char *path = trec_run_path(run);
        if (path)
            hyp_set_error("%s:%u: duplicate document %s for query %s (also at line %u)",
                          path, errs[r].line2, errs[r].docid, out->qids[r], errs[r].line1);
        else
            hyp_set_error("run: duplicate document %s for query %s", errs[r].docid, out->qids[r]);
        failed = 1;
    }

    // Sums in qid order, as trec_eval accumulates them.
    for (size_t i = 0; i < ninst && !failed; i++) {
        Aggregation ag = col_aggregation(res[i].fam);
        for (size_t j = 0; j < res[i].ncols; j++) {
            size_t col = res[i].col0 + j;
            double sum = 0.0;
            for (size_t r = 0; r < nrows; r++) sum += out->values[r * ncols + col];
            switch (ag) {
            case AG_MEAN: out->summary[col] = sum / (double)nrows; break;
            case AG_SUM:
                // trec_eval 10.0 with -c: the averaged num_rel counts every judgment with
                // relevance > 0, whatever -l says (its te_calc_avg_num_rel); we match it.
                out->summary[col] = res[i].fam == F_NUM_REL && opt.complete ? (double)trec_qrels_num_positive(qrels) : sum;
                break;
            case AG_GEO: out->summary[col] = exp(sum / (double)nrows); break;
            case AG_NUM_Q: out->summary[col] = (double)nrows; break;
            default: out->summary[col] = NAN; break;
            }
        }
    }
    free(errs);
    free(rows);
    free(res);
    free(inst);
    trec_measures_free(official);
    if (failed) {
        trec_result_free(out);
        return NULL;
    }
    return out;
}

void trec_result_free(TrecEvalResult *r) {
    if (!r) return;
    for (size_t c = 0; c < r->num_cols; c++) free(r->cols[c].name);
    if (r->strings)
        for (size_t i = 0; i < r->num_queries * r->num_cols; i++) free(r->strings[i]);
    for (size_t q = 0; r->qids && q < r->num_queries; q++) free(r->qids[q]);
    free(r->cols);
    free(r->strings);
    free(r->qids);
    free(r->values);
    free(r->summary);
    free(r->runid);
    free(r);
}

long trec_result_col(const TrecEvalResult *r, const char *name) {
    for (size_t c = 0; c < r->num_cols; c++)
        if (!strcmp(r->cols[c].name, name)) return (long)c;
    return -1;
}

double trec_result_summary(const TrecEvalResult *r, const char *name) {
    long c = trec_result_col(r, name);
    return c < 0 ? NAN : r->summary[c];
}

long trec_result_query(const TrecEvalResult *r, const char *qid) {
    for (size_t q = 0; q < r->num_queries; q++)
        if (!strcmp(r->qids[q], qid)) return (long)q;
    return -1;
}

static void print_value(FILE *out, const TrecColumn *col, const char *qid, double v,
                        const char *s) {
    switch (col->kind) {
    case TREC_COL_FLOAT: fprintf(out, "%-22s\t%s\t%6.4f\n", col->name, qid, v); break;
    case TREC_COL_INT: fprintf(out, "%-22s\t%s\t%ld\n", col->name, qid, (long)v); break;
    case TREC_COL_STRING:
        if (s) fprintf(out, "%-22s\t%s\t'%s'\n", col->name, qid, s);
        break;
    }
}

void trec_result_print(const TrecEvalResult *r, FILE *out, bool per_query, bool summary) {
    if (per_query)
        for (size_t q = 0; q < r->num_queries; q++)
            for (size_t c = 0; c < r->num_cols; c++)
                if (r->cols[c].per_query)
                    print_value(out, &r->cols[c], r->qids[q], r->values[q * r->num_cols + c],
                                r->strings[q * r->num_cols + c]);
    if (!summary) return;
    for (size_t c = 0; c < r->num_cols; c++) {
        const TrecColumn *col = &r->cols[c];
        if (!col->summary) continue;
        if (col->kind == TREC_COL_STRING) fprintf(out, "%-22s\tall\t%s\n", col->name, r->runid);
        else print_value(out, col, "all", r->summary[c], NULL);
    }
}
