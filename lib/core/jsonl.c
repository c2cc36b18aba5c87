#include "config.h"

#include "core/jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (1u << 20)

bool llm_on_error_parse(const char *s, enum llm_on_error *out)
{
	if (!strcmp(s, "fail"))
		*out = LLM_ON_ERROR_FAIL;
	else if (!strcmp(s, "skip"))
		*out = LLM_ON_ERROR_SKIP;
	else if (!strcmp(s, "keep"))
		*out = LLM_ON_ERROR_KEEP;
	else
		return false;
	return true;
}

struct llm_jsonl_reader {
	char *const *paths;
	size_t npaths;
	size_t next_path; /* index of the next input to open */
	gzFile gz;
	const char *name;
	long line;
	char *chunk;
	size_t clen, cpos;
	struct llm_buf held; /* a line that spans chunks */
	size_t max;
	uint64_t total;
	uint64_t done_before; /* bytes of the inputs already finished */
	uint64_t slice_k, slice_n, ordinal;
};

void llm_jsonl_set_slice(struct llm_jsonl_reader *r, uint64_t k, uint64_t n)
{
	r->slice_k = k;
	r->slice_n = n;
}

static const char *display_name(const char *path)
{
	return strcmp(path, "-") ? path : LLM_STDIN_NAME;
}

enum llm_err llm_jsonl_open(struct llm_jsonl_reader **out, char *const *paths, size_t npaths,
			    size_t max_record_bytes, struct llm_diag *d)
{
	static char *const stdin_only[] = {"-"};
	*out = NULL;
	if (!npaths) {
		paths = stdin_only;
		npaths = 1;
	}
	uint64_t total = 0;
	bool total_known = true;
	for (size_t i = 0; i < npaths; i++) {
		struct stat st;
		if (!strcmp(paths[i], "-")) {
			total_known = false;
			continue;
		}
		if (stat(paths[i], &st) != 0)
			return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO,
					    paths[i], 0, "cannot open: %s", strerror(errno));
		if (S_ISDIR(st.st_mode))
			return llm_diag_set(d, LLM_ERR_IS_DIR, paths[i], 0,
					    "is a directory, not a JSONL file");
		if (access(paths[i], R_OK) != 0)
			return llm_diag_set(d, LLM_ERR_IO, paths[i], 0, "cannot open: %s",
					    strerror(errno));
		if (S_ISREG(st.st_mode))
			total += (uint64_t)st.st_size;
		else
			total_known = false;
	}
	struct llm_jsonl_reader *r = calloc(1, sizeof *r);
	if (!r || !(r->chunk = malloc(CHUNK))) {
		free(r);
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	r->paths = paths;
	r->npaths = npaths;
	r->max = max_record_bytes ? max_record_bytes : LLM_DEFAULT_MAX_RECORD_BYTES;
	llm_buf_init(&r->held, r->max);
	r->total = total_known ? total : 0;
	*out = r;
	return LLM_OK;
}

static enum llm_err open_next(struct llm_jsonl_reader *r, struct llm_diag *d)
{
	const char *path = r->paths[r->next_path++];
	r->name = display_name(path);
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : dup(STDIN_FILENO);
	if (fd < 0)
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, r->name, 0,
				    "cannot open: %s", strerror(errno));
	r->gz = gzdopen(fd, "rb");
	if (!r->gz) {
		close(fd);
		return llm_diag_set(d, LLM_ERR_NOMEM, r->name, 0, "out of memory");
	}
	gzbuffer(r->gz, 256u << 10);
	r->line = 0;
	r->clen = r->cpos = 0;
	return LLM_OK;
}

static void close_current(struct llm_jsonl_reader *r)
{
	if (!r->gz)
		return;
	r->done_before += (uint64_t)gzoffset(r->gz);
	gzclose_r(r->gz);
	r->gz = NULL;
}

/* Refill the chunk.  Returns the bytes read (0 at the end of the input) or -1 with diag set. */
static long refill(struct llm_jsonl_reader *r, struct llm_diag *d)
{
	int n = gzread(r->gz, r->chunk, CHUNK);
	if (n < 0) {
		int zerr;
		const char *msg = gzerror(r->gz, &zerr);
		if (zerr == Z_ERRNO)
			llm_diag_set(d, errno == EISDIR ? LLM_ERR_IS_DIR : LLM_ERR_IO, r->name,
				     r->line + 1, "read error: %s", strerror(errno));
		else
			llm_diag_set(d, LLM_ERR_GZIP, r->name, r->line + 1, "corrupt gzip data: %s",
				     msg);
		return -1;
	}
	if (n == 0) {
		/* zlib reports a stream cut short only through gzerror, not as a read error. */
		int zerr;
		const char *msg = gzerror(r->gz, &zerr);
		if (zerr == Z_BUF_ERROR) {
			llm_diag_set(d, LLM_ERR_GZIP, r->name, r->line + 1,
				     "truncated gzip data: %s", msg);
			return -1;
		}
	}
	r->clen = (size_t)n;
	r->cpos = 0;
	return n;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* Read one physical line into rec->text/len.  Returns LLM_OK with rec->text NULL when the
 * current input is exhausted. */
static enum llm_err read_line(struct llm_jsonl_reader *r, struct llm_record *rec,
			      struct llm_diag *d)
{
	bool too_big = false;
	size_t big_len = 0;
	llm_buf_clear(&r->held);
	rec->text = NULL;
	rec->last_no_newline = false;
	for (;;) {
		if (r->cpos == r->clen) {
			long n = refill(r, d);
			if (n < 0)
				return d ? d->code : LLM_ERR_IO;
			if (n == 0) {
				if (!too_big && r->held.len == 0)
					return LLM_OK;
				rec->last_no_newline = true;
				break;
			}
		}
		const char *start = r->chunk + r->cpos;
		size_t avail = r->clen - r->cpos;
		const char *nl = memchr(start, '\n', avail);
		size_t seg = nl ? (size_t)(nl - start) : avail;
		r->cpos += nl ? seg + 1 : seg;
		if (too_big) {
			big_len += seg;
		} else if (nl && r->held.len == 0 && seg <= r->max) {
			rec->text = start; /* the whole line is in the chunk: no copy */
			rec->len = seg;
			break;
		} else if (llm_buf_append(&r->held, start, seg) != LLM_OK) {
			too_big = true;
			big_len = r->held.len + seg;
			llm_buf_free(&r->held);
			llm_buf_init(&r->held, r->max);
		}
		if (nl)
			break;
	}
	r->line++;
	if (too_big) {
		rec->text = "";
		rec->len = big_len;
		rec->status = LLM_ERR_TOO_BIG;
		return LLM_OK;
	}
	if (!rec->text) {
		rec->text = r->held.data ? r->held.data : "";
		rec->len = r->held.len;
	}
	rec->status = LLM_OK;
	return LLM_OK;
}

enum llm_err llm_jsonl_next(struct llm_jsonl_reader *r, struct llm_record *rec,
			    struct llm_diag *d)
{
	enum llm_err e;
	for (;;) {
		if (!r->gz) {
			if (r->next_path >= r->npaths) {
				rec->text = NULL;
				return LLM_OK;
			}
			if ((e = open_next(r, d)))
				return e;
		}
		if ((e = read_line(r, rec, d)))
			return e;
		if (!rec->text) {
			close_current(r);
			continue;
		}
		rec->file = r->name;
		rec->line = r->line;
		bool too_big = rec->status == LLM_ERR_TOO_BIG;
		if (!too_big) {
			if (r->line == 1 && rec->len >= 3 && !memcmp(rec->text, "\xEF\xBB\xBF", 3)) {
				rec->text += 3;
				rec->len -= 3;
			}
			if (rec->len && rec->text[rec->len - 1] == '\r')
				rec->len--;
			if (blank(rec->text, rec->len))
				continue;
		}
		if (r->slice_n > 1 && r->ordinal++ % r->slice_n != r->slice_k)
			continue;
		if (too_big) {
			llm_diag_set(&rec->diag, LLM_ERR_TOO_BIG, r->name, r->line,
				     "record of %zu bytes is over --max-record-bytes (%zu)", rec->len,
				     r->max);
			return LLM_OK;
		}
		break;
	}
	struct llm_json_fault f;
	rec->status = llm_json_scan(rec->text, rec->len, &rec->fields, &f);
	if (rec->status == LLM_ERR_NOMEM)
		return llm_diag_set(d, LLM_ERR_NOMEM, rec->file, rec->line, "out of memory");
	if (rec->status) {
		bool cut = rec->last_no_newline && f.offset >= rec->len;
		llm_diag_set(&rec->diag, rec->status, rec->file, rec->line, "%s at byte %zu%s",
			     f.code == LLM_ERR_UTF8 ? "invalid UTF-8" : f.why, f.offset + 1,
			     cut ? " (the file ends in the middle of this record)" : "");
	}
	return LLM_OK;
}

void llm_jsonl_progress(const struct llm_jsonl_reader *r, uint64_t *done, uint64_t *total)
{
	*done = r->done_before + (r->gz ? (uint64_t)gzoffset(r->gz) : 0);
	*total = r->total;
}

void llm_jsonl_close(struct llm_jsonl_reader *r)
{
	if (!r)
		return;
	close_current(r);
	llm_buf_free(&r->held);
	free(r->chunk);
	free(r);
}

void llm_record_free(struct llm_record *rec)
{
	llm_json_members_free(&rec->fields);
}

const struct llm_json_member *llm_record_string_field(const struct llm_record *rec,
						      const char *name, struct llm_diag *why)
{
	const struct llm_json_member *m = llm_json_get(&rec->fields, name);
	if (!m)
		llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line, "missing field \"%s\"",
			     name);
	else if (m->type != LLM_JSON_STRING)
		llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
			     "field \"%s\" is %s, not a string", name, llm_json_type_phrase(m->type));
	return m && m->type == LLM_JSON_STRING ? m : NULL;
}

enum llm_err llm_record_string(const struct llm_record *rec, const char *name,
			       struct llm_buf *out, struct llm_diag *why)
{
	const struct llm_json_member *m = llm_record_string_field(rec, name, why);
	if (!m)
		return why ? why->code : LLM_ERR_MISSING;
	llm_buf_clear(out);
	enum llm_err e = llm_json_string_decode(m->val, m->val_len, out);
	if (e)
		return llm_diag_set(why, e, rec->file, rec->line, "field \"%s\": %s", name,
				    e == LLM_ERR_NOMEM ? "out of memory" : "too long");
	return LLM_OK;
}

static bool member_is(const struct llm_json_member *m, const char *key)
{
	struct llm_json_members one = {(struct llm_json_member *)m, 1, 1};
	return llm_json_get(&one, key) != NULL;
}

static const struct llm_edit *edit_for(const struct llm_json_member *m,
				       const struct llm_edit *edits, size_t n, bool *used)
{
	for (size_t i = 0; i < n; i++)
		if (member_is(m, edits[i].key)) {
			used[i] = true;
			return &edits[i];
		}
	return NULL;
}

enum llm_err llm_record_render(const struct llm_record *rec, const struct llm_edit *edits,
			       size_t nedits, struct llm_buf *out)
{
	enum llm_err e = LLM_OK;
	if (!nedits) {
		if (!(e = llm_buf_append(out, rec->text, rec->len)))
			e = llm_buf_putc(out, '\n');
		return e;
	}
	bool used_small[16];
	bool *used = nedits <= 16 ? used_small : calloc(nedits, sizeof *used);
	if (!used)
		return LLM_ERR_NOMEM;
	memset(used, 0, nedits * sizeof *used);
	const struct llm_json_members *ms = &rec->fields;
	bool removal = false;
	for (size_t i = 0; i < ms->n; i++) {
		const struct llm_edit *ed = edit_for(&ms->m[i], edits, nedits, used);
		if (ed && !ed->value)
			removal = true;
	}
	size_t kept = 0;
	const char *close = rec->text + rec->len;
	while (close > rec->text && close[-1] != '}')
		close--;
	close--; /* at the object's closing brace */
	if (!removal) {
		/* Splice new values into the original text: everything else stays byte for byte. */
		const char *pos = rec->text;
		for (size_t i = 0; i < ms->n && !e; i++) {
			const struct llm_json_member *m = &ms->m[i];
			const struct llm_edit *ed = edit_for(m, edits, nedits, used);
			kept++;
			if (!ed)
				continue;
			if (!(e = llm_buf_append(out, pos, (size_t)(m->val - pos))))
				e = llm_buf_puts(out, ed->value);
			pos = m->val + m->val_len;
		}
		if (!e)
			e = llm_buf_append(out, pos, (size_t)(close - pos));
	} else {
		/* Rebuild compactly from the kept members' raw keys and values. */
		e = llm_buf_putc(out, '{');
		for (size_t i = 0; i < ms->n && !e; i++) {
			const struct llm_json_member *m = &ms->m[i];
			const struct llm_edit *ed = edit_for(m, edits, nedits, used);
			if (ed && !ed->value)
				continue;
			if (kept++)
				e = llm_buf_putc(out, ',');
			if (!e)
				e = llm_buf_append(out, m->key - 1, m->key_len + 2);
			if (!e)
				e = llm_buf_putc(out, ':');
			if (!e)
				e = ed ? llm_buf_puts(out, ed->value)
				       : llm_buf_append(out, m->val, m->val_len);
		}
	}
	for (size_t i = 0; i < nedits && !e; i++) {
		if (used[i] || !edits[i].value)
			continue;
		bool dup = false; /* the same key twice in edits: the first wins */
		for (size_t k = 0; k < i; k++)
			dup |= !strcmp(edits[k].key, edits[i].key);
		if (dup)
			continue;
		if (kept++)
			e = llm_buf_putc(out, ',');
		if (!e)
			e = llm_buf_json_string(out, edits[i].key, strlen(edits[i].key));
		if (!e)
			e = llm_buf_putc(out, ':');
		if (!e)
			e = llm_buf_puts(out, edits[i].value);
	}
	if (!e)
		e = removal ? llm_buf_putc(out, '}')
			    : llm_buf_append(out, close, (size_t)(rec->text + rec->len - close));
	if (!e)
		e = llm_buf_putc(out, '\n');
	if (used != used_small)
		free(used);
	return e;
}

static enum llm_err error_object(const struct llm_diag *why, struct llm_buf *b)
{
	enum llm_err e = llm_buf_printf(b, "{\"code\":\"%s\",\"message\":", llm_err_name(why->code));
	if (!e)
		e = llm_buf_json_string(b, why->msg, strlen(why->msg));
	if (!e)
		e = llm_buf_putc(b, '}');
	return e;
}

enum llm_err llm_record_render_error(const struct llm_record *rec, const struct llm_diag *why,
				     struct llm_buf *out)
{
	struct llm_buf obj;
	llm_buf_init(&obj, 0);
	enum llm_err e = error_object(why, &obj);
	if (!e && rec->status == LLM_OK) {
		struct llm_edit ed = {"error", obj.data};
		e = llm_record_render(rec, &ed, 1, out);
		llm_buf_free(&obj);
		return e;
	}
	if (!e)
		e = llm_buf_printf(out, "{\"error\":%s,\"source\":{\"file\":", obj.data);
	if (!e)
		e = llm_buf_json_string(out, rec->file, strlen(rec->file));
	if (!e)
		e = llm_buf_printf(out, ",\"line\":%ld}", rec->line);
	if (!e && rec->status != LLM_ERR_TOO_BIG) {
		/* The line itself, so nothing is lost: as text when it is UTF-8, else in base64. */
		if (llm_utf8_valid_prefix(rec->text, rec->len) == rec->len) {
			if (!(e = llm_buf_puts(out, ",\"raw\":")))
				e = llm_buf_json_string(out, rec->text, rec->len);
		} else if (!(e = llm_buf_puts(out, ",\"raw_base64\":\""))) {
			if (!(e = llm_buf_base64(out, rec->text, rec->len)))
				e = llm_buf_putc(out, '"');
		}
	}
	if (!e)
		e = llm_buf_puts(out, "}\n");
	llm_buf_free(&obj);
	return e;
}
