/* Hyperparameter search spaces: what llm-tune sweep reads from space.json, and the trials it
 * draws from one.  Pure: no files are run and nothing is printed; the program turns a trial into
 * an `llm-tune train` command line.
 *
 * space.json is one object:
 *
 *     {"method": "grid" | "random",
 *      "params": {"lr": [0.001, 0.003],                         a list of values
 *                 "warmup": {"values": [0, 10]},                 the same, spelled out
 *                 "batch-size": {"min": 4, "max": 16},           a range (random only)
 *                 "weight-decay": {"min": 1e-4, "max": 0.1, "log": true}},
 *      "fixed": {"steps": 100, "merge": true}}
 *
 * Names are the options of the training command (given as an option table); a name that is
 * not one of them, or one the sweep sets itself (see llm_sweep_reserved), is LLM_ERR_USAGE
 * naming it.  Values are numbers, strings or, for a flag, true or false; they are kept as the
 * text the command line will carry and are not range-checked here, so that a value the trainer
 * refuses fails that trial only.
 *
 * A grid is the cartesian product of the lists in file order, the first parameter varying
 * slowest (as Python's itertools.product).  A random trial draws every parameter in file order
 * from one seeded stream: a list uniformly, a range uniformly or, with "log": true,
 * log-uniformly; an integer option's draw is rounded to an integer in the range, a decimal
 * one's to 4 significant digits (or kept whole when rounding would leave the range). */
#ifndef LLM_TUNE_SWEEP_H
#define LLM_TUNE_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/opt.h"

enum llm_sweep_method {
	LLM_SWEEP_GRID,
	LLM_SWEEP_RANDOM,
};

struct llm_sweep_param {
	char *name;		   /* the option, without dashes */
	const struct llm_opt *opt; /* its record in the training command's table */
	char **values;		   /* a list: its values as command-line text */
	size_t nvalues;		   /* 0 for a range */
	double min, max;	   /* a range */
	bool log;		   /* log-uniform */
};

struct llm_sweep_space {
	enum llm_sweep_method method;
	struct llm_sweep_param *params; /* in file order */
	size_t nparams;
	struct llm_sweep_param *fixed; /* one value each */
	size_t nfixed;
};

/* The trials drawn from a space: values[t * nparams + p] is parameter p of trial t. */
struct llm_sweep_trials {
	size_t n;
	size_t nparams;
	char **values;
};

/* Options of the training command that the sweep sets per trial, so a space may not: NULL
 * when name is not one of them, else a short reason. */
const char *llm_sweep_reserved(const char *name);

/* Parse space.json text against table (the training command's options, {0}-terminated).
 * file names the source in diagnostics.  Malformed JSON is LLM_ERR_JSON; a wrong shape or
 * type LLM_ERR_TYPE; an unknown or reserved name, a range in a grid, or an empty list
 * LLM_ERR_USAGE. */
enum llm_err llm_sweep_space_parse(const char *text, size_t n, const char *file,
				   const struct llm_opt *table, struct llm_sweep_space *s,
				   struct llm_diag *d);
/* The same, reading the file at path. */
enum llm_err llm_sweep_space_load(const char *path, const struct llm_opt *table,
				  struct llm_sweep_space *s, struct llm_diag *d);
void llm_sweep_space_free(struct llm_sweep_space *s);

/* The number of points of the grid (the product of the list lengths), UINT64_MAX when it
 * overflows; for a random space, 0. */
uint64_t llm_sweep_grid_size(const struct llm_sweep_space *s);

/* Draw n trials: a grid's first n points (n no more than the grid's size), or n random
 * trials from seed.  The same space, n and seed give the same trials. */
enum llm_err llm_sweep_trials_make(const struct llm_sweep_space *s, size_t n, uint64_t seed,
				   struct llm_sweep_trials *out, struct llm_diag *d);
void llm_sweep_trials_free(struct llm_sweep_trials *t);

/* Whether parameter p takes more than one value among the trials (the leaderboard's
 * columns). */
bool llm_sweep_trials_vary(const struct llm_sweep_trials *t, size_t p);

#endif
