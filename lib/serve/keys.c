#include "config.h"

#include "serve/keys.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "core/hash.h"

/* A key file larger than this is surely a mistake (a million keys fit in far less). */
#define KEYS_FILE_MAX (64u << 20)
/* Limits above this are typos, not plans. */
#define KEYS_LIMIT_MAX 1000000000000000LL

struct key_entry {
	unsigned char digest[LLM_SHA256_LEN];
	struct llm_key key;
};

/* One immutable loaded file: the entries and an open-addressing table over them. */
struct keyset {
	struct key_entry *e;
	size_t n;
	uint32_t *slot; /* index + 1 into e, 0 for empty; mask + 1 slots */
	size_t mask;
};

struct llm_keys {
	pthread_mutex_t lock; /* guards set: held only to probe the table and copy an entry */
	struct keyset *set;
	char *path; /* NULL for a set parsed from memory */
};

static void keyset_free(struct keyset *s)
{
	if (!s)
		return;
	if (s->e)
		OPENSSL_cleanse(s->e, s->n * sizeof *s->e);
	free(s->e);
	free(s->slot);
	free(s);
}

static size_t digest_home(const unsigned char *d, size_t mask)
{
	uint64_t h;
	memcpy(&h, d, sizeof h);
	return (size_t)h & mask;
}

static void key_id_from_digest(const unsigned char *d, char out[LLM_KEY_ID_MAX])
{
	char hex[9];
	llm_hex(d, 4, hex);
	snprintf(out, LLM_KEY_ID_MAX, "key-%s", hex);
}

void llm_key_id(const char *key, size_t n, char out[LLM_KEY_ID_MAX])
{
	unsigned char d[LLM_SHA256_LEN];
	if (llm_sha256(key, n, d) != LLM_OK) {
		snprintf(out, LLM_KEY_ID_MAX, "key-unknown");
		return;
	}
	key_id_from_digest(d, out);
	OPENSSL_cleanse(d, sizeof d);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A word of the line: [p, p + n). */
struct word {
	const char *p;
	size_t n;
};

static bool word_is(struct word w, const char *s)
{
	return w.n == strlen(s) && memcmp(w.p, s, w.n) == 0;
}

/* Parse a limit value: a positive integer or "none". */
static bool parse_limit(struct word v, int64_t *out)
{
	if (word_is(v, "none")) {
		*out = LLM_KEY_NONE;
		return true;
	}
	if (v.n == 0 || v.n > 19)
		return false;
	int64_t x = 0;
	for (size_t i = 0; i < v.n; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return false;
		x = x * 10 + (v.p[i] - '0');
	}
	if (x < 1 || x > KEYS_LIMIT_MAX)
		return false;
	*out = x;
	return true;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* Check a models= list: comma-separated non-empty names of printable characters. */
static bool models_ok(struct word v)
{
	if (v.n == 0 || v.n >= LLM_KEY_MODELS_MAX)
		return false;
	size_t run = 0;
	for (size_t i = 0; i < v.n; i++) {
		if (v.p[i] == ',') {
			if (!run)
				return false;
			run = 0;
		} else {
			run++;
		}
	}
	return run > 0;
}

/* The settings after the key on one line. */
static enum llm_err parse_setting(struct word w, struct llm_key *k, unsigned *seen,
				  const char *name, long line, struct llm_diag *diag)
{
	const char *eq = memchr(w.p, '=', w.n);
	if (!eq || eq == w.p)
		return llm_diag_set(diag, LLM_ERR_FORMAT, name, line,
				    "expected NAME=VALUE after the key (name, rpm, tpm, "
				    "budget_tokens, models)");
	struct word s = {w.p, (size_t)(eq - w.p)};
	struct word v = {eq + 1, w.n - s.n - 1};
	static const char *const names[] = {"name", "rpm", "tpm", "budget_tokens", "models"};
	unsigned which = 0;
	while (which < 5 && !word_is(s, names[which]))
		which++;
	if (which == 5)
		return llm_diag_set(
		    diag, LLM_ERR_FORMAT, name, line,
		    "unknown setting '%.*s' (name, rpm, tpm, budget_tokens, models)",
		    (int)(s.n > 64 ? 64 : s.n), s.p);
	if (*seen & (1u << which))
		return llm_diag_set(diag, LLM_ERR_FORMAT, name, line, "%s= given twice",
				    names[which]);
	*seen |= 1u << which;
	switch (which) {
	case 0:
		if (v.n == 0 || v.n >= LLM_KEY_ID_MAX)
			return llm_diag_set(diag, LLM_ERR_FORMAT, name, line,
					    "name= must have 1 to %d characters",
					    LLM_KEY_ID_MAX - 1);
		for (size_t i = 0; i < v.n; i++)
			if (!name_char(v.p[i]))
				return llm_diag_set(diag, LLM_ERR_FORMAT, name, line,
						    "name= may hold only letters, digits, '.', "
						    "'_' and '-'");
		memcpy(k->id, v.p, v.n);
		k->id[v.n] = '\0';
		return LLM_OK;
	case 1:
	case 2:
	case 3: {
		int64_t x;
		if (!parse_limit(v, &x))
			return llm_diag_set(diag, LLM_ERR_FORMAT, name, line,
					    "%s= wants a whole number from 1 to %lld, or none, not "
					    "'%.*s'",
					    names[which], (long long)KEYS_LIMIT_MAX,
					    (int)(v.n > 32 ? 32 : v.n), v.p);
		if (which == 1)
			k->rpm = x;
		else if (which == 2)
			k->tpm = x;
		else
			k->budget_tokens = x;
		return LLM_OK;
	}
	default:
		if (word_is(v, "*")) {
			k->models[0] = '\0';
			return LLM_OK;
		}
		if (!models_ok(v))
			return llm_diag_set(diag, LLM_ERR_FORMAT, name, line,
					    "models= wants names separated by commas, at most %d "
					    "bytes in all",
					    LLM_KEY_MODELS_MAX - 1);
		memcpy(k->models, v.p, v.n);
		k->models[v.n] = '\0';
		return LLM_OK;
	}
}

/* The key word: its digest, or a diagnostic that never quotes it. */
static enum llm_err parse_key(struct word w, unsigned char *digest, const char *name, long line,
			      struct llm_diag *diag)
{
	if (w.n >= 7 && memcmp(w.p, "sha256:", 7) == 0) {
		if (w.n != 7 + 2 * LLM_SHA256_LEN)
			return llm_diag_set(diag, LLM_ERR_FORMAT, name, line,
					    "sha256: wants 64 hex digits");
		for (size_t i = 0; i < LLM_SHA256_LEN; i++) {
			int hi = hexval(w.p[7 + 2 * i]), lo = hexval(w.p[8 + 2 * i]);
			if (hi < 0 || lo < 0)
				return llm_diag_set(diag, LLM_ERR_FORMAT, name, line,
						    "sha256: wants 64 hex digits");
			digest[i] = (unsigned char)(hi << 4 | lo);
		}
		return LLM_OK;
	}
	if (w.n < LLM_KEY_MIN_LEN || w.n > LLM_KEY_MAX_LEN)
		return llm_diag_set(diag, LLM_ERR_FORMAT, name, line,
				    "a key must have %d to %d characters (this one has %zu)",
				    LLM_KEY_MIN_LEN, LLM_KEY_MAX_LEN, w.n);
	for (size_t i = 0; i < w.n; i++) {
		unsigned char c = (unsigned char)w.p[i];
		if (c <= 0x20 || c >= 0x7f)
			return llm_diag_set(diag, LLM_ERR_FORMAT, name, line,
					    "a key may hold only printable ASCII characters "
					    "(character %zu is not)",
					    i + 1);
		if (c == '#')
			return llm_diag_set(diag, LLM_ERR_FORMAT, name, line,
					    "a key may not contain '#' (character %zu)", i + 1);
	}
	return llm_sha256(w.p, w.n, digest);
}

/* Split the next word of [*p, end): spaces and tabs separate; a word starting with '#' ends
 * the line.  False at the end of the line. */
static bool next_word(const char **p, const char *end, struct word *w)
{
	const char *s = *p;
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end || *s == '#') {
		*p = end;
		return false;
	}
	const char *e = s;
	while (e < end && *e != ' ' && *e != '\t')
		e++;
	w->p = s;
	w->n = (size_t)(e - s);
	*p = e;
	return true;
}

static enum llm_err keyset_add(struct keyset *s, size_t *cap, const struct key_entry *ke)
{
	if (s->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct key_entry *ne = malloc(nc * sizeof *ne);
		if (!ne)
			return LLM_ERR_NOMEM;
		if (s->n) {
			memcpy(ne, s->e, s->n * sizeof *ne);
			OPENSSL_cleanse(s->e, s->n * sizeof *ne);
		}
		free(s->e);
		s->e = ne;
		*cap = nc;
	}
	s->e[s->n++] = *ke;
	return LLM_OK;
}

/* Build the table; report the first repeated key or id. */
static enum llm_err keyset_index(struct keyset *s, const char *name, struct llm_diag *diag)
{
	size_t cap = 16;
	while (cap < 2 * s->n)
		cap *= 2;
	s->slot = calloc(cap, sizeof *s->slot);
	if (!s->slot)
		return llm_diag_set(diag, LLM_ERR_NOMEM, name, 0, "out of memory");
	s->mask = cap - 1;
	for (size_t i = 0; i < s->n; i++) {
		size_t h = digest_home(s->e[i].digest, s->mask);
		while (s->slot[h]) {
			const struct key_entry *o = &s->e[s->slot[h] - 1];
			if (memcmp(o->digest, s->e[i].digest, LLM_SHA256_LEN) == 0)
				return llm_diag_set(diag, LLM_ERR_FORMAT, name, s->e[i].key.line,
						    "the same key as on line %ld", o->key.line);
			h = (h + 1) & s->mask;
		}
		s->slot[h] = (uint32_t)(i + 1);
	}
	/* Ids must be unique too, or two keys would share a log name and a limit.  Sorting would
	 * reorder the entries; a second small table over the ids keeps this linear. */
	uint32_t *ids = calloc(cap, sizeof *ids);
	if (!ids)
		return llm_diag_set(diag, LLM_ERR_NOMEM, name, 0, "out of memory");
	enum llm_err e = LLM_OK;
	for (size_t i = 0; i < s->n && !e; i++) {
		const char *id = s->e[i].key.id;
		size_t h = (size_t)llm_hash64(id, strlen(id), 0) & s->mask;
		while (ids[h]) {
			const struct llm_key *o = &s->e[ids[h] - 1].key;
			if (strcmp(o->id, id) == 0) {
				e = llm_diag_set(diag, LLM_ERR_FORMAT, name, s->e[i].key.line,
						 "key id '%s' already names the key on line %ld",
						 id, o->line);
				break;
			}
			h = (h + 1) & s->mask;
		}
		ids[h] = (uint32_t)(i + 1);
	}
	free(ids);
	return e;
}

static enum llm_err keyset_parse(struct keyset **out, const char *text, size_t n, const char *name,
				 struct llm_diag *diag)
{
	*out = NULL;
	struct keyset *s = calloc(1, sizeof *s);
	if (!s)
		return llm_diag_set(diag, LLM_ERR_NOMEM, name, 0, "out of memory");
	size_t cap = 0;
	enum llm_err e = LLM_OK;
	const char *p = text, *end = text + n;
	long line = 0;
	struct key_entry ke;
	while (p < end && !e) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		line++;
		const char *lend = le > p && le[-1] == '\r' ? le - 1 : le;
		const char *q = p;
		p = nl ? nl + 1 : end;
		if (memchr(q, '\0', (size_t)(lend - q))) {
			e = llm_diag_set(diag, LLM_ERR_FORMAT, name, line,
					 "a NUL byte in the line");
			break;
		}
		struct word w;
		if (!next_word(&q, lend, &w))
			continue;
		memset(&ke, 0, sizeof ke);
		ke.key.rpm = ke.key.tpm = ke.key.budget_tokens = LLM_KEY_UNSET;
		ke.key.line = line;
		e = parse_key(w, ke.digest, name, line, diag);
		if (e)
			break;
		unsigned seen = 0;
		while (!e && next_word(&q, lend, &w))
			e = parse_setting(w, &ke.key, &seen, name, line, diag);
		if (e)
			break;
		if (!(seen & 1))
			key_id_from_digest(ke.digest, ke.key.id);
		if (s->n >= UINT32_MAX / 4) {
			e = llm_diag_set(diag, LLM_ERR_TOO_BIG, name, line, "too many keys");
			break;
		}
		e = keyset_add(s, &cap, &ke);
		if (e)
			llm_diag_set(diag, e, name, line, "out of memory");
	}
	OPENSSL_cleanse(&ke, sizeof ke);
	if (!e)
		e = keyset_index(s, name, diag);
	if (e) {
		keyset_free(s);
		return e;
	}
	*out = s;
	return LLM_OK;
}

/* Read the whole file, then parse it and wipe the text: keys must not linger in freed memory. */
static enum llm_err keyset_load(struct keyset **out, const char *path, struct llm_diag *diag)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return llm_diag_set(diag, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "cannot open: %s", strerror(errno));
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		return llm_diag_set(diag, LLM_ERR_IS_DIR, path, 0, "is a directory");
	}
	size_t cap = 4096, len = 0;
	char *text = malloc(cap);
	enum llm_err e = text ? LLM_OK : LLM_ERR_NOMEM;
	while (!e) {
		if (len == cap) {
			if (cap >= KEYS_FILE_MAX) {
				e = llm_diag_set(diag, LLM_ERR_TOO_BIG, path, 0,
						 "larger than %u MiB", KEYS_FILE_MAX >> 20);
				break;
			}
			char *nt = malloc(cap * 2);
			if (!nt) {
				e = LLM_ERR_NOMEM;
				break;
			}
			memcpy(nt, text, len);
			OPENSSL_cleanse(text, len);
			free(text);
			text = nt;
			cap *= 2;
		}
		size_t got = fread(text + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			if (ferror(f))
				e = llm_diag_set(diag, LLM_ERR_IO, path, 0, "cannot read: %s",
						 strerror(errno));
			break;
		}
	}
	fclose(f);
	if (e == LLM_ERR_NOMEM)
		llm_diag_set(diag, e, path, 0, "out of memory");
	if (!e)
		e = keyset_parse(out, text, len, path, diag);
	if (text) {
		OPENSSL_cleanse(text, cap);
		free(text);
	}
	return e;
}

static enum llm_err keys_new(struct llm_keys **out, struct keyset *set, const char *path)
{
	struct llm_keys *k = calloc(1, sizeof *k);
	if (!k)
		return LLM_ERR_NOMEM;
	if (path && !(k->path = strdup(path))) {
		free(k);
		return LLM_ERR_NOMEM;
	}
	pthread_mutex_init(&k->lock, NULL);
	k->set = set;
	*out = k;
	return LLM_OK;
}

enum llm_err llm_keys_open(struct llm_keys **out, const char *path, struct llm_diag *diag)
{
	*out = NULL;
	struct keyset *set;
	enum llm_err e = keyset_load(&set, path, diag);
	if (e)
		return e;
	if ((e = keys_new(out, set, path))) {
		keyset_free(set);
		return llm_diag_set(diag, e, path, 0, "out of memory");
	}
	return LLM_OK;
}

enum llm_err llm_keys_parse(struct llm_keys **out, const char *text, size_t n, const char *name,
			    struct llm_diag *diag)
{
	*out = NULL;
	struct keyset *set;
	enum llm_err e = keyset_parse(&set, text, n, name, diag);
	if (e)
		return e;
	if ((e = keys_new(out, set, NULL))) {
		keyset_free(set);
		return llm_diag_set(diag, e, name, 0, "out of memory");
	}
	return LLM_OK;
}

void llm_keys_free(struct llm_keys *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->lock);
	keyset_free(k->set);
	free(k->path);
	free(k);
}

enum llm_err llm_keys_reload(struct llm_keys *k, struct llm_diag *diag)
{
	if (!k->path)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "these keys came from no file");
	struct keyset *set;
	enum llm_err e = keyset_load(&set, k->path, diag);
	if (e)
		return e;
	pthread_mutex_lock(&k->lock);
	struct keyset *old = k->set;
	k->set = set;
	pthread_mutex_unlock(&k->lock);
	keyset_free(old);
	return LLM_OK;
}

size_t llm_keys_count(struct llm_keys *k)
{
	pthread_mutex_lock(&k->lock);
	size_t n = k->set->n;
	pthread_mutex_unlock(&k->lock);
	return n;
}

bool llm_keys_check(struct llm_keys *k, const char *key, size_t n, struct llm_key *out)
{
	unsigned char d[LLM_SHA256_LEN];
	if (!key || llm_sha256(key, n, d) != LLM_OK)
		return false;
	bool found = false;
	pthread_mutex_lock(&k->lock);
	const struct keyset *s = k->set;
	size_t h = digest_home(d, s->mask);
	for (size_t probes = 0; s->slot[h] && probes <= s->mask; probes++) {
		const struct key_entry *e = &s->e[s->slot[h] - 1];
		if (CRYPTO_memcmp(e->digest, d, LLM_SHA256_LEN) == 0) {
			if (out)
				*out = e->key;
			found = true;
			break;
		}
		h = (h + 1) & s->mask;
	}
	pthread_mutex_unlock(&k->lock);
	OPENSSL_cleanse(d, sizeof d);
	return found;
}

bool llm_key_allows_model(const struct llm_key *key, const char *model)
{
	const char *p = key->models;
	if (!*p)
		return true;
	size_t ml = model ? strlen(model) : 0;
	while (*p) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		if ((n == 1 && *p == '*') || (model && n == ml && memcmp(p, model, n) == 0))
			return true;
		p += n + (c ? 1 : 0);
	}
	return false;
}

const char *llm_keys_bearer(const char *header, size_t *n)
{
	if (!header)
		return NULL;
	const char *p = header;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
		return NULL;
	p += 6;
	while (*p == ' ' || *p == '\t')
		p++;
	const char *e = p + strlen(p);
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (e == p)
		return NULL;
	for (const char *q = p; q < e; q++)
		if (*q == ' ' || *q == '\t')
			return NULL;
	*n = (size_t)(e - p);
	return p;
}
