/* llm-gen: run each record's prompt through a model and write the record back with the answer.
 *
 * One thread drives everything: it reads records while there is room in a window of slots,
 * answers what it can from the cache, submits the rest to the backend (which keeps its own
 * number of requests in flight), and takes finished requests back in the order they finish.
 * In ordered mode (the default) a record is written once every record before it has been, so
 * the window bounds how far a slow request can hold the others back; --unordered writes each
 * record as soon as it is done. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cache.h"
#include "data/recid.h"
#include "gen/gen.h"

enum { SLOT_FREE, SLOT_PENDING, SLOT_READY };

struct slot {
	int state;
	/* The record, copied out of the reader, with its members pointing into the copy. */
	char *text;
	size_t len;
	struct llm_json_members fields;
	const char *file;
	long line;
	/* For the cache: the key and the canonical request, when the request is deterministic. */
	bool cacheable;
	enum llm_endpoint ep;
	char key[LLM_CACHE_KEY_LEN + 1];
	char *request;
	struct llm_buf out; /* what to write once ready (empty for a dropped record) */
};

struct samples {
	double *v;
	size_t n, cap;
};

struct run {
	struct llm_cli *c;
	struct gen_input g;
	struct llm_backend *b;
	struct llm_cache *cache;
	struct llm_buf model_id;
	struct llm_idset *done; /* --resume: ids already in the output */
	struct llm_cli_in in;
	bool in_open;
	FILE *out; /* --output, else NULL for stdout */
	const char *out_path;
	bool ordered;
	struct slot *slots;
	size_t nslots;
	uint64_t head, tail; /* ordered: the oldest unwritten record and the next one */
	size_t *free_idx;    /* unordered: the free slots */
	size_t nfree;
	enum llm_on_error remote; /* what a failed request does */
	int status;		  /* set when the run must stop */
	bool eof;
	bool cache_warned;
	struct llm_buf id;
	double t0;
	/* counts */
	uint64_t answered, cached, failed, failed_dropped, skipped_done, requests, retries;
	uint64_t written, bad_written;
	int64_t prompt_tokens, completion_tokens;
	struct samples lat, ttft;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sample_add(struct samples *s, double v)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? 2 * s->cap : 256;
		double *nv = realloc(s->v, nc * sizeof *nv);
		if (!nv)
			return; /* the report loses a sample, nothing else */
		s->v = nv;
		s->cap = nc;
	}
	s->v[s->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* count, mean, p50, p90, p99 (linear interpolation, as numpy), max. */
static json_t *summarize(struct samples *s)
{
	if (!s->n)
		return json_pack("{s:i}", "count", 0);
	qsort(s->v, s->n, sizeof *s->v, cmp_double);
	double sum = 0;
	for (size_t i = 0; i < s->n; i++)
		sum += s->v[i];
	double q[3] = {0.5, 0.9, 0.99}, p[3];
	for (int k = 0; k < 3; k++) {
		double x = q[k] * (double)(s->n - 1);
		size_t lo = (size_t)x;
		size_t hi = lo + 1 < s->n ? lo + 1 : lo;
		p[k] = s->v[lo] + (x - (double)lo) * (s->v[hi] - s->v[lo]);
	}
	return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)s->n, "mean",
			 sum / (double)s->n, "p50", p[0], "p90", p[1], "p99", p[2], "max",
			 s->v[s->n - 1]);
}

/* ---- slots ----------------------------------------------------------------------------- */

static bool slot_available(const struct run *R)
{
	return R->ordered ? R->tail - R->head < R->nslots : R->nfree > 0;
}

static struct slot *slot_take(struct run *R, size_t *idx)
{
	if (R->ordered)
		*idx = (size_t)(R->tail++ % R->nslots);
	else
		*idx = R->free_idx[--R->nfree];
	struct slot *s = &R->slots[*idx];
	s->state = SLOT_PENDING;
	s->cacheable = false;
	llm_buf_clear(&s->out);
	return s;
}

static void slot_release(struct run *R, struct slot *s)
{
	s->state = SLOT_FREE;
	free(s->request);
	s->request = NULL;
	if (!R->ordered)
		R->free_idx[R->nfree++] = (size_t)(s - R->slots);
}

/* Keep a copy of rec in s, its members pointing into the copy. */
static enum llm_err slot_keep(struct slot *s, const struct llm_record *rec)
{
	char *t = realloc(s->text, rec->len + 1);
	if (!t)
		return LLM_ERR_NOMEM;
	s->text = t;
	memcpy(t, rec->text, rec->len);
	t[rec->len] = '\0';
	s->len = rec->len;
	s->file = rec->file;
	s->line = rec->line;
	size_t n = rec->status == LLM_OK ? rec->fields.n : 0;
	if (n > s->fields.cap) {
		struct llm_json_member *m = realloc(s->fields.m, n * sizeof *m);
		if (!m)
			return LLM_ERR_NOMEM;
		s->fields.m = m;
		s->fields.cap = n;
	}
	for (size_t i = 0; i < n; i++) {
		struct llm_json_member m = rec->fields.m[i];
		m.key = t + (m.key - rec->text);
		m.val = t + (m.val - rec->text);
		s->fields.m[i] = m;
	}
	s->fields.n = n;
	return LLM_OK;
}

static void slot_record(const struct slot *s, struct llm_record *r)
{
	memset(r, 0, sizeof *r);
	r->file = s->file;
	r->line = s->line;
	r->text = s->text;
	r->len = s->len;
	r->status = LLM_OK;
	r->fields = s->fields;
}

/* ---- output ---------------------------------------------------------------------------- */

static bool put(struct run *R, const char *p, size_t n)
{
	if (!n)
		return true;
	if (!R->out)
		return llm_cli_write(R->c, p, n);
	if (fwrite(p, 1, n, R->out) != n) {
		llm_cli_error(R->c, "%s: write error: %s", R->out_path, strerror(errno));
		return false;
	}
	return true;
}

static bool flush_out(struct run *R)
{
	if (!R->out)
		return llm_cli_flush(R->c);
	if (fflush(R->out) != 0) {
		llm_cli_error(R->c, "%s: write error: %s", R->out_path, strerror(errno));
		return false;
	}
	return true;
}

/* Write what is ready: in order, or everything that is. */
static bool emit(struct run *R)
{
	bool any = false;
	if (R->ordered) {
		while (R->head < R->tail) {
			struct slot *s = &R->slots[R->head % R->nslots];
			if (s->state != SLOT_READY)
				break;
			if (!put(R, s->out.data, s->out.len))
				return false;
			any = true;
			slot_release(R, s);
			R->head++;
		}
	} else {
		for (size_t i = 0; i < R->nslots; i++) {
			struct slot *s = &R->slots[i];
			if (s->state != SLOT_READY)
				continue;
			if (!put(R, s->out.data, s->out.len))
				return false;
			any = true;
			slot_release(R, s);
		}
	}
	/* Flushed at once, so the next llm-gen of a chain starts while this one goes on. */
	return !any || flush_out(R);
}

/* ---- answers and failures -------------------------------------------------------------- */

static int out_of_memory(struct run *R)
{
	llm_cli_error(R->c, "out of memory");
	return R->status = LLM_EXIT_IO;
}

/* The record of slot s answered with body. */
static enum llm_err answer(struct run *R, struct slot *s, const char *body, size_t len,
			   double latency_ms, double ttft_ms, bool cached, struct llm_diag *why)
{
	struct gen_edits x;
	enum llm_err e = gen_answer_edits(&x, &R->g, body, len, latency_ms, ttft_ms,
					  llm_backend_model(R->b), cached, why);
	if (e)
		return e;
	struct llm_record rec;
	slot_record(s, &rec);
	llm_buf_clear(&s->out);
	e = llm_record_render(&rec, x.e, x.n, &s->out);
	if (!e) {
		if (x.prompt_tokens > 0 && !cached)
			R->prompt_tokens += x.prompt_tokens;
		if (x.completion_tokens > 0 && !cached)
			R->completion_tokens += x.completion_tokens;
	}
	gen_edits_free(&x);
	if (e)
		return llm_diag_set(why, e, s->file, s->line, "out of memory");
	s->state = SLOT_READY;
	R->answered++;
	if (cached)
		R->cached++;
	return LLM_OK;
}

/* A request that failed for good: --on-error says what becomes of its record. */
static int failed(struct run *R, struct slot *s, const char *code, const char *message, int status,
		  int attempts)
{
	char where[LLM_DIAG_FILE_MAX + 32];
	snprintf(where, sizeof where, "%s:%ld", s->file, s->line);
	char tries[48] = "";
	if (attempts > 1)
		snprintf(tries, sizeof tries, " after %d attempts", attempts);
	R->failed++;
	if (R->remote == LLM_ON_ERROR_FAIL) {
		llm_progress_finish(&R->in.progress);
		llm_cli_error(R->c, "%s: request failed%s: %s (%s)", where, tries, message, code);
		return R->status = LLM_EXIT_IO;
	}
	if (!R->c->quiet) {
		llm_progress_finish(&R->in.progress);
		llm_cli_error(R->c, "%s: request failed%s: %s (%s)", where, tries, message, code);
	}
	s->state = SLOT_READY;
	llm_buf_clear(&s->out);
	if (R->remote == LLM_ON_ERROR_SKIP) {
		R->failed_dropped++;
		return 0;
	}
	struct gen_edits x;
	struct llm_record rec;
	slot_record(s, &rec);
	enum llm_err e = gen_error_edits(&x, &R->g, &rec, code, message, status);
	if (!e)
		e = llm_record_render(&rec, x.e, x.n, &s->out);
	gen_edits_free(&x);
	return e ? out_of_memory(R) : 0;
}

static int on_result(struct run *R, struct llm_result *res)
{
	struct slot *s = &R->slots[res->tag];
	if (res->attempts > 1)
		R->retries += (uint64_t)(res->attempts - 1);
	struct llm_diag why = {0};
	if (res->err == LLM_OK) {
		enum llm_err e = answer(R, s, res->body ? res->body : "", res->body_len,
					res->latency_ms, res->ttft_ms, false, &why);
		if (e == LLM_ERR_NOMEM)
			return out_of_memory(R);
		if (!e) {
			sample_add(&R->lat, res->latency_ms);
			if (res->ttft_ms >= 0)
				sample_add(&R->ttft, res->ttft_ms);
			if (s->cacheable) {
				struct llm_diag d;
				if (llm_cache_put(R->cache, s->key, R->model_id.data, s->ep,
						  s->request, res->body, res->body_len,
						  res->latency_ms, res->ttft_ms, &d) &&
				    !R->cache_warned) {
					char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
					llm_diag_format(&d, msg, sizeof msg);
					llm_cli_error(R->c, "cache: %s (going on without it)", msg);
					R->cache_warned = true;
				}
			}
			return 0;
		}
		return failed(R, s, "invalid_response", why.msg, res->status, res->attempts);
	}
	const char *code = res->error_code[0] ? res->error_code : llm_err_name(res->err);
	const char *msg = res->error_message ? res->error_message : llm_err_name(res->err);
	return failed(R, s, code, msg, res->status, res->attempts);
}

/* ---- reading --------------------------------------------------------------------------- */

/* A record that is bad (as read, or by our checks): --on-error decides. */
static int reject(struct run *R, const struct llm_record *rec, const struct llm_diag *why)
{
	if (!llm_cli_in_reject(R->c, &R->in, rec, why))
		return R->status = R->in.status ? R->in.status : LLM_EXIT_NEGATIVE;
	if (R->in.on_error != LLM_ON_ERROR_KEEP)
		return 0;
	size_t idx;
	struct slot *s = slot_take(R, &idx);
	s->state = SLOT_READY;
	R->bad_written++;
	return llm_record_render_error(rec, why, &s->out) ? out_of_memory(R) : 0;
}

/* A good record: skip it when done, answer it from the cache, or send it. */
static int take(struct run *R, const struct llm_record *rec)
{
	struct llm_diag why = {0};
	if (R->done) {
		if (gen_record_id(&R->g, rec, &R->id, &why))
			return why.code == LLM_ERR_NOMEM ? out_of_memory(R) : reject(R, rec, &why);
		if (llm_idset_take(R->done, R->id.data ? R->id.data : "", R->id.len)) {
			R->skipped_done++;
			return 0;
		}
	}
	enum llm_endpoint ep;
	json_t *body;
	enum llm_err e = gen_request(&R->g, rec, &ep, &body, &why);
	if (e == LLM_ERR_NOMEM)
		return out_of_memory(R);
	if (e)
		return reject(R, rec, &why);
	size_t idx;
	struct slot *s = slot_take(R, &idx);
	char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
	if (!text || slot_keep(s, rec)) {
		json_decref(body);
		free(text);
		return out_of_memory(R);
	}
	s->ep = ep;
	if (R->cache && llm_request_deterministic(body)) {
		s->request = llm_request_canonical(body);
		if (!s->request || llm_cache_key(R->model_id.data, ep, s->request, s->key)) {
			json_decref(body);
			free(text);
			return out_of_memory(R);
		}
		s->cacheable = true;
		struct llm_cache_hit hit;
		if (llm_cache_get(R->cache, s->key, &hit)) {
			e = answer(R, s, hit.response, hit.len, hit.latency_ms, hit.ttft_ms, true,
				   &why);
			llm_cache_hit_clear(&hit);
			if (e == LLM_ERR_NOMEM) {
				json_decref(body);
				free(text);
				return out_of_memory(R);
			}
			if (!e) {
				json_decref(body);
				free(text);
				return 0;
			}
			/* An entry that is not a response: ask again, and overwrite it. */
		}
	}
	json_decref(body);
	e = llm_backend_submit(R->b, idx, ep, text, strlen(text), &why);
	free(text);
	if (e) {
		if (e == LLM_ERR_NOMEM)
			return out_of_memory(R);
		return failed(R, s, llm_err_name(e), why.msg, 0, 0);
	}
	R->requests++;
	return 0;
}

/* Read one line and deal with it; needs a free slot.  1: done, 0: end of input, -1: stop. */
static int read_one(struct run *R)
{
	struct llm_cli_in *in = &R->in;
	struct llm_diag d;
	if (llm_jsonl_next(in->reader, &in->rec, &d)) {
		llm_progress_finish(&in->progress);
		R->status = llm_cli_fail(R->c, &d);
		return -1;
	}
	if (!in->rec.text)
		return 0;
	if (in->rec.status != LLM_OK)
		reject(R, &in->rec, &in->rec.diag);
	else {
		in->records++;
		take(R, &in->rec);
	}
	return R->status ? -1 : 1;
}

static void progress(struct run *R)
{
	if (!R->in.progress.on)
		return;
	uint64_t done, total;
	llm_jsonl_progress(R->in.reader, &done, &total);
	/* The line is redrawn once in 1024 calls, for records that take microseconds; an
	 * answer takes long enough that every one may count (the time limit still holds). */
	R->in.progress.calls |= 1023;
	llm_progress_update(&R->in.progress, R->answered + R->failed + R->skipped_done, done,
			    total);
}

/* ---- setting up ------------------------------------------------------------------------ */

static int open_backend(struct run *R)
{
	struct llm_cli *c = R->c;
	struct llm_backend_opts o;
	llm_backend_opts_init(&o);
	o.ref = llm_args_str(&c->args, "model");
	if (!o.ref)
		return llm_cli_usage(c, "--model REF is needed: a model directory, a .gguf file or "
					"an http(s)://HOST/v1 URL");
	o.model_name = llm_args_str(&c->args, "model-name");
	const char *key = getenv("LLMOPS_API_KEY");
	if (!key || !*key)
		key = getenv("OPENAI_API_KEY");
	o.api_key = key && *key ? key : NULL;
	o.concurrency = (int)llm_args_int(&c->args, "concurrency");
	o.rpm = llm_args_double(&c->args, "rpm");
	o.tpm = llm_args_double(&c->args, "tpm");
	o.max_retries = (int)llm_args_int(&c->args, "max-retries");
	o.max_retry_after_s = llm_args_double(&c->args, "max-retry-after");
	o.timeout_s = llm_args_double(&c->args, "timeout");
	bool stream = llm_args_flag(&c->args, "stream");
	bool no_stream = llm_args_flag(&c->args, "no-stream");
	if (stream && no_stream)
		return llm_cli_usage(c, "--stream and --no-stream exclude each other");
	o.stream = !no_stream;
	o.threads = (int)llm_args_int(&c->args, "threads");
	o.n_ctx = (int)llm_args_int(&c->args, "ctx-size");
	o.chat_format = llm_args_str(&c->args, "chat-format");
	if (R->g.sampling.has_seed)
		o.seed = (uint64_t)R->g.sampling.seed;
	struct llm_diag d;
	if (llm_backend_open(&R->b, &o, &d))
		return d.code == LLM_ERR_USAGE ? llm_cli_usage(c, "%s", d.msg)
					       : llm_cli_fail(c, &d);
	if (llm_args_flag(&c->args, "no-cache"))
		return 0;
	const char *dir = llm_args_str(&c->args, "cache");
	char *def = dir ? NULL : llm_cache_default_dir("gen");
	if (!dir && !def)
		return out_of_memory(R);
	enum llm_err e = llm_cache_open(&R->cache, dir ? dir : def, &d);
	if (!e)
		e = llm_cache_model_identity(o.ref, o.model_name, &R->model_id, &d);
	free(def);
	if (e) {
		llm_cache_close(R->cache);
		R->cache = NULL;
		if (dir || e == LLM_ERR_NOMEM)
			return llm_cli_fail(c, &d);
		/* The default cache is a convenience: a run goes on without it. */
		if (!c->quiet) {
			char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
			llm_diag_format(&d, msg, sizeof msg);
			llm_cli_error(c, "cache: %s (going on without it)", msg);
		}
	}
	return 0;
}

static int open_output(struct run *R)
{
	struct llm_cli *c = R->c;
	const char *out = llm_args_str(&c->args, "output");
	bool resume = llm_args_flag(&c->args, "resume");
	if (out && !strcmp(out, "-"))
		out = NULL;
	if (resume && !out)
		return llm_cli_usage(c, "--resume needs --output FILE: records on standard output "
					"cannot be resumed");
	if (!out)
		return 0;
	R->out_path = out;
	struct llm_diag d;
	if (resume) {
		struct llm_resume res;
		if (llm_idset_new(&R->done))
			return out_of_memory(R);
		if (llm_resume_scan(out, R->g.id_field, R->g.exclude, R->g.nexclude, "error",
				    llm_args_size(&c->args, "max-record-bytes"), R->done, &res,
				    &d)) {
			if (d.code == LLM_ERR_JSON || d.code == LLM_ERR_UTF8 ||
			    d.code == LLM_ERR_TYPE) {
				char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
				llm_diag_format(&d, msg, sizeof msg);
				llm_cli_error(c, "--resume: %s", msg);
				llm_cli_error(c, "--resume: %s is not a file llm-gen wrote", out);
				return LLM_EXIT_NEGATIVE;
			}
			return llm_cli_fail(c, &d);
		}
		if (res.torn_bytes && !c->quiet)
			llm_cli_error(c,
				      "%s: cut off a partial last line (%llu bytes) left by an "
				      "interrupted run",
				      out, (unsigned long long)res.torn_bytes);
		if (res.redo && !c->quiet)
			llm_cli_error(c, "%s: removed %llu failed records, to run them again", out,
				      (unsigned long long)res.redo);
	}
	R->out = fopen(out, resume ? "a" : "w");
	if (!R->out) {
		llm_diag_set(&d, LLM_ERR_IO, out, 0, "cannot open: %s", strerror(errno));
		return llm_cli_fail(c, &d);
	}
	return 0;
}

static int setup(struct run *R)
{
	struct llm_cli *c = R->c;
	int st = gen_input_setup(c, &R->g, true);
	if (st)
		return st;
	R->ordered = !llm_args_flag(&c->args, "unordered");
	if (llm_args_given(&c->args, "on-error"))
		R->remote = R->in.on_error;
	else
		R->remote = LLM_ON_ERROR_KEEP; /* a remote failure is not the input's fault */
	if ((st = open_backend(R)) || (st = open_output(R)))
		return st;
	size_t conc = (size_t)llm_args_int(&c->args, "concurrency");
	R->nslots = R->ordered ? (4 * conc > 16 ? 4 * conc : 16) : 2 * conc + 2;
	R->slots = calloc(R->nslots, sizeof *R->slots);
	R->free_idx = calloc(R->nslots, sizeof *R->free_idx);
	if (!R->slots || !R->free_idx)
		return out_of_memory(R);
	for (size_t i = 0; i < R->nslots; i++) {
		llm_buf_init(&R->slots[i].out, 0);
		R->free_idx[R->nfree++] = R->nslots - 1 - i;
	}
	return 0;
}

static void teardown(struct run *R)
{
	for (size_t i = 0; R->slots && i < R->nslots; i++) {
		free(R->slots[i].text);
		free(R->slots[i].request);
		llm_json_members_free(&R->slots[i].fields);
		llm_buf_free(&R->slots[i].out);
	}
	free(R->slots);
	free(R->free_idx);
	if (R->b)
		llm_backend_close(R->b);
	llm_cache_close(R->cache);
	llm_buf_free(&R->model_id);
	llm_buf_free(&R->id);
	llm_idset_free(R->done);
	if (R->in_open)
		llm_cli_in_close(&R->in);
	gen_input_free(&R->g);
	free(R->lat.v);
	free(R->ttft.v);
}

static json_t *report(struct run *R, double elapsed)
{
	json_t *j = llm_cli_in_report(&R->in);
	if (!j)
		return NULL;
	uint64_t written = R->answered + (R->failed - R->failed_dropped) + R->bad_written;
	json_object_set_new(j, "written", json_integer((json_int_t)written));
	json_object_set_new(j, "dropped",
			    json_integer((json_int_t)(R->in.dropped + R->failed_dropped)));
	json_object_set_new(j, "skipped_done", json_integer((json_int_t)R->skipped_done));
	json_object_set_new(j, "answered", json_integer((json_int_t)R->answered));
	json_object_set_new(j, "cached", json_integer((json_int_t)R->cached));
	json_object_set_new(j, "failed", json_integer((json_int_t)R->failed));
	json_object_set_new(j, "failed_dropped", json_integer((json_int_t)R->failed_dropped));
	json_object_set_new(j, "requests", json_integer((json_int_t)R->requests));
	json_object_set_new(j, "retries", json_integer((json_int_t)R->retries));
	json_object_set_new(j, "tokens",
			    json_pack("{s:I,s:I}", "prompt", (json_int_t)R->prompt_tokens,
				      "completion", (json_int_t)R->completion_tokens));
	json_object_set_new(j, "latency_ms", summarize(&R->lat));
	json_object_set_new(j, "ttft_ms", summarize(&R->ttft));
	json_object_set_new(j, "model", json_string(llm_backend_model(R->b)));
	json_object_set_new(j, "elapsed_s", json_real(elapsed));
	return j;
}

static void summary_line(struct run *R)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	llm_buf_printf(&b, "%llu records: %llu answered",
		       (unsigned long long)(R->in.records + R->in.bad),
		       (unsigned long long)R->answered);
	if (R->cached)
		llm_buf_printf(&b, " (%llu from the cache)", (unsigned long long)R->cached);
	llm_buf_printf(&b, ", %llu failed", (unsigned long long)R->failed);
	if (R->skipped_done)
		llm_buf_printf(&b, ", %llu already in %s", (unsigned long long)R->skipped_done,
			       R->out_path);
	if (R->in.bad)
		llm_buf_printf(&b, ", %llu bad (%llu dropped)", (unsigned long long)R->in.bad,
			       (unsigned long long)R->in.dropped);
	if (R->retries)
		llm_buf_printf(&b, ", %llu retries", (unsigned long long)R->retries);
	llm_cli_error(R->c, "%s", b.data ? b.data : "");
	llm_buf_free(&b);
}

static int run_gen(struct llm_cli *c)
{
	struct run R = {.c = c};
	llm_buf_init(&R.id, 0);
	llm_buf_init(&R.model_id, 0);
	R.t0 = now_s();
	/* The input first: its --on-error and --shard settle how the rest behaves. */
	int st = llm_cli_in_open(c, &R.in, false);
	if (st) {
		teardown(&R);
		return st;
	}
	R.in_open = true;
	if ((st = setup(&R))) {
		teardown(&R);
		return st;
	}
	struct llm_result res = {0};
	while (!R.status) {
		while (!R.eof && !R.status && slot_available(&R)) {
			int r = read_one(&R);
			if (r == 0)
				R.eof = true;
		}
		if (R.status || !emit(&R)) {
			if (!R.status) {
				R.status = LLM_EXIT_IO;
				/* Said once: what stdio still holds would fail again at exit.  (If
				 * even this fails, the error is said twice; nothing worse.) */
				if (!R.out) {
					FILE *null = freopen("/dev/null", "w", stdout);
					(void)null;
				}
			}
			break;
		}
		if (!llm_backend_pending(R.b)) {
			if (R.eof)
				break;
			continue;
		}
		struct llm_diag d;
		int r = llm_backend_next(R.b, &res, &d);
		if (r < 0) {
			llm_progress_finish(&R.in.progress);
			R.status = llm_cli_fail(c, &d);
			break;
		}
		if (r > 0) {
			on_result(&R, &res);
			llm_result_clear(&res);
			progress(&R);
		}
	}
	llm_progress_finish(&R.in.progress);
	if (R.out && fclose(R.out) != 0 && !R.status) {
		llm_cli_error(c, "%s: write error: %s", R.out_path, strerror(errno));
		R.status = LLM_EXIT_IO;
	}
	R.out = NULL;
	st = R.status;
	if (!st || st == LLM_EXIT_IO) {
		if (!c->quiet)
			summary_line(&R);
		const char *path = llm_args_str(&c->args, "report");
		json_t *j = path ? report(&R, now_s() - R.t0) : NULL;
		struct llm_diag d;
		if (path && (!j || llm_cli_write_json(c, path, j, &d)) && !st)
			st = j ? llm_cli_fail(c, &d) : out_of_memory(&R);
		json_decref(j);
	}
	if (!st && R.failed)
		st = LLM_EXIT_IO;
	teardown(&R);
	return st;
}

static const struct llm_opt run_opts[] = {
    {"model", 'm', LLM_OPT_STRING, "REF",
     "what answers: a model directory, a .gguf file, or an http(s)://HOST[:PORT]/v1 URL"},
    {"model-name", 0, LLM_OPT_STRING, "NAME",
     "the \"model\" sent to a URL, and the name records show for a local model"},
    {"concurrency", 'j', LLM_OPT_INT, "N", "requests in flight (a local model: decoded together)",
     "4", .min = 1, .max = 4096},
    {"rpm", 0, LLM_OPT_DOUBLE, "N", "at most N requests per minute (0: no limit)", "0", .min = 0,
     .max = 1e9},
    {"tpm", 0, LLM_OPT_DOUBLE, "N", "at most N tokens per minute (0: no limit)", "0", .min = 0,
     .max = 1e12},
    {"max-retries", 0, LLM_OPT_INT, "N",
     "retries of a request after 408, 409, 429, 5xx and connection errors", "2", .min = 0,
     .max = 100},
    {"max-retry-after", 0, LLM_OPT_DOUBLE, "SECONDS",
     "the longest retry-after a server may ask for; a longer one is a failure", "120", .min = 0,
     .max = 86400},
    {"timeout", 0, LLM_OPT_DOUBLE, "SECONDS", "the longest one attempt may take (0: none)", "600",
     .min = 0, .max = 86400},
    {"stream", 0, LLM_OPT_FLAG, NULL,
     "ask a URL for server-sent events, so ttft_ms is measured (the default)"},
    {"no-stream", 0, LLM_OPT_FLAG, NULL, "ask a URL for whole responses (ttft_ms is null)"},
    {"threads", 0, LLM_OPT_INT, "N", "a local model's threads (0: all cores)", "0", .min = 0,
     .max = 1024},
    {"ctx-size", 0, LLM_OPT_INT, "N", "a local model's context length (0: the model's)", "0",
     .min = 0, .max = 1 << 24},
    {"chat-format", 0, LLM_OPT_STRING, "NAME|FILE",
     "how a local model renders messages: chatml, llama3, llama2, alpaca, or a chat template "
     "file (default: the model's own template, else chatml)"},
    {"output", 'o', LLM_OPT_STRING, "FILE", "write the records to FILE instead of standard output"},
    {"resume", 0, LLM_OPT_FLAG, NULL,
     "append to --output, skipping the records already there (and running failed ones again)"},
    {"unordered", 0, LLM_OPT_FLAG, NULL,
     "write each record when its answer comes, not in input order"},
    {"cache", 0, LLM_OPT_STRING, "DIR", "the answer cache (default $LLMOPS_HOME/cache/gen)"},
    {"no-cache", 0, LLM_OPT_FLAG, NULL, "neither read nor write the answer cache"},
    {"report", 0, LLM_OPT_STRING, "FILE",
     "write counts, retries, tokens and latency percentiles as JSON to FILE"},
    {0},
};

const struct llm_verb llm_gen_verb_run = {
    "gen",
    "Run prompts through a model: JSONL records in, the same records with answers out.",
    "--model REF [OPTIONS] [FILE...]\n"
    "       llm-gen batch export|import [OPTIONS] [FILE...]",
    "Sends each record's \"messages\" (to /v1/chat/completions) or \"prompt\" (to\n"
    "/v1/completions, or as a user message with --chat), or a prompt built with --template,\n"
    "to the model, and writes the record with output, usage, latency_ms, ttft_ms, model and\n"
    "finish_reason added; every other field is kept as it was.  Records come out in input\n"
    "order unless --unordered.  Deterministic requests (temperature 0, or a seed) are cached.\n"
    "A request that fails after its retries gives its record an \"error\" field, and the run\n"
    "exits 3.  'llm-gen batch export' and 'llm-gen batch import' read and write the OpenAI\n"
    "Batch API's files instead (see 'llm-gen batch export --help').",
    {run_opts, llm_gen_opts_request, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base},
    run_gen,
};
