/* Run folders: the record of one training run, written by llm-tune train and sweep and read
 * by llm-tune runs.
 *
 * A run is a folder under a runs directory (by default $LLMOPS_HOME/runs), named by its id:
 *
 *     RUNS/20260314-101502-a3f9c1/
 *         meta.json      what ran, where, on which data, and how it ended (rewritten atomically)
 *         params.json    the hyperparameters, one JSON object (written atomically)
 *         metrics.jsonl  one JSON object per line, appended as training goes
 *
 * meta.json: {"format":1, "id", "created" and "finished" (RFC 3339, UTC), "status"
 * (running, finished, failed, interrupted), "llmops_version", "git_commit" (when the build knew
 * it), "hostname", "command" (when given), "data": [{"path","bytes","sha256"}], and the summary
 * as of the last sync: "steps", "tokens", "train_loss", "val_loss", "best_step",
 * "best_val_loss", "elapsed_s"}.
 *
 * metrics.jsonl: each line an object with a numeric "step" and any numbers the trainer has:
 * tokens, epoch, train_loss, val_loss, lr, grad_norm, tokens_per_s, elapsed_s.  A line with
 * val_loss may stand alone for an evaluation.  Lines are flushed as written and synced to
 * disk at each llm_run_sync, so a crash loses at most a torn last line; the reader skips an
 * unreadable line with a warning.  When a resumed run logs a step lower than one already
 * logged, the lines from that step on are superseded by the new ones.
 *
 * The folder is claimed with mkdir, so two writers never share one; a folder without a
 * meta.json is not (yet) a run. */
#ifndef LLM_TUNE_RUN_H
#define LLM_TUNE_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "core/err.h"

#define LLM_RUN_FORMAT 1

enum llm_run_status {
	LLM_RUN_RUNNING,
	LLM_RUN_FINISHED,
	LLM_RUN_FAILED,
	LLM_RUN_INTERRUPTED,
	LLM_RUN_UNKNOWN, /* meta.json names a status this version does not know */
};

/* "running", "finished", ...; and back (false when s is none of them). */
const char *llm_run_status_name(enum llm_run_status s);
bool llm_run_status_parse(const char *s, enum llm_run_status *out);

/* What a run's metrics add up to; a number is NAN (a step -1) when no line had it. */
struct llm_run_summary {
	size_t points;	      /* metrics lines kept */
	int64_t steps;	      /* the last step */
	double tokens;	      /* the most tokens seen */
	double train_loss;    /* the last train_loss */
	double val_loss;      /* the last val_loss */
	double best_val_loss; /* the lowest val_loss */
	int64_t best_step;    /* its step */
	double elapsed_s;     /* the largest elapsed_s */
};

/* A bad metrics line that was skipped, for the program to report. */
struct llm_run_warning {
	long line;
	char msg[128];
};

struct llm_run {
	char *dir;	 /* the run folder */
	const char *id;	 /* its name (the last component of dir) */
	json_t *meta;	 /* meta.json */
	json_t *params;	 /* params.json; an empty object until set */
	json_t *metrics; /* (read runs) the metrics lines, an array of objects in step order */
	struct llm_run_summary sum;
	enum llm_run_status status;
	int64_t created;		  /* seconds since the epoch; 0 when unknown */
	int64_t finished;		  /* 0 while running or unknown */
	struct llm_run_warning *warnings; /* (read runs) skipped metrics lines */
	size_t nwarnings;
	FILE *log; /* (written runs) metrics.jsonl, open for appending */
};

/* What a new run records beyond its parameters. */
struct llm_run_spec {
	const char *runs_dir; /* created (with parents) when missing */
	const char *name;     /* the id to use, or NULL for UTC time and a random suffix */
	char *const *data;    /* data files: each is digested with SHA-256 into meta.json */
	size_t ndata;
	const char *command; /* the command line, for meta.json; may be NULL */
};

/* The default runs directory: $LLMOPS_HOME/runs, LLMOPS_HOME defaulting to ~/.llmops.  Returns
 * a malloc'd string, or NULL when out of memory. */
char *llm_run_default_dir(void);

/* --- writing a run (llm-tune train, sweep) ------------------------------------------------- */

/* Claim a new run folder, digest the data files and write meta.json (status running) and an
 * empty metrics.jsonl.  A given name that exists already is LLM_ERR_USAGE; a name with a
 * slash or starting with a dot is LLM_ERR_USAGE too.  On failure nothing is left behind. */
enum llm_err llm_run_create(struct llm_run **out, const struct llm_run_spec *spec,
			    struct llm_diag *d);
/* Reopen a run to go on writing it (a resumed training): a torn last metrics line is cut
 * off and the status set back to running. */
enum llm_err llm_run_resume(struct llm_run **out, const char *runs_dir, const char *ref,
			    struct llm_diag *d);
/* Write params.json (an object; the run keeps its own reference). */
enum llm_err llm_run_set_params(struct llm_run *r, json_t *params, struct llm_diag *d);
/* Append one metrics line: an object with a numeric "step".  The line is flushed, not synced. */
enum llm_err llm_run_log_metrics(struct llm_run *r, json_t *metrics, struct llm_diag *d);
/* At a checkpoint: sync metrics.jsonl to disk and rewrite meta.json with the summary. */
enum llm_err llm_run_sync(struct llm_run *r, struct llm_diag *d);
/* Record how the run ended (finished, failed or interrupted), sync and close the log. */
enum llm_err llm_run_finish(struct llm_run *r, enum llm_run_status status, struct llm_diag *d);

/* --- reading runs (llm-tune runs) ---------------------------------------------------------- */

/* Find a run by REF: a path to a run folder (anything with a slash, or "."), an id in
 * runs_dir, or a prefix of exactly one id.  *path is malloc'd.  No such run is
 * LLM_ERR_NOT_FOUND; a prefix of several is LLM_ERR_USAGE, the message listing them. */
enum llm_err llm_run_resolve(const char *runs_dir, const char *ref, char **path,
			     struct llm_diag *d);
/* Read a run: meta.json, params.json and every metrics line.  A malformed meta.json or
 * params.json is LLM_ERR_JSON (or LLM_ERR_TYPE) naming the file; bad metrics lines are
 * skipped into r->warnings. */
enum llm_err llm_run_open(struct llm_run **out, const char *runs_dir, const char *ref,
			  struct llm_diag *d);
/* The ids of the runs in runs_dir (folders with a meta.json), sorted; a missing runs_dir has
 * none.  Free with llm_run_list_free. */
enum llm_err llm_run_list(const char *runs_dir, char ***ids, size_t *n, struct llm_diag *d);
void llm_run_list_free(char **ids, size_t n);

/* Close the log if open and free everything.  A run not finished stays "running" on disk,
 * which is what a crash leaves too. */
void llm_run_close(struct llm_run *r);

/* Seconds since the epoch from an RFC 3339 UTC time ("2026-03-14T10:15:02Z"); -1 when
 * malformed. */
int64_t llm_run_parse_time(const char *s);

#endif
