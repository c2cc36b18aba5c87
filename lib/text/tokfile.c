#include "config.h"

#include "text/tokfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/atomic.h"
#include "core/buf.h"
#include "core/mapfile.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "llm_tokfile_open hands out the index's little-endian offsets as they are"
#endif

struct llm_tokfile_writer {
	struct llm_atomic tokens;
	struct llm_atomic idx;
	unsigned width;
	uint64_t ntokens;
	uint64_t ndocs;
	/* llm_tokfile_resume: tokens and idx are the partial files themselves (tmp NULL), and
	 * these are the names they take at commit */
	bool partial;
	char *final_path, *final_idx;
};

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
	return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static enum llm_err write_all(struct llm_atomic *a, const void *p, size_t n, struct llm_diag *d)
{
	if (n && fwrite(p, 1, n, a->fp) != n)
		return llm_diag_set(d, LLM_ERR_IO, a->path, 0, "write error: %s", strerror(errno));
	return LLM_OK;
}

enum llm_err llm_tokfile_create(struct llm_tokfile_writer **out, const char *path,
				uint32_t vocab_size, struct llm_diag *d)
{
	struct llm_tokfile_writer *w = calloc(1, sizeof *w);
	size_t n = strlen(path) + 5;
	char *idx = malloc(n);
	if (!w || !idx) {
		free(w);
		free(idx);
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	}
	snprintf(idx, n, "%s.idx", path);
	w->width = vocab_size <= 65536 ? 2 : 4;
	enum llm_err e = llm_atomic_open(&w->tokens, path, d);
	if (!e)
		e = llm_atomic_open(&w->idx, idx, d);
	free(idx);
	/* Headers now, with the counts filled in at commit. */
	unsigned char header[LLM_TOKFILE_HEADER_INTS * 4] = {0};
	unsigned char ihead[24] = {0};
	if (!e)
		e = write_all(&w->tokens, header, sizeof header, d);
	if (!e)
		e = write_all(&w->idx, ihead, sizeof ihead, d);
	unsigned char zero[8] = {0};
	if (!e)
		e = write_all(&w->idx, zero, sizeof zero, d); /* offset[0] */
	if (e) {
		llm_tokfile_abort(w);
		return e;
	}
	*out = w;
	return LLM_OK;
}

enum llm_err llm_tokfile_append(struct llm_tokfile_writer *w, const uint32_t *ids, size_t n,
				struct llm_diag *d)
{
	unsigned char buf[4096];
	size_t per = sizeof buf / w->width, done = 0;
	while (done < n) {
		size_t k = n - done < per ? n - done : per;
		for (size_t i = 0; i < k; i++) {
			uint32_t v = ids[done + i];
			if (w->width == 2 && v > 0xFFFF)
				return llm_diag_set(d, LLM_ERR_RANGE, w->tokens.path, 0,
						    "token id %u does not fit the 16-bit format", v);
			buf[i * w->width] = (unsigned char)v;
			buf[i * w->width + 1] = (unsigned char)(v >> 8);
			if (w->width == 4) {
				buf[i * 4 + 2] = (unsigned char)(v >> 16);
				buf[i * 4 + 3] = (unsigned char)(v >> 24);
			}
		}
		enum llm_err e = write_all(&w->tokens, buf, k * w->width, d);
		if (e)
			return e;
		done += k;
	}
	w->ntokens += n;
	w->ndocs++;
	unsigned char off[8];
	put_u64(off, w->ntokens);
	return write_all(&w->idx, off, sizeof off, d);
}

/* Flush and fsync one of the files being written. */
static enum llm_err sync_file(struct llm_atomic *a, struct llm_diag *d)
{
	if (fflush(a->fp) != 0 || ferror(a->fp) || fsync(fileno(a->fp)) != 0)
		return llm_diag_set(d, LLM_ERR_IO, a->path, 0, "write error: %s", strerror(errno));
	return LLM_OK;
}

static void close_partial(struct llm_atomic *a)
{
	if (a->fp)
		fclose(a->fp);
	free(a->path);
	a->fp = NULL;
	a->path = NULL;
}

/* A partial file's counts are in place: sync both, then rename them, the index first. */
static enum llm_err finish_partial(struct llm_tokfile_writer *w, struct llm_diag *d)
{
	enum llm_err e = sync_file(&w->idx, d);
	if (!e)
		e = sync_file(&w->tokens, d);
	if (!e && rename(w->idx.path, w->final_idx) != 0)
		e = llm_diag_set(d, LLM_ERR_IO, w->final_idx, 0, "cannot rename into place: %s",
				 strerror(errno));
	if (!e && rename(w->tokens.path, w->final_path) != 0)
		e = llm_diag_set(d, LLM_ERR_IO, w->final_path, 0, "cannot rename into place: %s",
				 strerror(errno));
	return e;
}

enum llm_err llm_tokfile_sync(struct llm_tokfile_writer *w, uint64_t *ntokens, uint64_t *ndocs,
			      struct llm_diag *d)
{
	enum llm_err e = sync_file(&w->tokens, d);
	if (!e)
		e = sync_file(&w->idx, d);
	*ntokens = w->ntokens;
	*ndocs = w->ndocs;
	return e;
}

static char *concat(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 1;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s%s", a, b);
	return s;
}

/* Open a partial file: afresh (truncated) when want is 0, else cut back to want bytes, which
 * it must have. */
static enum llm_err open_partial(struct llm_atomic *a, uint64_t want, struct llm_diag *d)
{
	if (!want) {
		if (!(a->fp = fopen(a->path, "wb")))
			return llm_diag_set(d, LLM_ERR_IO, a->path, 0, "cannot create: %s",
					    strerror(errno));
		return LLM_OK;
	}
	if (!(a->fp = fopen(a->path, "r+b")))
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, a->path, 0,
				    "cannot open to resume: %s", strerror(errno));
	struct stat st;
	if (fstat(fileno(a->fp), &st) != 0 || !S_ISREG(st.st_mode))
		return llm_diag_set(d, LLM_ERR_IO, a->path, 0, "not a regular file");
	if ((uint64_t)st.st_size < want)
		return llm_diag_set(d, LLM_ERR_JSON, a->path, 0,
				    "holds %llu bytes, fewer than the %llu of its checkpoint",
				    (unsigned long long)st.st_size, (unsigned long long)want);
	if (ftruncate(fileno(a->fp), (off_t)want) != 0 || fseeko(a->fp, (off_t)want, SEEK_SET))
		return llm_diag_set(d, LLM_ERR_IO, a->path, 0, "cannot cut back: %s",
				    strerror(errno));
	return LLM_OK;
}

enum llm_err llm_tokfile_resume(struct llm_tokfile_writer **out, const char *path,
				uint32_t vocab_size, uint64_t ntokens, uint64_t ndocs,
				struct llm_diag *d)
{
	struct llm_tokfile_writer *w = calloc(1, sizeof *w);
	if (!w)
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	w->partial = true;
	w->tokens.path = concat(path, ".partial");
	w->idx.path = concat(path, ".partial.idx");
	w->final_path = concat(path, "");
	w->final_idx = concat(path, ".idx");
	if (!w->tokens.path || !w->idx.path || !w->final_path || !w->final_idx) {
		llm_tokfile_abort(w);
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	}
	w->width = vocab_size <= 65536 ? 2 : 4;
	bool fresh = !ntokens && !ndocs;
	uint64_t hdr = LLM_TOKFILE_HEADER_INTS * 4;
	enum llm_err e = open_partial(&w->tokens, fresh ? 0 : hdr + ntokens * w->width, d);
	if (!e)
		e = open_partial(&w->idx, fresh ? 0 : 24 + (ndocs + 1) * 8, d);
	if (!e && fresh) {
		unsigned char zero[LLM_TOKFILE_HEADER_INTS * 4] = {0};
		e = write_all(&w->tokens, zero, sizeof zero, d);
		if (!e)
			e = write_all(&w->idx, zero, 32, d); /* the header, and offset[0] */
	}
	if (!e && !fresh) {
		/* The index must end where the checkpoint says the tokens do. */
		unsigned char last[8];
		if (fseeko(w->idx.fp, (off_t)(24 + ndocs * 8), SEEK_SET) ||
		    fread(last, 1, 8, w->idx.fp) != 8 || fseeko(w->idx.fp, 0, SEEK_END))
			e = llm_diag_set(d, LLM_ERR_IO, w->idx.path, 0, "read error: %s",
					 strerror(errno));
		else if (get_u64(last) != ntokens)
			e = llm_diag_set(
			    d, LLM_ERR_JSON, w->idx.path, 0,
			    "document %llu ends at token %llu, not at the checkpoint's "
			    "%llu",
			    (unsigned long long)ndocs, (unsigned long long)get_u64(last),
			    (unsigned long long)ntokens);
	}
	if (e) {
		llm_tokfile_abort(w);
		return e;
	}
	w->ntokens = ntokens;
	w->ndocs = ndocs;
	*out = w;
	return LLM_OK;
}

enum llm_err llm_tokfile_commit(struct llm_tokfile_writer *w, struct llm_diag *d)
{
	enum llm_err e = LLM_OK;
	if (w->ntokens > INT32_MAX)
		e = llm_diag_set(d, LLM_ERR_RANGE, w->tokens.path, 0,
				 "%llu tokens: the format counts at most 2^31 - 1; shard the input",
				 (unsigned long long)w->ntokens);
	unsigned char header[12], ihead[24];
	put_u32(header, LLM_TOKFILE_MAGIC);
	put_u32(header + 4, w->width == 2 ? 1 : 2);
	put_u32(header + 8, (uint32_t)w->ntokens);
	memcpy(ihead, LLM_TOKFILE_IDX_MAGIC, 8);
	put_u32(ihead + 8, 1);
	put_u32(ihead + 12, 0);
	put_u64(ihead + 16, w->ndocs);
	if (!e && (fseek(w->tokens.fp, 0, SEEK_SET) || fwrite(header, 1, 12, w->tokens.fp) != 12 ||
		   fseek(w->idx.fp, 0, SEEK_SET) || fwrite(ihead, 1, 24, w->idx.fp) != 24))
		e = llm_diag_set(d, LLM_ERR_IO, w->tokens.path, 0, "write error: %s",
				 strerror(errno));
	if (w->partial) {
		if (!e)
			e = finish_partial(w, d);
		llm_tokfile_abort(w);
		return e;
	}
	/* The index first: a token file is never seen without its boundaries. */
	if (!e)
		e = llm_atomic_commit(&w->idx, d);
	if (!e)
		e = llm_atomic_commit(&w->tokens, d);
	llm_tokfile_abort(w);
	return e;
}

void llm_tokfile_abort(struct llm_tokfile_writer *w)
{
	if (!w)
		return;
	if (w->partial) {
		close_partial(&w->tokens);
		close_partial(&w->idx);
		free(w->final_path);
		free(w->final_idx);
		free(w);
		return;
	}
	llm_atomic_abort(&w->tokens);
	llm_atomic_abort(&w->idx);
	free(w);
}

/* Map a file; an optional one that is missing gives LLM_ERR_NOT_FOUND with diag untouched. */
static enum llm_err map_file(const char *path, void **map, size_t *len, bool optional,
			     struct llm_diag *d)
{
	struct llm_diag quiet;
	enum llm_err e = llm_map_file(path, map, len, optional ? &quiet : d);
	if (e == LLM_ERR_NOT_FOUND && optional)
		return e;
	if (e && optional && d)
		*d = quiet;
	return e;
}

enum llm_err llm_tokfile_open(struct llm_tokfile *tf, const char *path, struct llm_diag *d)
{
	memset(tf, 0, sizeof *tf);
	enum llm_err e = map_file(path, &tf->map_tokens, &tf->map_tokens_len, false, d);
	if (e)
		return e;
	const unsigned char *p = tf->map_tokens;
	size_t hdr = LLM_TOKFILE_HEADER_INTS * 4;
	if (tf->map_tokens_len < hdr || get_u32(p) != LLM_TOKFILE_MAGIC ||
	    (get_u32(p + 4) != 1 && get_u32(p + 4) != 2)) {
		llm_tokfile_close(tf);
		return llm_diag_set(d, LLM_ERR_JSON, path, 0,
				    "not a token file (llm.c format: magic 20240520, version 1 or 2)");
	}
	tf->width = get_u32(p + 4) == 1 ? 2 : 4;
	tf->ntokens = get_u32(p + 8);
	if ((tf->map_tokens_len - hdr) / tf->width != tf->ntokens ||
	    (tf->map_tokens_len - hdr) % tf->width) {
		llm_diag_set(d, LLM_ERR_JSON, path, 0,
			     "truncated: the header counts %llu tokens, the file holds %zu bytes of them",
			     (unsigned long long)tf->ntokens, tf->map_tokens_len - hdr);
		llm_tokfile_close(tf);
		return LLM_ERR_JSON;
	}
	tf->tokens = p + hdr;

	struct llm_buf idx;
	llm_buf_init(&idx, 0);
	if (llm_buf_printf(&idx, "%s.idx", path)) {
		llm_tokfile_close(tf);
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	}
	e = map_file(idx.data, &tf->map_idx, &tf->map_idx_len, true, d);
	if (e == LLM_ERR_NOT_FOUND) {
		llm_buf_free(&idx);
		tf->ndocs = 1;
		tf->whole[1] = tf->ntokens;
		tf->offsets = tf->whole;
		return LLM_OK;
	}
	if (e) {
		llm_buf_free(&idx);
		llm_tokfile_close(tf);
		return e;
	}
	const unsigned char *q = tf->map_idx;
	uint64_t ndocs = tf->map_idx_len >= 24 ? get_u64(q + 16) : 0;
	bool ok = tf->map_idx_len >= 24 && !memcmp(q, LLM_TOKFILE_IDX_MAGIC, 8) &&
		  get_u32(q + 8) == 1 && ndocs < (tf->map_idx_len - 24) / 8 &&
		  tf->map_idx_len == 24 + (ndocs + 1) * 8;
	const uint64_t *off = ok ? (const uint64_t *)(const void *)(q + 24) : NULL;
	/* Offsets are little-endian uint64 and the map is page-aligned; check them all. */
	for (uint64_t i = 0; ok && i <= ndocs; i++) {
		uint64_t v = get_u64(q + 24 + i * 8);
		ok = (i ? v >= get_u64(q + 24 + (i - 1) * 8) : v == 0) &&
		     (i < ndocs || v == tf->ntokens);
	}
	if (!ok) {
		llm_diag_set(d, LLM_ERR_JSON, idx.data, 0,
			     "not a valid index for %s (bad magic, count or offsets)", path);
		llm_buf_free(&idx);
		llm_tokfile_close(tf);
		return LLM_ERR_JSON;
	}
	llm_buf_free(&idx);
	tf->ndocs = ndocs;
	tf->offsets = off;
	return LLM_OK;
}

void llm_tokfile_close(struct llm_tokfile *tf)
{
	llm_unmap_file(tf->map_tokens, tf->map_tokens_len);
	llm_unmap_file(tf->map_idx, tf->map_idx_len);
	memset(tf, 0, sizeof *tf);
}
