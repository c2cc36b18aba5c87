#include "config.h"

#include "data/spill.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FANIN 64
#define MIN_RECORDS 16

struct run {
	int fd;
	uint64_t n; /* records in the file */
};

/* A run being read back, through its slice of the memory buffer. */
struct reader {
	int fd;
	uint64_t left; /* records not yet read from the file */
	off_t off;
	char *buf;
	size_t cap; /* records the slice holds */
	size_t pos, len;
};

struct llm_spill {
	size_t size;
	size_t cap; /* records the buffer holds */
	char *buf;
	size_t n; /* records in the buffer */
	char *tmp_dir;
	struct run runs[MAX_FANIN];
	size_t nruns;
	uint64_t count, runs_written;
	bool finished, in_memory;
	size_t mem_pos;
	struct reader rd[MAX_FANIN];
	size_t nrd;
	size_t heap[MAX_FANIN];
	size_t nheap;
	char cur[LLM_SPILL_MAX_RECORD];
};

/* ----- in-place sort --------------------------------------------------------------------- */

static inline void swap_rec(char *a, char *b, size_t size)
{
	char t[LLM_SPILL_MAX_RECORD];
	memcpy(t, a, size);
	memcpy(a, b, size);
	memcpy(b, t, size);
}

static void sift_down(char *base, size_t size, size_t root, size_t n)
{
	for (;;) {
		size_t child = 2 * root + 1;
		if (child >= n)
			return;
		if (child + 1 < n && memcmp(base + child * size, base + (child + 1) * size, size) < 0)
			child++;
		if (memcmp(base + root * size, base + child * size, size) >= 0)
			return;
		swap_rec(base + root * size, base + child * size, size);
		root = child;
	}
}

static void heap_sort(char *base, size_t n, size_t size)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(base, size, i, n);
	for (size_t end = n; end-- > 1;) {
		swap_rec(base, base + end * size, size);
		sift_down(base, size, 0, end);
	}
}

static void insertion_sort(char *base, size_t n, size_t size)
{
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && memcmp(base + (j - 1) * size, base + j * size, size) > 0;
		     j--)
			swap_rec(base + (j - 1) * size, base + j * size, size);
}

static void intro_sort(char *base, size_t n, size_t size, int depth)
{
	while (n > 16) {
		if (depth-- == 0) {
			/* Quicksort is going quadratic on this input: heapsort keeps n log n. */
			heap_sort(base, n, size);
			return;
		}
		char *lo = base, *mid = base + (n / 2) * size, *hi = base + (n - 1) * size;
		if (memcmp(mid, lo, size) < 0)
			swap_rec(mid, lo, size);
		if (memcmp(hi, mid, size) < 0) {
			swap_rec(hi, mid, size);
			if (memcmp(mid, lo, size) < 0)
				swap_rec(mid, lo, size);
		}
		char pivot[LLM_SPILL_MAX_RECORD];
		memcpy(pivot, mid, size);
		size_t i = 0, j = n - 1;
		for (;;) {
			while (memcmp(base + i * size, pivot, size) < 0)
				i++;
			while (memcmp(pivot, base + j * size, size) < 0)
				j--;
			if (i >= j)
				break;
			swap_rec(base + i * size, base + j * size, size);
			i++;
			j--;
		}
		/* Recurse into the smaller side, loop on the larger: the stack stays O(log n). */
		size_t left = j + 1, right = n - left;
		if (left < right) {
			intro_sort(base, left, size, depth);
			base += left * size;
			n = right;
		} else {
			intro_sort(base + left * size, right, size, depth);
			n = left;
		}
	}
	insertion_sort(base, n, size);
}

void llm_spill_sort(void *base, size_t n, size_t size)
{
	int depth = 0;
	for (size_t m = n; m > 1; m >>= 1)
		depth += 2;
	intro_sort(base, n, size, depth);
}

/* ----- runs ------------------------------------------------------------------------------ */

static enum llm_err write_all(struct llm_spill *s, int fd, const char *p, size_t n,
			      struct llm_diag *diag)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return llm_diag_set(diag, LLM_ERR_IO, s->tmp_dir, 0,
					    "cannot write a temporary run: %s",
					    w < 0 ? strerror(errno) : "short write");
		p += w;
		n -= (size_t)w;
	}
	return LLM_OK;
}

static enum llm_err new_run_file(struct llm_spill *s, int *fd, struct llm_diag *diag)
{
	size_t len = strlen(s->tmp_dir) + 32;
	char *path = malloc(len);
	if (!path)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	snprintf(path, len, "%s/llmops-spill-XXXXXX", s->tmp_dir);
	*fd = mkstemp(path);
	if (*fd < 0) {
		enum llm_err e = llm_diag_set(diag, LLM_ERR_IO, s->tmp_dir, 0,
					      "cannot create a temporary file: %s", strerror(errno));
		free(path);
		return e;
	}
	/* Unnamed from now on: the space comes back when the descriptor closes, crash or not. */
	unlink(path);
	free(path);
	return LLM_OK;
}

static enum llm_err reader_fill(struct llm_spill *s, struct reader *r, struct llm_diag *diag)
{
	size_t want = r->cap < r->left ? r->cap : (size_t)r->left;
	size_t bytes = want * s->size, got = 0;
	while (got < bytes) {
		ssize_t n = pread(r->fd, r->buf + got, bytes - got, r->off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return llm_diag_set(diag, LLM_ERR_IO, s->tmp_dir, 0,
					    "cannot read a temporary run: %s",
					    n < 0 ? strerror(errno) : "file shrank");
		got += (size_t)n;
	}
	r->off += (off_t)bytes;
	r->left -= want;
	r->pos = 0;
	r->len = want;
	return LLM_OK;
}

static inline const char *reader_rec(const struct llm_spill *s, const struct reader *r)
{
	return r->buf + r->pos * s->size;
}

static bool heap_less(const struct llm_spill *s, size_t a, size_t b)
{
	int c = memcmp(reader_rec(s, &s->rd[a]), reader_rec(s, &s->rd[b]), s->size);
	return c < 0 || (c == 0 && a < b);
}

static void heap_down(struct llm_spill *s, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < s->nheap && heap_less(s, s->heap[l], s->heap[m]))
			m = l;
		if (l + 1 < s->nheap && heap_less(s, s->heap[l + 1], s->heap[m]))
			m = l + 1;
		if (m == i)
			return;
		size_t t = s->heap[i];
		s->heap[i] = s->heap[m];
		s->heap[m] = t;
		i = m;
	}
}

/* Set up readers over every run, each with a slice of the buffer; reserve `keep` records of
 * the buffer's end for the caller (the output of an intermediate merge). */
static enum llm_err merge_begin(struct llm_spill *s, size_t keep, struct llm_diag *diag)
{
	size_t per = (s->cap - keep) / s->nruns;
	s->nrd = s->nheap = 0;
	for (size_t i = 0; i < s->nruns; i++) {
		struct reader *r = &s->rd[s->nrd];
		*r = (struct reader){s->runs[i].fd, s->runs[i].n, 0, s->buf + i * per * s->size, per,
				     0, 0};
		if (!r->left) {
			close(r->fd);
			continue;
		}
		enum llm_err e = reader_fill(s, r, diag);
		if (e)
			return e;
		s->heap[s->nheap++] = s->nrd++;
	}
	s->nruns = 0;
	for (size_t i = s->nheap / 2; i-- > 0;)
		heap_down(s, i);
	return LLM_OK;
}

/* Take the smallest record (copied to s->cur); false at the end. */
static enum llm_err merge_pop(struct llm_spill *s, bool *got, struct llm_diag *diag)
{
	*got = false;
	if (!s->nheap)
		return LLM_OK;
	struct reader *r = &s->rd[s->heap[0]];
	memcpy(s->cur, reader_rec(s, r), s->size);
	*got = true;
	if (++r->pos == r->len) {
		if (r->left) {
			enum llm_err e = reader_fill(s, r, diag);
			if (e)
				return e;
		} else {
			close(r->fd);
			r->fd = -1;
			s->heap[0] = s->heap[--s->nheap];
		}
	}
	heap_down(s, 0);
	return LLM_OK;
}

static void merge_close(struct llm_spill *s)
{
	for (size_t i = 0; i < s->nrd; i++)
		if (s->rd[i].fd >= 0) {
			close(s->rd[i].fd);
			s->rd[i].fd = -1;
		}
	s->nrd = s->nheap = 0;
}

/* Too many runs: merge them all into one, so the open files stay few. */
static enum llm_err collapse_runs(struct llm_spill *s, struct llm_diag *diag)
{
	int fd;
	enum llm_err e = new_run_file(s, &fd, diag);
	if (e)
		return e;
	size_t keep = s->cap / (MAX_FANIN + 1);
	char *out = s->buf + (s->cap - keep) * s->size;
	size_t nout = 0;
	uint64_t total = 0;
	if (!(e = merge_begin(s, keep, diag))) {
		bool got;
		while (!(e = merge_pop(s, &got, diag)) && got) {
			memcpy(out + nout * s->size, s->cur, s->size);
			total++;
			if (++nout == keep) {
				if ((e = write_all(s, fd, out, nout * s->size, diag)))
					break;
				nout = 0;
			}
		}
		if (!e && nout)
			e = write_all(s, fd, out, nout * s->size, diag);
	}
	merge_close(s);
	if (e) {
		close(fd);
		return e;
	}
	s->runs[0] = (struct run){fd, total};
	s->nruns = 1;
	return LLM_OK;
}

static enum llm_err flush_run(struct llm_spill *s, struct llm_diag *diag)
{
	llm_spill_sort(s->buf, s->n, s->size);
	int fd;
	enum llm_err e = new_run_file(s, &fd, diag);
	if (e)
		return e;
	if ((e = write_all(s, fd, s->buf, s->n * s->size, diag))) {
		close(fd);
		return e;
	}
	s->runs[s->nruns++] = (struct run){fd, s->n};
	s->runs_written++;
	s->n = 0;
	/* The buffer is free now, so the merge can use it. */
	return s->nruns == MAX_FANIN ? collapse_runs(s, diag) : LLM_OK;
}

/* ----- the interface --------------------------------------------------------------------- */

enum llm_err llm_spill_open(struct llm_spill **out, size_t rec_size, size_t memory,
			    const char *tmp_dir, struct llm_diag *diag)
{
	*out = NULL;
	if (rec_size < 1 || rec_size > LLM_SPILL_MAX_RECORD)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0, "record size %zu out of range",
				    rec_size);
	struct llm_spill *s = calloc(1, sizeof *s);
	if (!s)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	s->size = rec_size;
	s->cap = memory / rec_size;
	/* The intermediate merge gives each of 64 runs and the output a slice of the buffer. */
	if (s->cap < MIN_RECORDS * (MAX_FANIN + 1))
		s->cap = MIN_RECORDS * (MAX_FANIN + 1);
	s->buf = malloc(s->cap * rec_size);
	s->tmp_dir = strdup(tmp_dir && *tmp_dir ? tmp_dir : "/tmp");
	if (!s->buf || !s->tmp_dir) {
		llm_spill_close(s);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	*out = s;
	return LLM_OK;
}

enum llm_err llm_spill_add(struct llm_spill *s, const void *rec, struct llm_diag *diag)
{
	if (s->n == s->cap) {
		enum llm_err e = flush_run(s, diag);
		if (e)
			return e;
	}
	memcpy(s->buf + s->n * s->size, rec, s->size);
	s->n++;
	s->count++;
	return LLM_OK;
}

enum llm_err llm_spill_finish(struct llm_spill *s, struct llm_diag *diag)
{
	s->finished = true;
	if (!s->nruns) {
		llm_spill_sort(s->buf, s->n, s->size);
		s->in_memory = true;
		s->mem_pos = 0;
		return LLM_OK;
	}
	enum llm_err e;
	if (s->n && (e = flush_run(s, diag)))
		return e;
	return merge_begin(s, 0, diag);
}

enum llm_err llm_spill_next(struct llm_spill *s, const void **rec, struct llm_diag *diag)
{
	*rec = NULL;
	if (s->in_memory) {
		if (s->mem_pos < s->n)
			*rec = s->buf + s->mem_pos++ * s->size;
		return LLM_OK;
	}
	bool got;
	enum llm_err e = merge_pop(s, &got, diag);
	if (!e && got)
		*rec = s->cur;
	return e;
}

uint64_t llm_spill_count(const struct llm_spill *s)
{
	return s->count;
}

uint64_t llm_spill_runs(const struct llm_spill *s)
{
	return s->runs_written;
}

void llm_spill_close(struct llm_spill *s)
{
	if (!s)
		return;
	merge_close(s);
	for (size_t i = 0; i < s->nruns; i++)
		close(s->runs[i].fd);
	free(s->buf);
	free(s->tmp_dir);
	free(s);
}
