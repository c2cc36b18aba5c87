#include "config.h"

#include "backend/backend.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "artifact/resolve.h"

const char *llm_endpoint_path(enum llm_endpoint ep)
{
	return ep == LLM_EP_COMPLETIONS ? "completions" : "chat/completions";
}

void llm_backend_opts_init(struct llm_backend_opts *o)
{
	memset(o, 0, sizeof *o);
	o->concurrency = 1;
	o->max_retries = 2;
	o->max_retry_after_s = 120;
}

void llm_result_clear(struct llm_result *r)
{
	free(r->body);
	free(r->error_message);
	memset(r, 0, sizeof *r);
}

static bool has_prefix_nocase(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

enum llm_err llm_backend_open(struct llm_backend **out, const struct llm_backend_opts *o,
			      struct llm_diag *diag)
{
	*out = NULL;
	const char *ref = o->ref;
	if (!ref || !*ref)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "no model reference given");
	if (o->concurrency < 1)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "concurrency must be at least 1, not %d", o->concurrency);
	if (has_prefix_nocase(ref, "http://") || has_prefix_nocase(ref, "https://"))
		return llm_backend_open_http(out, o, diag);
	if (llm_artifact_is_ref(ref)) {
		/* A packed artifact or registry:NAME@REF: verified and unpacked once into the
		 * cache, then the engine opens that folder under the name the user gave. */
		char dir[PATH_MAX];
		enum llm_err e = llm_artifact_resolve(ref, NULL, dir, sizeof dir, diag);
		if (e)
			return e;
		struct llm_backend_opts o2 = *o;
		o2.ref = dir;
		o2.model_name = o->model_name ? o->model_name : ref;
		return llm_backend_open_engine(out, &o2, diag);
	}
	struct stat st;
	if (stat(ref, &st) != 0) {
		if (errno == ENOENT)
			return llm_diag_set(diag, LLM_ERR_NOT_FOUND, ref, 0,
					    "no such model directory, file or URL");
		return llm_diag_set(diag, LLM_ERR_IO, ref, 0, "cannot open: %s", strerror(errno));
	}
	if (S_ISDIR(st.st_mode))
		return llm_backend_open_engine(out, o, diag);
	if (has_suffix(ref, ".gguf"))
		return llm_backend_open_engine(out, o, diag);
	return llm_diag_set(diag, LLM_ERR_USAGE, ref, 0,
			    "not a model reference (a model directory, a .gguf file or an "
			    "http(s):// URL)");
}

void llm_backend_close(struct llm_backend *b)
{
	if (b)
		b->ops->close(b);
}

const char *llm_backend_model(const struct llm_backend *b)
{
	return b->model;
}

bool llm_backend_is_remote(const struct llm_backend *b)
{
	return b->remote;
}

enum llm_err llm_backend_submit(struct llm_backend *b, uint64_t tag, enum llm_endpoint ep,
				const char *body, size_t len, struct llm_diag *diag)
{
	return b->ops->submit(b, tag, ep, body, len, diag);
}

int llm_backend_next(struct llm_backend *b, struct llm_result *out, struct llm_diag *diag)
{
	return b->ops->next(b, out, diag);
}

size_t llm_backend_pending(const struct llm_backend *b)
{
	return b->ops->pending(b);
}

enum llm_err llm_backend_cancel(struct llm_backend *b, uint64_t tag)
{
	return b->ops->cancel ? b->ops->cancel(b, tag) : LLM_ERR_USAGE;
}
