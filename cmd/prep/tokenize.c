/* llm-prep tokenize: token ids as tiktoken or Hugging Face gives them, into the records, into a
 * token file for training, or counted; and back to text with --decode. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/atomic.h"
#include "core/json.h"
#include "prep/verbs.h"
#include "text/bpe.h"
#include "text/tokfile.h"

#ifndef LLMOPS_TOKENIZER_DATADIR
#define LLMOPS_TOKENIZER_DATADIR "/usr/local/share/llmops/tokenizers"
#endif

struct tok_run {
	struct llm_cli *c;
	struct llm_bpe *bpe;
	const char *text_field, *tokens_field, *count_field;
	bool count, decode, eot;
	uint32_t eot_id;
	uint64_t max_tokens;
	struct llm_tokfile_writer *file;
	struct llm_buf text, json;
	struct llm_bpe_ids ids;
	/* for the report */
	uint64_t documents, tokens, truncated, eot_tokens, longest;
	/* --resume: the checkpoint file, what must match to resume, and when to write the next */
	char *state_path;
	json_t *settings;
	uint64_t skip, every, next_records, next_tokens;
};

/* --- --resume ------------------------------------------------------------------------------
 * FILE.partial and FILE.partial.idx grow in place; FILE.partial.state, written atomically after
 * they are synced, says how far they are good: records consumed, tokens and documents written,
 * and the inputs and options they were made from.  A later run with the same inputs and
 * options cuts the partial files back to the checkpoint, reads past the records it covers
 * without tokenizing them, and goes on. */

#define CHECKPOINT_TOKENS (16u << 20) /* and at least every 64 MB of uint32 tokens */

/* The inputs (path, size, mtime) and the options that decide the token file's bytes. */
static int resume_settings(struct llm_cli *c, struct tok_run *t, const char *label, json_t **out)
{
	struct llm_diag d;
	char digest[65];
	if (llm_bpe_digest(t->bpe, digest, &d))
		return llm_cli_fail(c, &d);
	json_t *inputs = json_array();
	for (size_t i = 0; i < c->args.noperands; i++) {
		const char *path = c->args.operands[i];
		struct stat st;
		if (stat(path, &st) != 0) {
			llm_cli_error(c, "%s: %s", path, strerror(errno));
			json_decref(inputs);
			return LLM_EXIT_IO;
		}
		json_array_append_new(inputs, json_pack("{s:s,s:I,s:I}", "path", path, "size",
							(json_int_t)st.st_size, "mtime_ns",
							(json_int_t)st.st_mtim.tv_sec * 1000000000 +
							    (json_int_t)st.st_mtim.tv_nsec));
	}
	size_t nv;
	char *const *allow = llm_args_strs(&c->args, "allow-special", &nv);
	json_t *allowed = json_array();
	for (size_t i = 0; i < nv; i++)
		json_array_append_new(allowed, json_string(allow[i]));
	const char *shard = llm_args_str(&c->args, "shard");
	*out =
	    json_pack("{s:o,s:s,s:s,s:o,s:b,s:s,s:I,s:s,s:s?,s:I}", "inputs", inputs, "tokenizer",
		      label, "tokenizer_sha256", digest, "allow_special", allowed, "eot", t->eot,
		      "eot_token", llm_args_str(&c->args, "eot-token"), "max_tokens",
		      (json_int_t)t->max_tokens, "text_field", t->text_field, "shard", shard,
		      "max_record_bytes", (json_int_t)llm_args_size(&c->args, "max-record-bytes"));
	if (!*out) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	return 0;
}

static uint64_t state_count(json_t *state, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(state, key));
	return v > 0 ? (uint64_t)v : 0;
}

/* The options as the user spells them, for the settings that are options. */
static const char *const setting_names[][2] = {
    {"tokenizer", "--encoding or --tokenizer"},
    {"tokenizer_sha256", "the tokenizer's vocabulary"},
    {"allow_special", "--allow-special"},
    {"eot", "--eot"},
    {"eot_token", "--eot-token"},
    {"max_tokens", "--max-tokens"},
    {"text_field", "--text-field"},
    {"shard", "--shard"},
    {"max_record_bytes", "--max-record-bytes"},
};

/* A usage error naming the first setting that differs from the checkpoint's. */
static int resume_refused(struct llm_cli *c, const struct tok_run *t, const char *key, json_t *then,
			  json_t *now)
{
	if (!strcmp(key, "inputs")) {
		size_t i;
		json_t *in;
		json_array_foreach(now, i, in)
		{
			if (json_equal(in, json_array_get(then, i)))
				continue;
			return llm_cli_usage(
			    c,
			    "--resume: the input %s is not the one checkpointed in "
			    "%s (size or modification time differ); remove it to "
			    "start afresh",
			    json_string_value(json_object_get(in, "path")), t->state_path);
		}
		return llm_cli_usage(c,
				     "--resume: %s was checkpointed with other input files; "
				     "remove it to start afresh",
				     t->state_path);
	}
	const char *name = key;
	for (size_t i = 0; i < sizeof setting_names / sizeof *setting_names; i++)
		if (!strcmp(setting_names[i][0], key))
			name = setting_names[i][1];
	char *a = then ? json_dumps(then, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	char *b = json_dumps(now, JSON_COMPACT | JSON_ENCODE_ANY);
	int st = llm_cli_usage(c,
			       "--resume: %s differs from the checkpoint in %s (then %s, now %s); "
			       "remove it to start afresh",
			       name, t->state_path, a ? a : "unset", b ? b : "?");
	free(a);
	free(b);
	return st;
}

/* Open the partial token file: afresh without a checkpoint, else from it when the inputs and
 * options are those it was made with (a usage error naming what differs when not). */
static int resume_open(struct llm_cli *c, struct tok_run *t, const char *out)
{
	struct llm_diag d;
	json_error_t jerr;
	uint64_t ntokens = 0, ndocs = 0;
	json_t *state = NULL;
	if (access(t->state_path, F_OK) == 0 &&
	    !(state = json_load_file(t->state_path, 0, &jerr))) {
		llm_cli_error(c, "%s: not a checkpoint (%s); remove it to start afresh",
			      t->state_path, jerr.text);
		return LLM_EXIT_IO;
	}
	if (state) {
		json_t *was = json_object_get(state, "settings");
		const char *key;
		json_t *now;
		json_object_foreach(t->settings, key, now)
		{
			json_t *then = json_object_get(was, key);
			if (then && json_equal(then, now))
				continue;
			int st = resume_refused(c, t, key, then, now);
			json_decref(state);
			return st;
		}
		t->skip = state_count(state, "records");
		ntokens = state_count(state, "tokens");
		ndocs = state_count(state, "documents");
		t->tokens = ntokens;
		t->documents = ndocs;
		t->truncated = state_count(state, "truncated");
		t->eot_tokens = state_count(state, "eot_tokens");
		t->longest = state_count(state, "longest");
		json_decref(state);
	}
	if (llm_tokfile_resume(&t->file, out, llm_bpe_vocab_size(t->bpe), ntokens, ndocs, &d)) {
		char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
		llm_diag_format(&d, msg, sizeof msg);
		llm_cli_error(c, "--resume: %s; remove %s to start afresh", msg, t->state_path);
		return LLM_EXIT_IO;
	}
	if (t->skip && !c->quiet)
		fprintf(stderr, "%s: tokenize: resuming after %llu records (%llu tokens)\n",
			c->tool->name, (unsigned long long)t->skip, (unsigned long long)ntokens);
	return 0;
}

/* Sync the partial files, then record how far they are good. */
static enum llm_err checkpoint(struct tok_run *t, uint64_t records, struct llm_diag *d)
{
	uint64_t ntokens, ndocs;
	enum llm_err e = llm_tokfile_sync(t->file, &ntokens, &ndocs, d);
	if (e)
		return e;
	json_t *j =
	    json_pack("{s:i,s:O,s:I,s:I,s:I,s:I,s:I,s:I}", "version", 1, "settings", t->settings,
		      "records", (json_int_t)records, "tokens", (json_int_t)ntokens, "documents",
		      (json_int_t)ndocs, "truncated", (json_int_t)t->truncated, "eot_tokens",
		      (json_int_t)t->eot_tokens, "longest", (json_int_t)t->longest);
	char *text = j ? json_dumps(j, JSON_INDENT(1)) : NULL;
	json_decref(j);
	if (!text)
		return llm_diag_set(d, LLM_ERR_NOMEM, t->state_path, 0, "out of memory");
	e = llm_atomic_write_file(t->state_path, text, strlen(text), d);
	free(text);
	t->next_records = records + t->every;
	t->next_tokens = ntokens + CHECKPOINT_TOKENS;
	return e;
}

/* Append the decimal digits of v. */
static void put_u32(struct llm_buf *b, uint32_t v)
{
	char tmp[10];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		b->data[b->len++] = tmp[--n];
}

/* The ids as a JSON array; the buffer is sized once so the digits go in unchecked. */
static enum llm_err ids_json(struct llm_buf *b, const uint32_t *v, size_t n)
{
	llm_buf_clear(b);
	enum llm_err e = llm_buf_reserve(b, 2 + n * 11);
	if (e)
		return e;
	b->data[b->len++] = '[';
	for (size_t i = 0; i < n; i++) {
		if (i)
			b->data[b->len++] = ',';
		put_u32(b, v[i]);
	}
	b->data[b->len++] = ']';
	b->data[b->len] = '\0';
	return LLM_OK;
}

/* The decoded value of a string member; points into the record when it has no escapes. */
static enum llm_err member_text(const struct llm_json_member *m, struct llm_buf *scratch,
				const char **s, size_t *n)
{
	if (!memchr(m->val, '\\', m->val_len)) {
		*s = m->val + 1;
		*n = m->val_len - 2;
		return LLM_OK;
	}
	llm_buf_clear(scratch);
	enum llm_err e = llm_json_string_decode(m->val, m->val_len, scratch);
	*s = scratch->data;
	*n = scratch->len;
	return e;
}

/* Parse a JSON array of token ids ("[1, 2, 3]") from a raw member value. */
static bool parse_ids(const char *s, size_t n, struct llm_bpe_ids *ids)
{
	size_t i = 0;
	ids->n = 0;
#define SKIP_WS                                                                                    \
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))             \
	i++
	SKIP_WS;
	if (i >= n || s[i++] != '[')
		return false;
	SKIP_WS;
	if (i < n && s[i] == ']')
		return true;
	for (;;) {
		SKIP_WS;
		uint64_t v = 0;
		size_t start = i;
		while (i < n && s[i] >= '0' && s[i] <= '9' && v <= UINT32_MAX)
			v = v * 10 + (uint64_t)(s[i++] - '0');
		if (i == start || v > UINT32_MAX || (s[start] == '0' && i - start > 1))
			return false;
		if (ids->n == ids->cap) {
			size_t cap = ids->cap ? ids->cap * 2 : 256;
			uint32_t *g = realloc(ids->v, cap * sizeof *g);
			if (!g)
				return false;
			ids->v = g;
			ids->cap = cap;
		}
		ids->v[ids->n++] = (uint32_t)v;
		SKIP_WS;
		if (i < n && s[i] == ',') {
			i++;
			continue;
		}
		if (i < n && s[i] == ']')
			return true;
		return false;
	}
#undef SKIP_WS
}

/* Bytes that end inside a character, or are not UTF-8, become U+FFFD (tiktoken's decode with
 * errors="replace"), so the text field is always valid JSON. */
static enum llm_err append_utf8_lossy(struct llm_buf *out, const char *s, size_t n)
{
	while (n) {
		size_t ok = llm_utf8_valid_prefix(s, n);
		enum llm_err e = llm_buf_append(out, s, ok);
		if (!e && ok < n)
			e = llm_buf_append(out, "\xef\xbf\xbd", 3);
		if (e)
			return e;
		if (ok == n)
			break;
		s += ok + 1;
		n -= ok + 1;
	}
	return LLM_OK;
}

/* One record: 1 done, 0 rejected (why filled), -1 a failure that stops the run (why filled). */
static int tokenize_record(struct tok_run *t, const struct llm_record *rec, struct llm_diag *why)
{
	struct llm_cli *c = t->c;
	if (t->decode) {
		const struct llm_json_member *m = llm_json_get(&rec->fields, t->tokens_field);
		if (!m) {
			llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
				     "missing field \"%s\"", t->tokens_field);
			return 0;
		}
		if (m->type != LLM_JSON_ARRAY || !parse_ids(m->val, m->val_len, &t->ids)) {
			llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
				     "field \"%s\" is not an array of token ids", t->tokens_field);
			return 0;
		}
		llm_buf_clear(&t->text);
		struct llm_diag d;
		if (llm_bpe_decode(t->bpe, t->ids.v, t->ids.n, &t->text, &d)) {
			llm_diag_set(why, d.code, rec->file, rec->line, "%s", d.msg);
			return 0;
		}
		llm_buf_clear(&t->json);
		struct llm_buf lossy;
		llm_buf_init(&lossy, 0);
		enum llm_err e = append_utf8_lossy(&lossy, t->text.data, t->text.len);
		if (!e)
			e = llm_buf_json_string(&t->json, lossy.data ? lossy.data : "", lossy.len);
		llm_buf_free(&lossy);
		if (e) {
			llm_diag_set(why, e, rec->file, rec->line, "out of memory");
			return -1;
		}
		struct llm_edit ed = {t->text_field, t->json.data};
		t->documents++;
		t->tokens += t->ids.n;
		return llm_cli_emit(c, rec, &ed, 1) ? 1 : -1;
	}

	const struct llm_json_member *m = llm_record_string_field(rec, t->text_field, why);
	if (!m)
		return 0;
	const char *s;
	size_t n;
	struct llm_diag d;
	enum llm_err e = member_text(m, &t->text, &s, &n);
	t->ids.n = 0;
	if (!e && t->eot) {
		if (!t->ids.cap && (t->ids.v = malloc(256 * sizeof *t->ids.v)))
			t->ids.cap = 256;
		if (t->ids.cap)
			t->ids.v[t->ids.n++] = t->eot_id;
		else
			e = LLM_ERR_NOMEM;
	}
	if (e) {
		llm_diag_set(why, e, rec->file, rec->line, "out of memory");
		return -1;
	}
	size_t head = t->ids.n;
	if ((e = llm_bpe_encode(t->bpe, s, n, &t->ids, &d))) {
		llm_diag_set(why, e, rec->file, rec->line, "%s", d.msg);
		return e == LLM_ERR_NOMEM ? -1 : 0;
	}
	if (t->max_tokens && t->ids.n - head > t->max_tokens) {
		t->ids.n = head + t->max_tokens;
		t->truncated++;
	}
	t->documents++;
	t->tokens += t->ids.n;
	t->eot_tokens += head;
	if (t->ids.n > t->longest)
		t->longest = t->ids.n;
	if (t->file) {
		if (llm_tokfile_append(t->file, t->ids.v, t->ids.n, why))
			return -1;
		return 1;
	}
	if (t->count) {
		char num[24];
		snprintf(num, sizeof num, "%zu", t->ids.n);
		struct llm_edit ed = {t->count_field, num};
		return llm_cli_emit(c, rec, &ed, 1) ? 1 : -1;
	}
	if (ids_json(&t->json, t->ids.v, t->ids.n)) {
		llm_diag_set(why, LLM_ERR_NOMEM, rec->file, rec->line, "out of memory");
		return -1;
	}
	struct llm_edit ed = {t->tokens_field, t->json.data};
	return llm_cli_emit(c, rec, &ed, 1) ? 1 : -1;
}

/* Load the tokenizer the options name.  Returns an exit status. */
static int load_tokenizer(struct llm_cli *c, struct llm_bpe **out, const char **label)
{
	const char *file = llm_args_str(&c->args, "tokenizer");
	const char *name = llm_args_str(&c->args, "encoding");
	struct llm_diag d;
	if (file && llm_args_given(&c->args, "encoding"))
		return llm_cli_usage(c, "give --encoding or --tokenizer, not both");
	if (file) {
		*label = file;
		if (llm_bpe_open_file(out, file, &d))
			return llm_cli_fail(c, &d);
		return 0;
	}
	*label = name;
	const char *dir = getenv("LLMOPS_TOKENIZER_DIR");
	if (!dir || !*dir)
		dir = LLMOPS_TOKENIZER_DATADIR;
	enum llm_err e = llm_bpe_open_encoding(out, dir, name, &d);
	if (e == LLM_ERR_NOT_FOUND)
		return llm_cli_usage(c,
				     "%s: the encodings are gpt2, cl100k_base and o200k_base, "
				     "or give --tokenizer FILE",
				     d.msg);
	return e ? llm_cli_fail(c, &d) : 0;
}

/* --allow-special all, or a comma-separated list of special tokens. */
static int allow_specials(struct llm_cli *c, struct llm_bpe *bpe)
{
	if (!llm_args_given(&c->args, "allow-special"))
		return 0;
	char **names;
	size_t n;
	if (llm_args_list(&c->args, "allow-special", &names, &n)) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	int st = 0;
	for (size_t i = 0; i < n && !st; i++) {
		struct llm_diag d;
		if (llm_bpe_allow_special(bpe, names[i], &d))
			st = llm_cli_usage(c, "--allow-special: %s", d.msg);
	}
	llm_strv_free(names);
	return st;
}

static int run_tokenize(struct llm_cli *c)
{
	struct tok_run t = {.c = c};
	t.text_field = llm_args_str(&c->args, "text-field");
	t.tokens_field = llm_args_str(&c->args, "tokens-field");
	t.count_field = llm_args_str(&c->args, "count-field");
	t.count = llm_args_flag(&c->args, "count");
	t.decode = llm_args_flag(&c->args, "decode");
	t.eot = llm_args_flag(&c->args, "eot");
	t.max_tokens = llm_args_given(&c->args, "max-tokens")
			   ? (uint64_t)llm_args_int(&c->args, "max-tokens")
			   : 0;
	const char *out = llm_args_str(&c->args, "out");
	bool resume = llm_args_flag(&c->args, "resume");
	if (t.count + t.decode + (out != NULL) > 1)
		return llm_cli_usage(c, "--count, --decode and --out go one at a time");
	if (resume && !out)
		return llm_cli_usage(c, "--resume needs --out: records on standard output cannot "
					"be resumed");
	for (size_t i = 0; resume && i <= c->args.noperands; i++)
		if (i == c->args.noperands ? !i : !strcmp(c->args.operands[i], "-"))
			return llm_cli_usage(c, "--resume needs input files: standard input cannot "
						"be checked or read again");
	t.every = (uint64_t)llm_args_int(&c->args, "checkpoint-records");
	if (t.decode && (t.eot || t.max_tokens))
		return llm_cli_usage(c, "--decode takes no --eot or --max-tokens");

	const char *label = "";
	int st = load_tokenizer(c, &t.bpe, &label);
	if (!st)
		st = allow_specials(c, t.bpe);
	const char *eot_text = llm_args_str(&c->args, "eot-token");
	if (!st && t.eot && !llm_bpe_special_id(t.bpe, eot_text, &t.eot_id))
		st = llm_cli_usage(c, "--eot: the tokenizer has no token '%s' (see --eot-token)",
				   eot_text);
	struct llm_diag d;
	if (!st && resume) {
		struct llm_buf sp;
		llm_buf_init(&sp, 0);
		if (llm_buf_printf(&sp, "%s.partial.state", out)) {
			llm_cli_error(c, "out of memory");
			st = LLM_EXIT_IO;
		}
		t.state_path = sp.data;
		if (!st)
			st = resume_settings(c, &t, label, &t.settings);
		if (!st)
			st = resume_open(c, &t, out);
		t.next_records = t.skip + t.every;
		t.next_tokens = t.tokens + CHECKPOINT_TOKENS;
	} else if (!st && out && llm_tokfile_create(&t.file, out, llm_bpe_vocab_size(t.bpe), &d)) {
		st = llm_cli_fail(c, &d);
	}
	if (st) {
		free(t.state_path);
		json_decref(t.settings);
		llm_bpe_free(t.bpe);
		return st;
	}
	llm_buf_init(&t.text, 0);
	llm_buf_init(&t.json, 0);

	struct llm_cli_in in;
	st = llm_cli_in_open(c, &in, !out);
	bool opened = !st;
	int r = st ? -1 : 0;
	struct llm_record *rec;
	while (!st && (r = llm_cli_in_next(c, &in, &rec)) > 0) {
		struct llm_diag why;
		uint64_t consumed = in.records + in.bad;
		int k;
		if (consumed <= t.skip) /* in the token file already: only what would reject it */
			k = llm_record_string_field(rec, t.text_field, &why) ? 1 : 0;
		else
			k = tokenize_record(&t, rec, &why);
		if (k < 0) {
			in.status = why.code ? llm_cli_fail(c, &why) : LLM_EXIT_IO;
			r = -1;
			break;
		}
		if (!k && !llm_cli_in_reject(c, &in, rec, &why)) {
			r = -1;
			break;
		}
		if (t.state_path && consumed > t.skip &&
		    (consumed >= t.next_records || t.tokens >= t.next_tokens) &&
		    checkpoint(&t, consumed, &why)) {
			in.status = llm_cli_fail(c, &why);
			r = -1;
			break;
		}
	}
	if (!st)
		st = r < 0 ? in.status : 0;
	if (!st && t.file) {
		enum llm_err e = llm_tokfile_commit(t.file, &d);
		t.file = NULL;
		if (e)
			st = llm_cli_fail(c, &d);
		/* The token file is in place: its checkpoint is spent. */
		if (!st && t.state_path && unlink(t.state_path) != 0 && errno != ENOENT)
			llm_cli_error(c, "%s: cannot remove: %s", t.state_path, strerror(errno));
	}
	/* Under --resume the partial files and the last checkpoint stay for the next run. */
	if (t.file)
		llm_tokfile_abort(t.file);
	free(t.state_path);
	json_decref(t.settings);

	if (!st) {
		/* A kept bad record goes to stdout; a token file has no room for one. */
		uint64_t written = t.documents + (out ? 0 : in.kept);
		uint64_t dropped = out ? in.bad : in.dropped;
		if (!c->quiet)
			fprintf(stderr,
				"%s: tokenize: %llu records, %llu tokens (%s)%s%llu truncated, "
				"%llu bad\n",
				c->tool->name, (unsigned long long)t.documents,
				(unsigned long long)t.tokens, label, ", ",
				(unsigned long long)t.truncated, (unsigned long long)in.bad);
		const char *report = llm_args_str(&c->args, "report");
		if (report) {
			json_t *j = llm_cli_in_report(&in);
			json_object_set_new(j, "written", json_integer((json_int_t)written));
			json_object_set_new(j, "dropped", json_integer((json_int_t)dropped));
			json_object_set_new(j, "tokenizer", json_string(label));
			json_object_set_new(j, "vocab_size",
					    json_integer(llm_bpe_vocab_size(t.bpe)));
			json_object_set_new(j, "documents", json_integer((json_int_t)t.documents));
			json_object_set_new(j, "tokens", json_integer((json_int_t)t.tokens));
			json_object_set_new(j, "eot_tokens",
					    json_integer((json_int_t)t.eot_tokens));
			json_object_set_new(j, "truncated", json_integer((json_int_t)t.truncated));
			json_object_set_new(j, "max_tokens_in_a_record",
					    json_integer((json_int_t)t.longest));
			json_object_set_new(
			    j, "mean_tokens",
			    json_real(t.documents ? (double)t.tokens / (double)t.documents : 0.0));
			if (out)
				json_object_set_new(j, "out", json_string(out));
			if (llm_cli_write_json(c, report, j, &d))
				st = llm_cli_fail(c, &d);
			json_decref(j);
		}
	}
	if (opened)
		llm_cli_in_close(&in);
	llm_buf_free(&t.text);
	llm_buf_free(&t.json);
	llm_bpe_ids_free(&t.ids);
	llm_bpe_free(t.bpe);
	return st;
}

static const struct llm_opt tokenize_opts[] = {
    {"encoding", 'e', LLM_OPT_STRING, "NAME", "tiktoken encoding: gpt2, cl100k_base or o200k_base",
     "cl100k_base"},
    {"tokenizer", 't', LLM_OPT_STRING, "FILE",
     "a Hugging Face tokenizer.json (byte-level BPE) or a NAME.tiktoken file"},
    {"text-field", 0, LLM_OPT_STRING, "FIELD", "the field holding the text", "text"},
    {"tokens-field", 0, LLM_OPT_STRING, "FIELD", "the field the token ids go in", "tokens"},
    {"count", 'c', LLM_OPT_FLAG, NULL, "add the number of tokens instead of the ids"},
    {"count-field", 0, LLM_OPT_STRING, "FIELD", "the field the count goes in under --count",
     "n_tokens"},
    {"max-tokens", 'n', LLM_OPT_INT, "N", "keep at most the first N tokens of each text", .min = 1,
     .max = 4e9},
    {"allow-special", 0, LLM_OPT_STRING, "LIST",
     "recognise these special tokens in the text (comma-separated, or all); else they are "
     "text",
     .repeat = true},
    {"eot", 0, LLM_OPT_FLAG, NULL, "put the end-of-text token before each document"},
    {"eot-token", 0, LLM_OPT_STRING, "TOKEN", "the end-of-text token for --eot", "<|endoftext|>"},
    {"out", 'o', LLM_OPT_STRING, "FILE",
     "write the ids to a token file FILE (and FILE.idx) instead of records"},
    {"resume", 0, LLM_OPT_FLAG, NULL,
     "with --out: keep progress in FILE.partial and go on from its last checkpoint after an "
     "interruption"},
    {"checkpoint-records", 0, LLM_OPT_INT, "N",
     "under --resume, a checkpoint every N records (and every 16M tokens)", "1000000", .min = 1,
     .max = 1e15},
    {"decode", 'd', LLM_OPT_FLAG, NULL,
     "turn the ids in --tokens-field back into text in --text-field"},
    {"report", 0, LLM_OPT_STRING, "FILE", "write counts and token totals as JSON to FILE"},
    {0},
};

const struct llm_verb llm_prep_verb_tokenize = {
    "tokenize",
    "token ids as tiktoken or Hugging Face gives them",
    "[OPTIONS] [FILE...]",
    "Adds the token ids of each record's text (--count: their number), or writes them to a\n"
    "token file for training (--out).  Ids are those tiktoken gives for --encoding, or\n"
    "Hugging Face tokenizers for a byte-level BPE --tokenizer tokenizer.json.  Special tokens\n"
    "in the text are ordinary text unless --allow-special names them.",
    {tokenize_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base},
    run_tokenize,
};
