/* llm-serve's model refresh: a registry:NAME@ALIAS model (or registry:NAME, the latest
 * version) follows its alias while the server runs.
 *
 * A thread of its own resolves the reference again when asked (SIGHUP) and every --watch
 * seconds.  When it names another version than the one answering, that version is loaded
 * beside the old one (serve_local_switch: a second worker with a backend of its own), and only
 * once it is in do new requests go to it; the old model finishes the requests it took, then
 * closes.  So a promotion drops and fails nothing.  A version that cannot be loaded (gone,
 * damaged, not a model) leaves the old one serving, with a warning on stderr; --watch does not
 * try the same artifact again until the alias moves, while a SIGHUP does.
 *
 * The version is pinned when it is resolved: the backend opens registry:NAME@VERSION, so what
 * /v1/models and the log report is what answers, even when the alias moves again during the
 * load.  Resolving reads the registry's records only; the artifact is fetched, verified and
 * unpacked by the load (lib/artifact/resolve.h), on the new worker. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "artifact/registry.h"
#include "serve/serve.h"

/* A diagnostic as llm_diag_format writes it. */
#define MSG_MAX (LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32)

struct serve_refresh {
	struct serve *S;
	char *ref;	/* the model as given */
	double watch_s; /* 0: on SIGHUP only */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool poked, stop; /* under mu */
	/* The thread's own. */
	struct serve_version cur; /* what answers */
	char *failed;		  /* the artifact that did not load last; NULL: none */
	char said[MSG_MAX];	  /* the last failure to resolve, said once under --watch */
};

void serve_version_clear(struct serve_version *v)
{
	free(v->ref);
	free(v->root);
	free(v->version);
	free(v->artifact);
	memset(v, 0, sizeof *v);
}

static char *join(const char *a, const char *sep, const char *b)
{
	size_t n = strlen(a) + strlen(sep) + strlen(b) + 1;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s%s%s", a, sep, b);
	return s;
}

/* Whether ref is a registry reference whose version can change: no '@', an alias, or
 * "latest" (a version can start with no letter, an alias must). */
static bool moves(const char *ref)
{
	if (strncmp(ref, "registry:", 9) != 0)
		return false;
	const char *at = strrchr(ref + 9, '@');
	return !at || !llm_registry_version_ok(at + 1);
}

/* The version ref names now, from the registry's records. */
static enum llm_err resolve(const char *ref, struct serve_version *v, struct llm_diag *d)
{
	char *name = NULL, *at = NULL, *version = NULL;
	struct llm_registry *r = NULL;
	struct llm_registry_entry ent = {0};
	memset(v, 0, sizeof *v);
	enum llm_err e = llm_registry_split_ref(ref + 9, &name, &at, d);
	if (!e && !(e = llm_registry_open(NULL, &r, d)) &&
	    !(e = llm_registry_resolve(r, name, at, &version, d)) &&
	    !(e = llm_registry_show(r, name, version, &ent, d))) {
		v->root = join(name, "@", version);
		v->ref = v->root ? join("registry:", "", v->root) : NULL;
		v->version = strdup(version);
		v->artifact = strdup(ent.digest);
		if (!v->ref || !v->version || !v->artifact) {
			serve_version_clear(v);
			e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		}
	}
	llm_registry_entry_clear(&ent);
	llm_registry_close(r);
	free(version);
	free(name);
	return e;
}

static bool same(const struct serve_version *a, const struct serve_version *b)
{
	return !strcmp(a->version, b->version) && !strcmp(a->artifact, b->artifact);
}

/* Resolve the alias again and switch when it names another version.  asked: a SIGHUP (say
 * everything, try again what failed) rather than a --watch round. */
static void check(struct serve_refresh *F, bool asked)
{
	struct serve *S = F->S;
	struct llm_cli *c = S->c;
	struct serve_version v;
	struct llm_diag d;
	if (resolve(F->ref, &v, &d)) {
		char msg[MSG_MAX];
		llm_diag_format(&d, msg, sizeof msg);
		if (asked || strcmp(msg, F->said) != 0)
			llm_cli_error(c, "warning: %s: %s; still serving %s", F->ref, msg,
				      F->cur.root);
		snprintf(F->said, sizeof F->said, "%s", msg);
		return;
	}
	F->said[0] = '\0';
	if (same(&v, &F->cur) || (!asked && F->failed && !strcmp(F->failed, v.artifact))) {
		if (asked && same(&v, &F->cur) && !c->quiet)
			llm_cli_error(c, "%s is still %s", F->ref, F->cur.root);
		serve_version_clear(&v);
		return;
	}
	if (!c->quiet)
		llm_cli_error(c, "%s moved to %s (%s): loading it beside %s", F->ref, v.root,
			      v.artifact, F->cur.root);
	if (serve_local_switch(S, &v, &d)) {
		char msg[MSG_MAX];
		llm_diag_format(&d, msg, sizeof msg);
		llm_cli_error(c, "warning: cannot serve %s: %s; still serving %s", v.root, msg,
			      F->cur.root);
		free(F->failed);
		F->failed = v.artifact;
		v.artifact = NULL;
		serve_version_clear(&v);
		return;
	}
	if (!c->quiet)
		llm_cli_error(c, "now serving %s (%s)", v.root, v.artifact);
	free(F->failed);
	F->failed = NULL;
	serve_version_clear(&F->cur);
	F->cur = v;
}

/* The monotonic clock s seconds from now (the condition variable runs on it). */
static void deadline(struct timespec *ts, double s)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	long ns = ts->tv_nsec + (long)((s - (double)(time_t)s) * 1e9);
	ts->tv_sec += (time_t)s + ns / 1000000000L;
	ts->tv_nsec = ns % 1000000000L;
}

static bool reached(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void *watch(void *arg)
{
	struct serve_refresh *F = arg;
	struct serve *S = F->S;
	struct timespec next;
	deadline(&next, F->watch_s);
	pthread_mutex_lock(&F->mu);
	while (!F->stop) {
		/* No switch while the first model loads or the server drains. */
		bool ready = atomic_load(&S->ready) && !atomic_load(&S->draining);
		bool round = F->watch_s > 0 && reached(&next);
		if (ready && (F->poked || round)) {
			bool asked = F->poked;
			F->poked = false;
			pthread_mutex_unlock(&F->mu);
			check(F, asked);
			deadline(&next, F->watch_s);
			pthread_mutex_lock(&F->mu);
			continue;
		}
		if (!ready) {
			/* Nothing wakes us when the first model is in: look again soon. */
			struct timespec soon;
			deadline(&soon, 0.1);
			pthread_cond_timedwait(&F->cond, &F->mu, &soon);
		} else if (F->watch_s > 0) {
			pthread_cond_timedwait(&F->cond, &F->mu, &next);
		} else {
			pthread_cond_wait(&F->cond, &F->mu);
		}
	}
	pthread_mutex_unlock(&F->mu);
	return NULL;
}

int serve_refresh_start(struct serve *S, struct serve_version *v)
{
	struct llm_cli *c = S->c;
	const char *ref = llm_args_str(&c->args, "model");
	double watch_s = llm_args_double(&c->args, "watch");
	memset(v, 0, sizeof *v);
	if (!moves(ref) && watch_s > 0)
		return llm_cli_usage(c, "--watch needs a model that can move: "
					"registry:NAME@ALIAS or registry:NAME");
	if (strncmp(ref, "registry:", 9) != 0)
		return 0;
	/* A pinned version too, so that it is reported as such. */
	struct llm_diag d;
	if (resolve(ref, v, &d))
		return llm_cli_fail(c, &d);
	if (!moves(ref))
		return 0;
	struct serve_refresh *F = calloc(1, sizeof *F);
	if (F) {
		F->S = S;
		F->watch_s = watch_s;
		F->ref = strdup(ref);
		F->cur.ref = strdup(v->ref);
		F->cur.root = strdup(v->root);
		F->cur.version = strdup(v->version);
		F->cur.artifact = strdup(v->artifact);
	}
	if (!F || !F->ref || !F->cur.ref || !F->cur.root || !F->cur.version || !F->cur.artifact) {
		if (F) {
			serve_version_clear(&F->cur);
			free(F->ref);
			free(F);
		}
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	pthread_mutex_init(&F->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&F->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&F->thread, NULL, watch, F)) {
		pthread_cond_destroy(&F->cond);
		pthread_mutex_destroy(&F->mu);
		serve_version_clear(&F->cur);
		free(F->ref);
		free(F);
		llm_cli_error(c, "cannot start the refresh thread");
		return LLM_EXIT_IO;
	}
	S->refresh = F;
	return 0;
}

void serve_refresh_poke(struct serve *S)
{
	struct serve_refresh *F = S->refresh;
	if (!F)
		return;
	pthread_mutex_lock(&F->mu);
	F->poked = true;
	pthread_cond_signal(&F->cond);
	pthread_mutex_unlock(&F->mu);
}

void serve_refresh_stop(struct serve *S)
{
	struct serve_refresh *F = S->refresh;
	if (!F)
		return;
	pthread_mutex_lock(&F->mu);
	F->stop = true;
	pthread_cond_signal(&F->cond);
	pthread_mutex_unlock(&F->mu);
	pthread_join(F->thread, NULL);
	pthread_cond_destroy(&F->cond);
	pthread_mutex_destroy(&F->mu);
	serve_version_clear(&F->cur);
	free(F->failed);
	free(F->ref);
	free(F);
	S->refresh = NULL;
}
