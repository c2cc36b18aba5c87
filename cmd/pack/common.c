/* What the verbs of llm-pack share (see common.h). */
#include "config.h"

#include "pack/common.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "artifact/sign.h"
#include "core/mapfile.h"

#define THREADS_OPT                                                                                \
	{                                                                                          \
		"threads", 'j', LLM_OPT_INT, "N",                                                  \
		    "compression threads (0: one per core); the same bytes for any number", "0",   \
		    .min = 0, .max = 64                                                            \
	}

const struct llm_opt llm_pack_opts_threads[] = {
    THREADS_OPT,
    {0},
};

const struct llm_opt llm_pack_opts_io[] = {
    {"max-size", 0, LLM_OPT_SIZE, "SIZE",
     "refuse an artifact whose files add up to more than SIZE (0: no limit)", "0"},
    {0},
};

const struct llm_opt llm_pack_opts_base_create[] = {
    {"help", 'h', LLM_OPT_FLAG, NULL, "print this help and exit", .no_env = true},
    {"quiet", 'q', LLM_OPT_FLAG, NULL, "no progress line and no notes"},
    {"completion-helper", 0, LLM_OPT_FLAG, NULL,
     "print the verb's options one per line and exit (for shell completion)", .no_env = true},
    {0},
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

int llm_pack_load(struct llm_cli *c, const char *ref, struct llm_manifest *m,
		  char identity[LLM_DIGEST_SIZE])
{
	struct llm_diag d;
	struct stat st;
	if (stat(ref, &st)) {
		llm_diag_set(&d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, ref, 0, "%s",
			     strerror(errno));
		return llm_cli_fail(c, &d);
	}
	char path[4200];
	if (S_ISDIR(st.st_mode))
		snprintf(path, sizeof path, "%s/%s", ref, LLM_MANIFEST_PATH);
	else
		snprintf(path, sizeof path, "%s", ref);
	enum llm_err e;
	if (S_ISDIR(st.st_mode) || ends_with(ref, ".json")) {
		void *data;
		size_t len;
		if ((e = llm_map_file(path, &data, &len, &d)))
			return llm_cli_fail(c, &d);
		e = llm_manifest_parse(m, data, len, path, false, &d);
		if (!e) {
			llm_manifest_sync(m);
			e = llm_manifest_identity(m, identity);
			if (e)
				llm_diag_set(&d, e, path, 0, "out of memory");
		}
		llm_unmap_file(data, len);
	} else {
		e = llm_tarball_manifest(path, m, identity, &d);
	}
	return e ? llm_cli_fail(c, &d) : 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "create  45%  120 MB of 1.00 GB  30.1 MB/s", redrawn at most five times a second. */
static void progress_cb(void *arg, uint64_t done, uint64_t total)
{
	struct llm_pack_progress *p = arg;
	double t = now();
	if (t - p->last < 0.2 && done < total)
		return;
	p->last = t;
	char a[32], b[32], r[32];
	llm_pack_human_size(done, a, sizeof a);
	llm_pack_human_size(total, b, sizeof b);
	llm_pack_human_size((uint64_t)(done / (t - p->start > 1e-3 ? t - p->start : 1e-3)), r,
			    sizeof r);
	fprintf(stderr, "\r%s %3.0f%%  %s of %s  %s/s\033[K", p->label,
		total ? 100.0 * (double)done / (double)total : 100.0, a, b, r);
	p->drawn = true;
}

void llm_pack_tar_opts(struct llm_cli *c, struct llm_tarball_opts *o, struct llm_pack_progress *p,
		       const char *label)
{
	memset(o, 0, sizeof *o);
	memset(p, 0, sizeof *p);
	o->threads = (unsigned)llm_args_int(&c->args, "threads");
	o->max_total = llm_args_size(&c->args, "max-size");
	p->label = label;
	p->start = now();
	if (!c->quiet && isatty(STDERR_FILENO) &&
	    !(getenv("TERM") && !strcmp(getenv("TERM"), "dumb"))) {
		o->progress = progress_cb;
		o->progress_arg = p;
	}
}

void llm_pack_progress_finish(struct llm_pack_progress *p)
{
	if (p->drawn)
		fputs("\r\033[K", stderr);
	p->drawn = false;
}

void llm_pack_human_size(uint64_t n, char *out, size_t outsz)
{
	static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
	double v = (double)n;
	int u = 0;
	while (v >= 1000 && u < 5) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(out, outsz, "%llu B", (unsigned long long)n);
	else
		snprintf(out, outsz, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
}

/* Check the signature file of tarball (sig_opt, else TARBALL.sig) against identity. */
int llm_pack_check_signature(struct llm_cli *c, const char *tarball, const char *sig_opt,
			     const char *pubkey, const char *identity, char key_id[LLM_DIGEST_SIZE])
{
	char sig_path[4200];
	snprintf(sig_path, sizeof sig_path, "%s", sig_opt ? sig_opt : tarball);
	if (!sig_opt)
		snprintf(sig_path, sizeof sig_path, "%s.sig", tarball);
	struct llm_diag d;
	void *text;
	size_t n;
	enum llm_err e = llm_map_file(sig_path, &text, &n, &d);
	if (e == LLM_ERR_NOT_FOUND) {
		llm_cli_error(c, "%s: not signed (no %s)", tarball, sig_path);
		return LLM_EXIT_NEGATIVE;
	}
	if (e)
		return llm_cli_fail(c, &d);
	e = llm_sign_verify(pubkey, identity, text, n, sig_path, key_id, &d);
	llm_unmap_file(text, n);
	return e ? llm_cli_fail(c, &d) : 0;
}

/* A JSON value on one line: strings bare, numbers short. */
void llm_pack_value_text(const json_t *v, struct llm_buf *b)
{
	if (!v)
		llm_buf_puts(b, "-");
	else if (json_is_string(v))
		llm_buf_puts(b, json_string_value(v));
	else if (json_is_integer(v))
		llm_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		llm_buf_printf(b, "%.6g", json_real_value(v));
	else
		llm_json_canonical(v, b);
}
