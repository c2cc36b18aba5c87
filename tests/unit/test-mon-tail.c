/* Unit tests for lib/monitor/tail: following a file as tail -F does.  Lines appended come
 * back whole and in order; a line still being written is held until its newline; rotation by
 * rename and create and by copytruncate loses nothing that was written before it; a path that
 * does not exist yet is waited for; a line over the limit is skipped and reported, and the
 * next one is read.  Every wait is a bounded poll with a short interval, never a sleep that
 * assumes how fast the machine is. */
#include "config.h"

#include <fcntl.h>
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

#include "monitor/tail.h"

struct dir {
	char path[256];
	char file[300];
};

static void mkscratch(struct dir *d)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(d->path, sizeof d->path, "%s/test-mon-tail.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(d->path));
	snprintf(d->file, sizeof d->file, "%s/log.jsonl", d->path);
}

static void rmscratch(struct dir *d)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
	assert_int_equal(system(cmd), 0);
}

/* Append text to path (created when missing). */
static void append(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* The next line, waiting at most 10 s; fails the test when none comes. */
static void expect_line(struct llm_mon_tail *t, const char *want, long want_lineno)
{
	const char *line = NULL;
	size_t len = 0;
	long lineno = 0;
	struct llm_diag d;
	for (int i = 0; i < 100 && !line; i++)
		assert_int_equal(llm_mon_tail_next(t, 100, &line, &len, &lineno, &d), LLM_OK);
	assert_non_null(line);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(line, want, len);
	if (want_lineno)
		assert_int_equal(lineno, want_lineno);
}

/* No line is ready now (after one short wait). */
static void expect_nothing(struct llm_mon_tail *t)
{
	const char *line = NULL;
	size_t len = 0;
	long lineno = 0;
	struct llm_diag d;
	assert_int_equal(llm_mon_tail_next(t, 30, &line, &len, &lineno, &d), LLM_OK);
	assert_null(line);
}

static void appended_lines_come_back_and_a_partial_line_waits(void **state)
{
	(void)state;
	struct dir d;
	mkscratch(&d);
	append(d.file, "{\"a\":1}\n{\"a\":2}\r\n");
	struct llm_mon_tail *t;
	struct llm_diag diag;
	assert_int_equal(llm_mon_tail_open(&t, d.file, false, 1 << 20, 5, &diag), LLM_OK);
	expect_line(t, "{\"a\":1}", 1);
	expect_line(t, "{\"a\":2}", 2);
	expect_nothing(t);
	append(d.file, "{\"a\":");
	expect_nothing(t);
	append(d.file, "3}\n{\"a\":4}\n");
	expect_line(t, "{\"a\":3}", 3);
	expect_line(t, "{\"a\":4}", 4);
	expect_nothing(t);
	llm_mon_tail_close(t);
	rmscratch(&d);
}

static void from_end_skips_what_is_there_and_keeps_line_numbers(void **state)
{
	(void)state;
	struct dir d;
	mkscratch(&d);
	append(d.file, "old 1\nold 2\nhalf of old 3");
	struct llm_mon_tail *t;
	struct llm_diag diag;
	assert_int_equal(llm_mon_tail_open(&t, d.file, true, 1 << 20, 5, &diag), LLM_OK);
	expect_nothing(t);
	/* The rest of the line that was being written when reading began is not a new line. */
	append(d.file, " ends\nnew 4\n");
	expect_line(t, "new 4", 4);
	llm_mon_tail_close(t);
	rmscratch(&d);
}

static void rename_and_create_reads_the_old_file_to_its_end_first(void **state)
{
	(void)state;
	struct dir d;
	mkscratch(&d);
	append(d.file, "one\n");
	struct llm_mon_tail *t;
	struct llm_diag diag;
	assert_int_equal(llm_mon_tail_open(&t, d.file, false, 1 << 20, 5, &diag), LLM_OK);
	expect_line(t, "one", 1);
	/* A writer holding the old file open adds a line after the rename (as llm-serve does
	 * until its SIGHUP), then the new file starts. */
	int fd = open(d.file, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	char old[320];
	snprintf(old, sizeof old, "%s.1", d.file);
	assert_int_equal(rename(d.file, old), 0);
	assert_int_equal(write(fd, "two\n", 4), 4);
	close(fd);
	append(d.file, "three\n");
	expect_line(t, "two", 2);
	expect_line(t, "three", 1);
	/* And again, with remove and create. */
	assert_int_equal(unlink(d.file), 0);
	expect_nothing(t);
	append(d.file, "four\n");
	expect_line(t, "four", 1);
	llm_mon_tail_close(t);
	rmscratch(&d);
}

static void copytruncate_starts_again_at_the_beginning(void **state)
{
	(void)state;
	struct dir d;
	mkscratch(&d);
	append(d.file, "a long first line\nanother line\n");
	struct llm_mon_tail *t;
	struct llm_diag diag;
	assert_int_equal(llm_mon_tail_open(&t, d.file, false, 1 << 20, 5, &diag), LLM_OK);
	expect_line(t, "a long first line", 1);
	expect_line(t, "another line", 2);
	/* logrotate's copytruncate: the same file, cut to nothing, then written again. */
	assert_int_equal(truncate(d.file, 0), 0);
	expect_nothing(t);
	append(d.file, "x\n");
	expect_line(t, "x", 1);
	llm_mon_tail_close(t);
	rmscratch(&d);
}

static void a_path_that_does_not_exist_yet_is_waited_for(void **state)
{
	(void)state;
	struct dir d;
	mkscratch(&d);
	struct llm_mon_tail *t;
	struct llm_diag diag;
	assert_int_equal(llm_mon_tail_open(&t, d.file, true, 1 << 20, 5, &diag), LLM_OK);
	expect_nothing(t);
	/* from_end is for the file there at open: a file that appears later is read whole. */
	append(d.file, "first\n");
	expect_line(t, "first", 1);
	llm_mon_tail_close(t);
	/* A folder that does not exist is a mistake, said at once. */
	char bad[400];
	snprintf(bad, sizeof bad, "%s/no-such-dir/log.jsonl", d.path);
	assert_int_equal(llm_mon_tail_open(&t, bad, false, 1 << 20, 5, &diag), LLM_ERR_NOT_FOUND);
	assert_int_equal(llm_mon_tail_open(&t, d.path, false, 1 << 20, 5, &diag), LLM_ERR_IS_DIR);
	assert_int_equal(llm_mon_tail_open(&t, "x.jsonl.gz", false, 1 << 20, 5, &diag),
			 LLM_ERR_USAGE);
	rmscratch(&d);
}

static void a_long_line_is_skipped_and_the_next_one_read(void **state)
{
	(void)state;
	struct dir d;
	mkscratch(&d);
	/* 200 kB: longer than the limit and than one read, written in two parts. */
	size_t n = 200000;
	char *big = malloc(n + 2);
	assert_non_null(big);
	memset(big, 'x', n);
	big[n] = '\0';
	append(d.file, "short\n");
	append(d.file, big);
	struct llm_mon_tail *t;
	struct llm_diag diag;
	assert_int_equal(llm_mon_tail_open(&t, d.file, false, 1000, 5, &diag), LLM_OK);
	expect_line(t, "short", 1);
	expect_nothing(t);
	append(d.file, big);
	append(d.file, "\nafter\n");
	const char *line = NULL;
	size_t len;
	long lineno = 0;
	enum llm_err e = LLM_OK;
	for (int i = 0; i < 100 && e == LLM_OK && !line; i++)
		e = llm_mon_tail_next(t, 100, &line, &len, &lineno, &diag);
	assert_int_equal(e, LLM_ERR_TOO_BIG);
	assert_int_equal(lineno, 2);
	assert_non_null(strstr(diag.msg, "400000 bytes"));
	expect_line(t, "after", 3);
	llm_mon_tail_close(t);

	/* Under the limit, a line longer than one read comes back whole. */
	assert_int_equal(llm_mon_tail_open(&t, d.file, false, 1 << 20, 5, &diag), LLM_OK);
	expect_line(t, "short", 1);
	char *twice = malloc(2 * n + 1);
	assert_non_null(twice);
	memcpy(twice, big, n);
	memcpy(twice + n, big, n);
	twice[2 * n] = '\0';
	expect_line(t, twice, 2);
	expect_line(t, "after", 3);
	llm_mon_tail_close(t);
	free(twice);
	free(big);
	rmscratch(&d);
}

static void a_gzip_file_is_refused_by_its_magic(void **state)
{
	(void)state;
	struct dir d;
	mkscratch(&d);
	append(d.file, "\x1f\x8b\x08 not really gzip\n");
	struct llm_mon_tail *t;
	struct llm_diag diag;
	assert_int_equal(llm_mon_tail_open(&t, d.file, false, 1 << 20, 5, &diag), LLM_OK);
	const char *line;
	size_t len;
	long lineno;
	assert_int_equal(llm_mon_tail_next(t, 100, &line, &len, &lineno, &diag), LLM_ERR_USAGE);
	llm_mon_tail_close(t);
	rmscratch(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(appended_lines_come_back_and_a_partial_line_waits),
	    cmocka_unit_test(from_end_skips_what_is_there_and_keeps_line_numbers),
	    cmocka_unit_test(rename_and_create_reads_the_old_file_to_its_end_first),
	    cmocka_unit_test(copytruncate_starts_again_at_the_beginning),
	    cmocka_unit_test(a_path_that_does_not_exist_yet_is_waited_for),
	    cmocka_unit_test(a_long_line_is_skipped_and_the_next_one_read),
	    cmocka_unit_test(a_gzip_file_is_refused_by_its_magic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
