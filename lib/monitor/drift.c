/* Drift statistics, each a port of the SciPy / NumPy / Evidently computation named in
 * drift.h, step for step where the order of operations decides the last digits (bin edges,
 * the exact KS recursions, the branches of kstwo). */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "core/buf.h"
#include "monitor/drift.h"
#include "text/unicode.h"

static const char *const test_names[LLM_DRIFT__COUNT] = {
    "auto", "ks", "chisquare", "z", "wasserstein", "jensenshannon", "psi",
};

const char *llm_drift_test_name(enum llm_drift_test t)
{
	return (unsigned)t < LLM_DRIFT__COUNT ? test_names[t] : "?";
}

bool llm_drift_test_parse(const char *s, enum llm_drift_test *out)
{
	for (int i = 0; i < LLM_DRIFT__COUNT; i++)
		if (!strcmp(s, test_names[i])) {
			*out = (enum llm_drift_test)i;
			return true;
		}
	return false;
}

bool llm_drift_test_is_pvalue(enum llm_drift_test t)
{
	return t == LLM_DRIFT_KS || t == LLM_DRIFT_CHISQUARE || t == LLM_DRIFT_Z;
}

double llm_drift_default_threshold(enum llm_drift_test t)
{
	return llm_drift_test_is_pvalue(t) ? 0.05 : 0.1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double clip01(double p)
{
	return p < 0.0 ? 0.0 : p > 1.0 ? 1.0 : p;
}

/* --- distributions ------------------------------------------------------------------ */

/* The regularized incomplete gamma functions: the series for P when x < a + 1, Lentz's
 * continued fraction for Q otherwise (each converges fast on its side). */
static double gamma_p_series(double a, double x)
{
	double sum = 1.0 / a, term = sum, ap = a;
	for (int i = 0; i < 10000; i++) {
		ap += 1.0;
		term *= x / ap;
		sum += term;
		if (fabs(term) < fabs(sum) * DBL_EPSILON)
			break;
	}
	return sum * exp(-x + a * log(x) - lgamma(a));
}

static double gamma_q_cf(double a, double x)
{
	const double tiny = DBL_MIN / DBL_EPSILON;
	double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
	for (int i = 1; i < 10000; i++) {
		double an = -i * (i - a);
		b += 2.0;
		d = an * d + b;
		if (fabs(d) < tiny)
			d = tiny;
		c = b + an / c;
		if (fabs(c) < tiny)
			c = tiny;
		d = 1.0 / d;
		double del = d * c;
		h *= del;
		if (fabs(del - 1.0) < DBL_EPSILON)
			break;
	}
	return exp(-x + a * log(x) - lgamma(a)) * h;
}

double llm_drift_chi2_sf(double x, double df)
{
	if (isnan(x) || !(df > 0))
		return NAN;
	if (x <= 0)
		return 1.0;
	if (isinf(x))
		return 0.0;
	double a = df / 2, h = x / 2;
	return h < a + 1 ? 1.0 - gamma_p_series(a, h) : gamma_q_cf(a, h);
}

/* scipy.special.ndtr (cephes): erf near 0, erfc in the tails. */
double llm_drift_norm_cdf(double x)
{
	double z = x * M_SQRT1_2;
	if (fabs(z) < M_SQRT1_2)
		return 0.5 + 0.5 * erf(z);
	double y = 0.5 * erfc(fabs(z));
	return z > 0 ? 1.0 - y : y;
}

/* _compute_prob_outside_square(n, h): P(D_{n,n} >= h/n) by a Horner-like alternating sum. */
static double ks_outside_square(uint64_t n, uint64_t h)
{
	double p = 0.0;
	for (int64_t k = (int64_t)(n / h); k >= 0; k--) {
		double p1 = 1.0;
		for (uint64_t j = 0; j < h; j++)
			p1 = (double)(n - (uint64_t)k * h - j) * p1 /
			     (double)(n + (uint64_t)k * h + j + 1);
		p = p1 * (1.0 - p);
	}
	return 2 * p;
}

/* _compute_outer_prob_inside_method(m, n, g, h): 1 - the share of lattice paths that stay
 * strictly inside |x/m - y/n| < h/lcm, in Viehmann's recursion for 1 - p (one sliding column). */
static double ks_outer_inside(uint64_t m, uint64_t n, uint64_t g, uint64_t h, bool *nomem)
{
	if (m < n) {
		uint64_t t = m;
		m = n;
		n = t;
	}
	int64_t mg = (int64_t)(m / g), ng = (int64_t)(n / g), H = (int64_t)h, N = (int64_t)n;
	int64_t minj = 0, maxj = (int64_t)ceil((double)H / (double)mg);
	if (maxj > N + 1)
		maxj = N + 1;
	int64_t curlen = maxj - minj;
	int64_t lena = 2 * maxj + 2 < N + 1 ? 2 * maxj + 2 : N + 1;
	double *a = malloc((size_t)lena * sizeof *a);
	if (!a) {
		*nomem = true;
		return NAN;
	}
	for (int64_t i = 0; i < lena; i++)
		a[i] = i < maxj ? 0.0 : 1.0;
	for (int64_t i = 1; i <= (int64_t)m; i++) {
		int64_t lastminj = minj, lastlen = curlen;
		minj = (int64_t)floor((double)(ng * i - H) / (double)mg) + 1;
		if (minj < 0)
			minj = 0;
		if (minj > N)
			minj = N;
		maxj = (int64_t)ceil((double)(ng * i + H) / (double)mg);
		if (maxj > N + 1)
			maxj = N + 1;
		if (maxj <= minj) {
			free(a);
			return 1.0;
		}
		double val = minj == 0 ? 0.0 : 1.0;
		for (int64_t jj = 0; jj < maxj - minj; jj++) {
			int64_t j = jj + minj;
			val = (a[jj + minj - lastminj] * (double)i + val * (double)j) /
			      (double)(i + j);
			a[jj] = val;
		}
		curlen = maxj - minj;
		for (int64_t x = maxj - minj; x < maxj - minj + (lastlen - curlen) && x < lena; x++)
			a[x] = 1.0;
	}
	double r = a[maxj - minj - 1];
	free(a);
	return r;
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* The rounded lattice statistic h = round(d * lcm), NumPy's round (half to even). */
static uint64_t ks_h(uint64_t n1, uint64_t n2, double d, double *lcm)
{
	uint64_t g = gcd64(n1, n2);
	*lcm = (double)(n1 / g) * (double)n2;
	return (uint64_t)nearbyint(d * *lcm);
}

double llm_drift_ks_exact_sf(uint64_t n1, uint64_t n2, double d)
{
	double lcm;
	uint64_t h = ks_h(n1, n2, d, &lcm);
	if (h == 0)
		return 1.0;
	bool nomem = false;
	double p =
	    n1 == n2 ? ks_outside_square(n1, h) : ks_outer_inside(n1, n2, gcd64(n1, n2), h, &nomem);
	if (nomem || !isfinite(p) || p < 0 || p > 1)
		return NAN;
	return p;
}

/* scipy.special.smirnov: Birnbaum and Tingey's sum for P(D+_n >= d), each term in logs once
 * the binomial coefficients could overflow. */
double llm_drift_smirnov(uint64_t n, double e)
{
	if (!(n > 0 && e >= 0.0 && e <= 1.0))
		return NAN;
	if (e == 0.0)
		return 1.0;
	uint64_t nn = (uint64_t)floor((double)n * (1.0 - e));
	double p = 0.0, dn = (double)n;
	if (n < 1013) {
		double c = 1.0;
		for (uint64_t v = 0; v <= nn; v++) {
			double evn = e + (double)v / dn;
			p += c * pow(evn, (double)v - 1) * pow(1.0 - evn, (double)(n - v));
			c *= (double)(n - v) / (double)(v + 1);
		}
	} else {
		double lg = lgamma(dn + 1);
		for (uint64_t v = 0; v <= nn; v++) {
			double evn = e + (double)v / dn, om = 1.0 - evn;
			if (fabs(om) > 0.0) {
				double t = lg - lgamma((double)v + 1) -
					   lgamma((double)(n - v) + 1) +
					   ((double)v - 1) * log(evn) + (double)(n - v) * log(om);
				if (t > -708.0)
					p += exp(t);
			}
		}
	}
	return p * e;
}

/* What follows is scipy/stats/_ksstats.py (Simard and L'Ecuyer's choice of method). */
#define E128 128
static const double EP128 = 0x1p128, EM128 = 0x1p-128;

static double log_nfact_div_npow(double n)
{
	static const double coef[] = {
	    -2.955065359477124183e-2,  6.4102564102564102564e-3, -1.9175269175269175269e-3,
	    8.4175084175084175084e-4,  -5.952380952380952381e-4, 7.9365079365079365079e-4,
	    -2.7777777777777777778e-3, 8.3333333333333333333e-2,
	};
	double rn = 1.0 / n, x = rn / n, poly = 0.0;
	for (size_t i = 0; i < sizeof coef / sizeof *coef; i++)
		poly = poly * x + coef[i];
	return log(n) / 2 - n + log(2 * M_PI) / 2 + rn * poly;
}

/* Durbin's matrix in Marsaglia, Tsang and Wang's form: P(D_n <= d). */
static double kolmogn_dmtw(uint64_t n, double d, bool *nomem)
{
	if (d >= 1.0)
		return 1.0;
	double nd = (double)n * d;
	if (nd <= 0.5)
		return 0.0;
	size_t k = (size_t)ceil(nd), m = 2 * k - 1;
	double h = (double)k - nd;
	double *H = calloc(m * m, sizeof *H), *P = calloc(m * m, sizeof *P),
	       *T = malloc(m * m * sizeof *T), *v = malloc(m * sizeof *v),
	       *w = malloc(m * sizeof *w);
	if (!H || !P || !T || !v || !w) {
		free(H), free(P), free(T), free(v), free(w);
		*nomem = true;
		return NAN;
	}
	double fac = 1.0;
	for (size_t j = 1; j <= m; j++) {
		v[j - 1] = 1.0 - pow(h, (double)j);
		w[j - 1] = fac;
		fac /= (double)j;
		v[j - 1] *= fac;
	}
	double tt = pow(fmax(2 * h - 1.0, 0), (double)m) - 2 * pow(h, (double)m);
	v[m - 1] = (1.0 + tt) * fac;
	for (size_t i = 1; i < m; i++)
		for (size_t r = i - 1; r < m; r++)
			H[r * m + i] = w[r - (i - 1)];
	for (size_t r = 0; r < m; r++)
		H[r * m] = v[r];
	for (size_t c = 0; c < m; c++)
		H[(m - 1) * m + c] = v[m - 1 - c];
	for (size_t i = 0; i < m; i++)
		P[i * m + i] = 1.0;
	uint64_t nn = n;
	long expnt = 0, hexpnt = 0;
	while (nn > 0) {
		if (nn % 2) {
			for (size_t i = 0; i < m; i++)
				for (size_t j = 0; j < m; j++) {
					double s = 0;
					for (size_t l = 0; l < m; l++)
						s += P[i * m + l] * H[l * m + j];
					T[i * m + j] = s;
				}
			memcpy(P, T, m * m * sizeof *P);
			expnt += hexpnt;
		}
		for (size_t i = 0; i < m; i++)
			for (size_t j = 0; j < m; j++) {
				double s = 0;
				for (size_t l = 0; l < m; l++)
					s += H[i * m + l] * H[l * m + j];
				T[i * m + j] = s;
			}
		memcpy(H, T, m * m * sizeof *H);
		hexpnt *= 2;
		if (fabs(H[(k - 1) * m + k - 1]) > EP128) {
			for (size_t i = 0; i < m * m; i++)
				H[i] /= EP128;
			hexpnt += E128;
		}
		nn /= 2;
	}
	double p = P[(k - 1) * m + k - 1];
	for (uint64_t i = 1; i <= n; i++) {
		p = (double)i * p / (double)n;
		if (fabs(p) < EM128) {
			p *= EP128;
			expnt -= E128;
		}
	}
	if (expnt)
		p = ldexp(p, (int)expnt);
	free(H), free(P), free(T), free(v), free(w);
	return clip01(p);
}

static void pomeranz_j1j2(int64_t i, int64_t n, int64_t ll, int64_t ceilf, int64_t roundf,
			  int64_t *j1, int64_t *j2)
{
	int64_t a, b;
	if (i == 0) {
		a = -ll - ceilf - 1;
		b = ll + ceilf - 1;
	} else {
		int64_t d2 = (i + 1) / 2, m2 = (i + 1) % 2;
		if (m2 == 0) {
			if (d2 == n + 1) {
				a = n - ll - ceilf - 1;
				b = n + ll + ceilf - 1;
			} else {
				a = d2 - 1 - ll - roundf - 1;
				b = d2 + ll - 1 + ceilf - 1;
			}
		} else {
			a = d2 - 1 - ll - 1;
			b = d2 + ll + roundf - 1;
		}
	}
	*j1 = a + 2 > 0 ? a + 2 : 0;
	*j2 = b < n ? b : n;
}

/* Pomeranz's recursion: P(D_n <= x). */
static double kolmogn_pomeranz(uint64_t un, double x, bool *nomem)
{
	int64_t n = (int64_t)un;
	double t = (double)n * x;
	int64_t ll = (int64_t)floor(t);
	double f = t - (double)ll, g = fmin(f, 1.0 - f);
	int64_t ceilf = f > 0 ? 1 : 0, roundf = f > 0.5 ? 1 : 0;
	int64_t npw = 2 * (ll + 1);
	double *buf = calloc((size_t)npw * 5 + (size_t)npw * 2, sizeof *buf);
	if (!buf) {
		*nomem = true;
		return NAN;
	}
	double *gp = buf, *tgp = gp + npw, *omp = tgp + npw, *V0 = omp + npw, *V1 = V0 + npw,
	       *conv = V1 + npw;
	gp[0] = tgp[0] = omp[0] = 1.0;
	long expnt = 0;
	double gn = g / (double)n, tgn = 2 * g / (double)n, omn = (1 - 2 * g) / (double)n;
	for (int64_t m = 1; m < npw; m++) {
		gp[m] = gp[m - 1] * gn / (double)m;
		tgp[m] = tgp[m - 1] * tgn / (double)m;
		omp[m] = omp[m - 1] * omn / (double)m;
	}
	V1[0] = 1;
	int64_t V0s = 0, V1s = 0, j1, j2;
	pomeranz_j1j2(0, n, ll, ceilf, roundf, &j1, &j2);
	for (int64_t i = 1; i < 2 * n + 2; i++) {
		int64_t k1 = j1;
		double *tmp = V0;
		V0 = V1;
		V1 = tmp;
		int64_t ts = V0s;
		V0s = V1s;
		V1s = ts;
		memset(V1, 0, (size_t)npw * sizeof *V1);
		pomeranz_j1j2(i, n, ll, ceilf, roundf, &j1, &j2);
		const double *pw = (i == 1 || i == 2 * n + 1) ? gp : (i % 2 ? tgp : omp);
		int64_t ln2 = j2 - k1 + 1;
		if (ln2 > 0) {
			/* np.convolve(V0[k1 - V0s : k1 - V0s + ln2], pw[:ln2]), entries
			 * [j1 - k1, j2 - k1] only. */
			const double *a = V0 + (k1 - V0s);
			int64_t alen = k1 - V0s + ln2 > npw ? npw - (k1 - V0s) : ln2;
			int64_t plen = ln2 < npw ? ln2 : npw;
			int64_t cs = j1 - k1, cl = j2 - j1 + 1;
			for (int64_t o = 0; o < cl; o++) {
				int64_t idx = cs + o;
				double s = 0;
				for (int64_t q = 0; q < alen; q++) {
					int64_t r = idx - q;
					if (r >= 0 && r < plen)
						s += a[q] * pw[r];
				}
				conv[o] = s;
			}
			double mx = 0;
			for (int64_t o = 0; o < cl; o++) {
				V1[o] = conv[o];
				if (conv[o] > mx)
					mx = conv[o];
			}
			if (mx > 0 && mx < EM128) {
				for (int64_t o = 0; o < npw; o++)
					V1[o] *= EP128;
				expnt -= E128;
			}
			V1s = V0s + j1 - k1;
		}
	}
	double ans = V1[n - V1s];
	for (int64_t m = 1; m <= n; m++) {
		if (fabs(ans) > EP128) {
			ans *= EM128;
			expnt += E128;
		}
		ans *= (double)m;
	}
	if (expnt)
		ans = ldexp(ans, (int)expnt);
	free(buf);
	return clip01(ans);
}

/* Pelz and Good's approximation: P(D_n <= x). */
static double kolmogn_pelzgood(uint64_t n, double x)
{
	const double pi2 = M_PI * M_PI, pi4 = pi2 * pi2, pi6 = pi4 * pi2, s2pi = sqrt(2 * M_PI);
	if (x <= 0.0)
		return 0.0;
	if (x >= 1.0)
		return 1.0;
	double z = sqrt((double)n) * x;
	double z2 = z * z, z3 = z * z * z, z4 = z2 * z2, z6 = z4 * z2;
	double qlog = -pi2 / 8 / z2;
	if (qlog < -708)
		return 0.0;
	double q = exp(qlog);
	double k1a = -z2, k1b = pi2 / 4;
	double k2a = 6 * z6 + 2 * z4, k2b = (2 * z4 - 5 * z2) * pi2 / 4,
	       k2c = pi4 * (1 - 2 * z2) / 16;
	double k3d = pi6 * (5 - 30 * z2) / 64, k3c = pi4 * (-60 * z2 + 212 * z4) / 16,
	       k3b = pi2 * (135 * z4 - 96 * z6) / 4, k3a = -30 * z6 - 90 * pow(z, 8);
	double K[4] = {0, 0, 0, 0};
	int64_t maxk = (int64_t)ceil(16 * z / M_PI);
	for (int64_t k = maxk; k > 0; k--) {
		double m = (double)(2 * k - 1), m2 = m * m, m4 = m2 * m2, m6 = m4 * m2;
		double qp = pow(q, (double)(8 * k));
		double c[4] = {1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4,
			       k3a + k3b * m2 + k3c * m4 + k3d * m6};
		for (int i = 0; i < 4; i++)
			K[i] = K[i] * qp + c[i];
	}
	double den[4] = {z, 6 * z4, 72 * pow(z, 7), 6480 * pow(z, 10)};
	for (int i = 0; i < 4; i++)
		K[i] = K[i] * q * s2pi / den[i];
	q = exp(-pi2 / 2 / z2);
	double k2x = 0, k3x = 0, s3z = sqrt(3.0) * z;
	for (int64_t k = maxk; k > 0; k--) {
		double ks = (double)(k * k), qpw = pow(q, ks), kpi = M_PI * (double)k;
		k2x += ks * qpw;
		k3x += (s3z + kpi) * (s3z - kpi) * ks * qpw;
	}
	K[2] += k2x * pi2 * s2pi / (-36 * z3);
	K[3] += k3x * pi2 * s2pi / (216 * z6);
	double sum = 0;
	for (int i = 0; i < 4; i++)
		sum += K[i] / pow((double)n, i / 2.0);
	return sum;
}

double llm_drift_kstwo_sf(uint64_t n, double x)
{
	bool nomem = false;
	if (n == 0 || isnan(x))
		return NAN;
	if (x >= 1.0)
		return 0.0;
	if (x <= 0.0)
		return 1.0;
	double dn = (double)n, t = dn * x, prob;
	if (t <= 1.0) { /* Ruben-Gambino */
		if (t <= 0.5)
			return 1.0;
		if (n <= 140) {
			prob = 1.0;
			for (uint64_t i = 1; i <= n; i++)
				prob *= (double)i * (1.0 / dn) * (2 * t - 1);
		} else {
			prob = exp(log_nfact_div_npow(dn) + dn * log(2 * t - 1));
		}
		return clip01(1.0 - prob);
	}
	if (t >= dn - 1)
		return clip01(2 * pow(1.0 - x, dn));
	if (x >= 0.5)
		return clip01(2 * llm_drift_smirnov(n, x));
	double nx2 = t * x;
	if (n <= 140) {
		if (nx2 <= 0.754693)
			prob = kolmogn_dmtw(n, x, &nomem);
		else if (nx2 <= 4)
			prob = kolmogn_pomeranz(n, x, &nomem);
		else
			return clip01(2 * llm_drift_smirnov(n, x));
		return nomem ? NAN : clip01(1.0 - prob);
	}
	if (nx2 >= 370.0)
		return 0.0;
	if (nx2 >= 2.2)
		return clip01(2 * llm_drift_smirnov(n, x));
	if (n <= 100000 && dn * pow(x, 1.5) <= 1.4)
		prob = kolmogn_dmtw(n, x, &nomem);
	else
		prob = kolmogn_pelzgood(n, x);
	return nomem ? NAN : clip01(1.0 - prob);
}

/* --- statistics ----------------------------------------------------------------------- */

enum llm_err llm_drift_ks(double *ref, size_t nr, double *cur, size_t nc, struct llm_drift_ks *out)
{
	qsort(ref, nr, sizeof *ref, cmp_double);
	qsort(cur, nc, sizeof *cur, cmp_double);
	/* The ECDF difference at every value of either sample (searchsorted side='right'). */
	double maxs = -INFINITY, mins = INFINITY;
	size_t i = 0, j = 0;
	while (i < nr || j < nc) {
		double x = j >= nc || (i < nr && ref[i] <= cur[j]) ? ref[i] : cur[j];
		while (i < nr && ref[i] <= x)
			i++;
		while (j < nc && cur[j] <= x)
			j++;
		double diff = (double)i / (double)nr - (double)j / (double)nc;
		if (diff > maxs)
			maxs = diff;
		if (diff < mins)
			mins = diff;
	}
	double ms = -mins;
	if (ms < 0)
		ms = 0;
	if (ms > 1)
		ms = 1;
	double d = ms > maxs ? ms : maxs;
	out->exact = false;
	out->d = d;
	out->p = NAN;
	if (nr <= 10000 && nc <= 10000) {
		double lcm;
		uint64_t h = ks_h(nr, nc, d, &lcm);
		double p = llm_drift_ks_exact_sf(nr, nc, d);
		if (!isnan(p)) {
			out->d = (double)h / lcm;
			out->p = p;
			out->exact = true;
			return LLM_OK;
		}
		out->d = (double)h / lcm;
		d = out->d;
	}
	double m = (double)(nr > nc ? nr : nc), n = (double)(nr > nc ? nc : nr);
	double en = m * n / (m + n);
	double p = llm_drift_kstwo_sf((uint64_t)nearbyint(en), d);
	if (isnan(p))
		return LLM_ERR_NOMEM;
	out->p = clip01(p);
	return LLM_OK;
}

void llm_drift_chisquare(const uint64_t *ref, const uint64_t *cur, size_t k, double *stat,
			 double *p)
{
	uint64_t nr = 0, nc = 0;
	for (size_t i = 0; i < k; i++) {
		nr += ref[i];
		nc += cur[i];
	}
	double knorm = (double)nc / (double)nr, s = 0;
	for (size_t i = 0; i < k; i++) {
		double e = (double)ref[i] * knorm, o = (double)cur[i];
		s += (o - e) * (o - e) / e;
	}
	*stat = s;
	*p = k < 2 ? 1.0 : llm_drift_chi2_sf(s, (double)(k - 1));
}

void llm_drift_z(uint64_t a_ref, uint64_t n_ref, uint64_t a_cur, uint64_t n_cur, double *z,
		 double *p)
{
	double n1 = (double)n_ref, n2 = (double)n_cur;
	double p1 = (double)a_ref / n1, p2 = (double)a_cur / n2;
	double P = (p1 * n1 + p2 * n2) / (n1 + n2);
	if (P <= 0 || P >= 1) {
		*z = NAN;
		*p = 1.0;
		return;
	}
	*z = (p1 - p2) / sqrt(P * (1 - P) * (1.0 / n1 + 1.0 / n2));
	*p = 2 * (1 - llm_drift_norm_cdf(fabs(*z)));
}

double llm_drift_wasserstein(double *u, size_t nu, double *v, size_t nv)
{
	qsort(u, nu, sizeof *u, cmp_double);
	qsort(v, nv, sizeof *v, cmp_double);
	/* scipy's _cdf_distance(1, u, v): the area between the two ECDFs, summed over the gaps
	 * between consecutive values of the pooled sample. */
	size_t i = 0, j = 0;
	double sum = 0, prev = NAN;
	while (i < nu || j < nv) {
		double x = j >= nv || (i < nu && u[i] <= v[j]) ? u[i] : v[j];
		if (!isnan(prev)) {
			double cu = (double)i / (double)nu, cv = (double)j / (double)nv;
			sum += fabs(cu - cv) * (x - prev);
		}
		if (j >= nv || (i < nu && u[i] <= v[j]))
			i++;
		else
			j++;
		prev = x;
	}
	return sum;
}

double llm_drift_std(const double *v, size_t n)
{
	if (!n)
		return NAN;
	long double s = 0;
	for (size_t i = 0; i < n; i++)
		s += v[i];
	double mean = (double)(s / (long double)n);
	long double ss = 0;
	for (size_t i = 0; i < n; i++)
		ss += ((long double)v[i] - mean) * ((long double)v[i] - mean);
	return sqrt((double)(ss / (long double)n));
}

static double rel_entr(double x, double y)
{
	if (x > 0 && y > 0)
		return x * log(x / y);
	if (x == 0 && y >= 0)
		return 0;
	return INFINITY;
}

double llm_drift_jensenshannon(const double *p, const double *q, size_t k)
{
	double sp = 0, sq = 0;
	for (size_t i = 0; i < k; i++) {
		sp += p[i];
		sq += q[i];
	}
	double l = 0, r = 0;
	for (size_t i = 0; i < k; i++) {
		double a = p[i] / sp, b = q[i] / sq, m = (a + b) / 2.0;
		l += rel_entr(a, m);
		r += rel_entr(b, m);
	}
	return sqrt((l + r) / 2.0);
}

/* get_binned_data(..., feel_zeroes=True): zeros become 0.0001, or the smallest non-zero
 * share / 10^6 when that is no more than 0.0001. */
static void fill_zeros(double *v, size_t k)
{
	double mn = INFINITY;
	for (size_t i = 0; i < k; i++)
		if (v[i] != 0 && v[i] < mn)
			mn = v[i];
	double fill = mn <= 0.0001 ? mn / 1e6 : 0.0001;
	for (size_t i = 0; i < k; i++)
		if (v[i] == 0)
			v[i] = fill;
}

double llm_drift_psi(const uint64_t *ref, const uint64_t *cur, size_t k)
{
	uint64_t nr = 0, nc = 0;
	for (size_t i = 0; i < k; i++) {
		nr += ref[i];
		nc += cur[i];
	}
	double *r = malloc(2 * k * sizeof *r);
	if (!r)
		return NAN;
	double *c = r + k;
	for (size_t i = 0; i < k; i++) {
		r[i] = (double)ref[i] / (double)nr;
		c[i] = (double)cur[i] / (double)nc;
	}
	fill_zeros(r, k);
	fill_zeros(c, k);
	double psi = 0;
	for (size_t i = 0; i < k; i++)
		psi += (r[i] - c[i]) * log(r[i] / c[i]);
	free(r);
	return psi;
}

size_t llm_drift_sturges_bins(double lo, double hi, size_t n)
{
	double width = (hi - lo) / (log2((double)n) + 1.0);
	if (width == 0 || n == 0)
		return 1;
	return (size_t)ceil((hi - lo) / width);
}

/* numpy.linspace(lo, hi, bins + 1)[i] after _get_outer_edges widened an empty range. */
static double edge(double lo, double hi, size_t bins, size_t i)
{
	if (lo == hi) {
		lo -= 0.5;
		hi += 0.5;
	}
	if (i == bins)
		return hi;
	return (double)i * ((hi - lo) / (double)bins) + lo;
}

/* searchsorted(v, x, side): the first index whose value is >= x (left) or > x (right). */
static size_t search(const double *v, size_t n, double x, bool right)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (right ? v[mid] <= x : v[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void llm_drift_histogram(const double *v, size_t n, double lo, double hi, size_t bins,
			 uint64_t *counts)
{
	/* numpy.histogram with explicit edges: cumulative counts by searchsorted, left at every
	 * edge but the last, which closes the last bin on the right. */
	size_t prev = search(v, n, edge(lo, hi, bins, 0), false);
	for (size_t b = 0; b < bins; b++) {
		size_t cum = search(v, n, edge(lo, hi, bins, b + 1), b + 1 == bins);
		counts[b] = cum - prev;
		prev = cum;
	}
}

/* --- one column ----------------------------------------------------------------------- */

enum llm_drift_test llm_drift_choose(enum llm_drift_kind kind, uint64_t nref, size_t distinct)
{
	bool num = kind == LLM_DRIFT_NUMERIC && distinct > 5;
	if (nref <= 1000)
		return num ? LLM_DRIFT_KS : distinct > 2 ? LLM_DRIFT_CHISQUARE : LLM_DRIFT_Z;
	return num ? LLM_DRIFT_WASSERSTEIN : LLM_DRIFT_JENSENSHANNON;
}

bool llm_drift_applies(enum llm_drift_test t, enum llm_drift_kind kind, size_t ref_distinct)
{
	switch (t) {
	case LLM_DRIFT_KS:
	case LLM_DRIFT_WASSERSTEIN:
		return kind == LLM_DRIFT_NUMERIC;
	case LLM_DRIFT_CHISQUARE:
	case LLM_DRIFT_Z:
		return kind == LLM_DRIFT_CATEGORICAL || ref_distinct <= 20;
	case LLM_DRIFT_JENSENSHANNON:
	case LLM_DRIFT_PSI:
		return true;
	default:
		return false;
	}
}

/* The distinct values of two sorted arrays, and their counts in each, in ascending order. */
static enum llm_err value_counts(const double *r, size_t nr, const double *c, size_t nc,
				 uint64_t **rc, uint64_t **cc, size_t *k)
{
	size_t cap = 0, i = 0, j = 0;
	while (i < nr || j < nc) {
		double x = j >= nc || (i < nr && r[i] <= c[j]) ? r[i] : c[j];
		while (i < nr && r[i] == x)
			i++;
		while (j < nc && c[j] == x)
			j++;
		cap++;
	}
	*rc = calloc(cap ? 2 * cap : 2, sizeof **rc);
	if (!*rc)
		return LLM_ERR_NOMEM;
	*cc = *rc + cap;
	*k = cap;
	size_t n = 0;
	i = j = 0;
	while (i < nr || j < nc) {
		double x = j >= nc || (i < nr && r[i] <= c[j]) ? r[i] : c[j];
		while (i < nr && r[i] == x)
			i++, (*rc)[n]++;
		while (j < nc && c[j] == x)
			j++, (*cc)[n]++;
		n++;
	}
	return LLM_OK;
}

static size_t distinct_sorted(const double *v, size_t n)
{
	size_t d = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || v[i] != v[i - 1])
			d++;
	return d;
}

static void judge(struct llm_drift_result *o)
{
	if (llm_drift_test_is_pvalue(o->test))
		o->drifted = o->score < o->threshold;
	else
		o->drifted = o->score >= o->threshold;
}

/* The category tests (chisquare, z, jensenshannon and psi on categories). */
static enum llm_err run_counts(const uint64_t *rc, const uint64_t *cc, size_t k,
			       struct llm_drift_result *o)
{
	o->bins = k;
	switch (o->test) {
	case LLM_DRIFT_CHISQUARE:
		llm_drift_chisquare(rc, cc, k, &o->statistic, &o->p_value);
		o->score = o->p_value;
		break;
	case LLM_DRIFT_Z: {
		/* Evidently: 0 for the first category in sorted order, 1 for the others; both
		 * samples of that one value alone: p = 1. */
		size_t rk = 0, ck = 0, same = 0;
		for (size_t i = 0; i < k; i++) {
			rk += rc[i] != 0;
			ck += cc[i] != 0;
			same += rc[i] && cc[i];
		}
		if (rk == 1 && ck == 1 && same == 1) {
			o->statistic = NAN;
			o->p_value = 1.0;
		} else {
			size_t first = 0;
			while (first < k && !rc[first] && !cc[first])
				first++;
			llm_drift_z(o->nref - rc[first], o->nref, o->ncur - cc[first], o->ncur,
				    &o->statistic, &o->p_value);
		}
		o->score = o->p_value;
		break;
	}
	case LLM_DRIFT_JENSENSHANNON: {
		double *p = malloc(2 * (k ? k : 1) * sizeof *p);
		if (!p)
			return LLM_ERR_NOMEM;
		for (size_t i = 0; i < k; i++) {
			p[i] = (double)rc[i] / (double)o->nref;
			p[k + i] = (double)cc[i] / (double)o->ncur;
		}
		o->statistic = o->score = llm_drift_jensenshannon(p, p + k, k);
		free(p);
		break;
	}
	case LLM_DRIFT_PSI:
		o->statistic = o->score = llm_drift_psi(rc, cc, k);
		if (isnan(o->score))
			return LLM_ERR_NOMEM;
		break;
	default:
		return LLM_ERR_USAGE;
	}
	return LLM_OK;
}

enum llm_err llm_drift_column(struct llm_drift_sample *s, enum llm_drift_test test,
			      double threshold, struct llm_drift_result *out)
{
	memset(out, 0, sizeof *out);
	out->statistic = out->p_value = out->wasserstein = NAN;
	if (s->kind == LLM_DRIFT_CATEGORICAL) {
		uint64_t nr = 0, nc = 0;
		size_t distinct = 0, rd = 0;
		for (size_t i = 0; i < s->k; i++) {
			nr += s->ref_counts[i];
			nc += s->cur_counts[i];
			distinct += s->ref_counts[i] || s->cur_counts[i];
			rd += s->ref_counts[i] != 0;
		}
		if (!nr || !nc)
			return LLM_ERR_RANGE;
		out->nref = nr;
		out->ncur = nc;
		out->distinct = distinct;
		out->test = test != LLM_DRIFT_AUTO && llm_drift_applies(test, s->kind, rd)
				? test
				: llm_drift_choose(s->kind, nr, distinct);
		out->threshold =
		    isnan(threshold) ? llm_drift_default_threshold(out->test) : threshold;
		enum llm_err e = run_counts(s->ref_counts, s->cur_counts, s->k, out);
		if (!e)
			judge(out);
		return e;
	}
	if (!s->nref || !s->ncur)
		return LLM_ERR_RANGE;
	qsort(s->ref, s->nref, sizeof *s->ref, cmp_double);
	qsort(s->cur, s->ncur, sizeof *s->cur, cmp_double);
	out->nref = s->nref;
	out->ncur = s->ncur;
	size_t rd = distinct_sorted(s->ref, s->nref);
	uint64_t *rc = NULL, *cc = NULL;
	size_t k = 0;
	enum llm_err e = value_counts(s->ref, s->nref, s->cur, s->ncur, &rc, &cc, &k);
	if (e)
		return e;
	out->distinct = k;
	out->test = test != LLM_DRIFT_AUTO && llm_drift_applies(test, s->kind, rd)
			? test
			: llm_drift_choose(s->kind, s->nref, k);
	out->threshold = isnan(threshold) ? llm_drift_default_threshold(out->test) : threshold;
	switch (out->test) {
	case LLM_DRIFT_KS: {
		struct llm_drift_ks ks;
		e = llm_drift_ks(s->ref, s->nref, s->cur, s->ncur, &ks);
		out->statistic = ks.d;
		out->p_value = out->score = ks.p;
		out->exact = ks.exact;
		break;
	}
	case LLM_DRIFT_WASSERSTEIN: {
		double w = llm_drift_wasserstein(s->ref, s->nref, s->cur, s->ncur);
		out->wasserstein = w;
		out->statistic = out->score = w / fmax(llm_drift_std(s->ref, s->nref), 0.001);
		break;
	}
	case LLM_DRIFT_CHISQUARE:
	case LLM_DRIFT_Z:
		e = run_counts(rc, cc, k, out);
		break;
	case LLM_DRIFT_JENSENSHANNON:
	case LLM_DRIFT_PSI:
		if (rd > 20) {
			double lo = fmin(s->ref[0], s->cur[0]);
			double hi = fmax(s->ref[s->nref - 1], s->cur[s->ncur - 1]);
			size_t bins = llm_drift_sturges_bins(lo, hi, s->nref + s->ncur);
			uint64_t *h = calloc(2 * bins, sizeof *h);
			if (!h) {
				e = LLM_ERR_NOMEM;
				break;
			}
			llm_drift_histogram(s->ref, s->nref, lo, hi, bins, h);
			llm_drift_histogram(s->cur, s->ncur, lo, hi, bins, h + bins);
			e = run_counts(h, h + bins, bins, out);
			free(h);
		} else {
			e = run_counts(rc, cc, k, out);
		}
		break;
	default:
		e = LLM_ERR_USAGE;
	}
	free(rc);
	if (!e)
		judge(out);
	return e;
}

bool llm_drift_dataset(size_t drifted, size_t columns, double share)
{
	return columns > 0 && drifted > 0 && (double)drifted >= share * (double)columns;
}

/* --- words ---------------------------------------------------------------------------- */

enum llm_err llm_drift_words(const char *s, size_t n,
			     bool (*fn)(void *ctx, const char *word, size_t len), void *ctx)
{
	struct llm_buf w;
	llm_buf_init(&w, 0);
	size_t i = 0;
	enum llm_err e = LLM_OK;
	while (i <= n) {
		uint32_t cp = 0;
		size_t len = 0;
		bool word = false;
		if (i < n) {
			len = llm_unicode_decode(s + i, n - i, &cp);
			word = llm_unicode_is_alpha(cp) || llm_unicode_is_digit(cp);
		}
		if (word) {
			char u[4];
			size_t ul =
			    llm_unicode_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), u);
			if ((e = llm_buf_append(&w, u, ul)))
				break;
		} else if (w.len) {
			if (!fn(ctx, w.data, w.len))
				break;
			llm_buf_clear(&w);
		}
		i += len ? len : 1;
	}
	llm_buf_free(&w);
	return e;
}
