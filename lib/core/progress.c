#include "config.h"

#include "core/progress.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool llm_color_enabled(FILE *f)
{
	const char *nc = getenv("NO_COLOR");
	const char *term = getenv("TERM");
	if (nc && *nc)
		return false;
	if (term && !strcmp(term, "dumb"))
		return false;
	return isatty(fileno(f));
}

void llm_progress_init(struct llm_progress *p, const char *label, bool quiet)
{
	memset(p, 0, sizeof *p);
	p->out = stderr;
	p->label = label;
	p->on = !quiet && isatty(STDERR_FILENO);
	p->color = p->on && llm_color_enabled(stderr);
	p->start = p->last = now();
}

static void human_bytes(double b, char *out, size_t n)
{
	const char *units[] = {"B", "kB", "MB", "GB", "TB"};
	int u = 0;
	while (b >= 1000 && u < 4) {
		b /= 1000;
		u++;
	}
	snprintf(out, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

void llm_progress_update(struct llm_progress *p, uint64_t count, uint64_t done, uint64_t total)
{
	if (!p->on || (++p->calls & 1023))
		return;
	double t = now();
	if (t - p->last < 0.2)
		return;
	p->last = t;
	double el = t - p->start;
	char rate[32], sofar[32];
	human_bytes(el > 0 ? (double)done / el : 0, rate, sizeof rate);
	human_bytes((double)done, sofar, sizeof sofar);
	fprintf(p->out, "\r%s %llu records, %s, %s/s", p->label, (unsigned long long)count, sofar,
		rate);
	if (total && done <= total) {
		double f = (double)done / (double)total;
		char bar[21];
		int fill = (int)(f * 20);
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '-', (size_t)(20 - fill));
		bar[20] = '\0';
		double left = f > 0 ? el * (1 - f) / f : 0;
		fprintf(p->out, " %s[%s]%s %3.0f%% eta %d:%02d", p->color ? "\033[32m" : "", bar,
			p->color ? "\033[0m" : "", f * 100, (int)left / 60, (int)left % 60);
	}
	fputs(p->color ? "\033[K" : "  ", p->out);
	fflush(p->out);
	p->drawn = true;
}

void llm_progress_finish(struct llm_progress *p)
{
	if (p->on && p->drawn) {
		fputs(p->color ? "\r\033[K" : "\r", p->out);
		if (!p->color)
			fprintf(p->out, "%79s\r", "");
		fflush(p->out);
	}
	p->drawn = false;
}
