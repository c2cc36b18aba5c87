/* What the verbs of llm-pack share: reading a manifest from whatever names one, the progress
 * line for long reads and writes, and the common options of the verbs that read artifacts. */
#ifndef LLM_CMD_PACK_COMMON_H
#define LLM_CMD_PACK_COMMON_H

#include <stdbool.h>

#include "artifact/manifest.h"
#include "artifact/tarball.h"
#include "cli.h"

/* --threads, for create; --max-size, for the verbs that read whole artifacts. */
extern const struct llm_opt llm_pack_opts_threads[];
extern const struct llm_opt llm_pack_opts_io[];

/* The common options less --version, for create, whose --version SEMVER is the artifact's
 * (cmd/cli.c prints the program's version only for a flag named version). */
extern const struct llm_opt llm_pack_opts_base_create[];

/* The manifest of REF: an artifact tarball (only its first entry is read), a MANIFEST.json,
 * or a folder holding one (an unpacked artifact).  Prints why on failure and returns the exit
 * status; 0 on success. */
int llm_pack_load(struct llm_cli *c, const char *ref, struct llm_manifest *m,
		  char identity[LLM_DIGEST_SIZE]);

/* A progress line on stderr for long reads and writes: percent, bytes, rate. */
struct llm_pack_progress {
	const char *label;
	double start, last;
	bool drawn;
};

/* Options for lib/artifact/tarball.h from the command line, with a progress line when stderr
 * is a terminal and --quiet was not given (erase it with llm_pack_progress_finish). */
void llm_pack_tar_opts(struct llm_cli *c, struct llm_tarball_opts *o, struct llm_pack_progress *p,
		       const char *label);
void llm_pack_progress_finish(struct llm_pack_progress *p);

/* Check the detached signature of tarball (sig_file, or TARBALL.sig when NULL) with pubkey;
 * 0, or the exit status after saying why.  key_id gets the signer's key id. */
int llm_pack_check_signature(struct llm_cli *c, const char *tarball, const char *sig_file,
			     const char *pubkey, const char *identity,
			     char key_id[LLM_DIGEST_SIZE]);

/* A JSON value on one line, appended to b: strings bare, numbers short, the rest as JSON. */
void llm_pack_value_text(const json_t *v, struct llm_buf *b);

/* A byte count as people read it: "1.2 GB", "340 kB", "12 B" (decimal units). */
void llm_pack_human_size(uint64_t n, char *out, size_t outsz);

#endif
