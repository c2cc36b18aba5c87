/* MANIFEST.json: building, checking and the canonical form (see manifest.h). */
#include "config.h"

#include "artifact/manifest.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json.h"

#define CREATED_MAX 253402300799LL /* 9999-12-31T23:59:59Z */

/* --- canonical JSON ------------------------------------------------------------------------- */

/* The shortest decimal that reads back as v, in ECMAScript's Number::toString layout. */
static enum llm_err put_real(struct llm_buf *b, double v)
{
	if (v == 0)
		return llm_buf_putc(b, '0'); /* -0 too, as ECMAScript writes it */
	char sci[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(sci, sizeof sci, "%.*e", prec - 1, v);
		if (strtod(sci, NULL) == v)
			break;
	}
	/* sci is [-]D[.DDD]e[+-]XX: gather the digits and the exponent. */
	char digits[24];
	int k = 0, exp10 = 0;
	bool neg = sci[0] == '-';
	const char *p = sci + neg;
	for (; *p && *p != 'e' && *p != 'E'; p++)
		if (isdigit((unsigned char)*p) && k < (int)sizeof digits - 1)
			digits[k++] = *p;
	if (*p)
		exp10 = (int)strtol(p + 1, NULL, 10);
	while (k > 1 && digits[k - 1] == '0')
		k--;
	digits[k] = '\0';
	int n = exp10 + 1; /* the decimal point's place after the first digit */
	char out[64];
	size_t o = 0;
	if (neg)
		out[o++] = '-';
	if (k <= n && n <= 21) {
		memcpy(out + o, digits, (size_t)k);
		o += (size_t)k;
		for (int i = k; i < n; i++)
			out[o++] = '0';
	} else if (0 < n && n <= 21) {
		memcpy(out + o, digits, (size_t)n);
		o += (size_t)n;
		out[o++] = '.';
		memcpy(out + o, digits + n, (size_t)(k - n));
		o += (size_t)(k - n);
	} else if (-6 < n && n <= 0) {
		out[o++] = '0';
		out[o++] = '.';
		for (int i = 0; i < -n; i++)
			out[o++] = '0';
		memcpy(out + o, digits, (size_t)k);
		o += (size_t)k;
	} else {
		out[o++] = digits[0];
		if (k > 1) {
			out[o++] = '.';
			memcpy(out + o, digits + 1, (size_t)(k - 1));
			o += (size_t)(k - 1);
		}
		o += (size_t)snprintf(out + o, sizeof out - o, "e%c%d", n - 1 >= 0 ? '+' : '-',
				      abs(n - 1));
	}
	return llm_buf_append(b, out, o);
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

enum llm_err llm_json_canonical(const json_t *v, struct llm_buf *b)
{
	char num[32];
	switch (json_typeof(v)) {
	case JSON_NULL:
		return llm_buf_puts(b, "null");
	case JSON_TRUE:
		return llm_buf_puts(b, "true");
	case JSON_FALSE:
		return llm_buf_puts(b, "false");
	case JSON_INTEGER:
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return llm_buf_puts(b, num);
	case JSON_REAL:
		return put_real(b, json_real_value(v));
	case JSON_STRING:
		return llm_buf_json_string(b, json_string_value(v), json_string_length(v));
	case JSON_ARRAY: {
		enum llm_err e = llm_buf_putc(b, '[');
		for (size_t i = 0; i < json_array_size(v) && !e; i++) {
			if (i)
				e = llm_buf_putc(b, ',');
			if (!e)
				e = llm_json_canonical(json_array_get(v, i), b);
		}
		return e ? e : llm_buf_putc(b, ']');
	}
	case JSON_OBJECT: {
		size_t n = json_object_size(v);
		const char **keys = malloc((n ? n : 1) * sizeof *keys);
		if (!keys)
			return LLM_ERR_NOMEM;
		size_t k = 0;
		const char *key;
		json_t *val;
		json_object_foreach((json_t *)v, key, val)
		{
			keys[k++] = key;
		}
		qsort(keys, n, sizeof *keys, key_cmp);
		enum llm_err e = llm_buf_putc(b, '{');
		for (size_t i = 0; i < n && !e; i++) {
			if (i)
				e = llm_buf_putc(b, ',');
			if (!e)
				e = llm_buf_json_string(b, keys[i], strlen(keys[i]));
			if (!e)
				e = llm_buf_putc(b, ':');
			if (!e)
				e = llm_json_canonical(json_object_get(v, keys[i]), b);
		}
		free(keys);
		return e ? e : llm_buf_putc(b, '}');
	}
	}
	return LLM_ERR_TYPE;
}

enum llm_err llm_digest(const void *p, size_t n, char out[LLM_DIGEST_SIZE])
{
	unsigned char md[LLM_SHA256_LEN];
	enum llm_err e = llm_sha256(p, n, md);
	if (e)
		return e;
	memcpy(out, "sha256:", 7);
	llm_hex(md, sizeof md, out + 7);
	return LLM_OK;
}

static bool hex64(const char *s)
{
	for (int i = 0; i < LLM_SHA256_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[LLM_SHA256_HEX_LEN] == '\0';
}

bool llm_digest_valid(const char *s)
{
	return s && !strncmp(s, "sha256:", 7) && hex64(s + 7);
}

/* --- names, versions, paths, times ---------------------------------------------------------- */

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

enum llm_err llm_artifact_name_check(const char *s, struct llm_diag *d)
{
	size_t n = strlen(s);
	const char *why = NULL;
	if (!n)
		why = "is empty";
	else if (n > LLM_MANIFEST_NAME_MAX)
		why = "is longer than 128 bytes";
	else if (!lower_alnum(s[0]) || !lower_alnum(s[n - 1]))
		why = "must start and end with a lower-case letter or a digit";
	for (size_t i = 0; !why && i < n; i++) {
		if (lower_alnum(s[i]))
			continue;
		if (s[i] == '.' || s[i] == '_' || s[i] == '-') {
			if (!lower_alnum(s[i + 1]))
				why = "has two separators in a row";
			continue;
		}
		why = "may hold only a-z, 0-9 and single '.', '_' or '-' between them";
	}
	if (why)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "name '%.200s' %s", s, why);
	return LLM_OK;
}

/* One dot-separated identifier of a pre-release or build part; numeric identifiers of a
 * pre-release may not have leading zeros. */
static bool semver_ident(const char *s, size_t n, bool pre)
{
	if (!n)
		return false;
	bool digits = true;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9')
			continue;
		digits = false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-'))
			return false;
	}
	return !(pre && digits && n > 1 && s[0] == '0');
}

static bool semver_idents(const char *s, size_t n, bool pre)
{
	size_t start = 0;
	for (size_t i = 0; i <= n; i++)
		if (i == n || s[i] == '.') {
			if (!semver_ident(s + start, i - start, pre))
				return false;
			start = i + 1;
		}
	return true;
}

/* The three numbers; *end after them.  No leading zeros. */
static bool semver_core(const char *s, const char **end)
{
	for (int part = 0; part < 3; part++) {
		if (part) {
			if (*s != '.')
				return false;
			s++;
		}
		if (!isdigit((unsigned char)*s) || (s[0] == '0' && isdigit((unsigned char)s[1])))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	*end = s;
	return true;
}

enum llm_err llm_semver_check(const char *v, struct llm_diag *d)
{
	const char *p;
	size_t n = strlen(v);
	bool ok = n && n <= LLM_MANIFEST_VERSION_MAX && semver_core(v, &p);
	if (ok && *p == '-') {
		const char *plus = strchr(p, '+');
		size_t len = plus ? (size_t)(plus - p - 1) : strlen(p + 1);
		ok = semver_idents(p + 1, len, true);
		p += 1 + len;
	}
	if (ok && *p == '+') {
		ok = semver_idents(p + 1, strlen(p + 1), false);
		p += strlen(p);
	}
	if (!ok || *p)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "version '%.200s' is not a SemVer 2.0 version "
				    "(MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 1.4.0)",
				    v);
	return LLM_OK;
}

/* Compare two runs of digits without leading zeros as numbers. */
static int num_cmp(const char *a, size_t na, const char *b, size_t nb)
{
	if (na != nb)
		return na < nb ? -1 : 1;
	int c = memcmp(a, b, na);
	return (c > 0) - (c < 0);
}

static size_t span_digits(const char *s)
{
	size_t n = 0;
	while (isdigit((unsigned char)s[n]))
		n++;
	return n;
}

int llm_semver_cmp(const char *a, const char *b)
{
	for (int part = 0; part < 3; part++) {
		size_t na = span_digits(a), nb = span_digits(b);
		int c = num_cmp(a, na, b, nb);
		if (c)
			return c;
		a += na + (part < 2);
		b += nb + (part < 2);
	}
	bool pa = *a == '-', pb = *b == '-';
	if (!pa || !pb)
		return pa == pb ? 0 : pa ? -1 : 1; /* a pre-release comes before its release */
	a++;
	b++;
	for (;;) {
		size_t na = strcspn(a, ".+"), nb = strcspn(b, ".+");
		bool da = na && span_digits(a) >= na, db = nb && span_digits(b) >= nb;
		int c;
		if (da && db)
			c = num_cmp(a, na, b, nb);
		else if (da != db)
			c = da ? -1 : 1; /* numeric identifiers have lower precedence */
		else {
			c = memcmp(a, b, na < nb ? na : nb);
			c = c ? (c > 0) - (c < 0) : (na > nb) - (na < nb);
		}
		if (c)
			return c;
		a += na;
		b += nb;
		bool ma = *a == '.', mb = *b == '.';
		if (!ma || !mb)
			return ma == mb ? 0 : ma ? 1 : -1; /* more identifiers: higher */
		a++;
		b++;
	}
}

enum llm_err llm_artifact_path_check(const char *path, struct llm_diag *d)
{
	size_t n = strlen(path);
	const char *why = NULL;
	if (!n)
		why = "is empty";
	else if (n > LLM_MANIFEST_PATH_MAX)
		why = "is longer than 4096 bytes";
	else if (path[0] == '/')
		why = "is absolute";
	else if (llm_utf8_valid_prefix(path, n) != n)
		why = "is not valid UTF-8";
	else if (!strcmp(path, LLM_MANIFEST_PATH))
		why = "is the manifest's own name";
	for (size_t i = 0; !why && i < n; i++)
		if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
			why = "holds a control character";
		else if (path[i] == '\\')
			why = "holds a backslash";
	for (const char *c = path; !why && c;) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		if (!len)
			why = "has an empty component";
		else if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			why = "has a '.' or '..' component";
		else if (len > 255)
			why = "has a component longer than 255 bytes";
		c = slash ? slash + 1 : NULL;
	}
	if (why)
		return llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0, "path '%.300s' %s", path, why);
	return LLM_OK;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian), after H. Hinnant. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned dd)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + dd - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void llm_rfc3339_format(int64_t t, char out[21])
{
	int64_t days = t / 86400, secs = t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	/* civil_from_days */
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned dd = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	char tmp[64];
	snprintf(tmp, sizeof tmp, "%04d-%02u-%02uT%02d:%02d:%02dZ", (int)(y % 10000), m, dd,
		 (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
	memcpy(out, tmp, 20);
	out[20] = '\0';
}

static bool digits_at(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

bool llm_rfc3339_parse(const char *s, int64_t *t)
{
	if (s[0] == '@') {
		char *end;
		errno = 0;
		long long v = strtoll(s + 1, &end, 10);
		if (errno || end == s + 1 || *end || v < 0 || v > CREATED_MAX)
			return false;
		*t = v;
		return true;
	}
	int y, mo, dd, h, mi, se;
	if (strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || s[19] != 'Z' || !digits_at(s, 4, &y) || !digits_at(s + 5, 2, &mo) ||
	    !digits_at(s + 8, 2, &dd) || !digits_at(s + 11, 2, &h) || !digits_at(s + 14, 2, &mi) ||
	    !digits_at(s + 17, 2, &se))
		return false;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (y < 1970 || mo < 1 || mo > 12 || dd < 1 || dd > mdays[mo - 1] ||
	    (mo == 2 && dd == 29 && !leap) || h > 23 || mi > 59 || se > 59)
		return false;
	*t = days_from_civil(y, (unsigned)mo, (unsigned)dd) * 86400 + h * 3600 + mi * 60 + se;
	return true;
}

/* --- the manifest -------------------------------------------------------------------------- */

enum llm_err llm_manifest_init(struct llm_manifest *m, const char *name, const char *version,
			       int64_t created, struct llm_diag *d)
{
	memset(m, 0, sizeof *m);
	enum llm_err e = llm_artifact_name_check(name, d);
	if (!e)
		e = llm_semver_check(version, d);
	if (e)
		return e;
	if (created < 0 || created > CREATED_MAX)
		return llm_diag_set(d, LLM_ERR_RANGE, NULL, 0,
				    "creation time %lld is out of range (1970 to 9999)",
				    (long long)created);
	snprintf(m->name, sizeof m->name, "%s", name);
	snprintf(m->version, sizeof m->version, "%s", version);
	m->created = created;
	if (!(m->doc = json_object()))
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	return LLM_OK;
}

void llm_manifest_free(struct llm_manifest *m)
{
	for (size_t i = 0; i < m->nfiles; i++)
		free(m->files[i].path);
	free(m->files);
	json_decref(m->doc);
	memset(m, 0, sizeof *m);
}

enum llm_err llm_manifest_add_file(struct llm_manifest *m, const char *path, uint64_t size,
				   const char *sha256_hex, bool executable, struct llm_diag *d)
{
	enum llm_err e = llm_artifact_path_check(path, d);
	if (e)
		return e;
	if (size > (uint64_t)INT64_MAX)
		return llm_diag_set(d, LLM_ERR_RANGE, NULL, 0, "%s: size out of range", path);
	if (sha256_hex && *sha256_hex && !hex64(sha256_hex))
		return llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0,
				    "%s: sha256 is not 64 lower-case hex digits", path);
	if (m->nfiles == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct llm_manifest_file *f = realloc(m->files, cap * sizeof *f);
		if (!f)
			return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		m->files = f;
		m->cap = cap;
	}
	struct llm_manifest_file *f = &m->files[m->nfiles];
	memset(f, 0, sizeof *f);
	if (!(f->path = strdup(path)))
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	f->size = size;
	f->executable = executable;
	if (sha256_hex)
		snprintf(f->sha256, sizeof f->sha256, "%s", sha256_hex);
	m->nfiles++;
	m->total_size += size;
	return LLM_OK;
}

static int file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct llm_manifest_file *)a)->path,
		      ((const struct llm_manifest_file *)b)->path);
}

long llm_manifest_find(const struct llm_manifest *m, const char *path)
{
	size_t lo = 0, hi = m->nfiles;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->files[mid].path, path);
		if (!c)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

enum llm_err llm_manifest_sort_files(struct llm_manifest *m, struct llm_diag *d)
{
	if (m->nfiles)
		qsort(m->files, m->nfiles, sizeof *m->files, file_cmp);
	for (size_t i = 1; i < m->nfiles; i++)
		if (!strcmp(m->files[i - 1].path, m->files[i].path))
			return llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0,
					    "path '%.300s' is listed twice", m->files[i].path);
	/* A file "a" and a file "a/b" cannot both be unpacked. */
	char tmp[LLM_MANIFEST_PATH_MAX + 1];
	for (size_t i = 0; i < m->nfiles; i++) {
		snprintf(tmp, sizeof tmp, "%s", m->files[i].path);
		for (char *slash = strrchr(tmp, '/'); slash; slash = strrchr(tmp, '/')) {
			*slash = '\0';
			if (llm_manifest_find(m, tmp) >= 0)
				return llm_diag_set(
				    d, LLM_ERR_FORMAT, NULL, 0,
				    "path '%.300s' is a file and also the folder of "
				    "'%.300s'",
				    tmp, m->files[i].path);
		}
	}
	return LLM_OK;
}

/* --- checking the optional fields ------------------------------------------------------------- */

struct check {
	const char *file;
	struct llm_diag *d;
};

static enum llm_err bad(struct check *k, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum llm_err bad(struct check *k, const char *field, const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return llm_diag_set(k->d, LLM_ERR_FORMAT, k->file, 0, "%s: %s", field, msg);
}

static bool nonempty_string(const json_t *v)
{
	return json_is_string(v) && json_string_length(v) > 0;
}

static bool count(const json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) >= 0;
}

static enum llm_err check_digest_field(struct check *k, const char *field, const json_t *o)
{
	const json_t *dg = json_object_get(o, "digest");
	if (dg && !llm_digest_valid(json_string_value(dg)))
		return bad(k, field, "%s",
			   "digest must be \"sha256:\" and 64 lower-case hex digits");
	return LLM_OK;
}

static enum llm_err check_optional(struct check *k, const char *key, const json_t *v)
{
	char field[64];
	if (!strcmp(key, "parent")) {
		const json_t *n = json_object_get(v, "name"), *ver = json_object_get(v, "version");
		if (!json_is_object(v) || !json_is_string(n) || !json_is_string(ver))
			return bad(k, key, "%s", "expected an object with name and version");
		if (llm_artifact_name_check(json_string_value(n), NULL) ||
		    llm_semver_check(json_string_value(ver), NULL))
			return bad(k, key, "%s", "name or version is not valid");
		return check_digest_field(k, key, v);
	}
	if (!strcmp(key, "base_model")) {
		if (!json_is_object(v) || !nonempty_string(json_object_get(v, "ref")))
			return bad(k, key, "%s", "expected an object with a ref");
		return check_digest_field(k, key, v);
	}
	if (!strcmp(key, "datasets")) {
		if (!json_is_array(v))
			return bad(k, key, "%s", "expected an array");
		for (size_t i = 0; i < json_array_size(v); i++) {
			const json_t *o = json_array_get(v, i);
			snprintf(field, sizeof field, "datasets[%zu]", i);
			const json_t *sz = json_object_get(o, "size"),
				     *rec = json_object_get(o, "records");
			if (!json_is_object(o) || !nonempty_string(json_object_get(o, "name")))
				return bad(k, field, "%s", "expected an object with a name");
			const json_t *h = json_object_get(o, "sha256");
			if (!json_is_string(h) || !hex64(json_string_value(h)))
				return bad(k, field, "%s",
					   "sha256 must be 64 lower-case hex digits");
			if ((sz && !count(sz)) || (rec && !count(rec)))
				return bad(k, field, "%s",
					   "size and records must be whole numbers");
		}
		return LLM_OK;
	}
	if (!strcmp(key, "params"))
		return json_is_object(v) ? LLM_OK : bad(k, key, "%s", "expected an object");
	if (!strcmp(key, "run"))
		return json_is_object(v) && nonempty_string(json_object_get(v, "id"))
			   ? LLM_OK
			   : bad(k, key, "%s", "expected an object with an id");
	if (!strcmp(key, "metrics")) {
		if (!json_is_object(v))
			return bad(k, key, "%s", "expected an object");
		const char *name;
		json_t *m;
		json_object_foreach((json_t *)v, name, m)
		{
			const json_t *s = json_object_get(m, "score");
			if (!json_is_object(m) || !s || !(json_is_number(s) || json_is_null(s)))
				return bad(k, key, "'%.200s' needs a score (a number or null)",
					   name);
		}
		return LLM_OK;
	}
	if (!strcmp(key, "licence")) {
		const char *s = json_string_value(v);
		if (!s || !*s || strlen(s) > 256)
			return bad(k, key, "%s", "expected an SPDX expression");
		for (; *s; s++)
			if ((unsigned char)*s <= 0x20 && *s != ' ')
				return bad(k, key, "%s", "expected an SPDX expression");
			else if ((unsigned char)*s >= 0x7f)
				return bad(k, key, "%s", "an SPDX expression is ASCII");
		return LLM_OK;
	}
	if (!strcmp(key, "tags")) {
		if (!json_is_array(v))
			return bad(k, key, "%s", "expected an array of strings");
		for (size_t i = 0; i < json_array_size(v); i++)
			if (!nonempty_string(json_array_get(v, i)))
				return bad(k, key, "%s", "expected an array of strings");
		return LLM_OK;
	}
	if (!strncmp(key, "x-", 2))
		return LLM_OK;
	return bad(k, key, "%s", "unknown field (extensions start with \"x-\")");
}

enum llm_err llm_manifest_set(struct llm_manifest *m, const char *key, json_t *v,
			      struct llm_diag *d)
{
	static const char *const reserved[] = {"format", "name", "version", "created", "files"};
	for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
		if (!strcmp(key, reserved[i])) {
			json_decref(v);
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					    "%s: set by the manifest itself", key);
		}
	if (!v) {
		json_object_del(m->doc, key);
		return LLM_OK;
	}
	struct check k = {NULL, d};
	enum llm_err e = check_optional(&k, key, v);
	if (e) {
		json_decref(v);
		return e;
	}
	if (json_object_set_new(m->doc, key, v))
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	return LLM_OK;
}

enum llm_err llm_manifest_sync(struct llm_manifest *m)
{
	char created[21];
	llm_rfc3339_format(m->created, created);
	json_t *files = json_array();
	if (!files)
		return LLM_ERR_NOMEM;
	for (size_t i = 0; i < m->nfiles; i++) {
		const struct llm_manifest_file *f = &m->files[i];
		json_t *o = json_pack("{s:s,s:I,s:s}", "path", f->path, "size", (json_int_t)f->size,
				      "sha256", f->sha256);
		if (!o || (f->executable && json_object_set_new(o, "executable", json_true())) ||
		    json_array_append_new(files, o)) {
			json_decref(files);
			return LLM_ERR_NOMEM;
		}
	}
	if (json_object_set_new(m->doc, "format", json_integer(LLM_MANIFEST_FORMAT)) ||
	    json_object_set_new(m->doc, "name", json_string(m->name)) ||
	    json_object_set_new(m->doc, "version", json_string(m->version)) ||
	    json_object_set_new(m->doc, "created", json_string(created)) ||
	    json_object_set_new(m->doc, "files", files))
		return LLM_ERR_NOMEM;
	return LLM_OK;
}

enum llm_err llm_manifest_canonical(struct llm_manifest *m, struct llm_buf *out)
{
	return llm_json_canonical(m->doc, out);
}

enum llm_err llm_manifest_identity(struct llm_manifest *m, char out[LLM_DIGEST_SIZE])
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	enum llm_err e = llm_manifest_canonical(m, &b);
	if (!e)
		e = llm_digest(b.data, b.len, out);
	llm_buf_free(&b);
	return e;
}

/* --- parsing -------------------------------------------------------------------------------- */

static enum llm_err parse_files(struct llm_manifest *m, struct check *k, const json_t *files)
{
	if (!json_is_array(files))
		return bad(k, "files", "%s", "expected an array");
	char field[48];
	for (size_t i = 0; i < json_array_size(files); i++) {
		const json_t *o = json_array_get(files, i);
		snprintf(field, sizeof field, "files[%zu]", i);
		if (!json_is_object(o))
			return bad(k, field, "%s", "expected an object");
		const json_t *p = json_object_get(o, "path"), *sz = json_object_get(o, "size"),
			     *h = json_object_get(o, "sha256"),
			     *x = json_object_get(o, "executable");
		const char *key;
		json_t *val;
		json_object_foreach((json_t *)o, key, val)
		{
			if (strcmp(key, "path") && strcmp(key, "size") && strcmp(key, "sha256") &&
			    strcmp(key, "executable"))
				return bad(k, field, "unknown field '%.100s'", key);
		}
		if (!json_is_string(p))
			return bad(k, field, "%s", "path must be a string");
		if (!count(sz))
			return bad(k, field, "%s", "size must be a whole number");
		if (!json_is_string(h) || !hex64(json_string_value(h)))
			return bad(k, field, "%s", "sha256 must be 64 lower-case hex digits");
		if (x && !json_is_true(x))
			return bad(k, field, "%s", "executable is written only as true");
		if (strlen(json_string_value(p)) != json_string_length(p))
			return bad(k, field, "%s", "path holds a NUL");
		struct llm_diag pd;
		if (llm_artifact_path_check(json_string_value(p), &pd))
			return llm_diag_set(k->d, LLM_ERR_FORMAT, k->file, 0, "%s: %s", field,
					    pd.msg);
		if (llm_manifest_add_file(m, json_string_value(p), (uint64_t)json_integer_value(sz),
					  json_string_value(h), x != NULL, k->d))
			return k->d ? k->d->code : LLM_ERR_NOMEM;
		if (i && strcmp(m->files[i - 1].path, m->files[i].path) >= 0)
			return bad(k, field, "path '%.200s' is out of order or listed twice",
				   m->files[i].path);
	}
	enum llm_err e = llm_manifest_sort_files(m, k->d);
	if (e && k->d)
		snprintf(k->d->file, sizeof k->d->file, "%s", k->file ? k->file : "");
	return e;
}

enum llm_err llm_manifest_parse(struct llm_manifest *m, const char *s, size_t n, const char *file,
				bool require_canonical, struct llm_diag *d)
{
	memset(m, 0, sizeof *m);
	struct check k = {file, d};
	if (n > LLM_MANIFEST_MAX_BYTES)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, file, 0, "manifest larger than %u bytes",
				    LLM_MANIFEST_MAX_BYTES);
	json_error_t je;
	json_t *doc = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		return llm_diag_set(d, LLM_ERR_JSON, file, je.line > 0 ? je.line : 0,
				    "not valid JSON: %s", je.text);
	enum llm_err e = LLM_OK;
	if (!json_is_object(doc)) {
		json_decref(doc);
		return llm_diag_set(d, LLM_ERR_FORMAT, file, 0, "a manifest is a JSON object");
	}
	const json_t *fmt = json_object_get(doc, "format"), *name = json_object_get(doc, "name"),
		     *ver = json_object_get(doc, "version"), *cr = json_object_get(doc, "created");
	int64_t created = 0;
	if (!json_is_integer(fmt))
		e = bad(&k, "format", "%s",
			"missing, or not a whole number: not an llmops manifest");
	else if (json_integer_value(fmt) != LLM_MANIFEST_FORMAT)
		e = llm_diag_set(d, LLM_ERR_FORMAT, file, 0,
				 "format %" JSON_INTEGER_FORMAT
				 " is not one this llm-pack reads (it reads %d)",
				 json_integer_value(fmt), LLM_MANIFEST_FORMAT);
	else if (!json_is_string(name) || !json_is_string(ver))
		e = bad(&k, "name", "%s", "name and version must be strings");
	else if (!json_is_string(cr) || json_string_value(cr)[0] == '@' ||
		 !llm_rfc3339_parse(json_string_value(cr), &created))
		e = bad(&k, "created", "%s", "expected RFC 3339 UTC time: YYYY-MM-DDTHH:MM:SSZ");
	struct llm_diag nd;
	if (!e && (llm_artifact_name_check(json_string_value(name), &nd) ||
		   llm_semver_check(json_string_value(ver), &nd)))
		e = llm_diag_set(d, LLM_ERR_FORMAT, file, 0, "%s", nd.msg);
	if (!e)
		e = llm_manifest_init(m, json_string_value(name), json_string_value(ver), created,
				      d);
	if (e) {
		json_decref(doc);
		return e == LLM_ERR_USAGE ? LLM_ERR_FORMAT : e;
	}
	json_decref(m->doc);
	m->doc = doc;
	e = parse_files(m, &k, json_object_get(doc, "files"));
	const char *key;
	json_t *val;
	json_object_foreach(doc, key, val)
	{
		if (e)
			break;
		if (strcmp(key, "format") && strcmp(key, "name") && strcmp(key, "version") &&
		    strcmp(key, "created") && strcmp(key, "files"))
			e = check_optional(&k, key, val);
	}
	if (!e && require_canonical) {
		struct llm_buf b;
		llm_buf_init(&b, 0);
		e = llm_json_canonical(doc, &b);
		if (!e && (b.len != n || memcmp(b.data, s, n)))
			e = llm_diag_set(d, LLM_ERR_FORMAT, file, 0,
					 "not in canonical form (sorted keys, no whitespace; see "
					 "llmops-manifest(5))");
		llm_buf_free(&b);
	}
	if (e)
		llm_manifest_free(m);
	return e;
}

/* --- optional fields from other tools' files ----------------------------------------------------
 */

static enum llm_err load_json(const char *path, json_t **out, struct llm_diag *d)
{
	json_error_t je;
	*out = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (*out)
		return LLM_OK;
	struct stat st;
	if (stat(path, &st))
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "%s", strerror(errno));
	return llm_diag_set(d, LLM_ERR_JSON, path, je.line > 0 ? je.line : 0, "%s", je.text);
}

static const char *base_name(const char *path)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	const char *s = path + n;
	while (s > path && s[-1] != '/')
		s--;
	return s;
}

enum llm_err llm_manifest_params_from(const char *path, json_t **params, json_t **run,
				      json_t **data, struct llm_diag *d)
{
	*params = NULL;
	if (run)
		*run = NULL;
	if (data)
		*data = NULL;
	struct stat st;
	if (stat(path, &st))
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "%s", strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		enum llm_err e = load_json(path, params, d);
		if (!e && !json_is_object(*params)) {
			json_decref(*params);
			*params = NULL;
			return llm_diag_set(d, LLM_ERR_FORMAT, path, 0,
					    "parameters must be a JSON object");
		}
		return e;
	}
	/* A run folder of llm-tune (lib/tune/run.h): params.json and meta.json. */
	char p[4096];
	snprintf(p, sizeof p, "%s/params.json", path);
	enum llm_err e = llm_manifest_params_from(p, params, NULL, NULL, d);
	if (e)
		return e;
	json_t *meta;
	snprintf(p, sizeof p, "%s/meta.json", path);
	if ((e = load_json(p, &meta, d))) {
		json_decref(*params);
		*params = NULL;
		return e;
	}
	if (run) {
		json_t *r = json_object();
		static const char *const keys[] = {"id", "status", "llmops_version", "git_commit"};
		for (size_t i = 0; i < 4; i++) {
			json_t *v = json_object_get(meta, keys[i]);
			if (json_is_string(v) && json_string_length(v))
				json_object_set(r, keys[i], v);
		}
		if (!json_object_get(r, "id"))
			json_object_set_new(r, "id", json_string(base_name(path)));
		*run = r;
	}
	json_t *ds = json_object_get(meta, "data");
	if (data && json_is_array(ds)) {
		json_t *list = json_array();
		size_t i;
		json_t *o;
		json_array_foreach(ds, i, o)
		{
			const char *dp = json_string_value(json_object_get(o, "path"));
			const char *h = json_string_value(json_object_get(o, "sha256"));
			if (!dp || !h || !hex64(h))
				continue;
			json_t *x = json_pack("{s:s,s:s}", "name", base_name(dp), "sha256", h);
			json_t *b = json_object_get(o, "bytes");
			if (count(b))
				json_object_set(x, "size", b);
			json_array_append_new(list, x);
		}
		*data = list;
	}
	json_decref(meta);
	return LLM_OK;
}

enum llm_err llm_manifest_metrics_from(const char *path, json_t **metrics, struct llm_diag *d)
{
	json_t *rep;
	*metrics = NULL;
	enum llm_err e = load_json(path, &rep, d);
	if (e)
		return e;
	json_t *ms = json_object_get(rep, "metrics");
	if (!json_is_object(rep) || !json_is_object(ms)) {
		json_decref(rep);
		return llm_diag_set(d, LLM_ERR_FORMAT, path, 0,
				    "not an llm-eval report (no \"metrics\" object)");
	}
	json_t *out = json_object();
	const char *name;
	json_t *m;
	json_object_foreach(ms, name, m)
	{
		json_t *score = json_object_get(m, "score");
		if (!json_is_object(m) || !score ||
		    !(json_is_number(score) || json_is_null(score))) {
			json_decref(out);
			json_decref(rep);
			return llm_diag_set(d, LLM_ERR_FORMAT, path, 0, "metrics.%.200s: no score",
					    name);
		}
		json_t *o = json_pack("{s:O}", "score", score);
		json_t *ci = json_object_get(m, "ci");
		if (json_is_object(ci)) {
			json_t *c = json_object();
			static const char *const keys[] = {"lo", "hi", "level"};
			for (size_t i = 0; i < 3; i++) {
				json_t *v = json_object_get(ci, keys[i]);
				if (json_is_number(v))
					json_object_set(c, keys[i], v);
			}
			json_object_set_new(o, "ci", c);
		}
		static const char *const keep[] = {"signature", "higher_is_better", "records"};
		for (size_t i = 0; i < 3; i++) {
			json_t *v = json_object_get(m, keep[i]);
			if (v && !json_is_null(v))
				json_object_set(o, keep[i], v);
		}
		json_object_set_new(out, name, o);
	}
	json_decref(rep);
	*metrics = out;
	return LLM_OK;
}

enum llm_err llm_manifest_dataset_from(const char *path, const char *name, json_t **out,
				       struct llm_diag *d)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "%s", strerror(errno));
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return llm_diag_set(d, S_ISDIR(st.st_mode) ? LLM_ERR_IS_DIR : LLM_ERR_IO, path, 0,
				    "a dataset must be a regular file");
	}
	size_t n = strlen(path);
	bool jsonl = n > 6 && !strcmp(path + n - 6, ".jsonl");
	struct llm_sha256 h;
	enum llm_err e = llm_sha256_init(&h);
	uint64_t size = 0, lines = 0;
	char last = '\n';
	char *buf = malloc(1 << 16);
	if (!buf)
		e = llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	while (!e) {
		ssize_t r = read(fd, buf, 1 << 16);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			e = llm_diag_set(d, LLM_ERR_IO, path, 0, "%s", strerror(errno));
		if (r <= 0)
			break;
		size += (uint64_t)r;
		if (jsonl)
			for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + r - p))); p++)
				lines++;
		last = buf[r - 1];
		e = llm_sha256_update(&h, buf, (size_t)r);
	}
	close(fd);
	free(buf);
	unsigned char md[LLM_SHA256_LEN];
	enum llm_err e2 = llm_sha256_final(&h, md);
	if (e || e2)
		return e ? e : llm_diag_set(d, e2, path, 0, "digest failed");
	char hex[LLM_SHA256_HEX_LEN + 1];
	llm_hex(md, sizeof md, hex);
	if (jsonl && size && last != '\n')
		lines++;
	*out = json_pack("{s:s,s:s,s:I}", "name", name ? name : base_name(path), "sha256", hex,
			 "size", (json_int_t)size);
	if (*out && jsonl)
		json_object_set_new(*out, "records", json_integer((json_int_t)lines));
	return *out ? LLM_OK : llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
}
