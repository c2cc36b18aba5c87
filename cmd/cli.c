#include "config.h"

#include "cli.h"

#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/atomic.h"

#define OUT_FLUSH_AT (256u << 10)

const struct llm_opt llm_cli_opts_base[] = {
	{"help", 'h', LLM_OPT_FLAG, NULL, "print this help and exit", .no_env = true},
	{"version", 0, LLM_OPT_FLAG, NULL, "print the version and exit", .no_env = true},
	{"quiet", 'q', LLM_OPT_FLAG, NULL, "no progress line and no per-record warnings"},
	{"completion-helper", 0, LLM_OPT_FLAG, NULL,
	 "print the verb's options one per line and exit (for shell completion)", .no_env = true},
	{0},
};

const struct llm_opt llm_cli_opts_on_error[] = {
	{"on-error", 0, LLM_OPT_CHOICE, "MODE", "what to do with a bad record", "fail",
	 "fail|skip|keep"},
	{0},
};

const struct llm_opt llm_cli_opts_input[] = {
	{"shard", 0, LLM_OPT_STRING, "K/N",
	 "read only the K-th of N slices of the input: records K, K+N, K+2N, ... (K from 1)"},
	{"max-record-bytes", 0, LLM_OPT_SIZE, "SIZE", "the longest record accepted", "64M",
	 .min = 2, .max = 4.0 * 1024 * 1024 * 1024 - 1},
	{0},
};

static void verror(const struct llm_cli *c, const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	fprintf(stderr, "%s: %s\n", c->tool->name, msg);
}

void llm_cli_error(const struct llm_cli *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror(c, fmt, ap);
	va_end(ap);
}

int llm_cli_fail(const struct llm_cli *c, const struct llm_diag *d)
{
	char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
	llm_diag_format(d, msg, sizeof msg);
	llm_cli_error(c, "%s", msg);
	return llm_err_exit_status(d->code);
}

int llm_cli_usage(const struct llm_cli *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror(c, fmt, ap);
	va_end(ap);
	if (c->verb && c->verb != c->tool->main)
		fprintf(stderr, "Try '%s %s --help'.\n", c->tool->name, c->verb->name);
	else
		fprintf(stderr, "Try '%s --help'.\n", c->tool->name);
	return LLM_EXIT_USAGE;
}

/* stdout is gone (a closed pipe): die the way a filter does under `| head`. */
static void die_of_sigpipe(void)
{
	signal(SIGPIPE, SIG_DFL);
	raise(SIGPIPE);
	_exit(141);
}

bool llm_cli_flush(struct llm_cli *c)
{
	if (c->out.len) {
		size_t want = c->out.len;
		size_t n = fwrite(c->out.data, 1, want, stdout);
		llm_buf_clear(&c->out);
		if (n != want)
			goto fail;
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		goto fail;
	return true;
fail:
	if (errno == EPIPE)
		die_of_sigpipe();
	llm_cli_error(c, "write error on standard output: %s", strerror(errno));
	return false;
}

bool llm_cli_write(struct llm_cli *c, const void *p, size_t n)
{
	if (llm_buf_append(&c->out, p, n) != LLM_OK) {
		llm_cli_error(c, "out of memory");
		return false;
	}
	return c->out.len < OUT_FLUSH_AT || llm_cli_flush(c);
}

bool llm_cli_emit(struct llm_cli *c, const struct llm_record *rec, const struct llm_edit *edits,
		  size_t nedits)
{
	if (llm_record_render(rec, edits, nedits, &c->out) != LLM_OK) {
		llm_cli_error(c, "out of memory");
		return false;
	}
	return c->out.len < OUT_FLUSH_AT || llm_cli_flush(c);
}

enum llm_err llm_cli_write_json(struct llm_cli *c, const char *path, json_t *v,
				struct llm_diag *d)
{
	char *s = json_dumps(v, LLM_JSON_FLAGS);
	if (!s)
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	size_t n = strlen(s);
	s[n] = '\n';
	enum llm_err e = LLM_OK;
	if (!strcmp(path, "-")) {
		if (!llm_cli_write(c, s, n + 1))
			e = llm_diag_set(d, LLM_ERR_IO, NULL, 0, "write error on standard output");
	} else {
		e = llm_atomic_write_file(path, s, n + 1, d);
	}
	free(s);
	return e;
}

static bool parse_slice(const char *s, uint64_t *k, uint64_t *n)
{
	char *end;
	errno = 0;
	unsigned long long a = strtoull(s, &end, 10);
	if (errno || end == s || *end != '/')
		return false;
	const char *t = end + 1;
	unsigned long long b = strtoull(t, &end, 10);
	if (errno || end == t || *end || a < 1 || a > b)
		return false;
	*k = a;
	*n = b;
	return true;
}

json_t *llm_cli_in_report(const struct llm_cli_in *in)
{
	json_t *why = json_object();
	for (int code = 0; code < LLM_ERR__COUNT; code++)
		if (in->bad_by_code[code])
			json_object_set_new(why, llm_err_name((enum llm_err)code),
					    json_integer((json_int_t)in->bad_by_code[code]));
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:o}", "read", (json_int_t)(in->records + in->bad),
			 "good", (json_int_t)in->records, "bad", (json_int_t)in->bad,
			 "bad_dropped", (json_int_t)in->dropped, "bad_kept", (json_int_t)in->kept,
			 "bad_by_reason", why);
}

int llm_cli_in_open(struct llm_cli *c, struct llm_cli_in *in, bool keep_writes)
{
	struct llm_diag d;
	memset(in, 0, sizeof *in);
	llm_on_error_parse(llm_args_str(&c->args, "on-error"), &in->on_error);
	in->keep_writes = keep_writes;
	uint64_t k = 0, n = 0;
	const char *slice = llm_args_str(&c->args, "shard");
	if (slice && !parse_slice(slice, &k, &n))
		return llm_cli_usage(c, "--shard: expected K/N with 1 <= K <= N, not '%s'", slice);
	if (llm_jsonl_open(&in->reader, c->args.operands, c->args.noperands,
			   llm_args_size(&c->args, "max-record-bytes"), &d))
		return llm_cli_fail(c, &d);
	if (n > 1)
		llm_jsonl_set_slice(in->reader, k - 1, n);
	llm_progress_init(&in->progress, c->verb->name, c->quiet);
	return 0;
}

bool llm_cli_in_reject(struct llm_cli *c, struct llm_cli_in *in, const struct llm_record *rec,
		       const struct llm_diag *why)
{
	char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
	llm_diag_format(why, msg, sizeof msg);
	/* A record that scanned but that the verb finds bad moves from the good count to the bad. */
	if (rec->status == LLM_OK && in->records)
		in->records--;
	in->bad++;
	in->bad_by_code[why->code]++;
	if (in->on_error == LLM_ON_ERROR_FAIL) {
		llm_progress_finish(&in->progress);
		llm_cli_error(c, "%s", msg);
		in->status = LLM_EXIT_NEGATIVE;
		return false;
	}
	if (!c->quiet || in->always_report) {
		llm_progress_finish(&in->progress);
		llm_cli_error(c, "%s", msg);
	}
	if (in->on_error == LLM_ON_ERROR_SKIP) {
		in->dropped++;
		return true;
	}
	in->kept++;
	if (!in->keep_writes)
		return true;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	enum llm_err e = llm_record_render_error(rec, why, &b);
	bool ok = !e && llm_cli_write(c, b.data, b.len);
	llm_buf_free(&b);
	if (!ok)
		in->status = LLM_EXIT_IO;
	return ok;
}

int llm_cli_in_next(struct llm_cli *c, struct llm_cli_in *in, struct llm_record **out)
{
	struct llm_diag d;
	for (;;) {
		if (llm_jsonl_next(in->reader, &in->rec, &d)) {
			llm_progress_finish(&in->progress);
			in->status = llm_cli_fail(c, &d);
			return -1;
		}
		if (!in->rec.text) {
			llm_progress_finish(&in->progress);
			return 0;
		}
		if (in->progress.on) {
			uint64_t done, total;
			llm_jsonl_progress(in->reader, &done, &total);
			llm_progress_update(&in->progress, in->records + in->bad, done, total);
		}
		if (in->rec.status == LLM_OK) {
			in->records++;
			*out = &in->rec;
			return 1;
		}
		if (!llm_cli_in_reject(c, in, &in->rec, &in->rec.diag))
			return -1;
	}
}

void llm_cli_in_close(struct llm_cli_in *in)
{
	llm_progress_finish(&in->progress);
	llm_jsonl_close(in->reader);
	llm_record_free(&in->rec);
	in->reader = NULL;
}

static void print_tool_help(const struct llm_tool *t)
{
	printf("usage: %s VERB [OPTIONS] [FILE...]\n%s\n\nVerbs:\n", t->name, t->summary);
	for (const struct llm_verb *const *v = t->verbs; *v; v++)
		printf("  %-12s %s\n", (*v)->name, (*v)->summary);
	printf("\nRun '%s VERB --help' for a verb's options, or see %s(1).\n"
	       "  -h, --help      print this help and exit\n"
	       "      --version   print the version and exit\n",
	       t->name, t->name);
}

static int print_verb_help(const struct llm_cli *c)
{
	const struct llm_verb *v = c->verb;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	if (v == c->tool->main)
		llm_buf_printf(&b, "usage: %s %s\n%s\n\n%s\n\nOptions:\n", c->tool->name, v->usage,
			       v->summary, v->about);
	else
		llm_buf_printf(&b, "usage: %s %s %s\n%s\n\n%s\n\nOptions:\n", c->tool->name,
			       v->name, v->usage, v->summary, v->about);
	for (size_t i = 0; v->opts[i]; i++)
		llm_opt_help(v->opts[i], &b);
	char env[64], example[64];
	llm_opt_env_name(c->tool->env, "OPTION", env, sizeof env);
	llm_opt_env_name(c->tool->env, "quiet", example, sizeof example);
	llm_buf_printf(&b,
		       "\nEvery option can also be set in the environment as %s\n"
		       "(%s=1); the command line wins.  See %s(1).\n",
		       env, example, c->tool->name);
	fwrite(b.data, 1, b.len, stdout);
	llm_buf_free(&b);
	return 0;
}

static const struct llm_verb *find_verb(const struct llm_tool *t, const char *name)
{
	for (const struct llm_verb *const *v = t->verbs; *v; v++)
		if (!strcmp((*v)->name, name))
			return *v;
	return NULL;
}

static int finish(struct llm_cli *c, int status)
{
	if (!llm_cli_flush(c) && status == 0)
		status = LLM_EXIT_IO;
	if (fclose(stdout) != 0 && status == 0) {
		if (errno == EPIPE)
			die_of_sigpipe();
		llm_cli_error(c, "write error on standard output: %s", strerror(errno));
		status = LLM_EXIT_IO;
	}
	llm_args_free(&c->args);
	llm_buf_free(&c->out);
	return status;
}

/* --version asks for the program's version unless the verb has an option of that name that
 * takes a value (llm-pack create --version SEMVER). */
static bool wants_version(const struct llm_args *a)
{
	for (size_t i = 0; i < a->nopts; i++)
		if (!strcmp(a->opts[i]->name, "version"))
			return a->opts[i]->type == LLM_OPT_FLAG && llm_args_flag(a, "version");
	return false;
}

/* Shell completion.  "--completion-helper" alone lists a program's verbs, or a verb's options,
 * one per line (the man-page tests read that).  "--completion-helper spec" tells the bash
 * completion (data/completion/llmops.bash) all it needs in one run, as tab-separated lines:
 *   verb NAME                          a verb, with options of its own: "PROG ... NAME --help"
 *   subverb NAME                       a word the verb takes first, with the verb's options
 *                                      ("tokenizer train", "runs list|show|compare")
 *   opt --LONG -S ARG CHOICES          an option; "-" for no short name, no argument (a flag)
 *                                      or no list of choices
 * The subverbs are read from the verb's usage line, so that a verb never lists them twice:
 * lower-case words are words to type, upper-case ones stand for values. */
static size_t usage_word(const char *s)
{
	size_t n = 0;
	if (*s < 'a' || *s > 'z')
		return 0;
	while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '-')
		n++;
	return s[n] == '\0' || s[n] == ' ' || s[n] == '|' || s[n] == '\n' ? n : 0;
}

static const char *skip_spaces(const char *s)
{
	while (*s == ' ')
		s++;
	return s;
}

/* One line of a verb's usage; the first line is the verb's own, the others (after a newline)
 * are other forms of the command: "       llm-gen batch export|import ...", whose first word
 * the program dispatches as a verb of its own. */
static void print_usage_line(const struct llm_cli *c, const char *s, bool first)
{
	size_t tl = strlen(c->tool->name), n;
	s = skip_spaces(s);
	if (!first) {
		if (!strncmp(s, c->tool->name, tl) && s[tl] == ' ' && (n = usage_word(s + tl + 1)))
			printf("verb\t%.*s\n", (int)n, s + tl + 1);
		return;
	}
	if (!(n = usage_word(s)))
		return;
	printf("subverb\t%.*s\n", (int)n, s);
	/* "list|show RUN|compare RUN...": the alternatives are the first word's siblings; after
	 * "batch export|import" they would be the next level's. */
	if (usage_word(skip_spaces(s + n)))
		return;
	int depth = 0;
	for (const char *p = s + n; *p && *p != '\n'; p++) {
		if (*p == '[' || *p == '(')
			depth++;
		else if ((*p == ']' || *p == ')') && depth > 0)
			depth--;
		else if (*p == '|' && !depth) {
			const char *w = skip_spaces(p + 1);
			if ((n = usage_word(w)))
				printf("subverb\t%.*s\n", (int)n, w);
		}
	}
}

static void print_usage_words(const struct llm_cli *c, const char *usage)
{
	for (const char *line = usage; line;) {
		print_usage_line(c, line, line == usage);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
}

static void print_verb_spec(const struct llm_cli *c)
{
	print_usage_words(c, c->verb->usage);
	for (size_t i = 0; i < c->args.nopts; i++) {
		const struct llm_opt *o = c->args.opts[i];
		char s[3] = {'-', o->short_name, 0};
		const char *arg = o->type == LLM_OPT_FLAG ? "-" : o->arg ? o->arg : "VALUE";
		const char *choices = o->type == LLM_OPT_CHOICE && o->choices ? o->choices : "-";
		printf("opt\t--%s\t%s\t%s\t%s\n", o->name, o->short_name ? s : "-", arg, choices);
	}
}

/* Parse the verb's options from argv (the words after the verb) and run it. */
static int run_verb(struct llm_cli *c, int argc, char **argv)
{
	struct llm_diag d;
	if (llm_opt_parse(c->verb->opts, c->tool->env, argc, argv, &c->args, &d)) {
		if (d.code == LLM_ERR_NOMEM)
			return llm_cli_fail(c, &d);
		return llm_cli_usage(c, "%s", d.msg);
	}
	if (llm_args_flag(&c->args, "help"))
		return print_verb_help(c);
	if (wants_version(&c->args)) {
		printf("%s (llmops) %s\n", c->tool->name, PACKAGE_VERSION);
		return 0;
	}
	if (llm_args_flag(&c->args, "completion-helper")) {
		if (c->args.noperands == 1 && !strcmp(c->args.operands[0], "spec")) {
			print_verb_spec(c);
			return 0;
		}
		for (size_t i = 0; i < c->args.nopts; i++)
			printf("--%s\n", c->args.opts[i]->name);
		return 0;
	}
	c->quiet = llm_args_flag(&c->args, "quiet");
	return c->verb->run(c);
}

int llm_cli_main(const struct llm_tool *t, int argc, char **argv)
{
	struct llm_cli c = {.tool = t};
	setlocale(LC_ALL, "");
	setlocale(LC_NUMERIC, "C");
	signal(SIGPIPE, SIG_DFL);
	llm_atomic_install_signals();
	llm_buf_init(&c.out, 0);
	static char outbuf[1 << 16];
	setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);

	if (t->main) {
		c.verb = t->main;
		return finish(&c, run_verb(&c, argc - 1, argv + 1));
	}
	if (argc < 2)
		return finish(&c, llm_cli_usage(&c, "a verb is needed"));
	const char *verb = argv[1];
	if (!strcmp(verb, "--help") || !strcmp(verb, "-h") || !strcmp(verb, "help")) {
		if (argc > 2 && !strcmp(verb, "help") && (c.verb = find_verb(t, argv[2]))) {
			struct llm_diag d;
			llm_opt_parse(c.verb->opts, t->env, 0, argv, &c.args, &d);
			return finish(&c, print_verb_help(&c));
		}
		print_tool_help(t);
		return finish(&c, 0);
	}
	if (!strcmp(verb, "--version")) {
		printf("%s (llmops) %s\n", t->name, PACKAGE_VERSION);
		return finish(&c, 0);
	}
	if (!strcmp(verb, "--completion-helper")) {
		bool spec = argc == 3 && !strcmp(argv[2], "spec");
		for (const struct llm_verb *const *v = t->verbs; *v; v++)
			printf("%s%s\n", spec ? "verb\t" : "", (*v)->name);
		if (spec)
			printf("opt\t--help\t-h\t-\t-\nopt\t--version\t-\t-\t-\n");
		return finish(&c, 0);
	}
	if (!(c.verb = find_verb(t, verb))) {
		if (verb[0] == '-')
			return finish(&c, llm_cli_usage(&c, "a verb must come first, not '%s'", verb));
		return finish(&c, llm_cli_usage(&c, "unknown verb '%s'", verb));
	}
	return finish(&c, run_verb(&c, argc - 2, argv + 2));
}
