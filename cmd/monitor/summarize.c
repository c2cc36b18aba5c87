/* llm-monitor summarize: requests, errors, latency and TTFT percentiles, tokens, cost,
 * refusals, flags and feedback per window and group (lib/monitor/aggregate.h), as a table on a
 * terminal or JSONL rows, a Prometheus textfile for node_exporter's textfile collector, and a
 * self-contained HTML report with SVG charts.  Rows written with --state merge again with
 * --merge, so shards of a log summarize apart and combine.
 *
 * Prometheus labels are the group keys except key_id, which is summed over unless
 * --prom-key-id asks for it: an API key's name identifies a customer, and DESIGN.md keeps
 * user and key identities out of labels (they also multiply series without bound). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/atomic.h"
#include "monitor/aggregate.h"
#include "monitor/monitor.h"

#define JSONL_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

struct sum {
	struct llm_cli *c;
	char **by;
	size_t nby;
	struct llm_mon_prices *prices;
	struct llm_mon_agg_config cfg;
	struct llm_mon_agg *agg;
	struct llm_mon_agg *prom; /* cumulative, for --prom; NULL without */
	char *prom_by[17];
	size_t nprom_by;
	bool table, color, state, window_given, by_given;
	bool header_done;
	const char *prom_path, *html_path;
	uint64_t rows_out;
};

/* --- formatting helpers ------------------------------------------------------------------- */

static void fmt_time(int64_t ms, char *buf, size_t n, bool human)
{
	if (ms == INT64_MIN) {
		snprintf(buf, n, "-");
		return;
	}
	time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	strftime(buf, n, human ? "%Y-%m-%d %H:%M" : "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void fmt_ms(bool have, double v, char *buf, size_t n)
{
	if (!have)
		snprintf(buf, n, "-");
	else if (v < 10)
		snprintf(buf, n, "%.1fms", v);
	else if (v < 1000)
		snprintf(buf, n, "%.0fms", v);
	else
		snprintf(buf, n, "%.2fs", v / 1000);
}

static void fmt_count(double v, char *buf, size_t n)
{
	if (v < 100000)
		snprintf(buf, n, "%.0f", v);
	else if (v < 1e8)
		snprintf(buf, n, "%.1fk", v / 1e3);
	else
		snprintf(buf, n, "%.1fM", v / 1e6);
}

static bool metric(const struct llm_mon_row *r, const char *name, double *v)
{
	return llm_mon_row_metric(r, name, v);
}

static double metric0(const struct llm_mon_row *r, const char *name)
{
	double v = 0;
	llm_mon_row_metric(r, name, &v);
	return v;
}

/* --- the table ------------------------------------------------------------------------------ */

#define MAXCOLS 32
#define CELL 64

struct table {
	size_t ncols, nrows, cap;
	char (*cells)[MAXCOLS][CELL];
	int color[MAXCOLS]; /* per cell of the current row, via a parallel array below */
	int (*cell_color)[MAXCOLS];
	size_t width[MAXCOLS];
	bool right[MAXCOLS];
};

static bool table_row(struct table *t)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		void *p = realloc(t->cells, cap * sizeof *t->cells);
		if (!p)
			return false;
		t->cells = p;
		p = realloc(t->cell_color, cap * sizeof *t->cell_color);
		if (!p)
			return false;
		t->cell_color = p;
		t->cap = cap;
	}
	memset(t->cells[t->nrows], 0, sizeof *t->cells);
	memset(t->cell_color[t->nrows], 0, sizeof *t->cell_color);
	t->nrows++;
	return true;
}

static void table_set(struct table *t, size_t col, const char *s, int color)
{
	snprintf(t->cells[t->nrows - 1][col], CELL, "%s", s ? s : "-");
	t->cell_color[t->nrows - 1][col] = color;
}

/* Display width: code points (close enough for the names in a log). */
static size_t width_of(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xC0) != 0x80;
	return w;
}

static bool table_render(struct llm_cli *c, struct table *t, bool color)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	for (size_t j = 0; j < t->ncols; j++) {
		t->width[j] = 0;
		for (size_t i = 0; i < t->nrows; i++) {
			size_t w = width_of(t->cells[i][j]);
			if (w > t->width[j])
				t->width[j] = w;
		}
	}
	bool ok = true;
	for (size_t i = 0; i < t->nrows && ok; i++) {
		for (size_t j = 0; j < t->ncols && ok; j++) {
			const char *s = t->cells[i][j];
			size_t pad = t->width[j] - width_of(s);
			int col = t->cell_color[i][j];
			const char *on = !color	   ? ""
					 : i == 0  ? "\033[1m"
					 : col == 1 ? "\033[33m"
					 : col == 2 ? "\033[31m"
						    : "";
			if (j)
				ok = !llm_buf_puts(&b, "  ");
			if (ok && t->right[j])
				ok = !llm_buf_printf(&b, "%*s", (int)pad, "");
			ok = ok && !llm_buf_printf(&b, "%s%s%s", on, s, *on ? "\033[0m" : "");
			if (ok && !t->right[j] && j + 1 < t->ncols)
				ok = !llm_buf_printf(&b, "%*s", (int)pad, "");
		}
		ok = ok && !llm_buf_putc(&b, '\n');
	}
	ok = ok && llm_cli_write(c, b.data, b.len);
	llm_buf_free(&b);
	return ok;
}

/* The rows [from, to) of agg as a table (only those accepted by keep). */
static bool print_table(struct sum *s, struct llm_mon_agg *agg, int64_t before)
{
	struct table t = {0};
	bool windowed = s->cfg.window_ms > 0, priced = s->prices != NULL, ok = true;
	size_t n = llm_mon_agg_nrows(agg);
	if (!table_row(&t))
		return false;
	size_t k = 0;
	table_set(&t, k++, windowed ? "window (UTC)" : "from (UTC)", 0);
	for (size_t i = 0; i < s->nby; i++)
		table_set(&t, k++, s->by[i], 0);
	static const char *const heads[] = {"requests", "errors", "p50",      "p90",
					    "p99",      "ttft p50", "tokens"};
	size_t first_num = k;
	for (size_t i = 0; i < sizeof heads / sizeof *heads; i++)
		table_set(&t, k++, heads[i], 0);
	if (priced)
		table_set(&t, k++, "cost", 0);
	table_set(&t, k++, "refusals", 0);
	table_set(&t, k++, "flags", 0);
	table_set(&t, k++, "feedback", 0);
	t.ncols = k;
	for (size_t j = first_num; j < k; j++)
		t.right[j] = true;
	size_t shown = 0;
	for (size_t i = 0; i < n && ok; i++) {
		const struct llm_mon_row *r = llm_mon_agg_row(agg, i);
		if (before != INT64_MAX &&
		    (llm_mon_row_start(r) == INT64_MIN || llm_mon_row_end(r) > before))
			continue;
		if (!(ok = table_row(&t)))
			break;
		shown++;
		char buf[CELL];
		double v, req = metric0(r, "requests");
		k = 0;
		fmt_time(llm_mon_row_start(r), buf, sizeof buf, true);
		table_set(&t, k++, buf, 0);
		for (size_t j = 0; j < s->nby; j++)
			table_set(&t, k++, llm_mon_row_key(r, j), 0);
		fmt_count(req, buf, sizeof buf);
		table_set(&t, k++, buf, 0);
		double er = metric0(r, "error_rate");
		snprintf(buf, sizeof buf, "%.0f (%.1f%%)", metric0(r, "errors"), 100 * er);
		table_set(&t, k++, buf, er >= 0.05 ? 2 : er > 0 ? 1 : 0);
		static const char *const lat[] = {"latency_p50", "latency_p90", "latency_p99",
						  "ttft_p50"};
		for (size_t j = 0; j < 4; j++) {
			bool have = metric(r, lat[j], &v);
			fmt_ms(have, v, buf, sizeof buf);
			table_set(&t, k++, buf, 0);
		}
		if (metric(r, "total_tokens", &v))
			fmt_count(v, buf, sizeof buf);
		else
			snprintf(buf, sizeof buf, "-");
		table_set(&t, k++, buf, 0);
		if (priced) {
			snprintf(buf, sizeof buf, "%.4f %s", metric0(r, "cost"),
				 llm_mon_prices_currency(s->prices));
			table_set(&t, k++, buf, 0);
		}
		double rr = metric0(r, "refusal_rate");
		snprintf(buf, sizeof buf, "%.1f%%", 100 * rr);
		table_set(&t, k++, buf, rr > 0 ? 1 : 0);
		fmt_count(metric0(r, "flags"), buf, sizeof buf);
		table_set(&t, k++, buf, 0);
		if (metric(r, "feedback_mean", &v))
			snprintf(buf, sizeof buf, "%.2f (n=%.0f)", v, metric0(r, "feedback_count"));
		else
			snprintf(buf, sizeof buf, "-");
		table_set(&t, k++, buf, 0);
	}
	if (ok && shown) {
		if (s->header_done)
			ok = llm_cli_write(s->c, "\n", 1);
		ok = ok && table_render(s->c, &t, s->color);
		s->header_done = true;
	}
	s->rows_out += shown;
	free(t.cells);
	free(t.cell_color);
	return ok;
}

/* --- JSONL ---------------------------------------------------------------------------------- */

static bool print_jsonl(struct sum *s, struct llm_mon_agg *agg, int64_t before)
{
	size_t n = llm_mon_agg_nrows(agg);
	for (size_t i = 0; i < n; i++) {
		const struct llm_mon_row *r = llm_mon_agg_row(agg, i);
		if (before != INT64_MAX &&
		    (llm_mon_row_start(r) == INT64_MIN || llm_mon_row_end(r) > before))
			continue;
		json_t *j = llm_mon_row_json(agg, r, s->state);
		char *text = j ? json_dumps(j, JSONL_FLAGS) : NULL;
		json_decref(j);
		if (!text) {
			llm_cli_error(s->c, "out of memory");
			return false;
		}
		bool ok = llm_cli_write(s->c, text, strlen(text)) && llm_cli_write(s->c, "\n", 1);
		free(text);
		if (!ok)
			return false;
		s->rows_out++;
	}
	return true;
}

/* --- Prometheus textfile -------------------------------------------------------------------- */

/* A label name from a group key: [a-zA-Z_][a-zA-Z0-9_]*, and never one a family uses itself. */
static void label_name(const char *key, char *out, size_t n)
{
	size_t k = 0;
	static const char *const reserved[] = {"code", "error", "kind", "quantile", "le"};
	for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
		if (!strcmp(key, reserved[i]))
			k = (size_t)snprintf(out, n, "group_");
	for (const char *p = key; *p && k + 1 < n; p++) {
		char ch = *p;
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
			  (ch >= '0' && ch <= '9' && k > 0);
		out[k++] = ok ? ch : '_';
	}
	if (!k)
		out[k++] = '_';
	out[k] = '\0';
}

static enum llm_err label_value(struct llm_buf *b, const char *v)
{
	enum llm_err e = LLM_OK;
	for (const char *p = v ? v : ""; *p && !e; p++)
		e = *p == '\\'	 ? llm_buf_puts(b, "\\\\")
		    : *p == '"'	 ? llm_buf_puts(b, "\\\"")
		    : *p == '\n' ? llm_buf_puts(b, "\\n")
				 : llm_buf_putc(b, *p);
	return e;
}

/* name{group labels[,extra="value"]} */
static enum llm_err series(struct llm_buf *b, struct sum *s, const struct llm_mon_row *r,
			   const char *name, const char *extra, const char *extra_val)
{
	enum llm_err e = llm_buf_puts(b, name);
	bool any = false;
	for (size_t i = 0; i < s->nprom_by && !e; i++) {
		char ln[128];
		label_name(s->prom_by[i], ln, sizeof ln);
		e = llm_buf_printf(b, "%s%s=\"", any ? "," : "{", ln);
		any = true;
		if (!e)
			e = label_value(b, llm_mon_row_key(r, i));
		if (!e)
			e = llm_buf_putc(b, '"');
	}
	if (!e && extra) {
		e = llm_buf_printf(b, "%s%s=\"", any ? "," : "{", extra);
		any = true;
		if (!e)
			e = label_value(b, extra_val);
		if (!e)
			e = llm_buf_putc(b, '"');
	}
	if (!e && any)
		e = llm_buf_putc(b, '}');
	return e;
}

static enum llm_err sample(struct llm_buf *b, double v)
{
	if (v == floor(v) && fabs(v) < 1e15)
		return llm_buf_printf(b, " %.0f\n", v);
	return llm_buf_printf(b, " %.10g\n", v);
}

static enum llm_err family(struct llm_buf *b, const char *name, const char *type,
			   const char *help)
{
	return llm_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A counter or gauge from a metric of every row that has it. */
static enum llm_err simple(struct llm_buf *b, struct sum *s, const char *name, const char *type,
			   const char *help, const char *metric_name, double scale)
{
	enum llm_err e = family(b, name, type, help);
	size_t n = llm_mon_agg_nrows(s->prom);
	for (size_t i = 0; i < n && !e; i++) {
		const struct llm_mon_row *r = llm_mon_agg_row(s->prom, i);
		double v;
		if (!metric(r, metric_name, &v))
			continue;
		if (!(e = series(b, s, r, name, NULL, NULL)))
			e = sample(b, v * scale);
	}
	return e;
}

/* A family over the members of a row's state object key (statuses, error codes, flag kinds). */
static enum llm_err by_member(struct llm_buf *b, struct sum *s, json_t **states,
			      const char *name, const char *help, const char *key,
			      const char *label)
{
	enum llm_err e = family(b, name, "counter", help);
	size_t n = llm_mon_agg_nrows(s->prom);
	for (size_t i = 0; i < n && !e; i++) {
		const char *k;
		json_t *v;
		json_object_foreach (json_object_get(states[i], key), k, v) {
			if ((e = series(b, s, llm_mon_agg_row(s->prom, i), name, label, k)) ||
			    (e = sample(b, (double)json_integer_value(v))))
				break;
		}
	}
	return e;
}

/* A summary (quantiles in seconds, _sum, _count) from a sketch. */
static enum llm_err summary(struct llm_buf *b, struct sum *s, json_t **states, const char *name,
			    const char *help, const char *sketch, const char *pre)
{
	enum llm_err e = family(b, name, "summary", help);
	size_t n = llm_mon_agg_nrows(s->prom);
	static const char *const qn[] = {"0.5", "0.9", "0.99"}, *const qm[] = {"p50", "p90",
										   "p99"};
	for (size_t i = 0; i < n && !e; i++) {
		const struct llm_mon_row *r = llm_mon_agg_row(s->prom, i);
		json_t *sk = json_object_get(states[i], sketch);
		json_int_t count = json_integer_value(json_object_get(sk, "count"));
		if (!count)
			continue;
		for (size_t q = 0; q < 3 && !e; q++) {
			char m[64];
			snprintf(m, sizeof m, "%s_%s", pre, qm[q]);
			if (!(e = series(b, s, r, name, "quantile", qn[q])))
				e = sample(b, metric0(r, m) / 1000);
		}
		char nm[128];
		snprintf(nm, sizeof nm, "%s_sum", name);
		if (!e && !(e = series(b, s, r, nm, NULL, NULL)))
			e = sample(b, json_number_value(json_object_get(sk, "sum")) / 1000);
		snprintf(nm, sizeof nm, "%s_count", name);
		if (!e && !(e = series(b, s, r, nm, NULL, NULL)))
			e = sample(b, (double)count);
	}
	return e;
}

static enum llm_err prom_text(struct sum *s, struct llm_buf *b)
{
	size_t n = llm_mon_agg_nrows(s->prom);
	json_t **states = calloc(n + 1, sizeof *states);
	json_t **rows = calloc(n + 1, sizeof *rows);
	enum llm_err e = states && rows ? LLM_OK : LLM_ERR_NOMEM;
	for (size_t i = 0; i < n && !e; i++) {
		rows[i] = llm_mon_row_json(s->prom, llm_mon_agg_row(s->prom, i), true);
		if (!rows[i] || !(states[i] = json_object_get(rows[i], "state")))
			e = LLM_ERR_NOMEM;
	}
	if (!e)
		e = simple(b, s, "llmops_monitor_requests_total", "counter",
			   "Requests in the log summarized.", "requests", 1);
	if (!e)
		e = simple(b, s, "llmops_monitor_errors_total", "counter",
			   "Requests that failed (HTTP status 400 or above, or an error).", "errors",
			   1);
	if (!e)
		e = by_member(b, s, states, "llmops_monitor_responses_total",
			      "Requests by HTTP status code.", "status", "code");
	if (!e)
		e = by_member(b, s, states, "llmops_monitor_error_codes_total",
			      "Failed requests by the code of their error.", "errors_by_code",
			      "error");
	if (!e)
		e = summary(b, s, states, "llmops_monitor_request_latency_seconds",
			    "End-to-end request latency (quantiles from a 1% relative-error sketch).",
			    "latency", "latency");
	if (!e)
		e = summary(b, s, states, "llmops_monitor_time_to_first_token_seconds",
			    "Time to the first token (quantiles from a 1% relative-error sketch).",
			    "ttft", "ttft");
	if (!e)
		e = simple(b, s, "llmops_monitor_prompt_tokens_total", "counter",
			   "Prompt tokens of the requests.", "prompt_tokens", 1);
	if (!e)
		e = simple(b, s, "llmops_monitor_completion_tokens_total", "counter",
			   "Completion tokens of the requests.", "completion_tokens", 1);
	if (!e && s->prices) {
		char help[128];
		snprintf(help, sizeof help, "Cost of the tokens by the price table, in %s.",
			 llm_mon_prices_currency(s->prices));
		e = simple(b, s, "llmops_monitor_cost_total", "counter", help, "cost", 1);
	}
	if (!e)
		e = simple(b, s, "llmops_monitor_refusals_total", "counter",
			   "Answers that were refusals.", "refusals", 1);
	if (!e)
		e = by_member(b, s, states, "llmops_monitor_flags_total",
			      "Flags raised on requests, by kind.", "flags_by_kind", "kind");
	if (!e)
		e = simple(b, s, "llmops_monitor_feedback_total", "counter",
			   "Feedback records joined with the requests.", "feedback_count", 1);
	if (!e)
		e = simple(b, s, "llmops_monitor_feedback_negative_total", "counter",
			   "Feedback at or below the negative score.", "feedback_negative", 1);
	if (!e)
		e = simple(b, s, "llmops_monitor_feedback_score_mean", "gauge",
			   "Mean feedback score.", "feedback_mean", 1);
	int64_t latest = llm_mon_agg_latest(s->prom);
	if (!e && latest != INT64_MIN) {
		e = family(b, "llmops_monitor_last_event_timestamp_seconds", "gauge",
			   "Time of the latest record summarized, in Unix seconds.");
		if (!e)
			e = llm_buf_printf(b, "llmops_monitor_last_event_timestamp_seconds %.3f\n",
					   (double)latest / 1000);
	}
	for (size_t i = 0; rows && i < n; i++)
		json_decref(rows[i]);
	free(rows);
	free(states);
	return e;
}

static bool write_prom(struct sum *s)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	struct llm_diag d;
	bool ok = true;
	if (prom_text(s, &b)) {
		llm_cli_error(s->c, "out of memory");
		ok = false;
	} else if (llm_atomic_write_file(s->prom_path, b.data, b.len, &d)) {
		llm_cli_fail(s->c, &d);
		ok = false;
	}
	llm_buf_free(&b);
	return ok;
}

/* --- HTML ------------------------------------------------------------------------------------ */

static void html_esc(struct llm_buf *b, const char *s)
{
	for (; s && *s; s++)
		switch (*s) {
		case '<':
			llm_buf_puts(b, "&lt;");
			break;
		case '>':
			llm_buf_puts(b, "&gt;");
			break;
		case '&':
			llm_buf_puts(b, "&amp;");
			break;
		case '"':
			llm_buf_puts(b, "&quot;");
			break;
		default:
			llm_buf_putc(b, *s);
		}
}

#define MAX_SERIES 8
static const char *const palette[MAX_SERIES] = {"#2563eb", "#dc2626", "#16a34a", "#9333ea",
						 "#ea580c", "#0891b2", "#ca8a04", "#db2777"};

/* The group of a row as one label ("model=a, key_id=b"; "all" without keys). */
static void group_label(const struct sum *s, const struct llm_mon_row *r, char *out, size_t n)
{
	size_t k = 0;
	out[0] = '\0';
	for (size_t i = 0; i < s->nby && k < n; i++) {
		const char *v = llm_mon_row_key(r, i);
		k += (size_t)snprintf(out + k, n - k, "%s%s=%s", i ? ", " : "", s->by[i],
				      v ? v : "null");
	}
	if (!s->nby)
		snprintf(out, n, "all");
}

struct chart_data {
	size_t nwin, nser;
	int64_t *win;
	char label[MAX_SERIES][256];
	double *v[MAX_SERIES]; /* NAN where absent */
};

static void chart(struct llm_buf *b, const struct chart_data *d, size_t which, const char *title,
		  const char *unit, struct sum *s, struct llm_mon_agg *agg, const char *mname,
		  double scale)
{
	(void)which;
	/* Values per (window, series). */
	for (size_t k = 0; k < d->nser; k++)
		for (size_t w = 0; w < d->nwin; w++)
			d->v[k][w] = NAN;
	size_t n = llm_mon_agg_nrows(agg);
	for (size_t i = 0; i < n; i++) {
		const struct llm_mon_row *r = llm_mon_agg_row(agg, i);
		char lab[256];
		group_label(s, r, lab, sizeof lab);
		size_t k = 0;
		while (k < d->nser && strcmp(d->label[k], lab))
			k++;
		if (k == d->nser)
			continue;
		size_t w = 0;
		while (w < d->nwin && d->win[w] != llm_mon_row_start(r))
			w++;
		double v;
		if (w < d->nwin && metric(r, mname, &v))
			d->v[k][w] = v * scale;
	}
	double max = 0;
	for (size_t k = 0; k < d->nser; k++)
		for (size_t w = 0; w < d->nwin; w++)
			if (!isnan(d->v[k][w]) && d->v[k][w] > max)
				max = d->v[k][w];
	if (max <= 0)
		max = 1;
	const double W = 720, H = 200, L = 60, T = 10, PW = W - L - 10, PH = H - T - 30;
	llm_buf_printf(b, "<figure><figcaption>%s</figcaption>\n", title);
	llm_buf_printf(b,
		       "<svg viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"%s\">\n",
		       W, H, title);
	for (int g = 0; g <= 4; g++) {
		double y = T + PH - PH * g / 4;
		llm_buf_printf(b,
			       "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" "
			       "class=\"grid\"/><text x=\"%.0f\" y=\"%.1f\" "
			       "class=\"axis\" text-anchor=\"end\">%.4g%s</text>\n",
			       L, y, L + PW, y, L - 4, y + 4, max * g / 4, unit);
	}
	char t0[32], t1[32];
	fmt_time(d->win[0], t0, sizeof t0, true);
	fmt_time(d->win[d->nwin - 1], t1, sizeof t1, true);
	llm_buf_printf(b,
		       "<text x=\"%.0f\" y=\"%.0f\" class=\"axis\">%s</text><text x=\"%.0f\" "
		       "y=\"%.0f\" class=\"axis\" text-anchor=\"end\">%s</text>\n",
		       L, H - 8, t0, L + PW, H - 8, t1);
	for (size_t k = 0; k < d->nser; k++) {
		llm_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
			       palette[k]);
		for (size_t w = 0; w < d->nwin; w++) {
			if (isnan(d->v[k][w]))
				continue;
			double x = L + (d->nwin > 1 ? PW * (double)w / (double)(d->nwin - 1) : PW / 2);
			double y = T + PH - PH * d->v[k][w] / max;
			llm_buf_printf(b, "%.1f,%.1f ", x, y);
		}
		llm_buf_puts(b, "\"/>\n");
		for (size_t w = 0; w < d->nwin; w++) {
			if (isnan(d->v[k][w]))
				continue;
			double x = L + (d->nwin > 1 ? PW * (double)w / (double)(d->nwin - 1) : PW / 2);
			double y = T + PH - PH * d->v[k][w] / max;
			llm_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\">"
				       "<title>",
				       x, y, palette[k]);
			html_esc(b, d->label[k]);
			llm_buf_printf(b, ": %.4g%s</title></circle>\n", d->v[k][w], unit);
		}
	}
	llm_buf_puts(b, "</svg></figure>\n");
}

static bool write_html(struct sum *s, struct llm_mon_agg *agg, const char *title)
{
	struct llm_diag d;
	struct llm_mon_agg *tot = NULL;
	if (llm_mon_agg_collapse(agg, &tot, &d)) {
		llm_cli_fail(s->c, &d);
		return false;
	}
	struct chart_data cd = {0};
	size_t n = llm_mon_agg_nrows(agg), nt = llm_mon_agg_nrows(tot);
	cd.win = calloc(n + 1, sizeof *cd.win);
	bool ok = cd.win != NULL;
	for (size_t i = 0; ok && i < n; i++) {
		int64_t st = llm_mon_row_start(llm_mon_agg_row(agg, i));
		if (!cd.nwin || cd.win[cd.nwin - 1] != st)
			cd.win[cd.nwin++] = st;
	}
	/* The busiest groups get a line each. */
	bool *taken = calloc(nt + 1, sizeof *taken);
	ok = ok && taken;
	while (ok && cd.nser < MAX_SERIES) {
		size_t best = nt;
		for (size_t i = 0; i < nt; i++)
			if (!taken[i] && (best == nt || metric0(llm_mon_agg_row(tot, i), "requests") >
							      metric0(llm_mon_agg_row(tot, best),
								      "requests")))
				best = i;
		if (best == nt)
			break;
		taken[best] = true;
		group_label(s, llm_mon_agg_row(tot, best), cd.label[cd.nser], 256);
		if (!(cd.v[cd.nser] = calloc(cd.nwin + 1, sizeof(double))))
			ok = false;
		cd.nser++;
	}
	free(taken);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	if (ok) {
		llm_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
				 "<title>llm-monitor summary: ");
		html_esc(&b, title);
		llm_buf_puts(
			&b,
			"</title>\n<style>\n"
			":root{--fg:#1f2937;--muted:#6b7280;--grid:#e5e7eb}\n"
			"body{font:14px system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
			"color:var(--fg);max-width:960px;margin:2em auto;padding:0 1em}\n"
			"figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.3em}\n"
			"svg{display:block;width:100%;height:auto}\n"
			"svg .grid{stroke:var(--grid)}svg .axis{font-size:11px;fill:var(--muted)}\n"
			"table{border-collapse:collapse}td,th{padding:.2em .7em;text-align:right;"
			"border-bottom:1px solid var(--grid)}th:first-child,td:first-child{"
			"text-align:left}\n"
			".legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1em}\n"
			".sw{display:inline-block;width:.9em;height:.9em;margin-right:.3em;"
			"vertical-align:middle}\n"
			"</style></head><body>\n<h1>llm-monitor summary</h1>\n<p>");
		html_esc(&b, title);
		llm_buf_printf(&b, " &middot; %zu window%s", cd.nwin, cd.nwin == 1 ? "" : "s");
		if (s->cfg.window_ms)
			llm_buf_printf(&b, " of %lld s", (long long)(s->cfg.window_ms / 1000));
		llm_buf_puts(&b, " &middot; times in UTC</p>\n<ul class=\"legend\">");
		for (size_t k = 0; k < cd.nser; k++) {
			llm_buf_printf(&b, "<li><span class=\"sw\" style=\"background:%s\"></span>",
				       palette[k]);
			html_esc(&b, cd.label[k]);
			llm_buf_puts(&b, "</li>");
		}
		llm_buf_puts(&b, "</ul>\n");
		if (nt > cd.nser)
			llm_buf_printf(&b, "<p>The charts show the %zu busiest of %zu groups.</p>\n",
				       cd.nser, nt);
		if (cd.nwin && cd.nser) {
			chart(&b, &cd, 0, "Requests per window", "", s, agg, "requests", 1);
			chart(&b, &cd, 1, "Error rate", "%", s, agg, "error_rate", 100);
			chart(&b, &cd, 2, "Latency p50", " ms", s, agg, "latency_p50", 1);
			chart(&b, &cd, 3, "Latency p99", " ms", s, agg, "latency_p99", 1);
		}
		llm_buf_puts(&b, "<h2>Totals</h2>\n<table><tr><th>group</th><th>requests</th>"
				 "<th>errors</th><th>p50</th><th>p90</th><th>p99</th>"
				 "<th>ttft p50</th><th>tokens</th><th>refusals</th>"
				 "<th>feedback</th></tr>\n");
		for (size_t i = 0; i < nt; i++) {
			const struct llm_mon_row *r = llm_mon_agg_row(tot, i);
			char lab[256], p[4][32];
			group_label(s, r, lab, sizeof lab);
			static const char *const q[] = {"latency_p50", "latency_p90", "latency_p99",
							"ttft_p50"};
			for (size_t k = 0; k < 4; k++) {
				double v;
				bool have = metric(r, q[k], &v);
				fmt_ms(have, v, p[k], sizeof p[k]);
			}
			llm_buf_puts(&b, "<tr><td>");
			html_esc(&b, lab);
			double fm;
			llm_buf_printf(&b,
				       "</td><td>%.0f</td><td>%.0f (%.1f%%)</td><td>%s</td>"
				       "<td>%s</td><td>%s</td><td>%s</td><td>%.0f</td>"
				       "<td>%.1f%%</td>",
				       metric0(r, "requests"), metric0(r, "errors"),
				       100 * metric0(r, "error_rate"), p[0], p[1], p[2], p[3],
				       metric0(r, "total_tokens"), 100 * metric0(r, "refusal_rate"));
			if (metric(r, "feedback_mean", &fm))
				llm_buf_printf(&b, "<td>%.2f (n=%.0f)</td></tr>\n", fm,
					       metric0(r, "feedback_count"));
			else
				llm_buf_puts(&b, "<td>-</td></tr>\n");
		}
		llm_buf_puts(&b, "</table>\n</body></html>\n");
	}
	for (size_t k = 0; k < cd.nser; k++)
		free(cd.v[k]);
	free(cd.win);
	llm_mon_agg_free(tot);
	if (!ok) {
		llm_buf_free(&b);
		llm_cli_error(s->c, "out of memory");
		return false;
	}
	if (llm_atomic_write_file(s->html_path, b.data, b.len, &d)) {
		llm_buf_free(&b);
		llm_cli_fail(s->c, &d);
		return false;
	}
	llm_buf_free(&b);
	return true;
}

/* --- the run ---------------------------------------------------------------------------------- */

static int agg_create(struct sum *s)
{
	struct llm_diag d;
	s->cfg.by = s->by;
	s->cfg.nby = s->nby;
	if (llm_mon_agg_new(&s->agg, &s->cfg, &d))
		return llm_cli_fail(s->c, &d);
	if (s->prom_path) {
		bool key_label = llm_args_flag(&s->c->args, "prom-key-id");
		for (size_t i = 0; i < s->nby; i++)
			if (key_label || strcmp(s->by[i], "key_id"))
				s->prom_by[s->nprom_by++] = s->by[i];
		struct llm_mon_agg_config pc = s->cfg;
		pc.window_ms = 0;
		pc.by = s->prom_by;
		pc.nby = s->nprom_by;
		if (llm_mon_agg_new(&s->prom, &pc, &d))
			return llm_cli_fail(s->c, &d);
	}
	return 0;
}

/* Print the rows whose window ended by `before` (INT64_MAX: all), count them into the
 * textfile's totals, and forget them (under --follow). */
static int emit(struct sum *s, int64_t before)
{
	struct llm_mon_agg *a = s->agg;
	bool ok = s->table ? print_table(s, a, before) : print_jsonl(s, a, before);
	if (!ok)
		return LLM_EXIT_IO;
	if (before != INT64_MAX && !llm_cli_flush(s->c))
		return LLM_EXIT_IO;
	struct llm_diag d;
	if (s->prom) {
		size_t n = llm_mon_agg_nrows(a);
		for (size_t i = 0; i < n; i++) {
			const struct llm_mon_row *r = llm_mon_agg_row(a, i);
			if (before != INT64_MAX && (llm_mon_row_start(r) == INT64_MIN ||
						    llm_mon_row_end(r) > before))
				continue;
			json_t *j = llm_mon_row_json(a, r, true);
			enum llm_err e = j ? llm_mon_agg_merge_json(s->prom, j, &d) : LLM_ERR_NOMEM;
			json_decref(j);
			if (e) {
				if (e == LLM_ERR_NOMEM)
					llm_cli_error(s->c, "out of memory");
				else
					llm_cli_fail(s->c, &d);
				return LLM_EXIT_IO;
			}
		}
		if (!write_prom(s))
			return LLM_EXIT_IO;
	}
	if (before != INT64_MAX)
		llm_mon_agg_drop_before(a, before);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int run_events(struct sum *s)
{
	struct llm_cli *c = s->c;
	bool follow = llm_args_flag(&c->args, "follow");
	int64_t grace = 0;
	if (!llm_mon_parse_duration(llm_args_str(&c->args, "grace"), &grace))
		return llm_cli_usage(c, "--grace: not a duration: %s",
				     llm_args_str(&c->args, "grace"));
	int st = agg_create(s);
	if (st)
		return st;
	struct mon_in m;
	st = mon_in_open(c, &m, llm_args_flag(&c->args, "detect-refusals"), false,
			 follow ? 1000 : 0);
	if (st)
		return st;
	struct llm_mon_event *ev;
	int r;
	int64_t closed = INT64_MIN; /* windows ending by here were printed */
	while ((r = mon_in_next(c, &m, &ev)) > 0) {
		struct llm_diag d;
		if (r == 1) {
			enum llm_err e = llm_mon_agg_add(s->agg, ev, &d);
			if (e) {
				if (ev->rec && !d.file[0]) {
					snprintf(d.file, sizeof d.file, "%s", ev->rec->file);
					d.line = ev->rec->line;
				}
				st = llm_cli_fail(c, &d);
				break;
			}
		}
		if (!follow || !s->cfg.window_ms)
			continue;
		int64_t latest = llm_mon_agg_latest(s->agg);
		int64_t mark = latest == INT64_MIN ? INT64_MIN : latest - grace;
		if (r == 2 && now_ms() - grace > mark)
			mark = now_ms() - grace;
		if (mark == INT64_MIN)
			continue;
		int64_t w = s->cfg.window_ms, b = (mark >= 0 ? mark / w : (mark - w + 1) / w) * w;
		if (b > closed) {
			closed = b;
			if ((st = emit(s, b)))
				break;
		}
	}
	if (r < 0)
		st = m.in.status;
	if (!st)
		st = emit(s, INT64_MAX);
	if (!st && s->html_path)
		st = write_html(s, s->agg, c->args.noperands ? c->args.operands[0] : LLM_STDIN_NAME)
			     ? 0
			     : LLM_EXIT_IO;
	const char *report = llm_args_str(&c->args, "report");
	if (!st && report) {
		json_t *j = mon_in_report(&m);
		struct llm_diag d;
		if (j) {
			json_object_set_new(j, "rows", json_integer((json_int_t)s->rows_out));
			if (llm_cli_write_json(c, report, j, &d))
				st = llm_cli_fail(c, &d);
		}
		json_decref(j);
	}
	mon_in_close(&m);
	return st;
}

/* --merge: rows of summarize --state in, the combined rows out. */
static int run_merge(struct sum *s)
{
	struct llm_cli *c = s->c;
	struct llm_cli_in in;
	int st = llm_cli_in_open(c, &in, false);
	if (st)
		return st;
	struct llm_record *rec;
	int r;
	char **owned_by = NULL;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		struct llm_diag why;
		json_t *j = json_loadb(rec->text, rec->len, 0, NULL);
		const json_t *state = json_object_get(j, "state");
		if (!s->agg && json_is_object(state)) {
			/* The first row says how the shards were summarized, unless told. */
			json_t *w = json_object_get(state, "window_ms"), *by = json_object_get(state, "by");
			if (!s->window_given && json_is_integer(w) && json_integer_value(w) >= 0)
				s->cfg.window_ms = json_integer_value(w);
			if (!s->by_given && json_is_array(by) && json_array_size(by) <= 16) {
				owned_by = calloc(json_array_size(by) + 1, sizeof *owned_by);
				for (size_t i = 0; owned_by && i < json_array_size(by); i++)
					if (json_is_string(json_array_get(by, i)))
						owned_by[s->nby++] = strdup(
							json_string_value(json_array_get(by, i)));
				s->by = owned_by;
			}
			if ((st = agg_create(s))) {
				json_decref(j);
				break;
			}
		}
		enum llm_err e = s->agg ? llm_mon_agg_merge_json(s->agg, j, &why)
					: llm_diag_set(&why, LLM_ERR_FORMAT, "", 0,
						       "the row has no \"state\" (write rows to "
						       "merge with --state)");
		json_decref(j);
		if (e == LLM_ERR_NOMEM || e == LLM_ERR_TOO_BIG) {
			st = llm_cli_fail(c, &why);
			break;
		}
		if (e) {
			char msg[LLM_DIAG_MSG_MAX];
			snprintf(msg, sizeof msg, "%s", why.msg);
			llm_diag_set(&why, e, rec->file, rec->line, "%s", msg);
			if (!llm_cli_in_reject(c, &in, rec, &why)) {
				r = -1;
				break;
			}
		}
	}
	if (r < 0 && !st)
		st = in.status;
	if (!st && !s->agg)
		st = agg_create(s);
	if (!st)
		st = emit(s, INT64_MAX);
	if (!st && s->html_path)
		st = write_html(s, s->agg, "merged rows") ? 0 : LLM_EXIT_IO;
	llm_cli_in_close(&in);
	if (owned_by) {
		for (size_t i = 0; i < s->nby; i++)
			free(owned_by[i]);
		free(owned_by);
		s->by = NULL;
		s->nby = 0;
	}
	return st;
}

static int run(struct llm_cli *c)
{
	struct sum s = {.c = c};
	struct llm_args *a = &c->args;
	s.window_given = llm_args_given(a, "window");
	s.by_given = llm_args_given(a, "by");
	if (s.window_given) {
		int64_t w;
		if (!llm_mon_parse_duration(llm_args_str(a, "window"), &w) || w < 0)
			return llm_cli_usage(c, "--window: not a duration: %s",
					     llm_args_str(a, "window"));
		s.cfg.window_ms = w;
	}
	char **by = NULL;
	size_t nby = 0;
	if (llm_args_list(a, "by", &by, &nby)) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	if (nby > 16) {
		llm_strv_free(by);
		return llm_cli_usage(c, "--by: at most 16 keys");
	}
	s.by = by;
	s.nby = nby;
	s.cfg.negative_score = llm_args_double(a, "negative-score");
	s.cfg.max_groups = (size_t)llm_args_int(a, "max-groups");
	s.state = llm_args_flag(a, "state");
	s.prom_path = llm_args_str(a, "prom");
	s.html_path = llm_args_str(a, "html");
	const char *format = llm_args_str(a, "format");
	bool merge = llm_args_flag(a, "merge");
	int st = 0;
	if (!strcmp(format, "auto"))
		s.table = !s.state && isatty(STDOUT_FILENO);
	else
		s.table = !strcmp(format, "table");
	if (s.table && s.state)
		st = llm_cli_usage(c, "--state writes JSONL rows: it cannot go with --format table");
	else if (merge && llm_args_flag(a, "follow"))
		st = llm_cli_usage(c, "--merge reads finished rows: it cannot go with --follow");
	else if (s.html_path && llm_args_flag(a, "follow"))
		st = llm_cli_usage(c, "--html is written once, at the end: it cannot go with "
				      "--follow (use --prom for a live view)");
	s.color = s.table && mon_color(STDOUT_FILENO);
	const char *prices = llm_args_str(a, "prices");
	struct llm_diag d;
	if (!st && prices && llm_mon_prices_load(&s.prices, prices, &d))
		st = d.code == LLM_ERR_FORMAT ? (llm_cli_fail(c, &d), LLM_EXIT_USAGE)
					      : llm_cli_fail(c, &d);
	s.cfg.prices = s.prices;
	if (!st && (s.prom_path || s.html_path))
		llm_atomic_install_signals();
	if (!st)
		st = merge ? run_merge(&s) : run_events(&s);
	llm_mon_agg_free(s.agg);
	llm_mon_agg_free(s.prom);
	llm_mon_prices_free(s.prices);
	llm_strv_free(by);
	return st;
}

static const struct llm_opt sum_opts[] = {
    {"window", 'w', LLM_OPT_STRING, "DURATION",
     "one row per window of this length, aligned to the epoch (5m, 1h, 1d; default: one window)"},
    {"by", 'b', LLM_OPT_STRING, "KEYS",
     "group by these fields (model, key_id, endpoint, status, finish_reason, or any top-level "
     "field; a comma list)",
     .repeat = true},
    {"prices", 0, LLM_OPT_STRING, "FILE",
     "price table (JSON, per million tokens) for the cost columns"},
    {"negative-score", 0, LLM_OPT_DOUBLE, "S", "feedback at or below S counts as negative", "0"},
    {"format", 0, LLM_OPT_CHOICE, "FORMAT",
     "auto: a table on a terminal, JSONL rows otherwise; table; jsonl", "auto",
     "auto|table|jsonl"},
    {"state", 0, LLM_OPT_FLAG, NULL,
     "add each row's sketches and counters, so --merge can combine shards"},
    {"merge", 0, LLM_OPT_FLAG, NULL,
     "read rows written with --state (from shards) and combine them"},
    {"prom", 0, LLM_OPT_STRING, "FILE",
     "write a Prometheus textfile (for node_exporter's textfile collector) atomically"},
    {"prom-key-id", 0, LLM_OPT_FLAG, NULL,
     "with --prom: keep key_id as a label (by default it is summed over)"},
    {"html", 0, LLM_OPT_STRING, "FILE", "write a self-contained HTML report with SVG charts"},
    {"grace", 0, LLM_OPT_STRING, "DURATION",
     "with --follow: wait this long past a window's end for late records before printing it",
     "30s"},
    {"detect-refusals", 0, LLM_OPT_FLAG, NULL,
     "also look for refusals in the output text (slower: the text is decoded and scanned)"},
    {"max-groups", 0, LLM_OPT_INT, "N", "the most rows (windows times groups) kept", "100000",
     .min = 1, .max = 100000000},
    {"report", 0, LLM_OPT_STRING, "FILE", "write what was read (records, bad, rows) as JSON"},
    {0},
};

const struct llm_verb llm_monitor_verb_summarize = {
    "summarize",
    "requests, errors, latency percentiles, tokens, cost, refusals, flags, feedback",
    "[OPTIONS] [FILE...]",
    "Summarizes a request log per window and group: a table on a terminal, JSONL rows\n"
    "otherwise, a Prometheus textfile with --prom and an HTML report with --html.\n"
    "Percentiles come from a mergeable sketch (1% relative accuracy): rows written with\n"
    "--state combine with --merge.  Memory grows with the rows, not the records.  Under\n"
    "--follow, each window's rows are printed when it closes.",
    {sum_opts, mon_opts_fields, mon_opts_follow, llm_cli_opts_on_error, llm_cli_opts_input,
     llm_cli_opts_base},
    run,
};
