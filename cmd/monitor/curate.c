/* llm-monitor curate: the failing interactions of a request log, joined with their feedback
 * and chosen by --where, written as a dataset that llm-prep and llm-tune read. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "monitor/fbjoin.h"
#include "monitor/join.h"
#include "monitor/monitor.h"
#include "monitor/where.h"

struct curate {
	struct llm_mon_where **where;
	size_t nwhere;
	const char *prompt_f, *messages_f, *output_f, *flags_f, *model_f, *ts_f, *completion_f;
	bool dedup, require_completion, append_completion;
	/* Prompt hashes seen, for --dedup: an open-addressing set of 64-bit hashes (0 is empty). */
	uint64_t *seen;
	size_t seen_cap, seen_n;
	struct llm_buf line;
	uint64_t released, matched, written, duplicates, no_prompt, no_completion, unreadable;
};

/* Add h to the set; false when it was there already (or memory ran out: *oom). */
static bool seen_add(struct curate *k, uint64_t h, bool *oom)
{
	h |= 1; /* never 0, the empty slot */
	if (2 * (k->seen_n + 1) > k->seen_cap) {
		size_t cap = k->seen_cap ? 2 * k->seen_cap : 1024;
		uint64_t *t = calloc(cap, sizeof *t);
		if (!t) {
			*oom = true;
			return false;
		}
		for (size_t i = 0; i < k->seen_cap; i++) {
			uint64_t v = k->seen[i];
			if (!v)
				continue;
			size_t s = v & (cap - 1);
			while (t[s])
				s = (s + 1) & (cap - 1);
			t[s] = v;
		}
		free(k->seen);
		k->seen = t;
		k->seen_cap = cap;
	}
	size_t s = h & (k->seen_cap - 1);
	while (k->seen[s]) {
		if (k->seen[s] == h)
			return false;
		s = (s + 1) & (k->seen_cap - 1);
	}
	k->seen[s] = h;
	k->seen_n++;
	return true;
}

/* The answer of a response object (OpenAI shape): the first choice's message content or text. */
static json_t *response_output(json_t *rec)
{
	json_t *choice =
	    json_array_get(json_object_get(json_object_get(rec, "response"), "choices"), 0);
	json_t *v = json_object_get(json_object_get(choice, "message"), "content");
	return json_is_string(v) ? v : json_object_get(choice, "text");
}

/* The "feedback" member the --where expressions see: the joined summary with "score", the
 * list of every score, so that feedback.score<=2 holds when any rating is 2 or less. */
static json_t *feedback_view(const struct llm_mon_joined *r, json_t *rec, struct llm_buf *b)
{
	json_t *fb = NULL;
	if (r->nfb) {
		llm_buf_clear(b);
		if (llm_mon_join_render(r, b) == LLM_OK)
			fb = json_loadb(b->data, b->len, 0, NULL);
		if (fb)
			json_object_set(rec, "feedback", fb);
		json_decref(fb);
	}
	/* A record joined already (the output of feedback join) keeps its summary. */
	fb = json_object_get(rec, "feedback");
	if (json_is_object(fb) && !json_object_get(fb, "score") && json_object_get(fb, "scores"))
		json_object_set(fb, "score", json_object_get(fb, "scores"));
	return json_is_object(fb) ? fb : NULL;
}

static const char *last_string(json_t *arr)
{
	for (size_t i = json_array_size(arr); i-- > 0;)
		if (json_is_string(json_array_get(arr, i)))
			return json_string_value(json_array_get(arr, i));
	return NULL;
}

/* One released request: 1 written, 0 left out, -1 out of memory or stdout failed. */
static int curate_one(struct llm_cli *c, struct curate *k, const struct llm_mon_joined *r)
{
	k->released++;
	json_error_t jerr;
	json_t *rec = json_loadb(r->text, r->len, JSON_ALLOW_NUL, &jerr);
	if (!rec) {
		/* It scanned as JSON when read, so only a limit of jansson's can get here (a
		 * depth past its own): said and counted, never dropped silently. */
		llm_cli_error(c, "%s:%ld: cannot be curated: %s", r->file ? r->file : "-", r->line,
			      jerr.text);
		k->unreadable++;
		return 0;
	}
	json_t *fb = feedback_view(r, rec, &k->line);
	bool keep = true;
	for (size_t i = 0; keep && i < k->nwhere; i++)
		keep = llm_mon_where_match(k->where[i], rec);
	if (!keep) {
		json_decref(rec);
		return 0;
	}
	k->matched++;

	/* The prompt as the request had it: a text prompt, or a chat's messages. */
	json_t *req = json_object_get(rec, "request");
	json_t *prompt = json_object_get(rec, k->prompt_f);
	json_t *messages = json_object_get(rec, k->messages_f);
	if (!json_is_string(prompt) && !json_is_array(messages)) {
		prompt = json_object_get(req, "prompt");
		messages = json_object_get(req, "messages");
	}
	if (json_is_array(messages))
		prompt = NULL;
	else if (json_is_string(prompt))
		messages = NULL;
	else {
		k->no_prompt++; /* --log-content=hash or none: nothing to train on */
		json_decref(rec);
		return 0;
	}
	json_t *output = json_object_get(rec, k->output_f);
	if (!json_is_string(output))
		output = response_output(rec);
	if (!json_is_string(output))
		output = NULL;

	/* A corrected answer: the request's --completion-field, else the latest correction. */
	const char *completion = NULL;
	json_t *cv = k->completion_f ? json_object_get(rec, k->completion_f) : NULL;
	if (json_is_string(cv) && json_string_length(cv))
		completion = json_string_value(cv);
	for (size_t i = r->nfb; !completion && i-- > 0;)
		completion = r->fb[i].correction;
	if (!completion && fb)
		completion = last_string(json_object_get(fb, "corrections"));
	if (!completion && k->require_completion) {
		k->no_completion++;
		json_decref(rec);
		return 0;
	}

	char *key = messages ? json_dumps(messages, JSON_COMPACT | JSON_SORT_KEYS)
			     : strdup(json_string_value(prompt));
	if (!key) {
		json_decref(rec);
		return -1;
	}
	if (k->dedup) {
		bool oom = false;
		if (!seen_add(k, llm_hash64(key, strlen(key), 0x63757261), &oom)) {
			free(key);
			json_decref(rec);
			if (oom)
				return -1;
			k->duplicates++;
			return 0;
		}
	}

	/* The id: from the source request's id, or from the prompt and answer without one. */
	struct llm_sha256 h;
	unsigned char d[LLM_SHA256_LEN];
	char hex[2 * LLM_SHA256_LEN + 1], id[32];
	llm_sha256_init(&h);
	llm_sha256_update(&h, "curate", 7);
	if (r->request_id) {
		llm_sha256_update(&h, r->request_id, strlen(r->request_id) + 1);
	} else {
		llm_sha256_update(&h, key, strlen(key) + 1);
		if (output)
			llm_sha256_update(&h, json_string_value(output),
					  json_string_length(output));
	}
	llm_sha256_final(&h, d);
	free(key);
	llm_hex(d, 12, hex);
	snprintf(id, sizeof id, "cur-%.24s", hex);

	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "source_request_id",
			    r->request_id ? json_string(r->request_id) : json_null());
	if (messages) {
		json_t *msgs = json_deep_copy(messages);
		if (completion && k->append_completion)
			json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "assistant",
							      "content", completion));
		json_object_set_new(o, "messages", msgs);
	} else {
		json_object_set(o, "prompt", prompt);
	}
	if (completion)
		json_object_set_new(o, "completion", json_string(completion));
	if (output) {
		json_object_set(o, "rejected", output);
		json_object_set(o, "output", output);
	}
	json_t *f = json_object();
	if (fb) {
		const char *keys[] = {"mean", "count", "min", "scores", "comments"};
		const char *as[] = {"score", "count", "min", "scores", "comments"};
		for (size_t i = 0; i < 5; i++)
			if (json_object_get(fb, keys[i]))
				json_object_set(f, as[i], json_object_get(fb, keys[i]));
	} else {
		json_object_set_new(f, "score", json_null());
		json_object_set_new(f, "count", json_integer(0));
		json_object_set_new(f, "comments", json_array());
	}
	json_object_set_new(o, "feedback", f);
	json_t *flags = json_object_get(rec, k->flags_f);
	json_object_set_new(o, "flags", json_is_array(flags) ? json_incref(flags) : json_array());
	json_t *model = json_object_get(rec, k->model_f);
	if (!model)
		model = json_object_get(req, "model");
	if (json_is_string(model))
		json_object_set(o, "model", model);
	json_t *ts = json_object_get(rec, k->ts_f);
	if (json_is_string(ts) || json_is_number(ts))
		json_object_set(o, "ts", ts);
	char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
	json_decref(o);
	json_decref(rec);
	if (!s)
		return -1;
	bool ok = llm_cli_write(c, s, strlen(s)) && llm_cli_write(c, "\n", 1);
	free(s);
	if (!ok)
		return -2;
	k->written++;
	return 1;
}

static int run_curate(struct llm_cli *c)
{
	struct llm_args *a = &c->args;
	struct curate k = {0};
	char *const *wv = llm_args_strs(a, "where", &k.nwhere);
	if (!k.nwhere)
		return llm_cli_usage(
		    c, "curate needs --where EXPR (e.g. --where 'feedback.score<=2')");
	k.where = calloc(k.nwhere, sizeof *k.where);
	if (!k.where)
		return llm_cli_error(c, "out of memory"), LLM_EXIT_IO;
	int st = 0;
	for (size_t i = 0; i < k.nwhere && !st; i++) {
		struct llm_diag d;
		enum llm_err e = llm_mon_where_compile(&k.where[i], wv[i], &d);
		if (e == LLM_ERR_USAGE)
			st = llm_cli_usage(c, "--where: %s", d.msg);
		else if (e)
			st = llm_cli_fail(c, &d);
	}
	k.prompt_f = llm_args_str(a, "prompt-field");
	k.messages_f = llm_args_str(a, "messages-field");
	k.output_f = llm_args_str(a, "output-field");
	k.flags_f = llm_args_str(a, "flags-field");
	k.model_f = llm_args_str(a, "model-field");
	k.ts_f = llm_args_str(a, "ts-field");
	k.completion_f = llm_args_str(a, "completion-field");
	k.dedup = llm_args_flag(a, "dedup");
	k.require_completion = llm_args_flag(a, "require-completion");
	k.append_completion = llm_args_flag(a, "append-completion");
	llm_buf_init(&k.line, 0);
	bool follow = llm_args_flag(a, "follow");
	struct llm_mon_join *j = NULL;
	struct mon_in m;
	bool opened = false;
	if (!st)
		st = mon_join_open(c, &j, follow);
	if (!st && !(st = mon_in_open(c, &m, false, true, follow ? MON_JOIN_TICK_MS : 0)))
		opened = true;
	struct llm_mon_event *ev;
	struct llm_mon_joined rel;
	int r = 0;
	while (opened && !st && (r = mon_in_next(c, &m, &ev)) > 0) {
		int64_t now = mon_join_now();
		if (r == 1 && (st = mon_join_take(c, j, ev, now)))
			break;
		bool any = false;
		while (!st && llm_mon_join_next(j, now, false, &rel)) {
			if (!rel.text)
				continue;
			int w = curate_one(c, &k, &rel);
			any |= w > 0;
			if (w < 0) {
				if (w == -1)
					llm_cli_error(c, "out of memory");
				st = LLM_EXIT_IO;
			}
		}
		if (!st && follow && any && !llm_cli_flush(c))
			st = LLM_EXIT_IO;
	}
	if (opened && r < 0)
		st = m.in.status;
	while (opened && !st && llm_mon_join_next(j, 0, true, &rel)) {
		if (!rel.text)
			continue;
		int w = curate_one(c, &k, &rel);
		if (w < 0) {
			if (w == -1)
				llm_cli_error(c, "out of memory");
			st = LLM_EXIT_IO;
		}
	}
	struct llm_mon_join_counts jc = {0};
	if (j)
		llm_mon_join_counts(j, &jc);
	if (opened && !st && !c->quiet)
		fprintf(
		    stderr,
		    "%s: curate: %llu requests read, %llu matched, %llu written (%llu duplicate "
		    "prompts, %llu without a prompt, %llu without a completion); %llu feedback, "
		    "%llu orphan\n",
		    c->tool->name, (unsigned long long)jc.requests, (unsigned long long)k.matched,
		    (unsigned long long)k.written, (unsigned long long)k.duplicates,
		    (unsigned long long)k.no_prompt, (unsigned long long)k.no_completion,
		    (unsigned long long)jc.feedback, (unsigned long long)jc.orphan_feedback);
	const char *report = llm_args_str(a, "report");
	if (opened && !st && report) {
		struct llm_diag d;
		json_t *rep = mon_in_report(&m);
		json_t *more =
		    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "matched",
			      (json_int_t)k.matched, "written", (json_int_t)k.written, "duplicates",
			      (json_int_t)k.duplicates, "no_prompt", (json_int_t)k.no_prompt,
			      "no_completion", (json_int_t)k.no_completion, "not_matched",
			      (json_int_t)(k.released - k.matched - k.unreadable),
			      "duplicate_feedback", (json_int_t)jc.duplicates, "orphan_feedback",
			      (json_int_t)jc.orphan_feedback, "released_early",
			      (json_int_t)jc.evicted, "unreadable", (json_int_t)k.unreadable);
		json_object_update(rep, more);
		json_decref(more);
		if (llm_cli_write_json(c, report, rep, &d))
			st = llm_cli_fail(c, &d);
		json_decref(rep);
	}
	if (opened)
		mon_in_close(&m);
	llm_mon_join_free(j);
	for (size_t i = 0; i < k.nwhere; i++)
		llm_mon_where_free(k.where[i]);
	free(k.where);
	free(k.seen);
	llm_buf_free(&k.line);
	return st;
}

static const struct llm_opt curate_opts[] = {
    {"where", 'w', LLM_OPT_STRING, "EXPR",
     "keep the interactions for which EXPR holds (repeatable: every one must hold)",
     .repeat = true},
    {"completion-field", 0, LLM_OPT_STRING, "NAME",
     "a request record's corrected answer, written as the completion"},
    {"require-completion", 0, LLM_OPT_FLAG, NULL,
     "write only interactions with a corrected answer (what llm-tune train needs)"},
    {"append-completion", 0, LLM_OPT_FLAG, NULL,
     "for a chat prompt, also add the completion to messages as the assistant's answer"},
    {"dedup", 0, LLM_OPT_FLAG, NULL, "write one interaction per distinct prompt (the first)"},
    {"report", 0, LLM_OPT_STRING, "FILE", "write the counts as JSON to FILE"},
    {0},
};

const struct llm_verb llm_monitor_verb_curate = {
    "curate",
    "turn failing interactions into a dataset for llm-prep and llm-tune",
    "--where EXPR [OPTIONS] [FILE...]",
    "Joins feedback with its requests, keeps the interactions --where selects\n"
    "(feedback.score<=2, flags.kind=refusal, latency_ms>1000, ...) and writes one record\n"
    "each: id, source_request_id, prompt or messages, completion (when a corrected answer\n"
    "is known), rejected and output (the answer given), feedback and flags.",
    {curate_opts, mon_opts_join, mon_opts_fields, mon_opts_follow, llm_cli_opts_on_error,
     llm_cli_opts_input, llm_cli_opts_base},
    run_curate,
};
