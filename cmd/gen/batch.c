/* llm-gen batch export|import: the OpenAI Batch API's files.
 *
 * export writes one request per record, {"custom_id", "method", "url", "body"}, the body built
 * exactly as llm-gen builds it; custom_id is the record's id (DESIGN.md section 3: the "id"
 * field, else a hash of its content), with "#2", "#3", ... on repeats, since the API wants
 * them unique.  import reads the batch's output (and error) files, lines
 * {"id", "custom_id", "response": {"status_code", "body"}, "error"}, and joins them back onto
 * the same records by custom_id, so the records come out as if llm-gen had run them. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/recid.h"
#include "gen/gen.h"

static int oom(struct llm_cli *c)
{
	llm_cli_error(c, "out of memory");
	return LLM_EXIT_IO;
}

static void finish_report(struct llm_cli *c, json_t *j, int *st)
{
	const char *path = llm_args_str(&c->args, "report");
	struct llm_diag d;
	if (path && j && llm_cli_write_json(c, path, j, &d) && !*st)
		*st = llm_cli_fail(c, &d);
	json_decref(j);
}

/* ---- export ---------------------------------------------------------------------------- */

static int run_export(struct llm_cli *c)
{
	struct gen_input g;
	int st = gen_input_setup(c, &g, true);
	if (st) {
		gen_input_free(&g);
		return st;
	}
	if (!g.sampling.model) {
		gen_input_free(&g);
		return llm_cli_usage(c, "batch export needs --model-name NAME: the Batch API wants "
					"a model in every request");
	}
	struct llm_cli_in in;
	if ((st = llm_cli_in_open(c, &in, false))) {
		gen_input_free(&g);
		return st;
	}
	if (in.on_error == LLM_ON_ERROR_KEEP) {
		llm_cli_in_close(&in);
		gen_input_free(&g);
		return llm_cli_usage(c, "batch export: --on-error=keep would put records into a "
					"batch of requests; use skip or fail");
	}
	struct llm_idset *seen;
	if (llm_idset_new(&seen)) {
		llm_cli_in_close(&in);
		gen_input_free(&g);
		return oom(c);
	}
	struct llm_buf id, cid, line;
	llm_buf_init(&id, 0);
	llm_buf_init(&cid, 0);
	llm_buf_init(&line, 0);
	struct llm_record *rec;
	uint64_t written = 0;
	int r;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		struct llm_diag why;
		enum llm_endpoint ep;
		json_t *body = NULL;
		enum llm_err e = gen_record_id(&g, rec, &id, &why);
		if (!e)
			e = gen_request(&g, rec, &ep, &body, &why);
		if (e == LLM_ERR_NOMEM) {
			in.status = oom(c);
			r = -1;
			break;
		}
		if (e) {
			if (!llm_cli_in_reject(c, &in, rec, &why)) {
				r = -1;
				break;
			}
			continue;
		}
		uint64_t k;
		e = llm_idset_add(seen, id.data ? id.data : "", id.len, &k);
		if (!e)
			e = gen_custom_id(id.data ? id.data : "", id.len, k, &cid);
		json_t *o =
		    e ? NULL
		      : json_pack("{s:s%,s:s,s:s+,s:o}", "custom_id", cid.data, cid.len, "method",
				  "POST", "url", "/v1/", llm_endpoint_path(ep), "body", body);
		char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
		if (!o)
			json_decref(e ? body : NULL);
		json_decref(o);
		llm_buf_clear(&line);
		if (!s || llm_buf_puts(&line, s) || llm_buf_putc(&line, '\n')) {
			free(s);
			in.status = oom(c);
			r = -1;
			break;
		}
		free(s);
		if (!llm_cli_write(c, line.data, line.len)) {
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
		written++;
	}
	st = r < 0 ? in.status : 0;
	if (!st) {
		if (!c->quiet)
			llm_cli_error(c,
				      "batch export: %llu requests written, %llu records dropped",
				      (unsigned long long)written, (unsigned long long)in.dropped);
		json_t *j = llm_cli_in_report(&in);
		if (j) {
			json_object_set_new(j, "written", json_integer((json_int_t)written));
			json_object_set_new(j, "dropped", json_integer((json_int_t)in.dropped));
		}
		finish_report(c, j, &st);
	}
	llm_buf_free(&id);
	llm_buf_free(&cid);
	llm_buf_free(&line);
	llm_idset_free(seen);
	llm_cli_in_close(&in);
	gen_input_free(&g);
	return st;
}

/* ---- import ---------------------------------------------------------------------------- */

/* A result counts as an answer: a 2xx response with a body. */
static bool is_answer(json_t *res)
{
	json_t *resp = json_object_get(res, "response");
	json_t *sc = json_object_get(resp, "status_code");
	return json_is_object(json_object_get(resp, "body")) && json_is_integer(sc) &&
	       json_integer_value(sc) / 100 == 2;
}

/* Read the batch output files into custom_id -> result.  A line that is not a result is
 * FILE:LINE and the run stops: the join would be wrong. */
static int load_results(struct llm_cli *c, json_t *map, uint64_t *dups)
{
	struct llm_jsonl_reader *r;
	struct llm_diag d;
	if (llm_jsonl_open(&r, c->args.operands, c->args.noperands,
			   llm_args_size(&c->args, "max-record-bytes"), &d))
		return llm_cli_fail(c, &d);
	struct llm_record rec = {0};
	int st = 0;
	for (;;) {
		if (llm_jsonl_next(r, &rec, &d)) {
			st = llm_cli_fail(c, &d);
			break;
		}
		if (!rec.text)
			break;
		if (rec.status != LLM_OK) {
			st = llm_cli_fail(c, &rec.diag);
			break;
		}
		json_t *o = json_loadb(rec.text, rec.len, 0, NULL);
		json_t *cid = json_object_get(o, "custom_id");
		if (!json_is_string(cid)) {
			json_decref(o);
			llm_diag_set(&d, LLM_ERR_MISSING, rec.file, rec.line,
				     "not a Batch API result: no \"custom_id\" string");
			st = llm_cli_fail(c, &d);
			break;
		}
		json_t *old = json_object_get(map, json_string_value(cid));
		if (old) {
			(*dups)++;
			/* The same request twice (an output and an error file, a retried batch):
			 * an answer wins over an error, else the first stays. */
			if (is_answer(old) || !is_answer(o)) {
				json_decref(o);
				continue;
			}
		}
		if (json_object_set_new(map, json_string_value(cid), o)) {
			st = oom(c);
			break;
		}
	}
	llm_record_free(&rec);
	llm_jsonl_close(r);
	return st;
}

/* code, message and status of a result that is no answer. */
static void result_error(json_t *res, const char **code, const char **msg, int *status)
{
	json_t *resp = json_object_get(res, "response");
	json_t *sc = json_object_get(resp, "status_code");
	*status = json_is_integer(sc) ? (int)json_integer_value(sc) : 0;
	json_t *err = json_object_get(res, "error");
	if (!json_is_object(err))
		err = json_object_get(json_object_get(resp, "body"), "error");
	json_t *jc = json_object_get(err, "code");
	if (!json_is_string(jc))
		jc = json_object_get(err, "type");
	json_t *jm = json_object_get(err, "message");
	*code = json_is_string(jc) ? json_string_value(jc) : "batch_error";
	*msg = json_is_string(jm) ? json_string_value(jm) : "the batch has no answer for it";
}

static int run_import(struct llm_cli *c)
{
	struct gen_input g;
	int st = gen_input_setup(c, &g, false);
	const char *input = llm_args_str(&c->args, "input");
	if (!st && !input)
		st = llm_cli_usage(c, "batch import needs --input FILE: the records the batch "
				      "was exported from");
	if (!st && !c->args.noperands)
		st = llm_cli_usage(c, "batch import needs the batch's output file(s)");
	if (st) {
		gen_input_free(&g);
		return st;
	}
	json_t *map = json_object();
	uint64_t dups = 0;
	if (!map || (st = load_results(c, map, &dups))) {
		json_decref(map);
		gen_input_free(&g);
		return st ? st : oom(c);
	}
	/* The records are --input, not the operands: open the record loop over it. */
	char **ops = c->args.operands;
	size_t nops = c->args.noperands;
	char *in_path[] = {(char *)input};
	c->args.operands = in_path;
	c->args.noperands = 1;
	struct llm_cli_in in;
	st = llm_cli_in_open(c, &in, true);
	c->args.operands = ops;
	c->args.noperands = nops;
	if (st) {
		json_decref(map);
		gen_input_free(&g);
		return st;
	}
	enum llm_on_error remote =
	    llm_args_given(&c->args, "on-error") ? in.on_error : LLM_ON_ERROR_KEEP;
	struct llm_idset *seen = NULL;
	struct llm_buf id, cid;
	llm_buf_init(&id, 0);
	llm_buf_init(&cid, 0);
	uint64_t answered = 0, failed = 0, failed_dropped = 0, missing = 0;
	int64_t ptok = 0, ctok = 0;
	struct llm_record *rec;
	int r = 0;
	if (llm_idset_new(&seen)) {
		in.status = oom(c);
		r = -1;
	}
	while (r >= 0 && (r = llm_cli_in_next(c, &in, &rec)) > 0) {
		struct llm_diag why = {0};
		uint64_t k;
		if (gen_record_id(&g, rec, &id, &why)) {
			if (why.code == LLM_ERR_NOMEM || !llm_cli_in_reject(c, &in, rec, &why)) {
				r = -1;
				if (why.code == LLM_ERR_NOMEM)
					in.status = oom(c);
				break;
			}
			continue;
		}
		if (llm_idset_add(seen, id.data ? id.data : "", id.len, &k) ||
		    gen_custom_id(id.data ? id.data : "", id.len, k, &cid)) {
			in.status = oom(c);
			r = -1;
			break;
		}
		json_t *res = json_object_get(map, cid.data);
		struct gen_edits x;
		enum llm_err e = LLM_ERR_REMOTE;
		char *body = NULL;
		if (res && is_answer(res)) {
			json_t *b = json_object_get(json_object_get(res, "response"), "body");
			body = json_dumps(b, JSON_COMPACT | JSON_REAL_PRECISION(17));
			e = body ? gen_answer_edits(&x, &g, body, strlen(body), -1, -1, NULL, false,
						    &why)
				 : LLM_ERR_NOMEM;
			free(body);
			if (e == LLM_ERR_NOMEM) {
				in.status = oom(c);
				r = -1;
				break;
			}
		}
		if (!e) {
			if (x.prompt_tokens > 0)
				ptok += x.prompt_tokens;
			if (x.completion_tokens > 0)
				ctok += x.completion_tokens;
			bool ok = llm_cli_emit(c, rec, x.e, x.n);
			gen_edits_free(&x);
			json_object_del(map, cid.data);
			if (!ok) {
				in.status = LLM_EXIT_IO;
				r = -1;
				break;
			}
			answered++;
			continue;
		}
		/* No answer: an error result, a malformed one, or none at all. */
		const char *code, *msg;
		int status = 0;
		char none[LLM_DIAG_MSG_MAX];
		if (!res) {
			missing++;
			code = "missing_result";
			snprintf(none, sizeof none,
				 "no result for custom_id \"%s\" in the batch output", cid.data);
			msg = none;
		} else if (e == LLM_ERR_REMOTE) {
			result_error(res, &code, &msg, &status);
		} else {
			code = "invalid_response";
			msg = why.msg;
		}
		failed++;
		if (remote == LLM_ON_ERROR_FAIL || !c->quiet)
			llm_cli_error(c, "%s:%ld: %s (%s)", rec->file, rec->line, msg, code);
		if (remote == LLM_ON_ERROR_FAIL) {
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
		bool ok = true;
		if (remote == LLM_ON_ERROR_SKIP) {
			failed_dropped++;
		} else {
			e = gen_error_edits(&x, &g, rec, code, msg, status);
			ok = !e && llm_cli_emit(c, rec, x.e, x.n);
			gen_edits_free(&x);
		}
		if (res)
			json_object_del(map, cid.data);
		if (!ok) {
			in.status = e ? oom(c) : LLM_EXIT_IO;
			r = -1;
			break;
		}
	}
	st = r < 0 ? in.status : 0;
	size_t unmatched = json_object_size(map);
	if (!st) {
		if (unmatched) {
			void *it = json_object_iter(map);
			llm_cli_error(c,
				      "%zu results match no record of %s (custom_id \"%s\"%s): is "
				      "--input the file the batch was exported from?",
				      unmatched, input, json_object_iter_key(it),
				      unmatched > 1 ? ", ..." : "");
		}
		if (!c->quiet)
			llm_cli_error(
			    c,
			    "batch import: %llu records: %llu answered, %llu failed (%llu "
			    "without a result)",
			    (unsigned long long)(in.records + in.bad), (unsigned long long)answered,
			    (unsigned long long)failed, (unsigned long long)missing);
		json_t *j = llm_cli_in_report(&in);
		if (j) {
			json_object_set_new(j, "written",
					    json_integer((json_int_t)(answered + failed -
								      failed_dropped + in.kept)));
			json_object_set_new(
			    j, "dropped", json_integer((json_int_t)(in.dropped + failed_dropped)));
			json_object_set_new(j, "answered", json_integer((json_int_t)answered));
			json_object_set_new(j, "failed", json_integer((json_int_t)failed));
			json_object_set_new(j, "failed_dropped",
					    json_integer((json_int_t)failed_dropped));
			json_object_set_new(j, "missing", json_integer((json_int_t)missing));
			json_object_set_new(j, "unmatched_results",
					    json_integer((json_int_t)unmatched));
			json_object_set_new(j, "duplicate_results", json_integer((json_int_t)dups));
			json_object_set_new(j, "tokens",
					    json_pack("{s:I,s:I}", "prompt", (json_int_t)ptok,
						      "completion", (json_int_t)ctok));
		}
		finish_report(c, j, &st);
		if (!st && failed)
			st = LLM_EXIT_IO;
	}
	llm_buf_free(&id);
	llm_buf_free(&cid);
	llm_idset_free(seen);
	llm_cli_in_close(&in);
	json_decref(map);
	gen_input_free(&g);
	return st;
}

static const struct llm_opt export_opts[] = {
    {"model-name", 0, LLM_OPT_STRING, "NAME", "the \"model\" of every request (required)"},
    {"report", 0, LLM_OPT_STRING, "FILE", "write the counts as JSON to FILE"},
    {0},
};

static const struct llm_opt import_opts[] = {
    {"input", 'i', LLM_OPT_STRING, "FILE", "the records the batch was exported from (required)"},
    {"output-field", 0, LLM_OPT_STRING, "FIELD", "where the answer goes", "output"},
    {"id-field", 0, LLM_OPT_STRING, "FIELD",
     "the record's id (when absent: a hash of the record's other fields)", "id"},
    {"report", 0, LLM_OPT_STRING, "FILE", "write the counts as JSON to FILE"},
    {0},
};

const struct llm_verb llm_gen_verb_batch_export = {
    "batch export",
    "write the records as an OpenAI Batch API input file",
    "--model-name NAME [OPTIONS] [FILE...]",
    "Writes one line {\"custom_id\", \"method\", \"url\", \"body\"} per record, the body built\n"
    "as llm-gen would send it (the same prompt, template and sampling options).  custom_id\n"
    "is the record's id, or a hash of its content when it has none; repeats get \"#2\",\n"
    "\"#3\", ...  Upload the file, run the batch, and join its output back onto the same\n"
    "records with 'llm-gen batch import'.",
    {export_opts, llm_gen_opts_request, llm_cli_opts_on_error, llm_cli_opts_input,
     llm_cli_opts_base},
    run_export,
};

const struct llm_verb llm_gen_verb_batch_import = {
    "batch import",
    "join a Batch API output file back onto the records",
    "--input RECORDS [OPTIONS] RESULTS...",
    "Reads the batch's output (and error) files and writes each record of --input, in its\n"
    "order, with the fields llm-gen writes: output, usage, model, finish_reason (latency_ms\n"
    "and ttft_ms are null: a batch does not say).  A request that failed in the batch, or\n"
    "that has no result, gives its record an \"error\" field, and the run exits 3; results\n"
    "that match no record are reported.",
    {import_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base},
    run_import,
};
