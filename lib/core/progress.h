/* A progress line on stderr: records, rate, and, when the input size is known, a bar and the
 * time left.  It shows only when stderr is a terminal and --quiet was not given; colour only
 * when NO_COLOR is unset or empty and TERM is not "dumb".  Updating is cheap enough to call
 * for every record: the clock is read once every few thousand calls. */
#ifndef LLM_CORE_PROGRESS_H
#define LLM_CORE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct llm_progress {
	FILE *out;
	bool on;
	bool color;
	bool drawn;
	const char *label;
	unsigned calls;
	double start;
	double last;
};

void llm_progress_init(struct llm_progress *p, const char *label, bool quiet);
/* count: records so far; done/total: bytes (total 0 when unknown). */
void llm_progress_update(struct llm_progress *p, uint64_t count, uint64_t done, uint64_t total);
/* Erase the line. */
void llm_progress_finish(struct llm_progress *p);
/* Whether colour may be used on stream f. */
bool llm_color_enabled(FILE *f);

#endif
