/* A test helper: lib/metrics/bleu from the shell, for comparisons with other implementations.
 *
 *     bleu-cli [--tokenize 13a|none|intl|char] [--lowercase] [--smooth exp|floor|add-k|none]
 *              [--smooth-value V] [--max-order N] [--effective-order]
 *              [--sentence | --stats | --tokens | --signature] [FILE]
 *
 * Reads lines "HYPOTHESIS<TAB>REFERENCE[<TAB>REFERENCE...]" (FILE or stdin) and prints the
 * corpus BLEU of them all with %.17g.  --sentence prints each line's score instead, --stats
 * each line's statistics, --tokens the hypothesis as the tokenizer alone leaves it, and
 * --signature sacreBLEU's signature (the number of references of the first line). */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/bleu.h"

#define MAX_REFS 16

static int fail(const struct llm_diag *d, long line)
{
	char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
	llm_diag_format(d, msg, sizeof msg);
	fprintf(stderr, "bleu-cli: line %ld: %s\n", line, msg);
	return 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: bleu-cli [--tokenize T] [--lowercase] [--smooth M] "
			"[--smooth-value V] [--max-order N] [--effective-order] "
			"[--sentence|--stats|--tokens|--signature] [FILE]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct llm_bleu_opts o;
	llm_bleu_opts_default(&o);
	struct llm_diag d = {0};
	const char *path = NULL;
	enum { CORPUS, SENTENCE, STATS, TOKENS, SIGNATURE } mode = CORPUS;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has = i + 1 < argc;
		char *end;
		if (!strcmp(a, "--tokenize") && has) {
			if (llm_sacretok_parse(argv[++i], &o.tokenize, &d))
				return fail(&d, 0), 2;
		} else if (!strcmp(a, "--smooth") && has) {
			if (llm_bleu_smooth_parse(argv[++i], &o.smooth, &d))
				return fail(&d, 0), 2;
		} else if (!strcmp(a, "--smooth-value") && has) {
			o.smooth_value = strtod(argv[++i], &end);
			if (*end)
				return usage();
		} else if (!strcmp(a, "--max-order") && has) {
			o.max_order = (int)strtol(argv[++i], &end, 10);
			if (*end)
				return usage();
		} else if (!strcmp(a, "--lowercase")) {
			o.lowercase = true;
		} else if (!strcmp(a, "--effective-order")) {
			o.effective_order = true;
		} else if (!strcmp(a, "--sentence")) {
			mode = SENTENCE;
		} else if (!strcmp(a, "--stats")) {
			mode = STATS;
		} else if (!strcmp(a, "--tokens")) {
			mode = TOKENS;
		} else if (!strcmp(a, "--signature")) {
			mode = SIGNATURE;
		} else if (a[0] == '-' && a[1]) {
			return usage();
		} else if (!path) {
			path = a;
		} else {
			return usage();
		}
	}
	FILE *in = path && strcmp(path, "-") ? fopen(path, "r") : stdin;
	if (!in) {
		perror(path);
		return 3;
	}
	struct llm_bleu_scratch *sc;
	if (llm_bleu_scratch_new(&sc, &d))
		return fail(&d, 0);
	size_t ns = llm_bleu_n_stats(&o);
	double *sums = calloc(ns, sizeof *sums), *stats = calloc(ns, sizeof *stats);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	char *line = NULL;
	size_t cap = 0, first_refs = 0;
	ssize_t got;
	long lineno = 0;
	int status = 0;
	while (status == 0 && (got = getline(&line, &cap, in)) >= 0) {
		lineno++;
		size_t len = (size_t)got;
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		const char *f[MAX_REFS + 1];
		size_t fl[MAX_REFS + 1], nf = 0;
		char *p = line, *e = line + len;
		for (;;) {
			char *tab = memchr(p, '\t', (size_t)(e - p));
			if (nf == MAX_REFS + 1)
				break;
			f[nf] = p;
			fl[nf++] = tab ? (size_t)(tab - p) : (size_t)(e - p);
			if (!tab)
				break;
			p = tab + 1;
		}
		if (lineno == 1)
			first_refs = nf - 1;
		if (mode == TOKENS) {
			llm_buf_clear(&out);
			if (llm_sacretok_apply(o.tokenize, f[0], fl[0], &out, &d))
				status = fail(&d, lineno);
			else
				printf("%s\n", out.data);
			continue;
		}
		if (llm_bleu_stats_scratch(sc, &o, f[0], fl[0], f + 1, fl + 1, nf - 1, stats, &d)) {
			status = fail(&d, lineno);
			break;
		}
		for (size_t k = 0; k < ns; k++)
			sums[k] += stats[k];
		if (mode == SENTENCE) {
			struct llm_bleu_result r;
			llm_bleu_compute(&o, stats, &r);
			printf("%.17g\n", r.score);
		} else if (mode == STATS) {
			for (size_t k = 0; k < ns; k++)
				printf("%s%.0f", k ? " " : "", stats[k]);
			printf("\n");
		}
	}
	if (status == 0 && mode == CORPUS) {
		struct llm_bleu_result r;
		llm_bleu_compute(&o, sums, &r);
		printf("%.17g\n", r.score);
	} else if (status == 0 && mode == SIGNATURE) {
		if (llm_bleu_signature(&o, first_refs, &out, &d))
			status = fail(&d, 0);
		else
			printf("%s\n", out.data);
	}
	free(line);
	free(sums);
	free(stats);
	llm_buf_free(&out);
	llm_bleu_scratch_free(sc);
	if (in != stdin)
		fclose(in);
	if (fflush(stdout) != 0 || ferror(stdout))
		return 3;
	return status;
}
