#include "config.h"

#include "data/recid.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic.h"
#include "core/hash.h"
#include "core/jsonl.h"

/* ---- ids ------------------------------------------------------------------------------- */

static bool key_is(const struct llm_json_member *m, const char *name)
{
	size_t n = strlen(name);
	if (!m->key_escaped)
		return m->key_len == n && !memcmp(m->key, name, n);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	/* key points inside the quotes: decode with them. */
	bool same = !llm_json_string_decode(m->key - 1, m->key_len + 2, &b) && b.len == n &&
		    !memcmp(b.data, name, n);
	llm_buf_free(&b);
	return same;
}

enum llm_err llm_record_id(const struct llm_json_members *fields, const char *id_field,
			   const char *const *exclude, size_t nexclude, struct llm_buf *out,
			   bool *derived)
{
	*derived = false;
	const struct llm_json_member *id = llm_json_get(fields, id_field);
	if (id && id->type == LLM_JSON_STRING)
		return llm_json_string_decode(id->val, id->val_len, out);
	if (id && id->type == LLM_JSON_NUMBER)
		return llm_buf_append(out, id->val, id->val_len);
	if (id && id->type != LLM_JSON_NULL)
		return LLM_ERR_TYPE;
	struct llm_sha256 h;
	enum llm_err e = llm_sha256_init(&h);
	if (e)
		return e;
	for (size_t i = 0; i < fields->n && !e; i++) {
		const struct llm_json_member *m = &fields->m[i];
		bool skip = false;
		for (size_t k = 0; k < nexclude && !skip; k++)
			skip = key_is(m, exclude[k]);
		if (skip)
			continue;
		/* "KEY":VALUE, the key with its quotes as written. */
		e = llm_sha256_update(&h, m->key - 1, m->key_len + 2);
		if (!e)
			e = llm_sha256_update(&h, ":", 1);
		if (!e)
			e = llm_sha256_update(&h, m->val, m->val_len);
		if (!e)
			e = llm_sha256_update(&h, ",", 1);
	}
	unsigned char md[LLM_SHA256_LEN];
	enum llm_err f = llm_sha256_final(&h, md);
	if (e || f)
		return e ? e : f;
	char hex[LLM_SHA256_HEX_LEN + 1];
	llm_hex(md, sizeof md, hex);
	*derived = true;
	return llm_buf_append(out, hex, LLM_RECORD_HASH_ID_LEN);
}

/* ---- the multiset ---------------------------------------------------------------------- */

struct id_entry {
	struct id_entry *next;
	uint64_t hash;
	uint64_t count;
	size_t len;
	char id[];
};

struct llm_idset {
	struct id_entry **slots;
	size_t nslots; /* a power of two */
	size_t n;      /* distinct ids */
	uint64_t total;
};

enum llm_err llm_idset_new(struct llm_idset **out)
{
	struct llm_idset *s = calloc(1, sizeof *s);
	if (s) {
		s->nslots = 64;
		s->slots = calloc(s->nslots, sizeof *s->slots);
	}
	if (!s || !s->slots) {
		free(s);
		*out = NULL;
		return LLM_ERR_NOMEM;
	}
	*out = s;
	return LLM_OK;
}

void llm_idset_free(struct llm_idset *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nslots; i++)
		for (struct id_entry *e = s->slots[i], *next; e; e = next) {
			next = e->next;
			free(e);
		}
	free(s->slots);
	free(s);
}

static struct id_entry *find(const struct llm_idset *s, const char *id, size_t len, uint64_t h)
{
	for (struct id_entry *e = s->slots[h & (s->nslots - 1)]; e; e = e->next)
		if (e->hash == h && e->len == len && !memcmp(e->id, id, len))
			return e;
	return NULL;
}

static enum llm_err grow(struct llm_idset *s)
{
	size_t nn = s->nslots * 2;
	struct id_entry **ns = calloc(nn, sizeof *ns);
	if (!ns)
		return LLM_ERR_NOMEM;
	for (size_t i = 0; i < s->nslots; i++)
		for (struct id_entry *e = s->slots[i], *next; e; e = next) {
			next = e->next;
			e->next = ns[e->hash & (nn - 1)];
			ns[e->hash & (nn - 1)] = e;
		}
	free(s->slots);
	s->slots = ns;
	s->nslots = nn;
	return LLM_OK;
}

enum llm_err llm_idset_add(struct llm_idset *s, const char *id, size_t len, uint64_t *count)
{
	uint64_t h = llm_hash64(id, len, 0);
	struct id_entry *e = find(s, id, len, h);
	if (!e) {
		if (s->n >= s->nslots && grow(s))
			return LLM_ERR_NOMEM;
		if (!(e = malloc(sizeof *e + len + 1)))
			return LLM_ERR_NOMEM;
		e->hash = h;
		e->count = 0;
		e->len = len;
		memcpy(e->id, id, len);
		e->id[len] = '\0';
		e->next = s->slots[h & (s->nslots - 1)];
		s->slots[h & (s->nslots - 1)] = e;
		s->n++;
	}
	e->count++;
	s->total++;
	if (count)
		*count = e->count;
	return LLM_OK;
}

bool llm_idset_take(struct llm_idset *s, const char *id, size_t len)
{
	struct id_entry *e = find(s, id, len, llm_hash64(id, len, 0));
	if (!e || !e->count)
		return false;
	e->count--;
	s->total--;
	return true;
}

uint64_t llm_idset_count(const struct llm_idset *s, const char *id, size_t len)
{
	struct id_entry *e = find(s, id, len, llm_hash64(id, len, 0));
	return e ? e->count : 0;
}

uint64_t llm_idset_total(const struct llm_idset *s)
{
	return s->total;
}

/* ---- resuming -------------------------------------------------------------------------- */

/* Cut the file back to just after its last newline; *cut receives the bytes removed. */
static enum llm_err cut_torn_line(const char *path, uint64_t *cut, struct llm_diag *d)
{
	*cut = 0;
	int fd = open(path, O_RDWR);
	if (fd < 0)
		return llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot open: %s", strerror(errno));
	struct stat st;
	enum llm_err e = LLM_OK;
	if (fstat(fd, &st) != 0) {
		e = llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot read: %s", strerror(errno));
		goto out;
	}
	off_t end = st.st_size, keep = 0;
	char buf[4096];
	/* Look backwards for the last newline. */
	for (off_t pos = end; pos > 0 && !keep;) {
		size_t n = pos >= (off_t)sizeof buf ? sizeof buf : (size_t)pos;
		pos -= (off_t)n;
		ssize_t got = pread(fd, buf, n, pos);
		if (got != (ssize_t)n) {
			e = llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot read: %s",
					 got < 0 ? strerror(errno) : "short read");
			goto out;
		}
		for (size_t i = n; i > 0; i--)
			if (buf[i - 1] == '\n') {
				keep = pos + (off_t)i;
				break;
			}
	}
	if (keep < end) {
		if (ftruncate(fd, keep) != 0 || fsync(fd) != 0) {
			e = llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot truncate: %s",
					 strerror(errno));
			goto out;
		}
		*cut = (uint64_t)(end - keep);
	}
out:
	close(fd);
	return e;
}

/* Rewrite path without the records that have redo_field. */
static enum llm_err drop_redo(const char *path, const char *redo_field, size_t max,
			      struct llm_diag *d)
{
	struct llm_jsonl_reader *r;
	char *paths[] = {(char *)path};
	enum llm_err e = llm_jsonl_open(&r, paths, 1, max, d);
	if (e)
		return e;
	struct llm_atomic a = {0};
	struct llm_record rec = {0};
	if ((e = llm_atomic_open(&a, path, d)))
		goto out;
	for (;;) {
		if ((e = llm_jsonl_next(r, &rec, d)))
			break;
		if (!rec.text)
			break;
		if (rec.status == LLM_OK && llm_json_get(&rec.fields, redo_field))
			continue;
		if (fwrite(rec.text, 1, rec.len, a.fp) != rec.len || putc('\n', a.fp) == EOF) {
			e = llm_diag_set(d, LLM_ERR_IO, path, 0, "write error: %s",
					 strerror(errno));
			break;
		}
	}
	if (!e)
		e = llm_atomic_commit(&a, d);
out:
	llm_atomic_abort(&a);
	llm_record_free(&rec);
	llm_jsonl_close(r);
	return e;
}

enum llm_err llm_resume_scan(const char *path, const char *id_field, const char *const *exclude,
			     size_t nexclude, const char *redo_field, size_t max_record_bytes,
			     struct llm_idset *done, struct llm_resume *res, struct llm_diag *diag)
{
	memset(res, 0, sizeof *res);
	struct stat st;
	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			return LLM_OK;
		return llm_diag_set(diag, LLM_ERR_IO, path, 0, "cannot read: %s", strerror(errno));
	}
	if (S_ISDIR(st.st_mode))
		return llm_diag_set(diag, LLM_ERR_IS_DIR, path, 0, "is a directory");
	res->existed = true;
	if (!S_ISREG(st.st_mode))
		return llm_diag_set(diag, LLM_ERR_USAGE, path, 0,
				    "not a regular file: a run cannot be resumed from it");
	enum llm_err e = cut_torn_line(path, &res->torn_bytes, diag);
	if (e)
		return e;
	struct llm_jsonl_reader *r;
	char *paths[] = {(char *)path};
	if ((e = llm_jsonl_open(&r, paths, 1, max_record_bytes, diag)))
		return e;
	struct llm_record rec = {0};
	struct llm_buf id;
	llm_buf_init(&id, 0);
	for (;;) {
		if ((e = llm_jsonl_next(r, &rec, diag)) || !rec.text)
			break;
		if (rec.status != LLM_OK) {
			e = llm_diag_set(diag, rec.status, rec.file, rec.line, "%s", rec.diag.msg);
			break;
		}
		if (redo_field && llm_json_get(&rec.fields, redo_field)) {
			res->redo++;
			continue;
		}
		llm_buf_clear(&id);
		bool derived;
		e = llm_record_id(&rec.fields, id_field, exclude, nexclude, &id, &derived);
		if (e == LLM_ERR_TYPE) {
			e = llm_diag_set(diag, e, rec.file, rec.line,
					 "field \"%s\" is neither a string nor a number", id_field);
			break;
		}
		if (!e)
			e = llm_idset_add(done, id.data ? id.data : "", id.len, NULL);
		if (e) {
			llm_diag_set(diag, e, rec.file, rec.line, "out of memory");
			break;
		}
		res->done++;
	}
	llm_buf_free(&id);
	llm_record_free(&rec);
	llm_jsonl_close(r);
	if (!e && res->redo)
		e = drop_redo(path, redo_field, max_record_bytes, diag);
	return e;
}
