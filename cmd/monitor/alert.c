/* llm-monitor alert: the rules of check, run from cron or a loop, with memory.  Each run
 * evaluates the rules, moves the state of every (rule, group) kept in the state folder
 * (pending, firing, resolved: lib/monitor/rules), and tells the rules file's receivers what
 * changed, once per change however often it runs.  What could not be delivered after retries
 * stays in the state folder's outbox and goes first next run.
 *
 * The state folder: state.json (written atomically), lock (flock: two runs never interleave),
 * outbox/ (lib/monitor/notify). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/atomic.h"
#include "core/buf.h"
#include "monitor/monitor.h"
#include "monitor/notify.h"
#include "monitor/rulerun.h"

#define STATE_VERSION 1
#define STATE_MAX     (256u << 20)

/* One (rule, group) the state folder knows. */
struct entry {
	char *key;
	json_t *labels; /* the group's */
	bool empty;	/* the stand-in group of a rule with no data at all */
	struct llm_alert a;
	json_t *sent_labels, *sent_annotations; /* what the last firing notice carried */
	const char *action; /* this run's: fire, renotify, resolve, escalate; NULL */
	bool seen;
};

struct rule_state {
	char *name;
	struct entry *v;
	size_t n;
};

struct state {
	struct rule_state *rules;
	size_t n;
};

/* A message's worth of one alert. */
struct note {
	bool resolved;
	json_t *labels, *annotations;
	int64_t starts_at, ends_at;
};

struct notes {
	struct note *v;
	size_t n;
};

static void state_free(struct state *s)
{
	for (size_t i = 0; i < s->n; i++) {
		for (size_t j = 0; j < s->rules[i].n; j++) {
			struct entry *e = &s->rules[i].v[j];
			free(e->key);
			json_decref(e->labels);
			json_decref(e->sent_labels);
			json_decref(e->sent_annotations);
		}
		free(s->rules[i].v);
		free(s->rules[i].name);
	}
	free(s->rules);
	memset(s, 0, sizeof *s);
}

static void notes_free(struct notes *ns)
{
	for (size_t i = 0; i < ns->n; i++) {
		json_decref(ns->v[i].labels);
		json_decref(ns->v[i].annotations);
	}
	free(ns->v);
	memset(ns, 0, sizeof *ns);
}

static struct rule_state *rule_state(struct state *s, const char *name, bool create)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->rules[i].name, name))
			return &s->rules[i];
	if (!create)
		return NULL;
	struct rule_state *nr = realloc(s->rules, (s->n + 1) * sizeof *nr);
	if (!nr)
		return NULL;
	s->rules = nr;
	struct rule_state *r = &nr[s->n];
	memset(r, 0, sizeof *r);
	if (!(r->name = strdup(name)))
		return NULL;
	s->n++;
	return r;
}

static struct entry *entry_add(struct rule_state *r, const char *key, const json_t *labels)
{
	struct entry *nv = realloc(r->v, (r->n + 1) * sizeof *nv);
	if (!nv)
		return NULL;
	r->v = nv;
	struct entry *e = &nv[r->n];
	memset(e, 0, sizeof *e);
	e->key = strdup(key);
	e->labels = json_deep_copy(labels);
	if (!e->key || !e->labels) {
		free(e->key);
		json_decref(e->labels);
		return NULL;
	}
	r->n++;
	return e;
}

/* --- the state file --- */

static int state_load(struct llm_cli *c, const char *path, struct state *s)
{
	memset(s, 0, sizeof *s);
	struct stat st;
	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		llm_cli_error(c, "%s: %s", path, strerror(errno));
		return LLM_EXIT_IO;
	}
	if (st.st_size > (off_t)STATE_MAX) {
		llm_cli_error(c, "%s: larger than %u bytes", path, STATE_MAX);
		return LLM_EXIT_IO;
	}
	json_error_t je;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		llm_cli_error(c, "%s:%d: not a state file: %s (move it away to start afresh)", path,
			      je.line, je.text);
		return LLM_EXIT_IO;
	}
	json_t *rules = json_object_get(root, "rules");
	int rc = 0;
	if (json_integer_value(json_object_get(root, "version")) != STATE_VERSION ||
	    !json_is_object(rules)) {
		llm_cli_error(c,
			      "%s: not a state file of version %d (move it away to start afresh)",
			      path, STATE_VERSION);
		rc = LLM_EXIT_IO;
		goto done;
	}
	const char *rn;
	json_t *groups;
	json_object_foreach(rules, rn, groups)
	{
		struct rule_state *r = rule_state(s, rn, true);
		if (!r || !json_is_object(groups)) {
			llm_cli_error(c, "%s: rule '%s': not a state file", path, rn);
			rc = LLM_EXIT_IO;
			goto done;
		}
		const char *key;
		json_t *g;
		json_object_foreach(groups, key, g)
		{
			json_t *labels = json_object_get(g, "labels");
			struct llm_alert a;
			struct llm_diag d;
			if (!json_is_object(labels) || llm_alert_from_json(g, &a, &d)) {
				llm_cli_error(c, "%s: rule '%s', group %s: not an alert state",
					      path, rn, key);
				rc = LLM_EXIT_IO;
				goto done;
			}
			struct entry *e = entry_add(r, key, labels);
			if (!e) {
				llm_cli_error(c, "out of memory");
				rc = LLM_EXIT_IO;
				goto done;
			}
			e->a = a;
			e->empty = json_is_true(json_object_get(g, "empty"));
			json_t *sl = json_object_get(g, "sent_labels"),
			       *sa = json_object_get(g, "sent_annotations");
			e->sent_labels = json_is_object(sl) ? json_deep_copy(sl) : NULL;
			e->sent_annotations = json_is_object(sa) ? json_deep_copy(sa) : NULL;
		}
	}
done:
	json_decref(root);
	return rc;
}

static int state_save(struct llm_cli *c, const char *path, const struct state *s, int64_t now)
{
	json_t *rules = json_object();
	for (size_t i = 0; i < s->n; i++) {
		json_t *groups = json_object();
		for (size_t j = 0; j < s->rules[i].n; j++) {
			const struct entry *e = &s->rules[i].v[j];
			json_t *o = llm_alert_to_json(&e->a);
			json_object_set(o, "labels", e->labels);
			if (e->empty)
				json_object_set_new(o, "empty", json_true());
			if (e->sent_labels)
				json_object_set(o, "sent_labels", e->sent_labels);
			if (e->sent_annotations)
				json_object_set(o, "sent_annotations", e->sent_annotations);
			json_object_set_new(groups, e->key, o);
		}
		if (json_object_size(groups))
			json_object_set_new(rules, s->rules[i].name, groups);
		else
			json_decref(groups);
	}
	char t[40];
	llm_rules_format_time(now, t, sizeof t);
	json_t *root =
	    json_pack("{s:i,s:s,s:o}", "version", STATE_VERSION, "updated", t, "rules", rules);
	struct llm_diag d;
	enum llm_err e = llm_cli_write_json(c, path, root, &d);
	json_decref(root);
	return e ? llm_cli_fail(c, &d) : 0;
}

static int lock_dir(struct llm_cli *c, const char *dir, int64_t timeout_s, int *fd)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/lock", dir);
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0) {
		llm_cli_error(c, "%s: cannot open: %s", path, strerror(errno));
		return LLM_EXIT_IO;
	}
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	bool told = false;
	for (;;) {
		if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			llm_cli_error(c, "%s: cannot lock: %s", path, strerror(errno));
			return LLM_EXIT_IO;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		double waited = (double)(now.tv_sec - start.tv_sec) +
				(double)(now.tv_nsec - start.tv_nsec) / 1e9;
		if (waited >= (double)timeout_s) {
			llm_cli_error(c, "%s: another run holds the lock (waited %" PRId64 " s)",
				      path, timeout_s);
			return LLM_EXIT_IO;
		}
		if (!told && !c->quiet) {
			llm_cli_error(c, "%s: waiting for another run to finish", dir);
			told = true;
		}
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* --- notices --- */

/* Expand {{value}}, {{threshold}}, {{metric}}, {{severity}}, {{rule}}, {{window}} and
 * {{labels.NAME}} in an annotation. */
static char *expand(const char *tpl, const json_t *vars, const json_t *labels)
{
	struct llm_buf b;
	llm_buf_init(&b, 1u << 20);
	const char *p = tpl;
	while (*p) {
		const char *open = strstr(p, "{{");
		const char *close = open ? strstr(open + 2, "}}") : NULL;
		if (!open || !close) {
			llm_buf_puts(&b, p);
			break;
		}
		llm_buf_append(&b, p, (size_t)(open - p));
		char name[128];
		const char *s = open + 2, *e = close;
		while (s < e && *s == ' ')
			s++;
		while (e > s && e[-1] == ' ')
			e--;
		snprintf(name, sizeof name, "%.*s", (int)(e - s), s);
		const char *v = NULL;
		if (!strncmp(name, "labels.", 7))
			v = json_string_value(json_object_get(labels, name + 7));
		else
			v = json_string_value(json_object_get(vars, name));
		if (v)
			llm_buf_puts(&b, v);
		else
			llm_buf_append(&b, open, (size_t)(close + 2 - open)); /* left as written */
		p = close + 2;
	}
	char *out = strdup(b.data ? b.data : "");
	llm_buf_free(&b);
	return out;
}

static void build_alert(const struct llm_rule *r, const struct entry *e, enum llm_rule_level lv,
			bool have, double value, const struct llm_rule_threshold *thr,
			json_t **labels_out, json_t **ann_out)
{
	json_t *labels = json_object();
	json_object_set_new(labels, "alertname", json_string(r->name));
	json_object_set_new(labels, "severity", json_string(llm_rule_level_name(lv)));
	json_object_update(labels, e->labels);
	json_object_update_missing(labels, r->labels);
	char val[64], t[256], cond[300];
	mon_value_text(have, value, val, sizeof val);
	if (!have)
		snprintf(val, sizeof val, "no data");
	llm_rule_threshold_format(thr, t, sizeof t);
	snprintf(cond, sizeof cond, "%s %s", llm_rule_op_name(r->op), t);
	json_t *vars = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "value", val, "threshold", cond,
				 "metric", r->metric, "severity", llm_rule_level_name(lv), "rule",
				 r->name, "window", r->window);
	json_t *ann = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(r->annotations, k, v)
	{
		char *x = expand(json_string_value(v), vars, labels);
		json_object_set_new(ann, k, json_string(x ? x : ""));
		free(x);
	}
	json_object_set_new(ann, "metric", json_string(r->metric));
	json_object_set_new(ann, "value", json_string(val));
	json_object_set_new(ann, "threshold", json_string(cond));
	json_object_set_new(ann, "window", json_string(r->window));
	if (!json_object_get(ann, "summary")) {
		char s[512];
		snprintf(s, sizeof s, "%s is %s (must be %s)", r->metric, val, cond);
		json_object_set_new(ann, "summary", json_string(s));
	}
	json_decref(vars);
	*labels_out = labels;
	*ann_out = ann;
}

static bool note_add(struct notes *ns, bool resolved, json_t *labels, json_t *ann, int64_t starts,
		     int64_t ends)
{
	struct note *nv = realloc(ns->v, (ns->n + 1) * sizeof *nv);
	if (!nv)
		return false;
	ns->v = nv;
	nv[ns->n++] = (struct note){resolved, json_incref(labels), json_incref(ann), starts, ends};
	return true;
}

/* The resolve of what e last fired. */
static bool resolve_note(struct notes *ns, const struct llm_rule *r, const struct entry *e,
			 enum llm_rule_level old, int64_t fired, int64_t now)
{
	json_t *l = e->sent_labels, *an = e->sent_annotations;
	json_t *bl = NULL, *ba = NULL;
	if (!l || !an) {
		build_alert(r, e, old, e->a.have_value, e->a.value, NULL, &bl, &ba);
		l = bl;
		an = ba;
	}
	bool ok = note_add(ns, true, l, an, fired, now);
	json_decref(bl);
	json_decref(ba);
	return ok;
}

static const char *action_name(enum llm_alert_action a)
{
	static const char *const names[] = {NULL, "fire", "renotify", "resolve", "escalate"};
	return names[a];
}

/* Move one entry with its result (NULL: no data at all) and note what to tell. */
static bool step(const struct llm_rule *r, struct entry *e, const struct llm_rule_result *res,
		 int64_t now, struct notes *ns)
{
	enum llm_rule_level old;
	int64_t old_fired;
	enum llm_alert_action act = llm_alert_step(r, &e->a, res, now, &old, &old_fired);
	e->action = action_name(act);
	if (act == LLM_ACTION_NONE)
		return true;
	if (act == LLM_ACTION_RESOLVE || act == LLM_ACTION_ESCALATE) {
		if (!resolve_note(ns, r, e, old, old_fired, now))
			return false;
		json_decref(e->sent_labels);
		json_decref(e->sent_annotations);
		e->sent_labels = e->sent_annotations = NULL;
		if (act == LLM_ACTION_RESOLVE)
			return true;
	}
	const struct llm_rule_threshold *thr = res	      ? res->threshold
					       : r->value.set ? &r->value
							      : &r->critical;
	if (e->a.level == LLM_LEVEL_WARNING && r->warning.set)
		thr = &r->warning;
	else if (e->a.level == LLM_LEVEL_CRITICAL && r->critical.set)
		thr = &r->critical;
	json_t *l, *an;
	build_alert(r, e, e->a.level, e->a.have_value, e->a.value, thr, &l, &an);
	bool ok = note_add(ns, false, l, an, e->a.fired_at, 0);
	json_decref(e->sent_labels);
	json_decref(e->sent_annotations);
	e->sent_labels = l;
	e->sent_annotations = an;
	return ok;
}

/* --- delivery --- */

struct tally {
	size_t sent, delivered, failed, queued;
	json_t *log; /* the report's deliveries */
};

static void deliver(struct llm_cli *c, const struct llm_notify_target *t, const char *body,
		    size_t n, const char *dir, int64_t now, size_t nalerts, struct tally *ty,
		    struct llm_outbox_entry *from)
{
	struct llm_notify_result res = {0};
	struct llm_diag d = {0};
	const char *secret = t->secret_env ? getenv(t->secret_env) : NULL;
	enum llm_err e;
	ty->sent++;
	if (t->secret_env && (!secret || !*secret)) {
		snprintf(res.error, sizeof res.error, "the environment variable %s is not set",
			 t->secret_env);
		llm_diag_set(&d, LLM_ERR_USAGE, NULL, 0, "%s: %s", t->name, res.error);
		e = LLM_ERR_USAGE;
	} else {
		e = llm_notify_post(t, secret, body, n, &res, &d);
	}
	char url[4096];
	llm_notify_endpoint(t, url, sizeof url);
	json_t *o =
	    json_pack("{s:s,s:s,s:b,s:i,s:I,s:I,s:b}", "target", t->name, "url", url, "delivered",
		      !e, "attempts", res.attempts, "http_status", (json_int_t)res.status, "alerts",
		      (json_int_t)nalerts, "from_outbox", from != NULL);
	if (e)
		json_object_set_new(o, "error", json_string(res.error));
	json_array_append_new(ty->log, o);
	if (!e) {
		ty->delivered++;
		if (from && llm_outbox_done(from, true, res.attempts, NULL, &d))
			llm_cli_fail(c, &d);
		return;
	}
	ty->failed++;
	struct llm_diag d2;
	enum llm_err qe = from ? llm_outbox_done(from, false, res.attempts, res.error, &d2)
			       : llm_outbox_put(dir, t, body, n, now, res.attempts, res.error, &d2);
	char msg[LLM_DIAG_MSG_MAX + 64];
	llm_diag_format(&d, msg, sizeof msg);
	if (qe) {
		llm_cli_error(c, "notify %s; and it cannot be kept:", msg);
		llm_cli_fail(c, &d2);
		return;
	}
	ty->queued++;
	llm_cli_error(c, "notify %s; kept in %s/outbox for the next run", msg, dir);
}

static const struct llm_notify_target *target_named(const struct llm_rules *rules, const char *name)
{
	for (size_t i = 0; i < rules->ntargets; i++)
		if (!strcmp(rules->targets[i].name, name))
			return &rules->targets[i];
	return NULL;
}

static void send_outbox(struct llm_cli *c, const struct llm_rules *rules, const char *dir,
			int64_t now, struct tally *ty, int *st)
{
	struct llm_outbox_entry *v = NULL;
	size_t n = 0;
	struct llm_diag d;
	if (llm_outbox_list(dir, &v, &n, &d)) {
		*st = llm_cli_fail(c, &d);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		/* The rules file's target of that name, as it is now (a fixed URL applies). */
		const struct llm_notify_target *t = target_named(rules, v[i].target.name);
		if (!t || t->type != v[i].target.type)
			t = &v[i].target;
		deliver(c, t, v[i].body, v[i].body_len, dir, now, 0, ty, &v[i]);
	}
	llm_outbox_free(v, n);
}

static void send_body(struct llm_cli *c, const struct llm_notify_target *t, json_t *body,
		      const char *dir, int64_t now, size_t nalerts, struct tally *ty)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (!s) {
		llm_cli_error(c, "out of memory");
		ty->failed++;
		return;
	}
	deliver(c, t, s, strlen(s), dir, now, nalerts, ty, NULL);
	free(s);
}

/* The notices of this run, and for Alertmanager every alert still firing too: it forgets an
 * alert that is not sent again before its endsAt, as it would forget Prometheus's. */
static void send_all(struct llm_cli *c, const struct llm_rules *rules, const struct state *s,
		     const struct notes *ns, const char *dir, int64_t now, struct tally *ty)
{
	for (size_t ti = 0; ti < rules->ntargets; ti++) {
		const struct llm_notify_target *t = &rules->targets[ti];
		if (t->type != LLM_NOTIFY_ALERTMANAGER) {
			for (size_t i = 0; i < ns->n; i++) {
				struct llm_notice one = {ns->v[i].resolved, ns->v[i].labels,
							 ns->v[i].annotations, ns->v[i].starts_at,
							 ns->v[i].ends_at};
				json_t *b = llm_notify_body(t->type, &one, 1, rules->external_url);
				send_body(c, t, b, dir, now, 1, ty);
				json_decref(b);
			}
			continue;
		}
		size_t cap = ns->n;
		for (size_t i = 0; i < s->n; i++)
			cap += s->rules[i].n;
		struct llm_notice *v = calloc(cap ? cap : 1, sizeof *v);
		size_t n = 0;
		if (!v) {
			llm_cli_error(c, "out of memory");
			ty->failed++;
			continue;
		}
		for (size_t i = 0; i < ns->n; i++)
			v[n++] = (struct llm_notice){ns->v[i].resolved, ns->v[i].labels,
						     ns->v[i].annotations, ns->v[i].starts_at,
						     ns->v[i].resolved ? ns->v[i].ends_at
								       : now + t->ttl_ms};
		for (size_t i = 0; i < s->n; i++)
			for (size_t j = 0; j < s->rules[i].n; j++) {
				const struct entry *e = &s->rules[i].v[j];
				/* Firing, and not already in this run's notices. */
				if (e->a.state != LLM_ALERT_FIRING || !e->sent_labels || e->action)
					continue;
				v[n++] =
				    (struct llm_notice){false, e->sent_labels, e->sent_annotations,
							e->a.fired_at, now + t->ttl_ms};
			}
		if (n) {
			json_t *b = llm_notify_body(t->type, v, n, rules->external_url);
			send_body(c, t, b, dir, now, n, ty);
			json_decref(b);
		}
		free(v);
	}
}

/* --- the run --- */

static int evaluate(struct llm_cli *c, const struct llm_rules *rules, const struct mon_eval *ev,
		    struct state *s, struct notes *ns)
{
	int64_t now = ev->now_ms;
	for (size_t i = 0; i < ev->nruns; i++) {
		const struct mon_rule_run *run = &ev->runs[i];
		const struct llm_rule *r = run->rule;
		struct rule_state *rs = rule_state(s, r->name, true);
		if (!rs)
			goto nomem;
		for (size_t j = 0; j < rs->n; j++)
			rs->v[j].seen = false;
		bool have_rows = false;
		for (size_t j = 0; j < run->ngroups; j++)
			have_rows |= !run->groups[j].empty;
		for (size_t j = 0; j < run->ngroups; j++) {
			const struct mon_group *g = &run->groups[j];
			struct entry *e = NULL;
			for (size_t k = 0; k < rs->n && !e; k++)
				if (!strcmp(rs->v[k].key, g->key))
					e = &rs->v[k];
			if (!e && !(e = entry_add(rs, g->key, g->labels)))
				goto nomem;
			e->seen = true;
			e->empty = g->empty;
			if (!step(r, e, &g->res, now, ns))
				goto nomem;
		}
		for (size_t j = 0; j < rs->n; j++) {
			struct entry *e = &rs->v[j];
			if (e->seen)
				continue;
			e->seen = true;
			if (e->empty && have_rows) {
				/* The rule's no-data stand-in, and data is back: it holds. */
				struct llm_rule_result ok = {.level = LLM_LEVEL_OK};
				if (!step(r, e, &ok, now, ns))
					goto nomem;
			} else if (!step(r, e, NULL, now, ns)) {
				goto nomem;
			}
		}
		/* Forget what is quiet and has nothing to remember. */
		size_t w = 0;
		for (size_t j = 0; j < rs->n; j++) {
			struct entry *e = &rs->v[j];
			if (e->a.state == LLM_ALERT_INACTIVE && !e->action) {
				free(e->key);
				json_decref(e->labels);
				json_decref(e->sent_labels);
				json_decref(e->sent_annotations);
				continue;
			}
			rs->v[w++] = *e;
		}
		rs->n = w;
	}
	/* Rules gone from the file: what they had firing is resolved, not left hanging. */
	for (size_t i = 0; i < s->n; i++) {
		struct rule_state *rs = &s->rules[i];
		bool present = false;
		for (size_t k = 0; k < rules->nrules && !present; k++)
			present = !strcmp(rules->rules[k].name, rs->name);
		if (present)
			continue;
		for (size_t j = 0; j < rs->n; j++) {
			struct entry *e = &rs->v[j];
			if (e->a.state == LLM_ALERT_FIRING && e->sent_labels &&
			    !note_add(ns, true, e->sent_labels, e->sent_annotations, e->a.fired_at,
				      now))
				goto nomem;
			free(e->key);
			json_decref(e->labels);
			json_decref(e->sent_labels);
			json_decref(e->sent_annotations);
		}
		rs->n = 0;
	}
	return 0;
nomem:
	llm_cli_error(c, "out of memory");
	return LLM_EXIT_IO;
}

static bool put(struct llm_cli *c, const char *s)
{
	return llm_cli_write(c, s, strlen(s));
}

static bool table(struct llm_cli *c, const struct state *s, const struct notes *ns, bool dry)
{
	char line[2048];
	snprintf(line, sizeof line, "%-24s  %-32s  %-8s  %-8s  %-12s  %s\n", "RULE", "GROUP",
		 "STATE", "LEVEL", "VALUE", "NOTIFY");
	if (!put(c, line))
		return false;
	for (size_t i = 0; i < s->n; i++)
		for (size_t j = 0; j < s->rules[i].n; j++) {
			const struct entry *e = &s->rules[i].v[j];
			char gt[512], val[64];
			mon_group_text(e->labels, gt, sizeof gt);
			mon_value_text(e->a.have_value, e->a.value, val, sizeof val);
			snprintf(line, sizeof line, "%-24s  %-32s  %-8s  %-8s  %-12s  %s\n",
				 s->rules[i].name, gt, llm_alert_state_name(e->a.state),
				 e->a.state == LLM_ALERT_INACTIVE ? "-"
								  : llm_rule_level_name(e->a.level),
				 val, e->action ? e->action : "-");
			if (!put(c, line))
				return false;
		}
	if (dry) {
		for (size_t i = 0; i < ns->n; i++) {
			char *b = json_dumps(ns->v[i].labels, JSON_COMPACT | JSON_SORT_KEYS);
			snprintf(line, sizeof line, "would notify: %s %s\n",
				 ns->v[i].resolved ? "resolved" : "firing", b ? b : "");
			free(b);
			if (!put(c, line))
				return false;
		}
	}
	return true;
}

static json_t *report(const struct state *s, const struct mon_eval *ev, const struct tally *ty,
		      const char *dir)
{
	json_t *alerts = json_array();
	for (size_t i = 0; i < s->n; i++)
		for (size_t j = 0; j < s->rules[i].n; j++) {
			const struct entry *e = &s->rules[i].v[j];
			json_t *o = llm_alert_to_json(&e->a);
			json_object_set_new(o, "rule", json_string(s->rules[i].name));
			json_object_set(o, "labels", e->labels);
			json_object_set_new(o, "action",
					    e->action ? json_string(e->action) : json_null());
			json_array_append_new(alerts, o);
		}
	char now[40];
	llm_rules_format_time(ev->now_ms, now, sizeof now);
	return json_pack("{s:s,s:s,s:s,s:o,s:O,s:{s:I,s:I,s:I,s:I},s:O}", "tool",
			 "llm-monitor alert", "now", now, "state", dir, "alerts", alerts,
			 "deliveries", ty->log, "delivery", "sent", (json_int_t)ty->sent,
			 "delivered", (json_int_t)ty->delivered, "failed", (json_int_t)ty->failed,
			 "kept", (json_int_t)ty->queued, "input", ev->input);
}

static int run_alert(struct llm_cli *c)
{
	struct llm_args *args = &c->args;
	const char *dir = llm_args_str(args, "state");
	bool dry = llm_args_flag(args, "dry-run");
	if (!dir)
		return llm_cli_usage(c, "--state DIR is required");
	struct llm_rules *rules = NULL;
	int st = mon_rules_load(c, &rules);
	if (st)
		return st;
	for (size_t i = 0; i < rules->ntargets && !dry; i++) {
		const char *env = rules->targets[i].secret_env;
		if (env && (!getenv(env) || !*getenv(env))) {
			llm_cli_error(
			    c, "%s: notify[%zu] (%s): the environment variable %s is not set",
			    rules->path, i, rules->targets[i].name, env);
			llm_rules_free(rules);
			return LLM_EXIT_USAGE;
		}
	}
	if (!dry && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		llm_cli_error(c, "%s: cannot create: %s", dir, strerror(errno));
		llm_rules_free(rules);
		return LLM_EXIT_IO;
	}
	int lockfd = -1;
	struct state s = {0};
	struct notes ns = {0};
	struct mon_eval ev = {0};
	struct tally ty = {0, 0, 0, 0, json_array()};
	char spath[4200];
	snprintf(spath, sizeof spath, "%s/state.json", dir);
	if (!dry && (st = lock_dir(c, dir, llm_args_int(args, "lock-timeout"), &lockfd)))
		goto done;
	if ((st = state_load(c, spath, &s)))
		goto done;
	if ((st = mon_eval_run(c, rules, false, &ev)))
		goto done;
	if ((st = evaluate(c, rules, &ev, &s, &ns)))
		goto done;
	if (!dry) {
		/* What failed before goes first: a resolve must not overtake its firing. */
		send_outbox(c, rules, dir, ev.now_ms, &ty, &st);
		if (st)
			goto done;
		send_all(c, rules, &s, &ns, dir, ev.now_ms, &ty);
		/* The state moves even when a delivery failed: the outbox holds the message. */
		if ((st = state_save(c, spath, &s, ev.now_ms)))
			goto done;
	}
	if (!table(c, &s, &ns, dry)) {
		st = LLM_EXIT_IO;
		goto done;
	}
	const char *rp = llm_args_str(args, "report");
	if (rp) {
		json_t *rep = report(&s, &ev, &ty, dir);
		struct llm_diag d;
		if (llm_cli_write_json(c, rp, rep, &d))
			st = llm_cli_fail(c, &d);
		json_decref(rep);
		if (st)
			goto done;
	}
	size_t firing = 0;
	for (size_t i = 0; i < s.n; i++)
		for (size_t j = 0; j < s.rules[i].n; j++)
			firing += s.rules[i].v[j].a.state == LLM_ALERT_FIRING;
	if (!c->quiet)
		fprintf(stderr,
			"llm-monitor: alert: %zu firing, %zu notification%s this run, %zu "
			"deliver%s: %zu delivered, %zu failed\n",
			firing, ns.n, ns.n == 1 ? "" : "s", ty.sent, ty.sent == 1 ? "y" : "ies",
			ty.delivered, ty.failed);
	if (ty.failed)
		st = LLM_EXIT_IO;
	else if (firing && llm_args_flag(args, "fail-on-firing"))
		st = LLM_EXIT_NEGATIVE;
done:
	if (lockfd >= 0)
		close(lockfd); /* and the lock with it */
	json_decref(ty.log);
	notes_free(&ns);
	mon_eval_free(&ev);
	state_free(&s);
	llm_rules_free(rules);
	return st;
}

static const struct llm_opt alert_opts[] = {
    {"state", 's', LLM_OPT_STRING, "DIR",
     "the state folder: alert states, lock, outbox (created when missing)"},
    {"dry-run", 'n', LLM_OPT_FLAG, NULL,
     "evaluate and show what would be notified; deliver nothing, change nothing"},
    {"fail-on-firing", 0, LLM_OPT_FLAG, NULL, "exit 1 when an alert is firing after the run"},
    {"lock-timeout", 0, LLM_OPT_INT, "SECONDS", "how long to wait for another run's lock", "60",
     .min = 0, .max = 86400},
    {"report", 0, LLM_OPT_STRING, "FILE", "write the run's alerts and deliveries as JSON"},
    {0},
};

const struct llm_verb llm_monitor_verb_alert = {
    "alert",
    "evaluate rules with memory: notify on firing and resolving, by webhook",
    "--rules FILE --state DIR [OPTIONS] [FILE...]",
    "Evaluates the rules as check does, at the wall clock (or --now), and keeps each (rule,\n"
    "group)'s alert state in DIR: pending while the condition fails for less than its \"for\",\n"
    "then firing; the rules file's receivers are told once when an alert fires, again after\n"
    "\"renotify\", and when it resolves, however often the command runs.  Deliveries are\n"
    "signed, retried with backoff, and kept in DIR/outbox when they still fail, to go first\n"
    "next run.  Status 0 when every delivery went through (alerts firing or not), 1 with\n"
    "--fail-on-firing when an alert fires, 2 for a usage error or a bad rules file, 3 when a\n"
    "delivery failed after its retries or another I/O failure.",
    {alert_opts, mon_opts_rules, mon_opts_fields, llm_cli_opts_input, llm_cli_opts_on_error,
     llm_cli_opts_base},
    run_alert,
};
