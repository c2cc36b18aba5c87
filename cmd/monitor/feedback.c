/* llm-monitor feedback: add one feedback record to a request log, import feedback from other
 * tools as normalized feedback records, and join feedback with its requests. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/json.h"
#include "monitor/fbjoin.h"
#include "monitor/join.h"
#include "monitor/monitor.h"
#include "serve/reqlog.h"

/* --- shared with curate (fbjoin.h) --------------------------------------------------------- */

const struct llm_opt mon_opts_join[] = {
    {"join-wait", 0, LLM_OPT_STRING, "DURATION",
     "with --follow: how long a request waits for feedback before it is written", "5m"},
    {"max-pending", 0, LLM_OPT_INT, "N",
     "requests and early feedback held at most; past it the oldest is released as it stands",
     "100000", .min = 1, .max = 1e12},
    {"correction-field", 0, LLM_OPT_STRING, "NAME",
     "a feedback record's corrected answer (also: a comment starting \"correction:\")",
     "correction"},
    {0},
};

int64_t mon_join_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mon_join_open(struct llm_cli *c, struct llm_mon_join **j, bool follow)
{
	struct llm_mon_join_opts o = {
	    .max_pending = (size_t)llm_args_int(&c->args, "max-pending"),
	};
	const char *w = llm_args_str(&c->args, "join-wait");
	if (!llm_mon_parse_duration(w, &o.wait_ms) || o.wait_ms < 0)
		return llm_cli_usage(
		    c, "--join-wait: expected a duration such as 30s or 5m, not '%s'", w);
	if (!follow)
		o.wait_ms = 0;
	else if (!o.wait_ms)
		o.wait_ms = 1; /* a stream never ends: 0 means "do not wait" there */
	o.emit_on_feedback = follow;
	if (llm_mon_join_new(j, &o)) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	return 0;
}

/* The text after "correction:" at the start of a comment (white space around it dropped). */
static const char *comment_correction(const char *s)
{
	if (!s)
		return NULL;
	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	if (strncasecmp(s, "correction:", 11))
		return NULL;
	s += 11;
	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	return *s ? s : NULL;
}

int mon_join_take(struct llm_cli *c, struct llm_mon_join *j, const struct llm_mon_event *ev,
		  int64_t now)
{
	enum llm_err e;
	if (ev->kind == LLM_MON_REQUEST) {
		e = llm_mon_join_request(j, ev->request_id.p, ev->request_id.n, ev->rec->text,
					 ev->rec->len, ev->rec->file, ev->rec->line, now);
	} else {
		struct llm_buf corr;
		llm_buf_init(&corr, 0);
		const char *correction = NULL;
		const char *cf = llm_args_str(&c->args, "correction-field");
		const struct llm_json_member *m = cf ? llm_json_get(&ev->rec->fields, cf) : NULL;
		if (m && m->type == LLM_JSON_STRING &&
		    llm_json_string_decode(m->val, m->val_len, &corr) == LLM_OK && corr.len)
			correction = corr.data;
		if (!correction)
			correction = comment_correction(ev->comment.p);
		e = llm_mon_join_feedback(j, ev->request_id.p, ev->request_id.n, ev->feedback_id.p,
					  ev->score, ev->comment.p, correction, ev->ts_ms, now,
					  NULL);
		llm_buf_free(&corr);
	}
	if (e) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	return 0;
}

/* --- feedback add ---------------------------------------------------------------------- */

static bool valid_utf8(const char *s)
{
	size_t n = strlen(s);
	return llm_utf8_valid_prefix(s, n) == n;
}

/* A time given on the command line: RFC 3339 or Unix seconds. */
static bool parse_when(const char *s, int64_t *ms)
{
	if (llm_mon_parse_time(s, strlen(s), ms))
		return true;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e13)
		return false;
	*ms = (int64_t)llround(v * 1000.0);
	return true;
}

static int run_add(struct llm_cli *c)
{
	struct llm_args *a = &c->args;
	if (a->noperands)
		return llm_cli_usage(c, "feedback add takes no operands (the log is --log FILE)");
	const char *rid = llm_args_str(a, "request");
	const char *score_s = llm_args_str(a, "score");
	if (!rid || !*rid)
		return llm_cli_usage(c, "feedback add needs --request ID");
	if (!score_s)
		return llm_cli_usage(c, "feedback add needs --score S");
	char *end;
	errno = 0;
	double score = strtod(score_s, &end);
	if (errno || end == score_s || *end || !isfinite(score))
		return llm_cli_usage(c, "--score: expected a number, not '%s'", score_s);
	const char *comment = llm_args_str(a, "comment");
	const char *correction = llm_args_str(a, "correction");
	const char *id = llm_args_str(a, "id");
	const char *texts[] = {rid, comment, correction, id};
	for (size_t i = 0; i < 4; i++)
		if (texts[i] && !valid_utf8(texts[i]))
			return llm_cli_usage(c, "--request, --comment, --correction and --id must "
						"be UTF-8");
	int64_t ts = INT64_MIN;
	const char *when = llm_args_str(a, "ts");
	if (when && !parse_when(when, &ts))
		return llm_cli_usage(c, "--ts: expected an RFC 3339 time or Unix seconds, not '%s'",
				     when);
	char derived[LLM_MON_FB_ID_MAX];
	if (!id) {
		/* Without --ts the time is left out of the id, so the same feedback added twice
		 * has one id and counts once. */
		llm_mon_feedback_id(rid, strlen(rid), score, ts, comment,
				    comment ? strlen(comment) : 0, derived);
		id = derived;
	}
	struct llm_buf line;
	llm_buf_init(&line, 0);
	if (llm_mon_feedback_format(rid, score, comment, correction,
				    ts == INT64_MIN ? llm_reqlog_now_ms() : ts, id, &line)) {
		llm_buf_free(&line);
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	const char *log = llm_args_str(a, "log");
	int st = 0;
	if (!log || !strcmp(log, "-")) {
		if (!llm_cli_write(c, line.data, line.len))
			st = LLM_EXIT_IO;
	} else {
		/* One write(2) on an O_APPEND descriptor: the line lands whole after whatever
		 * llm-serve has written, never inside one of its lines. */
		int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		ssize_t n = fd < 0 ? -1 : write(fd, line.data, line.len);
		int err = errno;
		if (fd >= 0 && close(fd) != 0 && n >= 0) {
			n = -1;
			err = errno;
		}
		if (n != (ssize_t)line.len) {
			llm_cli_error(c, "%s: cannot append: %s", log,
				      n < 0 ? strerror(err) : "short write");
			st = LLM_EXIT_IO;
		}
	}
	llm_buf_free(&line);
	return st;
}

/* --- feedback import ------------------------------------------------------------------- */

/* The value at a dotted path ("meta.request_id") of a record, or NULL. */
static json_t *get_path(json_t *v, const char *path)
{
	char name[256];
	while (v && *path) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		if (n >= sizeof name || !json_is_object(v))
			return NULL;
		memcpy(name, path, n);
		name[n] = '\0';
		json_t *m = json_object_get(v, name);
		/* A member whose own name has a dot wins over the path. */
		json_t *whole = json_object_get(v, path);
		if (whole)
			return whole;
		v = m;
		path = dot ? dot + 1 : path + n;
	}
	return v;
}

static int import_one(struct llm_cli *c, struct llm_cli_in *in, struct llm_record *rec,
		      struct llm_buf *out)
{
	struct llm_args *a = &c->args;
	struct llm_diag why;
	json_error_t jerr;
	json_t *r = json_loadb(rec->text, rec->len, 0, &jerr);
	if (!r)
		return llm_cli_error(c, "out of memory"), -1;
	const char *f_rid = llm_args_str(a, "request-id-field");
	const char *f_score = llm_args_str(a, "score-field");
	const char *f_comment = llm_args_str(a, "comment-field");
	const char *f_ts = llm_args_str(a, "ts-field");
	const char *f_id = llm_args_str(a, "id-field");
	const char *f_corr = llm_args_str(a, "correction-field");
	const char *bad = NULL, *field = NULL;
	char num[64];
	json_t *v = get_path(r, f_rid);
	const char *rid = NULL;
	if (json_is_string(v) && json_string_length(v))
		rid = json_string_value(v);
	else if (json_is_integer(v)) {
		snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
		rid = num;
	} else {
		field = f_rid;
		bad = v && !json_is_null(v) ? "is not a string" : "is missing";
	}
	double score = NAN;
	if (!bad) {
		v = get_path(r, f_score);
		if (json_is_number(v))
			score = json_number_value(v);
		else if (json_is_boolean(v))
			score = json_is_true(v) ? 1 : 0; /* thumbs up and down */
		else if (json_is_string(v)) {
			char *end;
			score = strtod(json_string_value(v), &end);
			if (end == json_string_value(v) || *end)
				score = NAN;
		}
		if (!isfinite(score)) {
			field = f_score;
			bad = v && !json_is_null(v) ? "is not a number" : "is missing";
		}
	}
	const char *comment = NULL, *correction = NULL, *id = NULL;
	int64_t ts = INT64_MIN;
	struct {
		const char *name;
		const char **dst;
	} strs[] = {{f_comment, &comment}, {f_corr, &correction}, {f_id, &id}};
	for (size_t i = 0; !bad && i < 3; i++) {
		v = get_path(r, strs[i].name);
		if (json_is_string(v))
			*strs[i].dst = json_string_value(v);
		else if (v && !json_is_null(v)) {
			field = strs[i].name;
			bad = "is not a string";
		}
	}
	if (!bad && (v = get_path(r, f_ts)) && !json_is_null(v)) {
		if (json_is_string(v)) {
			if (!llm_mon_parse_time(json_string_value(v), json_string_length(v), &ts))
				bad = "is not an RFC 3339 time";
		} else if (json_is_number(v)) {
			double t = json_number_value(v);
			ts = (int64_t)llround(t > 1e11 ? t : t * 1000.0);
		} else {
			bad = "is not a time";
		}
		if (bad)
			field = f_ts;
	}
	if (bad) {
		json_decref(r);
		llm_diag_set(&why, LLM_ERR_TYPE, rec->file, rec->line, "field '%s' %s", field, bad);
		return llm_cli_in_reject(c, in, rec, &why) ? 0 : -1;
	}
	char derived[LLM_MON_FB_ID_MAX];
	if (!id) {
		llm_mon_feedback_id(rid, strlen(rid), score, ts, comment,
				    comment ? strlen(comment) : 0, derived);
		id = derived;
	}
	enum llm_err e = llm_mon_feedback_format(rid, score, comment, correction, ts, id, out);
	json_decref(r);
	if (e)
		return llm_cli_error(c, "out of memory"), -1;
	return 1;
}

static int run_import(struct llm_cli *c)
{
	struct llm_cli_in in;
	int st = llm_cli_in_open(c, &in, true);
	if (st)
		return st;
	struct llm_buf line;
	llm_buf_init(&line, 0);
	struct llm_record *rec;
	uint64_t written = 0;
	int r;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		llm_buf_clear(&line);
		int k = import_one(c, &in, rec, &line);
		if (k < 0) {
			r = -1;
			if (!in.status)
				in.status = LLM_EXIT_IO;
			break;
		}
		if (k && !llm_cli_write(c, line.data, line.len)) {
			r = -1;
			in.status = LLM_EXIT_IO;
			break;
		}
		written += k > 0;
	}
	llm_buf_free(&line);
	st = r < 0 ? in.status : 0;
	llm_cli_in_close(&in);
	if (!c->quiet)
		fprintf(stderr, "%s: feedback import: %llu feedback records written, %llu bad\n",
			c->tool->name, (unsigned long long)written, (unsigned long long)in.bad);
	const char *report = llm_args_str(&c->args, "report");
	if (report) {
		struct llm_diag d;
		json_t *rep = llm_cli_in_report(&in);
		json_object_set_new(rep, "written", json_integer((json_int_t)written));
		json_object_set_new(rep, "dropped", json_integer((json_int_t)in.dropped));
		if (llm_cli_write_json(c, report, rep, &d) && !st)
			st = llm_cli_fail(c, &d);
		json_decref(rep);
	}
	return st;
}

/* --- feedback join --------------------------------------------------------------------- */

struct join_out {
	struct llm_json_members fields;
	struct llm_buf fb;
	uint64_t written, unrated_dropped, passed;
};

/* Write what the join released. */
static bool emit(struct llm_cli *c, struct join_out *o, const struct llm_mon_joined *r,
		 bool only_rated)
{
	if (!r->text)
		return true; /* orphan feedback: counted by the join */
	if (!r->nfb) {
		if (only_rated) {
			o->unrated_dropped++;
			return true;
		}
		o->written++;
		o->passed++;
		return llm_cli_write(c, r->text, r->len) && llm_cli_write(c, "\n", 1);
	}
	llm_buf_clear(&o->fb);
	struct llm_json_fault fault;
	if (llm_mon_join_render(r, &o->fb) || llm_json_scan(r->text, r->len, &o->fields, &fault)) {
		llm_cli_error(c, "out of memory");
		return false;
	}
	struct llm_record rec = {.file = r->file, .line = r->line, .text = r->text, .len = r->len};
	rec.fields = o->fields;
	struct llm_edit ed = {"feedback", o->fb.data};
	o->written++;
	return llm_cli_emit(c, &rec, &ed, 1);
}

static void join_summary(struct llm_cli *c, const struct llm_mon_join_counts *k,
			 const struct join_out *o, const char *verb)
{
	fprintf(stderr,
		"%s: %s: %llu requests, %llu written (%llu with feedback, %llu unrated dropped), "
		"%llu feedback (%llu duplicates), %llu orphan feedback for %llu request ids%s\n",
		c->tool->name, verb, (unsigned long long)k->requests,
		(unsigned long long)o->written, (unsigned long long)k->rated,
		(unsigned long long)o->unrated_dropped, (unsigned long long)k->feedback,
		(unsigned long long)k->duplicates, (unsigned long long)k->orphan_feedback,
		(unsigned long long)k->orphan_requests,
		k->evicted ? " (--max-pending reached: some released early)" : "");
}

static int run_join(struct llm_cli *c)
{
	bool follow = llm_args_flag(&c->args, "follow");
	bool only_rated = llm_args_flag(&c->args, "only-rated");
	struct llm_mon_join *j;
	int st = mon_join_open(c, &j, follow);
	if (st)
		return st;
	struct mon_in m;
	if ((st = mon_in_open(c, &m, false, true, follow ? MON_JOIN_TICK_MS : 0))) {
		llm_mon_join_free(j);
		return st;
	}
	struct join_out o = {0};
	llm_buf_init(&o.fb, 0);
	struct llm_mon_event *ev;
	struct llm_mon_joined rel;
	int r;
	while ((r = mon_in_next(c, &m, &ev)) > 0) {
		int64_t now = mon_join_now();
		if (r == 1 && (st = mon_join_take(c, j, ev, now)))
			break;
		bool any = false;
		while (llm_mon_join_next(j, now, false, &rel)) {
			any = true;
			if (!emit(c, &o, &rel, only_rated)) {
				st = LLM_EXIT_IO;
				break;
			}
		}
		/* A stream's reader sees each request when it is joined, not a buffer later. */
		if (!st && follow && any && !llm_cli_flush(c))
			st = LLM_EXIT_IO;
		if (st)
			break;
	}
	if (r < 0)
		st = m.in.status;
	while (!st && llm_mon_join_next(j, 0, true, &rel))
		if (!emit(c, &o, &rel, only_rated))
			st = LLM_EXIT_IO;
	mon_in_close(&m);
	struct llm_mon_join_counts k;
	llm_mon_join_counts(j, &k);
	if (!c->quiet && !st)
		join_summary(c, &k, &o, "feedback join");
	const char *report = llm_args_str(&c->args, "report");
	if (report && !st) {
		struct llm_diag d;
		json_t *rep = mon_in_report(&m);
		json_t *more = json_pack(
		    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "written", (json_int_t)o.written, "rated",
		    (json_int_t)k.rated, "unrated_dropped", (json_int_t)o.unrated_dropped,
		    "duplicate_feedback", (json_int_t)k.duplicates, "orphan_feedback",
		    (json_int_t)k.orphan_feedback, "orphan_request_ids",
		    (json_int_t)k.orphan_requests, "released_early", (json_int_t)k.evicted,
		    "feedback_joined", (json_int_t)(k.feedback - k.duplicates - k.orphan_feedback));
		json_object_update(rep, more);
		json_decref(more);
		if (llm_cli_write_json(c, report, rep, &d))
			st = llm_cli_fail(c, &d);
		json_decref(rep);
	}
	llm_json_members_free(&o.fields);
	llm_buf_free(&o.fb);
	llm_mon_join_free(j);
	return st;
}

/* --- the verb -------------------------------------------------------------------------- */

static const struct llm_opt feedback_opts[] = {
    {"log", 0, LLM_OPT_STRING, "FILE",
     "add: append the record to this request log (created with mode 0600); default stdout"},
    {"request", 0, LLM_OPT_STRING, "ID", "add: the request id the feedback is about"},
    {"score", 0, LLM_OPT_STRING, "S", "add: the score (a number, e.g. 1 to 5, or 0 and 1)"},
    {"comment", 0, LLM_OPT_STRING, "TEXT", "add: a comment"},
    {"correction", 0, LLM_OPT_STRING, "TEXT", "add: the answer that should have been given"},
    {"id", 0, LLM_OPT_STRING, "ID", "add: the feedback's id (default: derived from its content)"},
    {"ts", 0, LLM_OPT_STRING, "TIME", "add: when it was given (RFC 3339 or Unix seconds; now)"},
    {"comment-field", 0, LLM_OPT_STRING, "PATH", "import: the comment", "comment"},
    {"id-field", 0, LLM_OPT_STRING, "PATH", "import: the feedback's own id", "id"},
    {"only-rated", 0, LLM_OPT_FLAG, NULL, "join: write only the requests that have feedback"},
    {"report", 0, LLM_OPT_STRING, "FILE", "import, join: write the counts as JSON to FILE"},
    {0},
};

static int run_feedback(struct llm_cli *c)
{
	struct llm_args *a = &c->args;
	if (!a->noperands)
		return llm_cli_usage(c, "a sub-verb is needed: add, import or join");
	const char *sub = a->operands[0];
	int (*fn)(struct llm_cli *) = !strcmp(sub, "add")      ? run_add
				      : !strcmp(sub, "import") ? run_import
				      : !strcmp(sub, "join")   ? run_join
							       : NULL;
	if (!fn)
		return llm_cli_usage(c, "unknown sub-verb '%s' (sub-verbs: add, import, join)",
				     sub);
	/* An option of another sub-verb is refused rather than silently ignored. */
	static const char *const add_only[] = {"log",	     "request", "score", "comment",
					       "correction", "id",	"ts",	 NULL};
	static const char *const join_only[] = {"only-rated", "follow",	     "from-end",
						"join-wait",  "max-pending", NULL};
	for (size_t i = 0; fn != run_add && add_only[i]; i++)
		if (llm_args_given(a, add_only[i]))
			return llm_cli_usage(c, "--%s is an option of 'feedback add'", add_only[i]);
	for (size_t i = 0; fn != run_join && join_only[i]; i++)
		if (llm_args_given(a, join_only[i]))
			return llm_cli_usage(c, "--%s is an option of 'feedback join'",
					     join_only[i]);
	memmove(a->operands, a->operands + 1, a->noperands * sizeof *a->operands);
	a->noperands--;
	return fn(c);
}

const struct llm_verb llm_monitor_verb_feedback = {
    "feedback",
    "add, import and join user feedback on requests",
    "add --request ID --score S [OPTIONS] | import [FILE...] | join [OPTIONS] [FILE...]",
    "add: append one feedback record to a request log (--log) or standard output.\n"
    "import: read feedback from other tools (JSONL; --request-id-field, --score-field,\n"
    "--comment-field... name their fields) and write normalized feedback records.\n"
    "join: write each request record with a \"feedback\" member summing up its feedback\n"
    "(count, mean, min, max, scores, comments), whichever came first in the input, each\n"
    "feedback counted once by its id; orphan feedback is counted in the summary.",
    {feedback_opts, mon_opts_join, mon_opts_fields, mon_opts_follow, llm_cli_opts_on_error,
     llm_cli_opts_input, llm_cli_opts_base},
    run_feedback,
};
