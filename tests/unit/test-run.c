/* Unit tests for lib/tune/run: creating, writing, reading, finding and listing run folders. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tune/run.h"

static char root[64];

static int setup(void **state)
{
	snprintf(root, sizeof root, "/tmp/llmops-test-run.XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static char *path(const char *rel)
{
	static char p[4][256];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof p[k], "%s/%s", root, rel);
	return p[k];
}

static void log_step(struct llm_run *r, int step, double train, double val)
{
	struct llm_diag d;
	json_t *m = json_pack("{s:i,s:f}", "step", step, "train_loss", train);
	if (!isnan(val))
		json_object_set_new(m, "val_loss", json_real(val));
	assert_int_equal(llm_run_log_metrics(r, m, &d), LLM_OK);
	json_decref(m);
}

static struct llm_run *make(const char *name, int steps)
{
	struct llm_run_spec spec = {.runs_dir = path("runs"), .name = name};
	struct llm_run *r;
	struct llm_diag d;
	assert_int_equal(llm_run_create(&r, &spec, &d), LLM_OK);
	for (int i = 1; i <= steps; i++)
		log_step(r, i, 3.0 / i, i % 2 ? NAN : 4.0 / i + (i == 4 ? -1 : 0));
	return r;
}

static void a_written_run_reads_back_with_its_summary(void **state)
{
	struct llm_diag d;
	struct llm_run *w = make("one", 6);
	json_t *p = json_pack("{s:f,s:{s:i}}", "lr", 0.001, "lora", "r", 8);
	assert_int_equal(llm_run_set_params(w, p, &d), LLM_OK);
	json_decref(p);
	assert_int_equal(llm_run_finish(w, LLM_RUN_FINISHED, &d), LLM_OK);
	llm_run_close(w);

	struct llm_run *r;
	assert_int_equal(llm_run_open(&r, path("runs"), "one", &d), LLM_OK);
	assert_string_equal(r->id, "one");
	assert_int_equal(r->status, LLM_RUN_FINISHED);
	assert_true(r->created > 0 && r->finished >= r->created);
	assert_int_equal(r->sum.points, 6);
	assert_int_equal(r->sum.steps, 6);
	assert_true(fabs(r->sum.train_loss - 0.5) < 1e-9);
	/* val at 2, 4, 6: 2.0, 0.0 (the planted best), 0.6667 */
	assert_int_equal(r->sum.best_step, 4);
	assert_true(fabs(r->sum.best_val_loss) < 1e-9);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(r->params, "lora"), "r")), 8);
	assert_string_equal(json_string_value(json_object_get(r->meta, "llmops_version")),
			    PACKAGE_VERSION);
	assert_int_equal(json_integer_value(json_object_get(r->meta, "best_step")), 4);
	assert_int_equal(r->nwarnings, 0);
	llm_run_close(r);
}

static void a_generated_id_is_time_and_suffix_and_unique(void **state)
{
	struct llm_run_spec spec = {.runs_dir = path("gen/deeper")};
	struct llm_run *a, *b;
	struct llm_diag d;
	assert_int_equal(llm_run_create(&a, &spec, &d), LLM_OK);
	assert_int_equal(llm_run_create(&b, &spec, &d), LLM_OK);
	assert_int_equal(strlen(a->id), 22);
	assert_true(a->id[8] == '-' && a->id[15] == '-');
	assert_string_not_equal(a->id, b->id);
	assert_int_equal(llm_run_status_parse(json_string_value(json_object_get(a->meta, "status")),
					      &(enum llm_run_status){0}),
			 true);
	llm_run_close(a);
	llm_run_close(b);
}

static void names_are_claimed_once_and_must_be_plain(void **state)
{
	struct llm_diag d;
	llm_run_close(make("taken", 0));
	struct llm_run_spec spec = {.runs_dir = path("runs"), .name = "taken"};
	struct llm_run *r = NULL;
	assert_int_equal(llm_run_create(&r, &spec, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "exists already"));
	const char *bad[] = {"", ".hidden", "a/b"};
	for (size_t i = 0; i < 3; i++) {
		spec.name = bad[i];
		assert_int_equal(llm_run_create(&r, &spec, &d), LLM_ERR_USAGE);
	}
	assert_null(r);
}

static void a_missing_data_file_leaves_no_run(void **state)
{
	char *data[] = {path("nope.jsonl")};
	struct llm_run_spec spec = {
	    .runs_dir = path("runs"), .name = "nodata", .data = data, .ndata = 1};
	struct llm_run *r;
	struct llm_diag d;
	assert_int_equal(llm_run_create(&r, &spec, &d), LLM_ERR_NOT_FOUND);
	struct stat st;
	assert_int_not_equal(stat(path("runs/nodata"), &st), 0);
}

static void data_files_are_digested(void **state)
{
	FILE *f = fopen(path("abc.txt"), "w");
	fputs("abc", f);
	fclose(f);
	char *data[] = {path("abc.txt")};
	struct llm_run_spec spec = {.runs_dir = path("runs"),
				    .name = "digest",
				    .data = data,
				    .ndata = 1,
				    .command = "llm-tune train"};
	struct llm_run *r;
	struct llm_diag d;
	assert_int_equal(llm_run_create(&r, &spec, &d), LLM_OK);
	json_t *dg = json_array_get(json_object_get(r->meta, "data"), 0);
	assert_string_equal(json_string_value(json_object_get(dg, "sha256")),
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(json_integer_value(json_object_get(dg, "bytes")), 3);
	assert_string_equal(json_string_value(json_object_get(r->meta, "command")),
			    "llm-tune train");
	llm_run_close(r);
}

static void bad_params_and_metrics_are_refused(void **state)
{
	struct llm_diag d;
	struct llm_run *r = make("refuse", 0);
	json_t *a = json_array();
	assert_int_equal(llm_run_set_params(r, a, &d), LLM_ERR_TYPE);
	json_t *m = json_pack("{s:f}", "train_loss", 1.0);
	assert_int_equal(llm_run_log_metrics(r, m, &d), LLM_ERR_TYPE);
	json_decref(m);
	json_decref(a);
	llm_run_close(r);
}

static void a_torn_last_line_is_a_warning_with_its_line(void **state)
{
	struct llm_diag d;
	struct llm_run *w = make("torn", 3);
	llm_run_close(w); /* a crash: never finished */
	FILE *f = fopen(path("runs/torn/metrics.jsonl"), "a");
	fputs("{\"step\":4,\"tra", f);
	fclose(f);
	struct llm_run *r;
	assert_int_equal(llm_run_open(&r, path("runs"), "torn", &d), LLM_OK);
	assert_int_equal(r->status, LLM_RUN_RUNNING);
	assert_int_equal(r->sum.points, 3);
	assert_int_equal(r->nwarnings, 1);
	assert_int_equal(r->warnings[0].line, 4);
	assert_non_null(strstr(r->warnings[0].msg, "torn last line"));
	llm_run_close(r);
}

static void a_resumed_run_supersedes_the_steps_it_repeats(void **state)
{
	struct llm_diag d;
	llm_run_close(make("resume", 6));
	FILE *f = fopen(path("runs/resume/metrics.jsonl"), "a");
	fputs("{\"step\":7,\"tra", f);
	fclose(f);
	struct llm_run *w;
	assert_int_equal(llm_run_resume(&w, path("runs"), "resume", &d), LLM_OK);
	log_step(w, 3, 0.25, NAN);
	assert_int_equal(llm_run_finish(w, LLM_RUN_FINISHED, &d), LLM_OK);
	llm_run_close(w);
	struct llm_run *r;
	assert_int_equal(llm_run_open(&r, path("runs"), "resume", &d), LLM_OK);
	assert_int_equal(r->nwarnings, 0);
	assert_int_equal(r->sum.points, 3);
	assert_int_equal(r->sum.steps, 3);
	assert_int_equal(r->sum.best_step, 2);
	assert_true(fabs(r->sum.train_loss - 0.25) < 1e-9);
	llm_run_close(r);
}

static void runs_are_found_by_id_prefix_or_path(void **state)
{
	struct llm_diag d;
	llm_run_close(make("find-a", 0));
	llm_run_close(make("find-ab", 0));
	llm_run_close(make("other", 0));
	char *p;
	assert_int_equal(llm_run_resolve(path("runs"), "find-a", &p, &d), LLM_OK);
	assert_string_equal(p, path("runs/find-a"));
	free(p);
	assert_int_equal(llm_run_resolve(path("runs"), "oth", &p, &d), LLM_OK);
	assert_string_equal(p, path("runs/other"));
	free(p);
	assert_int_equal(llm_run_resolve(path("runs"), path("runs/other"), &p, &d), LLM_OK);
	free(p);
	assert_int_equal(llm_run_resolve(path("runs"), "find", &p, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "find-a, find-ab"));
	assert_int_equal(llm_run_resolve(path("runs"), "zzz", &p, &d), LLM_ERR_NOT_FOUND);
	assert_int_equal(llm_run_resolve(path("runs"), path("nowhere"), &p, &d), LLM_ERR_NOT_FOUND);
}

static void list_is_sorted_and_skips_non_runs(void **state)
{
	struct llm_diag d;
	llm_run_close(make("l-b", 0));
	llm_run_close(make("l-a", 0));
	mkdir(path("runs/not-a-run"), 0777);
	char **ids;
	size_t n;
	assert_int_equal(llm_run_list(path("runs"), &ids, &n, &d), LLM_OK);
	assert_true(n >= 2);
	for (size_t i = 1; i < n; i++)
		assert_true(strcmp(ids[i - 1], ids[i]) < 0);
	for (size_t i = 0; i < n; i++)
		assert_string_not_equal(ids[i], "not-a-run");
	llm_run_list_free(ids, n);
	assert_int_equal(llm_run_list(path("missing"), &ids, &n, &d), LLM_OK);
	assert_int_equal(n, 0);
}

static void malformed_params_name_the_file(void **state)
{
	struct llm_diag d;
	llm_run_close(make("malformed", 1));
	FILE *f = fopen(path("runs/malformed/params.json"), "w");
	fputs("{\"lr\":\n", f);
	fclose(f);
	struct llm_run *r;
	assert_int_equal(llm_run_open(&r, path("runs"), "malformed", &d), LLM_ERR_JSON);
	assert_string_equal(d.file, path("runs/malformed/params.json"));
}

static void times_and_defaults(void **state)
{
	assert_int_equal(llm_run_parse_time("1970-01-02T00:00:01Z"), 86401);
	assert_int_equal(llm_run_parse_time("2026-03-14 10:15:02"), -1);
	assert_int_equal(llm_run_parse_time("2026-03-14T10:15:02Zjunk"), -1);
	setenv("LLMOPS_HOME", "/x/home", 1);
	char *dir = llm_run_default_dir();
	assert_string_equal(dir, "/x/home/runs");
	free(dir);
	unsetenv("LLMOPS_HOME");
	setenv("HOME", "/h", 1);
	dir = llm_run_default_dir();
	assert_string_equal(dir, "/h/.llmops/runs");
	free(dir);
	assert_string_equal(llm_run_status_name(LLM_RUN_INTERRUPTED), "interrupted");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_written_run_reads_back_with_its_summary),
	    cmocka_unit_test(a_generated_id_is_time_and_suffix_and_unique),
	    cmocka_unit_test(names_are_claimed_once_and_must_be_plain),
	    cmocka_unit_test(a_missing_data_file_leaves_no_run),
	    cmocka_unit_test(data_files_are_digested),
	    cmocka_unit_test(bad_params_and_metrics_are_refused),
	    cmocka_unit_test(a_torn_last_line_is_a_warning_with_its_line),
	    cmocka_unit_test(a_resumed_run_supersedes_the_steps_it_repeats),
	    cmocka_unit_test(runs_are_found_by_id_prefix_or_path),
	    cmocka_unit_test(list_is_sorted_and_skips_non_runs),
	    cmocka_unit_test(malformed_params_name_the_file),
	    cmocka_unit_test(times_and_defaults),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
