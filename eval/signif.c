// signif.c: paired t-test (Student t CDF through the regularized incomplete beta
// function) and a seeded paired randomization test.
#include "eval/signif.h"
#include "autograd/util.h"

#include <math.h>
#include <stdlib.h>

// Continued fraction of I_x(a, b) (modified Lentz), converging fast for
// x < (a + 1) / (a + b + 2); the caller uses the symmetry I_x(a,b) = 1 - I_{1-x}(b,a).
static double betacf(double a, double b, double x) {
    const double tiny = 1e-300, eps = 1e-16;
    double qab = a + b, qap = a + 1.0, qam = a - 1.0;
    double c = 1.0, d = 1.0 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= 10000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));   // even step
        d = 1.0 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));   // odd step
        d = 1.0 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < eps) break;
    }
    return h;
}

double signif_betai(double a, double b, double x) {
    if (x <= 0.0) return 0.0;
    if (x >= 1.0) return 1.0;
    // x^a (1-x)^b / (a B(a,b)), in logs to survive large a, b
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    double bt = exp(lbt);
    if (x < (a + 1.0) / (a + b + 2.0)) return bt * betacf(a, b, x) / a;
    return 1.0 - bt * betacf(b, a, 1.0 - x) / b;
}

double signif_t_cdf(double t, double df) {
    if (isnan(t)) return NAN;
    if (isinf(t)) return t > 0 ? 1.0 : 0.0;
    // P(|T| > |t|) = I_{df/(df+t^2)}(df/2, 1/2)
    double tail2 = signif_betai(df / 2.0, 0.5, df / (df + t * t));
    return t > 0 ? 1.0 - 0.5 * tail2 : 0.5 * tail2;
}

double signif_paired_t(const double *a, const double *b, size_t n, double *t_out) {
    if (t_out) *t_out = NAN;
    if (n < 2) return NAN;
    double mean = 0.0;
    for (size_t i = 0; i < n; i++) mean += a[i] - b[i];
    mean /= (double)n;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] - b[i] - mean;
        ss += d * d;
    }
    if (ss == 0.0) {
        // Constant differences: identical systems give no evidence (p = 1); a constant
        // nonzero shift is infinitely significant (t = +-inf).
        if (t_out) *t_out = mean == 0.0 ? 0.0 : (mean > 0 ? INFINITY : -INFINITY);
        return mean == 0.0 ? 1.0 : 0.0;
    }
    double sd = sqrt(ss / (double)(n - 1));
    double t = mean / (sd / sqrt((double)n));
    if (t_out) *t_out = t;
    double df = (double)(n - 1);
    return signif_betai(df / 2.0, 0.5, df / (df + t * t));
}

// splitmix64: a small, well-mixed generator; one stream per seed.
static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double signif_randomization(const double *a, const double *b, size_t n, long permutations,
                            uint64_t seed) {
    if (n == 0) return NAN;
    double *d = hyp_malloc(n * sizeof *d);
    double observed = 0.0;
    for (size_t i = 0; i < n; i++) {
        d[i] = a[i] - b[i];
        observed += d[i];
    }
    observed = fabs(observed);
    // Sums that differ from the observed one only by rounding count as "as extreme".
    double tol = 1e-9 * (observed + 1e-12);
    double p;
    if (n < 63 && permutations > 0 && ((uint64_t)1 << n) <= (uint64_t)permutations) {
        uint64_t total = (uint64_t)1 << n, hits = 0;
        for (uint64_t mask = 0; mask < total; mask++) {
            double s = 0.0;
            for (size_t i = 0; i < n; i++) s += (mask >> i & 1) ? -d[i] : d[i];
            hits += fabs(s) >= observed - tol;
        }
        p = (double)hits / (double)total;
    } else {
        uint64_t state = seed, bits = 0;
        int left = 0;
        long hits = 0;
        for (long k = 0; k < permutations; k++) {
            double s = 0.0;
            for (size_t i = 0; i < n; i++) {
                if (!left) {
                    bits = splitmix64(&state);
                    left = 64;
                }
                s += (bits & 1) ? -d[i] : d[i];
                bits >>= 1;
                left--;
            }
            hits += fabs(s) >= observed - tol;
        }
        p = (double)(hits + 1) / (double)(permutations + 1);
    }
    free(d);
    return p;
}
