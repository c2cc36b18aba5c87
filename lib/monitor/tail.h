/* Following a growing log file as `tail -F` does, for `llm-monitor --follow`.
 *
 * The file is read from its start (or from its end, with from_end) and then watched: new
 * complete lines are handed back as they are appended; a line still being written (no newline
 * yet) is held until it is complete.  Rotation is survived: when the path comes to name
 * another file (logrotate's rename and create, or remove and create), the rest of the old
 * file is read to its end first (a writer that still holds it open until its SIGHUP loses
 * nothing written before the switch is seen), then the new file from its start; when the file
 * shrinks (copytruncate), reading starts again at its beginning.  A truncation followed by
 * more writing than was read before it looks like growth and cannot be told apart: the same
 * limit as tail -F's.  A path that does not exist yet is waited for, but a path whose folder
 * does not exist is refused at open (LLM_ERR_NOT_FOUND: a typo, not a log to come).  A gzip
 * file cannot be followed (LLM_ERR_USAGE): refused by its name (.gz) at open, or by its magic
 * bytes when it is first read.
 *
 * from_end applies to the file the path names at open: its lines are counted (so line numbers
 * stay those of the file) but not handed back, and a line it ends in the middle of is dropped
 * whole.  A file that appears later is read from its start.
 *
 * Lines longer than max_record_bytes are skipped without being held and reported as too big,
 * as core/jsonl.h does.  Line numbers count from 1 in each file the path has named, and again
 * from 1 after a truncation.  The file is polled (a stat and a read every poll_ms when idle),
 * which works the same on every file system.  Nothing here prints; one thread uses a tail at
 * a time. */
#ifndef LLM_MONITOR_TAIL_H
#define LLM_MONITOR_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct llm_mon_tail;

/* poll_ms: how often the file is checked for growth and rotation (0: 200 ms). */
enum llm_err llm_mon_tail_open(struct llm_mon_tail **out, const char *path, bool from_end,
			       size_t max_record_bytes, int poll_ms, struct llm_diag *diag);
void llm_mon_tail_close(struct llm_mon_tail *t);

/* Wait up to timeout_ms (-1: forever) for the next complete line.  Returns LLM_OK with *line
 * (without its newline or a "\r" before it, valid until the next call), *len and *lineno set,
 * or LLM_OK with *line NULL when the time ran out with no line; LLM_ERR_TOO_BIG for a line
 * over the limit (skipped; *lineno set); LLM_ERR_IO when the file cannot be read
 * (LLM_ERR_IS_DIR when the path names a folder, LLM_ERR_USAGE for a gzip file).  The line is
 * NUL-terminated. */
enum llm_err llm_mon_tail_next(struct llm_mon_tail *t, int timeout_ms, const char **line,
			       size_t *len, long *lineno, struct llm_diag *diag);

#endif
