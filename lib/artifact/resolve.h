/* Model references that name packed artifacts (DESIGN.md section 4), turned into a model
 * directory that the engine opens:
 *
 *   path/NAME-VERSION.tar.gz   the manifest is read for the identity; the first use verifies
 *                              and unpacks the artifact into the cache
 *   registry:NAME[@VERSION|@ALIAS]   resolved through the configured registry
 *                              (LLMOPS_PACK_REGISTRY, else $LLMOPS_HOME/registry); fetched and
 *                              unpacked on first use
 *
 * The cache is $LLMOPS_HOME/cache/artifacts/<identity hex>/ (LLMOPS_HOME defaulting to
 * ~/.llmops): one folder per artifact identity, written under a temporary name and renamed
 * into place only once every file verified, so a folder that is there is whole, and two
 * processes that unpack the same artifact at once both end up using one folder.  Because the
 * identity is the digest of the manifest, which lists every file's digest, a cached folder
 * stands for exactly the artifact's content. */
#ifndef LLM_ARTIFACT_RESOLVE_H
#define LLM_ARTIFACT_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* Whether ref names an artifact: "registry:..." or a path ending in ".tar.gz". */
bool llm_artifact_is_ref(const char *ref);

/* The model directory for ref, into dir_out.  registry_ref overrides the configured registry
 * (NULL: LLMOPS_PACK_REGISTRY or the default).  Errors: LLM_ERR_USAGE for a malformed
 * reference, LLM_ERR_NOT_FOUND for a missing file, name, version or alias, LLM_ERR_CHECK
 * (and the artifact's own errors) when it does not verify, LLM_ERR_IO, LLM_ERR_REMOTE. */
enum llm_err llm_artifact_resolve(const char *ref, const char *registry_ref, char *dir_out,
				  size_t dir_outsz, struct llm_diag *d);

#endif
