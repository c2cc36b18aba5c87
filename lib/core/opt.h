/* Option tables: one table of records per program or verb drives command-line parsing, the
 * --help text, the LLMOPS_<TOOL>_<OPTION> environment variables and the list of options that
 * the man-page test checks.  Values are checked against their type while parsing, so the
 * getters below cannot fail. */
#ifndef LLM_CORE_OPT_H
#define LLM_CORE_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

enum llm_opt_type {
	LLM_OPT_FLAG,   /* no argument */
	LLM_OPT_STRING, /* any text */
	LLM_OPT_INT,    /* a decimal integer (range checked against min/max) */
	LLM_OPT_SIZE,   /* a byte count with an optional K, M, G or T suffix (powers of 1024) */
	LLM_OPT_DOUBLE, /* a decimal number (range checked against min/max) */
	LLM_OPT_CHOICE, /* one of the '|'-separated words in choices */
};

struct llm_opt {
	const char *name; /* long name, without the dashes; NULL ends a table */
	char short_name;  /* 0 for none */
	enum llm_opt_type type;
	const char *arg;     /* the argument's name in --help ("N", "FILE") */
	const char *help;    /* one line, lower case, no full stop */
	const char *def;     /* the default, as text, or NULL */
	const char *choices; /* for LLM_OPT_CHOICE: "fail|skip|keep" */
	double min, max;     /* for INT and DOUBLE when min < max */
	bool repeat;         /* may be given more than once; every value is kept */
	bool no_env;         /* never read from the environment (--help, --version) */
};

/* The values of one parse.  Tables are searched in order; an option's values are those of
 * the command line when given there, else those of its environment variable, else the
 * default. */
struct llm_args {
	const struct llm_opt *const *tables;
	size_t nopts;
	const struct llm_opt **opts; /* flattened, nopts long */
	char ***vals;                /* per option: its values */
	size_t *nvals;
	char **operands;
	size_t noperands;
};

/* Parse argv (without the program and verb words) against tables, a NULL-terminated array of
 * tables.  tool names the environment prefix: "prep" reads LLMOPS_PREP_<OPTION>.  On a usage
 * error returns LLM_ERR_USAGE with diag's message set. */
enum llm_err llm_opt_parse(const struct llm_opt *const *tables, const char *tool, int argc,
			   char **argv, struct llm_args *args, struct llm_diag *diag);
void llm_args_free(struct llm_args *args);

bool llm_args_flag(const struct llm_args *a, const char *name);
/* The last value, or the default; NULL when neither. */
const char *llm_args_str(const struct llm_args *a, const char *name);
/* All values given, in order; *n is 0 when the option was not given (the default, if any, is
 * llm_args_str's). */
char *const *llm_args_strs(const struct llm_args *a, const char *name, size_t *n);
/* Every value of an option split at commas, so "--x a,b" and "--x a --x b" mean the same; the
 * default's items when the option was not given.  Empty items are dropped.  *items is
 * NULL-terminated; free it with llm_strv_free. */
enum llm_err llm_args_list(const struct llm_args *a, const char *name, char ***items, size_t *n);
void llm_strv_free(char **v);
int64_t llm_args_int(const struct llm_args *a, const char *name);
uint64_t llm_args_size(const struct llm_args *a, const char *name);
double llm_args_double(const struct llm_args *a, const char *name);
/* True when the user gave the option (command line or environment). */
bool llm_args_given(const struct llm_args *a, const char *name);

/* Parse a size such as "64M"; false when malformed. */
bool llm_parse_size(const char *s, uint64_t *out);

/* The environment variable of an option: LLMOPS_PREP_MAX_RECORD_BYTES. */
void llm_opt_env_name(const char *tool, const char *opt, char *out, size_t outsz);

/* Append the option part of --help for one table to out. */
enum llm_err llm_opt_help(const struct llm_opt *table, struct llm_buf *out);

#endif
