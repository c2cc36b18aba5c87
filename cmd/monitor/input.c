/* The input llm-monitor's verbs share: records from files or a followed file, parsed into
 * events, bad ones dealt with by --on-error (see monitor.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "monitor/monitor.h"
#include "monitor/tail.h"

const struct llm_opt mon_opts_fields[] = {
    {"ts-field", 0, LLM_OPT_STRING, "NAME", "the time of a record (RFC 3339 or Unix seconds)",
     "ts"},
    {"request-id-field", 0, LLM_OPT_STRING, "NAME", "the request id (then id)", "request_id"},
    {"model-field", 0, LLM_OPT_STRING, "NAME", "the model that answered", "model"},
    {"key-id-field", 0, LLM_OPT_STRING, "NAME", "the API key's name (never the key)", "key_id"},
    {"status-field", 0, LLM_OPT_STRING, "NAME", "the HTTP status", "status"},
    {"latency-field", 0, LLM_OPT_STRING, "NAME", "the latency in milliseconds", "latency_ms"},
    {"ttft-field", 0, LLM_OPT_STRING, "NAME", "the time to first token in milliseconds",
     "ttft_ms"},
    {"usage-field", 0, LLM_OPT_STRING, "NAME", "the token counts object", "usage"},
    {"finish-reason-field", 0, LLM_OPT_STRING, "NAME", "why the answer ended", "finish_reason"},
    {"prompt-field", 0, LLM_OPT_STRING, "NAME", "a text prompt", "prompt"},
    {"messages-field", 0, LLM_OPT_STRING, "NAME", "a chat prompt", "messages"},
    {"output-field", 0, LLM_OPT_STRING, "NAME", "the model's answer", "output"},
    {"flags-field", 0, LLM_OPT_STRING, "NAME", "the detectors' findings", "flags"},
    {"error-field", 0, LLM_OPT_STRING, "NAME", "the error of a failed request", "error"},
    {"score-field", 0, LLM_OPT_STRING, "NAME", "a feedback record's score", "score"},
    {"kind-field", 0, LLM_OPT_STRING, "NAME", "the field whose value \"feedback\" marks feedback",
     "kind"},
    {0},
};

const struct llm_opt mon_opts_follow[] = {
    {"follow", 'f', LLM_OPT_FLAG, NULL,
     "keep reading the one FILE as it grows, surviving rotation (as tail -F)"},
    {"from-end", 0, LLM_OPT_FLAG, NULL, "with --follow: start at the end of the file"},
    {"poll", 0, LLM_OPT_STRING, "DURATION", "with --follow: how often to look for new lines",
     "200ms"},
    {0},
};

static const char *arg(const struct llm_cli *c, const char *name)
{
	/* Only the tables a verb has are parsed; a verb without one reads the defaults. */
	for (size_t i = 0; c->verb->opts[i]; i++)
		for (const struct llm_opt *o = c->verb->opts[i]; o->name; o++)
			if (!strcmp(o->name, name))
				return llm_args_str(&c->args, name);
	return NULL;
}

static bool has_opt(const struct llm_cli *c, const char *name)
{
	for (size_t i = 0; c->verb->opts[i]; i++)
		for (const struct llm_opt *o = c->verb->opts[i]; o->name; o++)
			if (!strcmp(o->name, name))
				return true;
	return false;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_input(struct llm_cli *c, struct mon_in *m, bool want_text, bool keep_writes,
		      int tick_ms)
{
	memset(m, 0, sizeof *m);
	struct llm_mon_fields f = {
	    .ts = arg(c, "ts-field"),
	    .request_id = arg(c, "request-id-field"),
	    .model = arg(c, "model-field"),
	    .key_id = arg(c, "key-id-field"),
	    .status = arg(c, "status-field"),
	    .latency = arg(c, "latency-field"),
	    .ttft = arg(c, "ttft-field"),
	    .usage = arg(c, "usage-field"),
	    .finish_reason = arg(c, "finish-reason-field"),
	    .prompt = arg(c, "prompt-field"),
	    .messages = arg(c, "messages-field"),
	    .output = arg(c, "output-field"),
	    .flags = arg(c, "flags-field"),
	    .error = arg(c, "error-field"),
	    .score = arg(c, "score-field"),
	    .kind = arg(c, "kind-field"),
	};
	if (llm_mon_parser_new(&m->parser, &f, want_text)) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	bool follow = has_opt(c, "follow") && llm_args_flag(&c->args, "follow");
	if (!follow)
		return llm_cli_in_open(c, &m->in, keep_writes);

	if (c->args.noperands != 1 || !strcmp(c->args.operands[0], "-"))
		return llm_cli_usage(c, "--follow takes exactly one FILE (not standard input)");
	int64_t poll = 200;
	const char *ps = arg(c, "poll");
	if (ps && (!llm_mon_parse_duration(ps, &poll) || poll < 1 || poll > 60000))
		return llm_cli_usage(c, "--poll: expected a duration from 1ms to 1m, not '%s'", ps);
	memset(&m->in, 0, sizeof m->in);
	llm_on_error_parse(llm_args_str(&c->args, "on-error"), &m->in.on_error);
	m->in.keep_writes = keep_writes;
	llm_progress_init(&m->in.progress, c->verb->name, true);
	m->follow_path = c->args.operands[0];
	struct llm_diag d;
	if (llm_mon_tail_open(&m->tail, m->follow_path, llm_args_flag(&c->args, "from-end"),
			      llm_args_size(&c->args, "max-record-bytes"), (int)poll, &d))
		return llm_cli_fail(c, &d);
	m->tick_ms = tick_ms;
	m->last_tick_ms = now_ms();
	return 0;
}

/* On failure nothing stays open, so a verb that could not open returns at once. */
int mon_in_open(struct llm_cli *c, struct mon_in *m, bool want_text, bool keep_writes,
		int tick_ms)
{
	int rc = open_input(c, m, want_text, keep_writes, tick_ms);
	if (rc) {
		llm_mon_tail_close(m->tail);
		m->tail = NULL;
		llm_mon_parser_free(m->parser);
		m->parser = NULL;
	}
	return rc;
}

/* The next good record of the followed file: 1, 2 (a tick), or -1. */
static int follow_next(struct llm_cli *c, struct mon_in *m, struct llm_record **out)
{
	struct llm_record *rec = &m->follow_rec;
	for (;;) {
		int wait = -1;
		if (m->tick_ms > 0) {
			int64_t left = m->last_tick_ms + m->tick_ms - now_ms();
			if (left <= 0) {
				m->last_tick_ms = now_ms();
				return 2;
			}
			wait = (int)left;
		}
		const char *line;
		size_t len;
		long lineno = 0;
		struct llm_diag d;
		enum llm_err e = llm_mon_tail_next(m->tail, wait, &line, &len, &lineno, &d);
		if (e == LLM_ERR_TOO_BIG) {
			rec->file = m->follow_path;
			rec->line = lineno;
			rec->text = "";
			rec->len = 0;
			rec->status = e;
			llm_diag_set(&rec->diag, e, m->follow_path, lineno,
				     "record is longer than --max-record-bytes");
			if (!llm_cli_in_reject(c, &m->in, rec, &rec->diag))
				return -1;
			continue;
		}
		if (e != LLM_OK) {
			m->in.status = llm_cli_fail(c, &d);
			return -1;
		}
		if (!line)
			continue; /* the wait ran out: the loop returns the tick */
		/* Blank lines are not records, as in core/jsonl. */
		size_t k = 0;
		while (k < len && (line[k] == ' ' || line[k] == '\t'))
			k++;
		if (k == len)
			continue;
		rec->file = m->follow_path;
		rec->line = lineno;
		rec->text = line;
		rec->len = len;
		struct llm_json_fault fault;
		e = llm_json_scan(line, len, &rec->fields, &fault);
		if (e == LLM_ERR_NOMEM) {
			llm_cli_error(c, "out of memory");
			m->in.status = LLM_EXIT_IO;
			return -1;
		}
		rec->status = e;
		if (e == LLM_OK) {
			m->in.records++;
			*out = rec;
			return 1;
		}
		llm_diag_set(&rec->diag, e, m->follow_path, lineno, "%s at byte %zu", fault.why,
			     fault.offset + 1);
		if (!llm_cli_in_reject(c, &m->in, rec, &rec->diag))
			return -1;
	}
}

int mon_in_next(struct llm_cli *c, struct mon_in *m, struct llm_mon_event **ev)
{
	for (;;) {
		struct llm_record *rec;
		int r = m->tail ? follow_next(c, m, &rec) : llm_cli_in_next(c, &m->in, &rec);
		if (r != 1)
			return r;
		struct llm_diag why;
		enum llm_err e = llm_mon_parse(m->parser, rec, &m->ev, &why);
		if (e == LLM_ERR_NOMEM) {
			llm_cli_error(c, "out of memory");
			m->in.status = LLM_EXIT_IO;
			return -1;
		}
		if (e != LLM_OK) {
			if (!llm_cli_in_reject(c, &m->in, rec, &why))
				return -1;
			continue;
		}
		m->events++;
		if (m->ev.kind == LLM_MON_FEEDBACK)
			m->feedback++;
		else
			m->requests++;
		*ev = &m->ev;
		return 1;
	}
}

void mon_in_close(struct mon_in *m)
{
	if (m->tail) {
		llm_mon_tail_close(m->tail);
		llm_json_members_free(&m->follow_rec.fields);
		m->tail = NULL;
	} else {
		llm_cli_in_close(&m->in);
	}
	llm_mon_parser_free(m->parser);
	m->parser = NULL;
}

json_t *mon_in_report(const struct mon_in *m)
{
	json_t *r = llm_cli_in_report(&m->in);
	if (!r)
		return NULL;
	json_object_set_new(r, "events", json_integer((json_int_t)m->events));
	json_object_set_new(r, "requests", json_integer((json_int_t)m->requests));
	json_object_set_new(r, "feedback", json_integer((json_int_t)m->feedback));
	return r;
}

bool mon_color(int fd)
{
	const char *nc = getenv("NO_COLOR");
	return isatty(fd) && !(nc && *nc);
}
