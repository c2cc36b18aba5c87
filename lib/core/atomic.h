/* Atomic file output: write to a temporary file beside the target, then fsync and rename, so a
 * reader sees the old file or the whole new one, never half of one.  A failed or interrupted
 * run leaves no temporary behind: abort removes it, and after llm_atomic_install_signals()
 * SIGINT, SIGTERM and SIGHUP remove every open temporary before the program dies.  A path that
 * names a device or a FIFO (/dev/stderr) is written directly. */
#ifndef LLM_CORE_ATOMIC_H
#define LLM_CORE_ATOMIC_H

#include <stdio.h>

#include "core/err.h"

struct llm_atomic {
	char *path; /* the target */
	char *tmp;  /* the temporary being written; NULL when writing a device directly */
	FILE *fp;   /* write here */
};

enum llm_err llm_atomic_open(struct llm_atomic *a, const char *path, struct llm_diag *diag);
/* Flush, sync and rename into place.  On failure the temporary is removed. */
enum llm_err llm_atomic_commit(struct llm_atomic *a, struct llm_diag *diag);
/* Discard: close and remove the temporary.  Safe on a zeroed or committed struct. */
void llm_atomic_abort(struct llm_atomic *a);
/* Write a whole file atomically. */
enum llm_err llm_atomic_write_file(const char *path, const void *data, size_t n,
				   struct llm_diag *diag);
void llm_atomic_install_signals(void);
/* Make the folder dir and any parents it lacks (mode 0777 less the umask), as mkdir -p does,
 * for output that goes into a folder the user named.  An existing folder is fine. */
enum llm_err llm_mkdirs(const char *dir, struct llm_diag *diag);

#endif
