/* A test helper that makes run folders through lib/tune/run.h, as llm-tune train will, so the
 * shell tests read the library's own format:
 *
 *     make-run RUNS_DIR [--name ID] [--params JSON] [--data FILE]... [--command TEXT]
 *              [--status running|finished|failed|interrupted] [--resume REF] < metrics.jsonl
 *
 * Each line of standard input is logged as one metrics line, with a sync every 10 lines.
 * Prints the run folder. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune/run.h"

static int fail(const struct llm_diag *d)
{
	char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
	llm_diag_format(d, msg, sizeof msg);
	fprintf(stderr, "make-run: %s\n", msg);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: make-run RUNS_DIR [OPTIONS] < metrics.jsonl\n");
		return 2;
	}
	struct llm_run_spec spec = {.runs_dir = argv[1]};
	char *data[16];
	const char *params = NULL, *status = "finished", *resume = NULL;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--name"))
			spec.name = argv[i + 1];
		else if (!strcmp(argv[i], "--params"))
			params = argv[i + 1];
		else if (!strcmp(argv[i], "--data") && spec.ndata < 16)
			data[spec.ndata++] = argv[i + 1];
		else if (!strcmp(argv[i], "--command"))
			spec.command = argv[i + 1];
		else if (!strcmp(argv[i], "--status"))
			status = argv[i + 1];
		else if (!strcmp(argv[i], "--resume"))
			resume = argv[i + 1];
		else {
			fprintf(stderr, "make-run: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	spec.data = data;
	enum llm_run_status st;
	if (!llm_run_status_parse(status, &st)) {
		fprintf(stderr, "make-run: unknown status %s\n", status);
		return 2;
	}
	struct llm_diag d;
	struct llm_run *r;
	if (resume ? llm_run_resume(&r, argv[1], resume, &d) : llm_run_create(&r, &spec, &d))
		return fail(&d);
	int rc = 0;
	if (params) {
		json_error_t je;
		json_t *p = json_loads(params, 0, &je);
		if (!p || llm_run_set_params(r, p, &d))
			rc = p ? fail(&d)
			       : (fprintf(stderr, "make-run: --params: %s\n", je.text), 2);
		json_decref(p);
	}
	char line[4096];
	for (long n = 1; !rc && fgets(line, sizeof line, stdin); n++) {
		json_error_t je;
		json_t *m = json_loads(line, 0, &je);
		if (!m) {
			fprintf(stderr, "make-run: <stdin>:%ld: %s\n", n, je.text);
			rc = 2;
		} else if (llm_run_log_metrics(r, m, &d) || (n % 10 == 0 && llm_run_sync(r, &d))) {
			rc = fail(&d);
		}
		json_decref(m);
	}
	if (!rc && (st == LLM_RUN_RUNNING ? llm_run_sync(r, &d) : llm_run_finish(r, st, &d)))
		rc = fail(&d);
	if (!rc)
		printf("%s\n", r->dir);
	llm_run_close(r);
	return rc;
}
