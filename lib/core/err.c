#include "config.h"

#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const names[LLM_ERR__COUNT] = {
	[LLM_OK] = "ok",
	[LLM_ERR_NOMEM] = "out_of_memory",
	[LLM_ERR_IO] = "io_error",
	[LLM_ERR_USAGE] = "usage",
	[LLM_ERR_JSON] = "invalid_json",
	[LLM_ERR_UTF8] = "invalid_utf8",
	[LLM_ERR_TOO_BIG] = "too_big",
	[LLM_ERR_TYPE] = "wrong_type",
	[LLM_ERR_MISSING] = "missing_field",
	[LLM_ERR_NOT_FOUND] = "not_found",
	[LLM_ERR_IS_DIR] = "is_directory",
	[LLM_ERR_GZIP] = "invalid_gzip",
	[LLM_ERR_RANGE] = "out_of_range",
	[LLM_ERR_CHECK] = "check_failed",
	[LLM_ERR_REMOTE] = "remote_error",
	[LLM_ERR_FORMAT] = "invalid_format",
};

const char *llm_err_name(enum llm_err code)
{
	if ((unsigned)code >= LLM_ERR__COUNT)
		return "unknown";
	return names[code];
}

int llm_err_exit_status(enum llm_err code)
{
	switch (code) {
	case LLM_OK:
		return 0;
	case LLM_ERR_USAGE:
		return 2;
	case LLM_ERR_NOMEM:
	case LLM_ERR_IO:
	case LLM_ERR_NOT_FOUND:
	case LLM_ERR_IS_DIR:
	case LLM_ERR_GZIP:
	case LLM_ERR_REMOTE:
		return 3;
	default:
		return 1;
	}
}

enum llm_err llm_diag_set(struct llm_diag *diag, enum llm_err code, const char *file, long line,
			  const char *fmt, ...)
{
	if (!diag)
		return code;
	diag->code = code;
	diag->line = line;
	diag->file[0] = '\0';
	if (file)
		snprintf(diag->file, sizeof diag->file, "%s", file);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(diag->msg, sizeof diag->msg, fmt, ap);
	va_end(ap);
	return code;
}

void llm_diag_format(const struct llm_diag *diag, char *out, size_t outsz)
{
	if (diag->file[0] && diag->line > 0)
		snprintf(out, outsz, "%s:%ld: %s", diag->file, diag->line, diag->msg);
	else if (diag->file[0])
		snprintf(out, outsz, "%s: %s", diag->file, diag->msg);
	else
		snprintf(out, outsz, "%s", diag->msg);
}
