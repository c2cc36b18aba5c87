/* The artifact tarball: reproducible writing with parallel deflate, and checked reading with
 * inflation on a second thread (see tarball.h for the layout and the checks). */
#include "config.h"

#include "artifact/tarball.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>

#include "core/atomic.h"
#include "core/buf.h"
#include "core/hash.h"

#define DICT_SIZE  32768u
#define READ_CHUNK (1u << 20)
#define PIPE_BUFS  4
#define STORED_MAX 65535u
#define GZ_OS_UNIX 3

static const char zeros64[LLM_SHA256_HEX_LEN + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static enum llm_err sys_err(struct llm_diag *d, const char *path, const char *what)
{
	int err = errno;
	return llm_diag_set(d, err == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0, "%s: %s",
			    what, strerror(err));
}

static enum llm_err write_all(int fd, const void *p, size_t n, off_t off, const char *path,
			      struct llm_diag *d)
{
	const unsigned char *c = p;
	while (n) {
		ssize_t w = off >= 0 ? pwrite(fd, c, n, off) : write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return sys_err(d, path, "write");
		c += w;
		n -= (size_t)w;
		if (off >= 0)
			off += w;
	}
	return LLM_OK;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* libarchive converts names between the locale's charset and the UTF-8 of pax headers, and
 * writes other bytes (or fails) in a C locale; the names in the manifest are UTF-8, so this
 * thread works in a UTF-8 locale while it writes or reads a tarball, whatever the process's. */
struct utf8_scope {
	locale_t loc, old;
};

static enum llm_err utf8_enter(struct utf8_scope *u, struct llm_diag *d)
{
	static const char *const names[] = {"C.UTF-8", "C.utf8", "en_US.UTF-8"};
	u->loc = (locale_t)0;
	for (size_t i = 0; i < sizeof names / sizeof *names && !u->loc; i++)
		u->loc = newlocale(LC_CTYPE_MASK, names[i], (locale_t)0);
	if (!u->loc)
		return llm_diag_set(d, LLM_ERR_IO, NULL, 0,
				    "no UTF-8 locale (C.UTF-8) on this system for tar file names");
	u->old = uselocale(u->loc);
	return LLM_OK;
}

static void utf8_leave(struct utf8_scope *u)
{
	if (u->loc) {
		uselocale(u->old);
		freelocale(u->loc);
		u->loc = (locale_t)0;
	}
}

/* A gzip header with nothing that depends on the host or the time (RFC 1952). */
static void gzip_header(unsigned char h[10], int level)
{
	static const unsigned char base[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, GZ_OS_UNIX};
	memcpy(h, base, 10);
	h[8] = level == 9 ? 2 : level == 1 ? 4 : 0; /* XFL as gzip writes it */
}

/* --- scanning the model folder ---------------------------------------------------------------- */

struct scan {
	struct llm_manifest *m;
	char *const *exclude;
	size_t nexclude;
	bool *manifest_skipped;
	struct llm_diag *d;
	struct llm_buf full; /* the path being looked at */
	size_t root_len;
};

static bool excluded(const struct scan *s, const char *rel, const char *base)
{
	for (size_t i = 0; i < s->nexclude; i++)
		if (!fnmatch(s->exclude[i], rel, FNM_PATHNAME) || !fnmatch(s->exclude[i], base, 0))
			return true;
	return false;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum llm_err walk(struct scan *s, int depth)
{
	struct llm_diag *d = s->d;
	const char *rel_of_dir = s->full.data + s->root_len + (s->full.len > s->root_len);
	if (depth > 128)
		return llm_diag_set(d, LLM_ERR_FORMAT, s->full.data, 0, "folders nested too deep");
	DIR *dir = opendir(s->full.data);
	if (!dir)
		return sys_err(d, s->full.data, "cannot read the folder");
	char **names = NULL;
	size_t n = 0, cap = 0;
	enum llm_err e = LLM_OK;
	struct dirent *de;
	errno = 0;
	while (!e && (de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			char **p = realloc(names, cap * sizeof *p);
			if (!p) {
				e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
				break;
			}
			names = p;
		}
		if (!(names[n] = strdup(de->d_name)))
			e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		else
			n++;
	}
	if (!e && errno)
		e = sys_err(d, s->full.data, "cannot read the folder");
	closedir(dir);
	if (n)
		qsort(names, n, sizeof *names, name_cmp);
	size_t keep = s->full.len;
	for (size_t i = 0; i < n && !e; i++) {
		s->full.len = keep;
		s->full.data[keep] = '\0';
		if ((e = llm_buf_putc(&s->full, '/')) || (e = llm_buf_puts(&s->full, names[i]))) {
			e = llm_diag_set(d, e, rel_of_dir, 0, "path too long");
			break;
		}
		const char *rel = s->full.data + s->root_len + 1;
		rel_of_dir = NULL;
		if (excluded(s, rel, names[i]))
			continue;
		if (depth == 0 && !strcmp(names[i], LLM_MANIFEST_PATH)) {
			if (s->manifest_skipped)
				*s->manifest_skipped = true;
			continue;
		}
		struct stat st;
		if (lstat(s->full.data, &st)) {
			e = sys_err(d, s->full.data, "cannot read");
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			if (stat(s->full.data, &st)) {
				e = llm_diag_set(d, LLM_ERR_FORMAT, s->full.data, 0,
						 "a symbolic link that leads nowhere (%s)",
						 strerror(errno));
				break;
			}
			if (!S_ISREG(st.st_mode)) {
				e = llm_diag_set(
				    d, LLM_ERR_FORMAT, s->full.data, 0,
				    "a symbolic link to something other than a regular "
				    "file: only links to files are followed");
				break;
			}
		}
		if (S_ISDIR(st.st_mode)) {
			e = walk(s, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			e = llm_manifest_add_file(s->m, rel, (uint64_t)st.st_size, NULL,
						  (st.st_mode & 0111) != 0, d);
			if (e && d && !d->file[0])
				snprintf(d->file, sizeof d->file, "%s", s->full.data);
		} else {
			e = llm_diag_set(d, LLM_ERR_FORMAT, s->full.data, 0,
					 "not a regular file (a FIFO, socket or device)");
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	s->full.len = keep;
	if (s->full.data)
		s->full.data[keep] = '\0';
	return e;
}

enum llm_err llm_tarball_scan(struct llm_manifest *m, const char *dir, char *const *exclude,
			      size_t nexclude, bool *manifest_skipped, struct llm_diag *d)
{
	struct scan s = {m, exclude, nexclude, manifest_skipped, d, {0}, 0};
	if (manifest_skipped)
		*manifest_skipped = false;
	struct stat st;
	if (stat(dir, &st))
		return sys_err(d, dir, "cannot read");
	if (!S_ISDIR(st.st_mode))
		return llm_diag_set(d, LLM_ERR_USAGE, dir, 0, "not a folder");
	llm_buf_init(&s.full, (size_t)LLM_MANIFEST_PATH_MAX + strlen(dir) + 2);
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	enum llm_err e = llm_buf_append(&s.full, dir, n);
	s.root_len = s.full.len;
	if (e)
		e = llm_diag_set(d, e, dir, 0, "path too long");
	else
		e = walk(&s, 0);
	llm_buf_free(&s.full);
	if (!e)
		e = llm_manifest_sort_files(m, d);
	return e;
}

/* --- parallel deflate ------------------------------------------------------------------------ */

enum job_state { JOB_FREE, JOB_READY, JOB_BUSY, JOB_DONE };

struct zjob {
	unsigned char *in; /* DICT_SIZE of dictionary room, then the block */
	size_t dict_len, len;
	unsigned char *out;
	size_t out_len, out_cap;
	uLong crc;
	bool last;
	int zerr;
	uint64_t seq;
	enum job_state state;
};

struct zpool {
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct zjob *jobs;
	size_t njobs;
	pthread_t *threads;
	unsigned nthreads, started;
	bool stop;
	int level;
	uint64_t next_seq, next_write;
	struct zjob *cur;
	unsigned char dict[DICT_SIZE];
	size_t dict_len;
	/* output */
	int fd;
	off_t off;
	const char *path;
	uLong crc;
	uint64_t total_in;
};

static void compress_job(z_stream *z, struct zjob *j)
{
	j->crc = crc32(0, j->in + DICT_SIZE, (uInt)j->len);
	int r = deflateReset(z);
	if (r == Z_OK && j->dict_len)
		r = deflateSetDictionary(z, j->in + DICT_SIZE - j->dict_len, (uInt)j->dict_len);
	z->next_in = j->in + DICT_SIZE;
	z->avail_in = (uInt)j->len;
	z->next_out = j->out;
	z->avail_out = (uInt)j->out_cap;
	int flush = j->last ? Z_FINISH : Z_SYNC_FLUSH;
	while (r == Z_OK) {
		r = deflate(z, flush);
		if (r == Z_STREAM_END || (r == Z_OK && !z->avail_in && z->avail_out))
			break;
		if (r == Z_OK && !z->avail_out)
			r = Z_BUF_ERROR; /* out_cap is deflateBound and more: cannot happen */
	}
	j->zerr = r == Z_STREAM_END || r == Z_OK ? Z_OK : r;
	j->out_len = j->out_cap - z->avail_out;
}

static void *zworker(void *arg)
{
	struct zpool *p = arg;
	z_stream z;
	memset(&z, 0, sizeof z);
	int init = deflateInit2(&z, p->level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct zjob *j = NULL;
		while (!p->stop) {
			for (size_t i = 0; i < p->njobs; i++)
				if (p->jobs[i].state == JOB_READY &&
				    (!j || p->jobs[i].seq < j->seq))
					j = &p->jobs[i];
			if (j)
				break;
			pthread_cond_wait(&p->work, &p->mu);
		}
		if (p->stop)
			break;
		j->state = JOB_BUSY;
		pthread_mutex_unlock(&p->mu);
		if (init == Z_OK)
			compress_job(&z, j);
		else
			j->zerr = init;
		pthread_mutex_lock(&p->mu);
		j->state = JOB_DONE;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	if (init == Z_OK)
		deflateEnd(&z);
	return NULL;
}

static void zpool_destroy(struct zpool *p)
{
	if (p->threads) {
		pthread_mutex_lock(&p->mu);
		p->stop = true;
		pthread_cond_broadcast(&p->work);
		pthread_mutex_unlock(&p->mu);
		for (unsigned i = 0; i < p->started; i++)
			pthread_join(p->threads[i], NULL);
		free(p->threads);
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->work);
		pthread_cond_destroy(&p->done);
	}
	for (size_t i = 0; p->jobs && i < p->njobs; i++) {
		free(p->jobs[i].in);
		free(p->jobs[i].out);
	}
	free(p->jobs);
	memset(p, 0, sizeof *p);
}

static enum llm_err zpool_init(struct zpool *p, int level, unsigned threads, int fd, off_t off,
			       const char *path, struct llm_diag *d)
{
	memset(p, 0, sizeof *p);
	p->level = level;
	p->fd = fd;
	p->off = off;
	p->path = path;
	p->crc = crc32(0, NULL, 0);
	p->nthreads = threads;
	p->njobs = 2 * (size_t)threads + 2;
	p->jobs = calloc(p->njobs, sizeof *p->jobs);
	p->threads = calloc(threads, sizeof *p->threads);
	if (!p->jobs || !p->threads) {
		free(p->jobs);
		free(p->threads);
		p->jobs = NULL;
		p->threads = NULL;
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	size_t cap = deflateBound(NULL, LLM_TARBALL_BLOCK) + 64;
	for (size_t i = 0; i < p->njobs; i++) {
		p->jobs[i].in = malloc(DICT_SIZE + LLM_TARBALL_BLOCK);
		p->jobs[i].out = malloc(cap);
		p->jobs[i].out_cap = cap;
		if (!p->jobs[i].in || !p->jobs[i].out) {
			zpool_destroy(p);
			return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		}
	}
	for (unsigned i = 0; i < threads; i++, p->started++)
		if (pthread_create(&p->threads[i], NULL, zworker, p)) {
			zpool_destroy(p);
			return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "cannot start a thread");
		}
	return LLM_OK;
}

/* Write the oldest job if it is done; called with the lock held, which it drops to write. */
static enum llm_err zpool_write_oldest(struct zpool *p, struct llm_diag *d)
{
	struct zjob *j = &p->jobs[p->next_write % p->njobs];
	while (j->state != JOB_DONE)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
	enum llm_err e = LLM_OK;
	if (j->zerr != Z_OK)
		e = llm_diag_set(d, LLM_ERR_NOMEM, p->path, 0, "deflate failed (zlib error %d)",
				 j->zerr);
	else
		e = write_all(p->fd, j->out, j->out_len, p->off, p->path, d);
	p->off += (off_t)j->out_len;
	p->crc = crc32_combine(p->crc, j->crc, (z_off_t)j->len);
	p->total_in += j->len;
	pthread_mutex_lock(&p->mu);
	j->state = JOB_FREE;
	p->next_write++;
	return e;
}

static enum llm_err zpool_take(struct zpool *p, struct llm_diag *d)
{
	enum llm_err e = LLM_OK;
	pthread_mutex_lock(&p->mu);
	struct zjob *j = &p->jobs[p->next_seq % p->njobs];
	while (!e && j->state != JOB_FREE)
		e = zpool_write_oldest(p, d);
	pthread_mutex_unlock(&p->mu);
	if (e)
		return e;
	j->seq = p->next_seq++;
	j->len = 0;
	j->last = false;
	j->dict_len = p->dict_len;
	memcpy(j->in + DICT_SIZE - p->dict_len, p->dict + DICT_SIZE - p->dict_len, p->dict_len);
	p->cur = j;
	return LLM_OK;
}

static void zpool_submit(struct zpool *p, bool last)
{
	struct zjob *j = p->cur;
	j->last = last;
	if (j->len >= DICT_SIZE) {
		memcpy(p->dict, j->in + DICT_SIZE + j->len - DICT_SIZE, DICT_SIZE);
		p->dict_len = DICT_SIZE;
	}
	pthread_mutex_lock(&p->mu);
	j->state = JOB_READY;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
	p->cur = NULL;
}

static enum llm_err zpool_put(struct zpool *p, const void *data, size_t n, struct llm_diag *d)
{
	const unsigned char *c = data;
	while (n) {
		if (!p->cur) {
			enum llm_err e = zpool_take(p, d);
			if (e)
				return e;
		}
		struct zjob *j = p->cur;
		size_t room = LLM_TARBALL_BLOCK - j->len, k = n < room ? n : room;
		memcpy(j->in + DICT_SIZE + j->len, c, k);
		j->len += k;
		c += k;
		n -= k;
		if (j->len == LLM_TARBALL_BLOCK)
			zpool_submit(p, false);
	}
	return LLM_OK;
}

/* Compress what is left as the final block and write everything. */
static enum llm_err zpool_finish(struct zpool *p, struct llm_diag *d)
{
	enum llm_err e = LLM_OK;
	if (!p->cur)
		e = zpool_take(p, d);
	if (e)
		return e;
	zpool_submit(p, true);
	pthread_mutex_lock(&p->mu);
	while (!e && p->next_write < p->next_seq)
		e = zpool_write_oldest(p, d);
	pthread_mutex_unlock(&p->mu);
	return e;
}

/* --- writing ---------------------------------------------------------------------------------- */

struct writer {
	struct archive *a;
	bool capturing;	     /* the manifest entry: kept in head */
	struct llm_buf head; /* its tar bytes */
	struct zpool pool;   /* everything after it */
	uint64_t tar_len;    /* bytes of tar stream so far */
	struct llm_diag *d;
	enum llm_err err;
	int64_t mtime;
};

static la_ssize_t tar_out(struct archive *a, void *ctx, const void *buf, size_t n)
{
	struct writer *w = ctx;
	enum llm_err e =
	    w->capturing ? llm_buf_append(&w->head, buf, n) : zpool_put(&w->pool, buf, n, w->d);
	if (e) {
		if (w->capturing)
			llm_diag_set(w->d, e, NULL, 0, "out of memory");
		w->err = e;
		archive_set_error(a, EIO, "write failed");
		return -1;
	}
	w->tar_len += n;
	return (la_ssize_t)n;
}

static enum llm_err ar_fail(struct writer *w, const char *what)
{
	if (w->err)
		return w->err;
	return llm_diag_set(w->d, LLM_ERR_IO, NULL, 0, "%s: %s", what,
			    archive_error_string(w->a) ? archive_error_string(w->a) : "libarchive");
}

static enum llm_err put_header(struct writer *w, const char *path, uint64_t size, bool exec)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		return llm_diag_set(w->d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	archive_entry_set_pathname_utf8(e, path);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, exec ? 0755 : 0644);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_set_mtime(e, (time_t)w->mtime, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	int r = archive_write_header(w->a, e);
	archive_entry_free(e);
	return r == ARCHIVE_OK ? LLM_OK : ar_fail(w, path);
}

static enum llm_err pack_file(struct writer *w, struct llm_manifest_file *f, const char *dir,
			      unsigned char *buf, const struct llm_tarball_opts *o, uint64_t *done,
			      uint64_t total)
{
	struct llm_diag *d = w->d;
	char path[LLM_MANIFEST_PATH_MAX + 4096 + 2];
	snprintf(path, sizeof path, "%s/%s", dir, f->path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sys_err(d, path, "cannot open");
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size) {
		close(fd);
		return llm_diag_set(d, LLM_ERR_IO, path, 0, "changed while packing");
	}
	enum llm_err e = put_header(w, f->path, f->size, f->executable);
	struct llm_sha256 h = {0};
	if (!e && llm_sha256_init(&h))
		e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	uint64_t got = 0;
	while (!e) {
		ssize_t r = read(fd, buf, READ_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = sys_err(d, path, "read");
			break;
		}
		if (r == 0)
			break;
		got += (uint64_t)r;
		if (got > f->size) {
			e = llm_diag_set(d, LLM_ERR_IO, path, 0, "changed while packing (grew)");
			break;
		}
		llm_sha256_update(&h, buf, (size_t)r);
		if (archive_write_data(w->a, buf, (size_t)r) != r) {
			e = ar_fail(w, path);
			break;
		}
		*done += (uint64_t)r;
		if (o && o->progress)
			o->progress(o->progress_arg, *done, total);
	}
	close(fd);
	if (!e && got != f->size)
		e = llm_diag_set(d, LLM_ERR_IO, path, 0, "changed while packing (shrank)");
	if (!e && archive_write_finish_entry(w->a) != ARCHIVE_OK)
		e = ar_fail(w, path);
	if (h.ctx) {
		unsigned char md[LLM_SHA256_LEN];
		if (llm_sha256_final(&h, md) && !e)
			e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "digest failed");
		llm_hex(md, sizeof md, f->sha256);
	}
	return e;
}

/* Member 1: the manifest entry in stored deflate blocks, its size known in advance. */
static size_t stored_member_size(size_t n)
{
	size_t blocks = n ? (n + STORED_MAX - 1) / STORED_MAX : 1;
	return 10 + blocks * 5 + n + 8;
}

static enum llm_err stored_member(const unsigned char *p, size_t n, struct llm_buf *out)
{
	unsigned char h[10];
	gzip_header(h, 0);
	enum llm_err e = llm_buf_append(out, h, 10);
	size_t off = 0;
	do {
		size_t k = n - off < STORED_MAX ? n - off : STORED_MAX;
		unsigned char bh[5] = {off + k == n ? 1 : 0, (unsigned char)k,
				       (unsigned char)(k >> 8), (unsigned char)~k,
				       (unsigned char)(~k >> 8)};
		if (!e)
			e = llm_buf_append(out, bh, 5);
		if (!e)
			e = llm_buf_append(out, p + off, k);
		off += k;
	} while (off < n && !e);
	unsigned char t[8];
	put_le32(t, (uint32_t)crc32(crc32(0, NULL, 0), p, (uInt)n));
	put_le32(t + 4, (uint32_t)n);
	return e ? e : llm_buf_append(out, t, 8);
}

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 16 ? 16 : (unsigned)n;
}

static enum llm_err tarball_write(struct llm_manifest *m, const char *dir, const char *out_path,
				  const struct llm_tarball_opts *o, struct llm_diag *d);

enum llm_err llm_tarball_write(struct llm_manifest *m, const char *dir, const char *out_path,
			       const struct llm_tarball_opts *o, struct llm_diag *d)
{
	struct utf8_scope u;
	enum llm_err e = utf8_enter(&u, d);
	if (!e)
		e = tarball_write(m, dir, out_path, o, d);
	utf8_leave(&u);
	return e;
}

static enum llm_err tarball_write(struct llm_manifest *m, const char *dir, const char *out_path,
				  const struct llm_tarball_opts *o, struct llm_diag *d)
{
	int level = o && o->level ? o->level : LLM_TARBALL_LEVEL;
	unsigned threads = o && o->threads ? o->threads : online_cpus();
	if (level < 1 || level > 9)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "compression level %d is not 1 to 9",
				    level);
	/* The manifest with every digest zero has the length the real one will have. */
	for (size_t i = 0; i < m->nfiles; i++)
		memcpy(m->files[i].sha256, zeros64, sizeof zeros64);
	struct llm_buf c0, member;
	llm_buf_init(&c0, 0);
	llm_buf_init(&member, 0);
	struct writer w = {0};
	w.d = d;
	w.mtime = m->created;
	w.capturing = true;
	llm_buf_init(&w.head, LLM_MANIFEST_MAX_BYTES + (1u << 20));
	struct llm_atomic at = {0};
	unsigned char *buf = malloc(READ_CHUNK);
	enum llm_err e = buf ? llm_manifest_sync(m) : LLM_ERR_NOMEM;
	if (!e)
		e = llm_manifest_canonical(m, &c0);
	if (e) {
		e = llm_diag_set(d, e, NULL, 0, "out of memory");
		goto out;
	}
	if (c0.len > LLM_MANIFEST_MAX_BYTES) {
		e = llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0,
				 "the manifest would be %zu bytes, more than the %u allowed: too "
				 "many files",
				 c0.len, LLM_MANIFEST_MAX_BYTES);
		goto out;
	}
	if ((e = llm_atomic_open(&at, out_path, d)))
		goto out;
	if (!at.tmp) {
		e = llm_diag_set(d, LLM_ERR_IO, out_path, 0, "not a regular file");
		goto out;
	}
	int fd = fileno(at.fp);
	if (!(w.a = archive_write_new()) || archive_write_set_format_pax_restricted(w.a) ||
	    archive_write_set_bytes_per_block(w.a, 0) ||
	    archive_write_open(w.a, &w, NULL, tar_out, NULL)) {
		e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "cannot start libarchive");
		goto out;
	}
	if ((e = put_header(&w, LLM_MANIFEST_PATH, c0.len, false)))
		goto out;
	if (archive_write_data(w.a, c0.data, c0.len) != (la_ssize_t)c0.len ||
	    archive_write_finish_entry(w.a) != ARCHIVE_OK) {
		e = ar_fail(&w, LLM_MANIFEST_PATH);
		goto out;
	}
	size_t head_len = w.head.len;
	size_t data_at = head_len - ((c0.len + 511) & ~(size_t)511);
	if (head_len < c0.len || memcmp(w.head.data + data_at, c0.data, c0.len)) {
		e = llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0,
				 "unexpected tar layout from libarchive");
		goto out;
	}
	off_t b_at = (off_t)stored_member_size(head_len);
	unsigned char gh[10];
	gzip_header(gh, level);
	if ((e = write_all(fd, gh, 10, b_at, out_path, d)) ||
	    (e = zpool_init(&w.pool, level, threads, fd, b_at + 10, out_path, d)))
		goto out;
	w.capturing = false;
	uint64_t done = 0;
	for (size_t i = 0; i < m->nfiles && !e; i++)
		e = pack_file(&w, &m->files[i], dir, buf, o, &done, m->total_size);
	if (e)
		goto out;
	if (archive_write_close(w.a) != ARCHIVE_OK) {
		e = ar_fail(&w, out_path);
		goto out;
	}
	size_t pad =
	    (size_t)((LLM_TARBALL_RECORD - w.tar_len % LLM_TARBALL_RECORD) % LLM_TARBALL_RECORD);
	memset(buf, 0, pad);
	if ((e = zpool_put(&w.pool, buf, pad, d)) || (e = zpool_finish(&w.pool, d)))
		goto out;
	unsigned char trailer[8];
	put_le32(trailer, (uint32_t)w.pool.crc);
	put_le32(trailer + 4, (uint32_t)w.pool.total_in);
	if ((e = write_all(fd, trailer, 8, w.pool.off, out_path, d)))
		goto out;
	/* The real manifest, in the room the placeholder kept. */
	llm_buf_clear(&c0);
	size_t placeholder_len = head_len - data_at;
	if ((e = llm_manifest_sync(m)) || (e = llm_manifest_canonical(m, &c0)) ||
	    c0.len > placeholder_len) {
		e = llm_diag_set(d, e ? e : LLM_ERR_FORMAT, NULL, 0, "manifest changed length");
		goto out;
	}
	memcpy(w.head.data + data_at, c0.data, c0.len);
	if ((e = stored_member((unsigned char *)w.head.data, head_len, &member))) {
		e = llm_diag_set(d, e, NULL, 0, "out of memory");
		goto out;
	}
	if ((e = write_all(fd, member.data, member.len, 0, out_path, d)))
		goto out;
	zpool_destroy(&w.pool);
	e = llm_atomic_commit(&at, d);
out:
	zpool_destroy(&w.pool);
	if (w.a)
		archive_write_free(w.a);
	if (e)
		llm_atomic_abort(&at);
	llm_buf_free(&w.head);
	llm_buf_free(&c0);
	llm_buf_free(&member);
	free(buf);
	return e;
}

/* --- reading: the gzip stream ---------------------------------------------------------------- */

struct gzin {
	int fd;
	const char *path;
	z_stream z;
	bool zinit;
	bool between; /* at the end of a member */
	bool end;     /* no more input after a member */
	bool started;
	unsigned char *ibuf;
	uint64_t in_total;
	struct llm_diag diag;
	enum llm_err err;
};

static enum llm_err gz_fail(struct gzin *g, enum llm_err code, const char *msg)
{
	g->err = llm_diag_set(&g->diag, code, g->path, 0, "%s", msg);
	return g->err;
}

static bool gz_fill(struct gzin *g)
{
	if (g->z.avail_in)
		return true;
	for (;;) {
		ssize_t r = read(g->fd, g->ibuf, READ_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			g->err = sys_err(&g->diag, g->path, "read");
			return false;
		}
		g->z.next_in = g->ibuf;
		g->z.avail_in = (uInt)r;
		g->in_total += (uint64_t)r;
		return r > 0;
	}
}

/* Inflate into out[0..cap): the bytes made, 0 at the end of the stream, -1 on error. */
static ssize_t gz_read(struct gzin *g, unsigned char *out, size_t cap)
{
	if (g->err)
		return -1;
	g->z.next_out = out;
	g->z.avail_out = (uInt)cap;
	while (g->z.avail_out == cap && !g->end) {
		if (!gz_fill(g)) {
			if (g->err)
				return -1;
			if (g->between) {
				g->end = true;
				break;
			}
			gz_fail(g, LLM_ERR_FORMAT,
				g->started ? "truncated: the gzip stream ends early"
					   : "empty file: not a gzip stream");
			return -1;
		}
		if (g->between || !g->started) {
			/* A member starts: it must be gzip's magic, not trailing garbage. */
			if (g->z.next_in[0] != 0x1f ||
			    (g->z.avail_in > 1 && g->z.next_in[1] != 0x8b)) {
				gz_fail(g, LLM_ERR_FORMAT,
					g->started ? "bytes after the end of the gzip stream"
						   : "not a gzip file");
				return -1;
			}
			if (inflateReset(&g->z) != Z_OK) {
				gz_fail(g, LLM_ERR_NOMEM, "inflate failed");
				return -1;
			}
			g->between = false;
			g->started = true;
		}
		int r = inflate(&g->z, Z_NO_FLUSH);
		if (r == Z_STREAM_END)
			g->between = true;
		else if (r == Z_BUF_ERROR && !g->z.avail_in)
			continue;
		else if (r != Z_OK) {
			char msg[160];
			snprintf(msg, sizeof msg, "corrupt gzip stream: %s",
				 g->z.msg ? g->z.msg : "inflate failed");
			gz_fail(g, LLM_ERR_FORMAT, msg);
			return -1;
		}
	}
	return (ssize_t)(cap - g->z.avail_out);
}

/* --- reading: the tar stream, optionally inflated on a thread of its own --------------------- */

struct pbuf {
	unsigned char *p;
	size_t len;
};

struct reader {
	const char *path;
	struct gzin g;
	struct archive *a;
	bool threaded;
	pthread_t th;
	bool th_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pbuf bufs[PIPE_BUFS];
	size_t head, tail; /* filled buffers: [head, tail) mod PIPE_BUFS */
	bool held;	   /* bufs[head] is lent to libarchive */
	bool eof, stop;
	unsigned char *sync_buf;
	uint64_t delivered, cap; /* tar bytes handed on, and the most allowed */
	struct llm_diag diag;	 /* why the callback failed */
	enum llm_err err;
};

static void *inflater(void *arg)
{
	struct reader *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->stop && r->tail - r->head == PIPE_BUFS)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->stop)
			break;
		struct pbuf *b = &r->bufs[r->tail % PIPE_BUFS];
		pthread_mutex_unlock(&r->mu);
		size_t len = 0;
		ssize_t n = 1;
		while (len < READ_CHUNK && (n = gz_read(&r->g, b->p + len, READ_CHUNK - len)) > 0)
			len += (size_t)n;
		pthread_mutex_lock(&r->mu);
		b->len = len;
		if (len)
			r->tail++;
		if (n <= 0) {
			r->eof = true;
			pthread_cond_broadcast(&r->cv);
			break;
		}
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* The next piece of the tar stream: its length, 0 at the end, -1 on error (r->diag). */
static ssize_t next_piece(struct reader *r, const void **out)
{
	ssize_t n;
	if (!r->threaded) {
		n = gz_read(&r->g, r->sync_buf, READ_CHUNK);
		*out = r->sync_buf;
	} else {
		pthread_mutex_lock(&r->mu);
		if (r->held) {
			r->head++;
			r->held = false;
			pthread_cond_broadcast(&r->cv);
		}
		while (r->head == r->tail && !r->eof)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->head != r->tail) {
			struct pbuf *b = &r->bufs[r->head % PIPE_BUFS];
			*out = b->p;
			n = (ssize_t)b->len;
			r->held = true;
		} else {
			n = r->g.err ? -1 : 0;
		}
		pthread_mutex_unlock(&r->mu);
	}
	if (n < 0) {
		r->diag = r->g.diag;
		r->err = r->g.err;
		return -1;
	}
	r->delivered += (uint64_t)n;
	if (r->delivered > r->cap) {
		r->err = llm_diag_set(&r->diag, LLM_ERR_FORMAT, r->path, 0,
				      "decompression bomb: the archive expands past the %llu bytes "
				      "its manifest accounts for",
				      (unsigned long long)r->cap);
		return -1;
	}
	return n;
}

static la_ssize_t tar_in(struct archive *a, void *ctx, const void **out)
{
	struct reader *r = ctx;
	ssize_t n = next_piece(r, out);
	if (n < 0)
		archive_set_error(a, EIO, "%s", r->diag.msg);
	return (la_ssize_t)n;
}

static void reader_close(struct reader *r)
{
	if (r->a)
		archive_read_free(r->a);
	if (r->th_started) {
		pthread_mutex_lock(&r->mu);
		r->stop = true;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->th, NULL);
	}
	if (r->threaded) {
		pthread_mutex_destroy(&r->mu);
		pthread_cond_destroy(&r->cv);
	}
	for (size_t i = 0; i < PIPE_BUFS; i++)
		free(r->bufs[i].p);
	free(r->sync_buf);
	if (r->g.zinit)
		inflateEnd(&r->g.z);
	free(r->g.ibuf);
	if (r->g.fd >= 0)
		close(r->g.fd);
	memset(r, 0, sizeof *r);
	r->g.fd = -1;
}

static enum llm_err reader_open(struct reader *r, const char *path, bool threaded,
				struct llm_diag *d)
{
	memset(r, 0, sizeof *r);
	r->path = path;
	r->g.path = path;
	r->threaded = threaded;
	r->cap = LLM_MANIFEST_MAX_BYTES + 64 * 1024;
	r->g.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->g.fd < 0)
		return sys_err(d, path, "cannot open");
	struct stat st;
	if (fstat(r->g.fd, &st) || !S_ISREG(st.st_mode)) {
		enum llm_err e = llm_diag_set(d, S_ISDIR(st.st_mode) ? LLM_ERR_IS_DIR : LLM_ERR_IO,
					      path, 0, "not a regular file");
		close(r->g.fd);
		r->g.fd = -1;
		return e;
	}
	if (!(r->g.ibuf = malloc(READ_CHUNK)) || inflateInit2(&r->g.z, 15 + 16) != Z_OK)
		goto nomem;
	r->g.zinit = true;
	if (threaded) {
		pthread_mutex_init(&r->mu, NULL);
		pthread_cond_init(&r->cv, NULL);
		for (size_t i = 0; i < PIPE_BUFS; i++)
			if (!(r->bufs[i].p = malloc(READ_CHUNK)))
				goto nomem;
		if (pthread_create(&r->th, NULL, inflater, r))
			goto nomem;
		r->th_started = true;
	} else if (!(r->sync_buf = malloc(READ_CHUNK))) {
		goto nomem;
	}
	if (!(r->a = archive_read_new()) || archive_read_support_format_tar(r->a) ||
	    archive_read_open(r->a, r, NULL, tar_in, NULL)) {
		if (r->err) {
			*d = r->diag;
			return r->err;
		}
		return llm_diag_set(d, LLM_ERR_FORMAT, path, 0, "not a tar archive: %s",
				    r->a ? archive_error_string(r->a) : "libarchive");
	}
	return LLM_OK;
nomem:
	return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
}

/* A libarchive failure: the callback's reason when it has one. */
static enum llm_err read_fail(struct reader *r, struct llm_diag *d, const char *what)
{
	if (r->err) {
		*d = r->diag;
		return r->err;
	}
	const char *why = archive_error_string(r->a);
	return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0, "%s: %s", what,
			    why ? why : "damaged tar archive");
}

/* Why an entry is not a plain regular file, or NULL. */
static const char *entry_kind_problem(struct archive_entry *e)
{
	if (archive_entry_hardlink(e))
		return "a hard link";
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		break;
	case AE_IFLNK:
		return "a symbolic link";
	case AE_IFDIR:
		return "a folder entry";
	case AE_IFCHR:
	case AE_IFBLK:
		return "a device file";
	case AE_IFIFO:
		return "a FIFO";
	default:
		return "not a regular file";
	}
	if (archive_entry_sparse_count(e) > 0)
		return "a sparse file";
	if (!archive_entry_size_is_set(e))
		return "an entry without a size";
	return NULL;
}

static const char *entry_path(struct archive_entry *e)
{
	const char *p = archive_entry_pathname_utf8(e);
	return p ? p : archive_entry_pathname(e);
}

static enum llm_err read_manifest(struct reader *r, struct llm_manifest *m,
				  char identity[LLM_DIGEST_SIZE], struct llm_diag *d)
{
	struct archive_entry *e;
	int st = archive_read_next_header(r->a, &e);
	if (st == ARCHIVE_EOF)
		return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0, "an empty archive");
	if (st < ARCHIVE_WARN)
		return read_fail(r, d, "not an artifact");
	const char *p = entry_path(e);
	if (!p || strcmp(p, LLM_MANIFEST_PATH))
		return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0,
				    "not an llmops artifact: the first entry is '%.300s', not "
				    "MANIFEST.json",
				    p ? p : "?");
	const char *kind = entry_kind_problem(e);
	if (kind)
		return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0, "MANIFEST.json is %s", kind);
	la_int64_t size = archive_entry_size(e);
	if (size < 0 || size > LLM_MANIFEST_MAX_BYTES)
		return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0,
				    "MANIFEST.json is larger than %u bytes",
				    LLM_MANIFEST_MAX_BYTES);
	char *buf = malloc((size_t)size + 1);
	if (!buf)
		return llm_diag_set(d, LLM_ERR_NOMEM, r->path, 0, "out of memory");
	la_ssize_t got = archive_read_data(r->a, buf, (size_t)size);
	if (got != size) {
		free(buf);
		return got < 0 ? read_fail(r, d, "MANIFEST.json")
			       : llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0,
					      "MANIFEST.json is cut short");
	}
	char where[LLM_DIAG_FILE_MAX];
	snprintf(where, sizeof where, "%s:" LLM_MANIFEST_PATH, r->path);
	enum llm_err err = llm_manifest_parse(m, buf, (size_t)size, where, true, d);
	if (!err && (err = llm_digest(buf, (size_t)size, identity)))
		err = llm_diag_set(d, err, r->path, 0, "digest failed");
	if (err && err != LLM_ERR_NOMEM && err != LLM_ERR_IO)
		err = err == LLM_ERR_JSON || err == LLM_ERR_TOO_BIG ? LLM_ERR_FORMAT : err;
	if (err && d)
		d->code = err;
	free(buf);
	return err;
}

enum llm_err llm_tarball_manifest(const char *path, struct llm_manifest *m,
				  char identity[LLM_DIGEST_SIZE], struct llm_diag *d)
{
	struct reader r;
	struct utf8_scope u;
	enum llm_err e = utf8_enter(&u, d);
	if (e)
		return e;
	e = reader_open(&r, path, false, d);
	if (!e)
		e = read_manifest(&r, m, identity, d);
	reader_close(&r);
	utf8_leave(&u);
	return e;
}

/* --- verifying and unpacking --------------------------------------------------------------------
 */

struct sink {
	const char *dir; /* the temporary folder; NULL when only verifying */
};

static enum llm_err make_parents(const char *dir, const char *rel, struct llm_diag *d)
{
	char p[LLM_MANIFEST_PATH_MAX + 4096 + 2];
	int n = snprintf(p, sizeof p, "%s/%s", dir, rel);
	if (n < 0 || (size_t)n >= sizeof p)
		return llm_diag_set(d, LLM_ERR_IO, rel, 0, "path too long");
	for (char *s = p + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		if (mkdir(p, 0755) && errno != EEXIST)
			return sys_err(d, p, "cannot make the folder");
		*s = '/';
	}
	return LLM_OK;
}

static enum llm_err open_out(const struct sink *s, const char *rel, bool exec, int *fd,
			     struct llm_diag *d)
{
	*fd = -1;
	if (!s->dir)
		return LLM_OK;
	enum llm_err e = make_parents(s->dir, rel, d);
	if (e)
		return e;
	char p[LLM_MANIFEST_PATH_MAX + 4096 + 2];
	snprintf(p, sizeof p, "%s/%s", s->dir, rel);
	*fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, exec ? 0755 : 0644);
	return *fd < 0 ? sys_err(d, p, "cannot create") : LLM_OK;
}

static enum llm_err close_out(int fd, const char *rel, struct llm_diag *d)
{
	if (fd < 0)
		return LLM_OK;
	bool ok = fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	return ok ? LLM_OK : sys_err(d, rel, "write");
}

static enum llm_err check_file(struct reader *r, const struct llm_manifest_file *f,
			       const struct sink *s, const struct llm_tarball_opts *o,
			       uint64_t *done, uint64_t total, struct llm_diag *d)
{
	int fd;
	enum llm_err e = open_out(s, f->path, f->executable, &fd, d);
	if (e)
		return e;
	struct llm_sha256 h;
	if (llm_sha256_init(&h)) {
		close_out(fd, f->path, NULL);
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	uint64_t got = 0;
	for (;;) {
		const void *p;
		size_t n;
		la_int64_t off;
		int st = archive_read_data_block(r->a, &p, &n, &off);
		if (st == ARCHIVE_EOF)
			break;
		if (st < ARCHIVE_WARN) {
			e = read_fail(r, d, f->path);
			break;
		}
		if ((uint64_t)off != got) {
			e = llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0, "'%.300s' has holes",
					 f->path);
			break;
		}
		got += n;
		llm_sha256_update(&h, p, n);
		if (fd >= 0 && (e = write_all(fd, p, n, -1, f->path, d)))
			break;
		*done += n;
		if (o && o->progress)
			o->progress(o->progress_arg, *done, total);
	}
	unsigned char md[LLM_SHA256_LEN];
	char hex[LLM_SHA256_HEX_LEN + 1];
	llm_sha256_final(&h, md);
	llm_hex(md, sizeof md, hex);
	enum llm_err ce = close_out(fd, f->path, d);
	if (e)
		return e;
	if (ce)
		return ce;
	if (got != f->size)
		return llm_diag_set(d, LLM_ERR_CHECK, r->path, 0,
				    "'%.300s': %llu bytes, but the manifest says %llu", f->path,
				    (unsigned long long)got, (unsigned long long)f->size);
	if (strcmp(hex, f->sha256))
		return llm_diag_set(d, LLM_ERR_CHECK, r->path, 0,
				    "'%.300s': sha256 %s, but the manifest says %s", f->path, hex,
				    f->sha256);
	return LLM_OK;
}

/* The most tar bytes the manifest's files can take: headers (a pax header with a long path),
 * data padded to 512, the end blocks and the record padding. */
static uint64_t tar_budget(const struct llm_manifest *m, uint64_t manifest_entry)
{
	uint64_t n = manifest_entry + 2048 + 2 * LLM_TARBALL_RECORD;
	for (size_t i = 0; i < m->nfiles; i++)
		n += ((m->files[i].size + 511) & ~(uint64_t)511) + 3 * 512 +
		     ((strlen(m->files[i].path) + 64 + 511) & ~(uint64_t)511);
	return n;
}

static enum llm_err check_all(struct reader *r, struct llm_manifest *m,
			      char identity[LLM_DIGEST_SIZE], const struct sink *s,
			      const struct llm_tarball_opts *o, struct llm_diag *d)
{
	enum llm_err e = read_manifest(r, m, identity, d);
	if (e)
		return e;
	struct stat st;
	fstat(r->g.fd, &st);
	if (o && o->max_total && m->total_size > o->max_total)
		return llm_diag_set(d, LLM_ERR_CHECK, r->path, 0,
				    "the manifest lists %llu bytes, more than the %llu allowed",
				    (unsigned long long)m->total_size,
				    (unsigned long long)o->max_total);
	if (m->total_size / LLM_TARBALL_MAX_RATIO > (uint64_t)st.st_size + (1u << 20))
		return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0,
				    "decompression bomb: the manifest lists %llu bytes, more than "
				    "a %lld-byte gzip file can hold",
				    (unsigned long long)m->total_size, (long long)st.st_size);
	struct statvfs vfs;
	if (s->dir && !statvfs(s->dir, &vfs) &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < m->total_size)
		return llm_diag_set(d, LLM_ERR_IO, s->dir, 0,
				    "not enough space: %llu bytes needed, %llu free",
				    (unsigned long long)m->total_size,
				    (unsigned long long)vfs.f_bavail * vfs.f_frsize);
	/* From here the stream may be no longer than what the manifest accounts for. */
	r->cap = tar_budget(m, r->delivered);
	uint64_t done = 0;
	size_t next = 0;
	for (;;) {
		struct archive_entry *ent;
		int rs = archive_read_next_header(r->a, &ent);
		if (rs == ARCHIVE_EOF)
			break;
		if (rs < ARCHIVE_WARN)
			return read_fail(r, d, "damaged archive");
		const char *p = entry_path(ent);
		if (!p)
			return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0,
					    "an entry without a name");
		const char *kind = entry_kind_problem(ent);
		if (kind)
			return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0,
					    "entry '%.300s' is %s: refused", p, kind);
		struct llm_diag pd;
		if (!strcmp(p, LLM_MANIFEST_PATH))
			return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0,
					    "entry 'MANIFEST.json' appears twice");
		if (llm_artifact_path_check(p, &pd))
			return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0, "entry refused: %s",
					    pd.msg);
		long idx = llm_manifest_find(m, p);
		if (idx < 0)
			return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0,
					    "entry '%.300s' is not in the manifest", p);
		if ((size_t)idx < next)
			return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0,
					    "entry '%.300s' appears twice", p);
		if ((size_t)idx > next)
			return llm_diag_set(
			    d, LLM_ERR_FORMAT, r->path, 0,
			    "'%.300s' is missing from the archive (or out of order)",
			    m->files[next].path);
		const struct llm_manifest_file *f = &m->files[idx];
		if ((uint64_t)archive_entry_size(ent) != f->size)
			return llm_diag_set(d, LLM_ERR_CHECK, r->path, 0,
					    "'%.300s': %lld bytes, but the manifest says %llu", p,
					    (long long)archive_entry_size(ent),
					    (unsigned long long)f->size);
		if ((e = check_file(r, f, s, o, &done, m->total_size, d)))
			return e;
		next++;
	}
	if (next < m->nfiles)
		return llm_diag_set(d, LLM_ERR_FORMAT, r->path, 0,
				    "'%.300s' is missing from the archive", m->files[next].path);
	/* The rest of the stream (padding), so that gzip's length and CRC are checked too. */
	const void *p;
	ssize_t n;
	while ((n = next_piece(r, &p)) > 0)
		;
	if (n < 0) {
		*d = r->diag;
		return r->err;
	}
	return LLM_OK;
}

enum llm_err llm_tarball_verify(const char *path, const struct llm_tarball_opts *o,
				struct llm_manifest *m, char identity[LLM_DIGEST_SIZE],
				struct llm_diag *d)
{
	struct reader r;
	struct sink s = {NULL};
	memset(m, 0, sizeof *m);
	struct utf8_scope u;
	enum llm_err e = utf8_enter(&u, d);
	if (e)
		return e;
	e = reader_open(&r, path, true, d);
	if (!e)
		e = check_all(&r, m, identity, &s, o, d);
	reader_close(&r);
	utf8_leave(&u);
	if (e)
		llm_manifest_free(m);
	return e;
}

static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void remove_tree(const char *dir)
{
	nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Absent, or an empty folder (not a link to one). */
static enum llm_err target_usable(const char *target, struct llm_diag *d)
{
	struct stat st;
	if (lstat(target, &st)) {
		if (errno == ENOENT)
			return LLM_OK;
		return sys_err(d, target, "cannot read");
	}
	if (!S_ISDIR(st.st_mode))
		return llm_diag_set(
		    d, LLM_ERR_USAGE, target, 0,
		    "exists and is not a folder: unpack into an empty or new folder");
	DIR *dir = opendir(target);
	if (!dir)
		return sys_err(d, target, "cannot read");
	struct dirent *de;
	bool empty = true;
	while (empty && (de = readdir(dir)))
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(dir);
	if (!empty)
		return llm_diag_set(d, LLM_ERR_USAGE, target, 0,
				    "is not empty: unpack into an empty or new folder");
	return LLM_OK;
}

enum llm_err llm_tarball_unpack(const char *path, const char *target,
				const struct llm_tarball_opts *o, struct llm_manifest *m,
				char identity[LLM_DIGEST_SIZE], struct llm_diag *d)
{
	memset(m, 0, sizeof *m);
	enum llm_err e = target_usable(target, d);
	if (e)
		return e;
	/* The temporary folder goes beside the target, so the rename stays on one file system. */
	size_t n = strlen(target);
	while (n > 1 && target[n - 1] == '/')
		n--;
	const char *base = target + n;
	while (base > target && base[-1] != '/')
		base--;
	char tmp[4096 + 64];
	int k = snprintf(tmp, sizeof tmp, "%.*s.%.*s.unpack-XXXXXX", (int)(base - target), target,
			 (int)(target + n - base), base);
	if (k < 0 || (size_t)k >= sizeof tmp)
		return llm_diag_set(d, LLM_ERR_USAGE, target, 0, "path too long");
	if (!mkdtemp(tmp))
		return sys_err(d, tmp, "cannot make a temporary folder");
	mode_t mask = umask(0);
	umask(mask);
	struct sink s = {tmp};
	struct reader r;
	struct utf8_scope u;
	e = utf8_enter(&u, d);
	if (!e)
		e = reader_open(&r, path, true, d);
	if (!e)
		e = check_all(&r, m, identity, &s, o, d);
	if (!e) {
		struct llm_buf mb;
		llm_buf_init(&mb, 0);
		int fd;
		e = llm_manifest_canonical(m, &mb);
		if (!e && !(e = open_out(&s, LLM_MANIFEST_PATH, false, &fd, d))) {
			e = write_all(fd, mb.data, mb.len, -1, LLM_MANIFEST_PATH, d);
			enum llm_err ce = close_out(fd, LLM_MANIFEST_PATH, d);
			e = e ? e : ce;
		}
		llm_buf_free(&mb);
	}
	if (u.loc)
		reader_close(&r);
	utf8_leave(&u);
	if (!e && chmod(tmp, 0755 & ~mask))
		e = sys_err(d, tmp, "chmod");
	if (!e && rename(tmp, target))
		e = sys_err(d, target, "cannot move the unpacked folder into place");
	if (!e) {
		char parent[4096 + 2];
		snprintf(parent, sizeof parent, "%.*s", base > target ? (int)(base - target) : 1,
			 base > target ? target : ".");
		int dfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	if (e) {
		remove_tree(tmp);
		llm_manifest_free(m);
	}
	return e;
}
