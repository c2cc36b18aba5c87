/* Whole files mapped read-only, for the formats that index into a file by offset (token files,
 * safetensors, GGUF): one place that opens, checks and maps, with the errors a user can act on.
 * Every offset read from such a file must still be checked against len before use. */
#ifndef LLM_CORE_MAPFILE_H
#define LLM_CORE_MAPFILE_H

#include <stddef.h>

#include "core/err.h"

/* Map path.  A missing file is LLM_ERR_NOT_FOUND, a directory LLM_ERR_IS_DIR, anything else
 * that is not a regular file LLM_ERR_IO; an empty file gives *data NULL and *len 0. */
enum llm_err llm_map_file(const char *path, void **data, size_t *len, struct llm_diag *diag);
/* Undo llm_map_file; safe on NULL. */
void llm_unmap_file(void *data, size_t len);

#endif
