/* Following a growing log file by polling (see tail.h).
 *
 * Polling rather than inotify: it works the same on every file system (NFS, overlay, a log
 * shipped by rsync), it sees a rename and a truncation the same way, and the cost of a
 * stat(2) every poll is nothing beside parsing the lines. */
#include "config.h"

#include "monitor/tail.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"

#define CHUNK (64u << 10)

struct llm_mon_tail {
	char *path;
	int fd; /* -1: waiting for the path to name a file */
	dev_t dev;
	ino_t ino;
	off_t pos;	 /* bytes of the current file consumed into chunk */
	bool first_open; /* from_end applies to the file the path names at open only */
	bool from_end;
	size_t max;
	int poll_ms;
	long lineno;
	/* Bytes read but not yet handed back: chunk[cpos, clen). */
	char chunk[CHUNK + 1];
	size_t cpos, clen;
	/* The start of a line whose end has not been read yet. */
	struct llm_buf line;
	bool skipping;	 /* the line in progress is over max: its bytes are dropped */
	bool discard;	 /* drop the line in progress silently (from_end began mid-line) */
	size_t skip_len; /* the length of the line being skipped */
	bool checked_gzip;
	bool line_returned; /* t->line holds the line handed back last */
	bool seekable;	    /* a regular file (pread); a FIFO is read with read */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

/* Forget the line in progress (the file it came from is gone or was cut). */
static void reset_line(struct llm_mon_tail *t)
{
	llm_buf_clear(&t->line);
	t->skipping = t->discard = false;
	t->skip_len = 0;
	t->cpos = t->clen = 0;
}

/* Count the lines before off, so that FILE:LINE stays true when reading starts at the end. */
static enum llm_err count_lines(struct llm_mon_tail *t, off_t off, struct llm_diag *d)
{
	off_t done = 0;
	while (done < off) {
		size_t want = off - done < (off_t)CHUNK ? (size_t)(off - done) : CHUNK;
		ssize_t n = pread(t->fd, t->chunk, want, done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return llm_diag_set(d, LLM_ERR_IO, t->path, 0, "cannot read: %s",
					    strerror(errno));
		if (n == 0)
			break;
		for (const char *p = t->chunk, *end = t->chunk + n;
		     (p = memchr(p, '\n', (size_t)(end - p))); p++)
			t->lineno++;
		if (t->chunk[n - 1] != '\n' && done + n == off)
			t->discard = true; /* the end was mid-line: that line is not a new one */
		done += n;
	}
	return LLM_OK;
}

/* Open the path when it names a file.  Returns LLM_OK with t->fd still -1 when it does not
 * exist yet. */
static enum llm_err open_path(struct llm_mon_tail *t, struct llm_diag *d)
{
	int fd = open(t->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return LLM_OK;
		return llm_diag_set(d, errno == EISDIR ? LLM_ERR_IS_DIR : LLM_ERR_IO, t->path, 0,
				    "cannot open: %s", strerror(errno));
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int err = errno;
		close(fd);
		return llm_diag_set(d, LLM_ERR_IO, t->path, 0, "cannot stat: %s", strerror(err));
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return llm_diag_set(d, LLM_ERR_IS_DIR, t->path, 0, "is a directory");
	}
	t->fd = fd;
	t->seekable = S_ISREG(st.st_mode);
	t->dev = st.st_dev;
	t->ino = st.st_ino;
	t->pos = 0;
	t->lineno = 0;
	t->checked_gzip = false;
	reset_line(t);
	bool from_end = t->first_open && t->from_end && S_ISREG(st.st_mode);
	t->first_open = false;
	if (from_end && st.st_size > 0) {
		enum llm_err e = count_lines(t, st.st_size, d);
		if (e)
			return e;
		t->pos = st.st_size;
		/* A gzip file is refused by its name; its middle is not looked at. */
		t->checked_gzip = true;
	}
	return LLM_OK;
}

enum llm_err llm_mon_tail_open(struct llm_mon_tail **out, const char *path, bool from_end,
			       size_t max_record_bytes, int poll_ms, struct llm_diag *diag)
{
	*out = NULL;
	if (ends_with(path, ".gz") || ends_with(path, ".gzip"))
		return llm_diag_set(
		    diag, LLM_ERR_USAGE, path, 0,
		    "a gzip file cannot be followed (it is rewritten, not appended to)");
	/* A path in a folder that does not exist is a typo, not a log still to come. */
	char *dir = strdup(path);
	if (!dir)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	char *slash = strrchr(dir, '/');
	if (slash) {
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
		struct stat st;
		if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
			int err = errno;
			free(dir);
			return llm_diag_set(diag, LLM_ERR_NOT_FOUND, path, 0,
					    "its folder does not exist: %s",
					    strerror(err ? err : ENOTDIR));
		}
	}
	free(dir);
	struct llm_mon_tail *t = calloc(1, sizeof *t);
	if (!t || !(t->path = strdup(path))) {
		free(t);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	t->fd = -1;
	t->first_open = true;
	t->from_end = from_end;
	t->max = max_record_bytes ? max_record_bytes : SIZE_MAX / 4;
	t->poll_ms = poll_ms > 0 ? poll_ms : 200;
	llm_buf_init(&t->line, 0);
	enum llm_err e = open_path(t, diag);
	if (e) {
		llm_mon_tail_close(t);
		return e;
	}
	t->first_open = false; /* a file that appears later is new: read from its start */
	*out = t;
	return LLM_OK;
}

void llm_mon_tail_close(struct llm_mon_tail *t)
{
	if (!t)
		return;
	if (t->fd >= 0)
		close(t->fd);
	llm_buf_free(&t->line);
	free(t->path);
	free(t);
}

enum tail_got { GOT_NONE, GOT_LINE, GOT_TOO_BIG };

/* Take the next line out of the bytes read, if a whole one is there. */
static enum tail_got take_line(struct llm_mon_tail *t, const char **line, size_t *len,
			       enum llm_err *err)
{
	*err = LLM_OK;
	while (t->cpos < t->clen) {
		char *start = t->chunk + t->cpos;
		size_t avail = t->clen - t->cpos;
		char *nl = memchr(start, '\n', avail);
		size_t piece = nl ? (size_t)(nl - start) : avail;
		t->cpos += piece + (nl ? 1 : 0);
		if (t->discard) {
			if (nl) {
				t->discard = false;
				t->lineno++;
			}
			continue;
		}
		if (t->skipping) {
			t->skip_len += piece;
			if (!nl)
				continue;
			t->skipping = false;
			t->lineno++;
			return GOT_TOO_BIG;
		}
		size_t have = t->line.len;
		if (have + piece > t->max) {
			/* Over the limit: drop what is held and skip to the end of the line. */
			t->skip_len = have + piece;
			llm_buf_clear(&t->line);
			if (!nl) {
				t->skipping = true;
				continue;
			}
			t->lineno++;
			return GOT_TOO_BIG;
		}
		if (nl && !have) {
			/* The usual case: the whole line is in the chunk, handed back in place. */
			*nl = '\0';
			*line = start;
			*len = piece;
		} else {
			if ((*err = llm_buf_append(&t->line, start, piece)) != LLM_OK)
				return GOT_NONE;
			if (!nl)
				continue;
			*line = t->line.data;
			*len = t->line.len;
			/* Cleared on the next call, after the caller is done with it. */
		}
		if (*len && (*line)[*len - 1] == '\r')
			(*len)--;
		t->lineno++;
		return GOT_LINE;
	}
	return GOT_NONE;
}

/* What became of the path since the file was opened. */
enum moved { SAME, REPLACED, GONE, TRUNCATED };

static enum moved look(struct llm_mon_tail *t)
{
	struct stat st;
	if (stat(t->path, &st) != 0)
		return GONE;
	if (st.st_dev != t->dev || st.st_ino != t->ino)
		return REPLACED;
	if (S_ISREG(st.st_mode) && st.st_size < t->pos)
		return TRUNCATED;
	return SAME;
}

/* Read more of the current file into the chunk: >0 bytes read, 0 at its end, -1 on error. */
static ssize_t fill(struct llm_mon_tail *t, struct llm_diag *d)
{
	t->cpos = t->clen = 0;
	for (;;) {
		ssize_t n = t->seekable ? pread(t->fd, t->chunk, CHUNK, t->pos)
					: read(t->fd, t->chunk, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0) {
			llm_diag_set(d, errno == EISDIR ? LLM_ERR_IS_DIR : LLM_ERR_IO, t->path,
				     t->lineno, "cannot read: %s", strerror(errno));
			return -1;
		}
		if (n > 0 && t->pos == 0 && !t->checked_gzip) {
			t->checked_gzip = true;
			if (n >= 2 && (unsigned char)t->chunk[0] == 0x1f &&
			    (unsigned char)t->chunk[1] == 0x8b) {
				llm_diag_set(d, LLM_ERR_USAGE, t->path, 0,
					     "a gzip file cannot be followed");
				return -1;
			}
		}
		t->pos += n;
		t->clen = (size_t)n;
		return n;
	}
}

enum llm_err llm_mon_tail_next(struct llm_mon_tail *t, int timeout_ms, const char **line,
			       size_t *len, long *lineno, struct llm_diag *diag)
{
	*line = NULL;
	*len = 0;
	/* A line assembled in t->line and handed back last time is done with. */
	if (t->line.len && t->line_returned)
		llm_buf_clear(&t->line);
	t->line_returned = false;
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
	for (;;) {
		if (t->fd >= 0) {
			enum llm_err err;
			enum tail_got g = take_line(t, line, len, &err);
			if (err)
				return llm_diag_set(diag, err, t->path, t->lineno + 1,
						    "out of memory");
			if (g != GOT_NONE) {
				*lineno = t->lineno;
				if (g == GOT_TOO_BIG) {
					*line = NULL;
					return llm_diag_set(
					    diag, LLM_ERR_TOO_BIG, t->path, t->lineno,
					    "record is %zu bytes, over the limit of "
					    "%zu",
					    t->skip_len, t->max);
				}
				t->line_returned = *line == t->line.data;
				return LLM_OK;
			}
			ssize_t n = fill(t, diag);
			if (n < 0)
				return diag->code;
			if (n > 0)
				continue;
			/* At the end of the file: has the path moved on? */
			enum moved m = look(t);
			if (m == TRUNCATED) {
				t->pos = 0;
				t->lineno = 0;
				t->checked_gzip = false;
				reset_line(t);
				continue;
			}
			if (m == REPLACED || m == GONE) {
				/* Read what the writer added to the old file before it moved. */
				if ((n = fill(t, diag)) < 0)
					return diag->code;
				if (n > 0)
					continue;
				if (t->line.len && !t->skipping && !t->discard) {
					/* The old file ended without a newline: its last line is
					 * whole as far as it will ever be. */
					*line = t->line.data;
					*len = t->line.len;
					*lineno = ++t->lineno;
					t->line_returned = true;
					close(t->fd);
					t->fd = -1;
					t->cpos = t->clen = 0;
					return LLM_OK;
				}
				close(t->fd);
				t->fd = -1;
				reset_line(t);
				continue; /* open the new file now, if it is there */
			}
		} else {
			enum llm_err e = open_path(t, diag);
			if (e)
				return e;
			if (t->fd >= 0)
				continue;
		}
		int64_t now = mono_ms();
		if (now >= deadline)
			return LLM_OK;
		int64_t wait = deadline - now;
		if (wait > t->poll_ms)
			wait = t->poll_ms;
		poll(NULL, 0, (int)wait);
	}
}
