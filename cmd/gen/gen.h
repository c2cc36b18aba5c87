/* What llm-gen's run and its batch verbs share: the options that turn a record into a request,
 * the ids of records, and the fields an answer or a failure adds to a record. */
#ifndef LLM_CMD_GEN_GEN_H
#define LLM_CMD_GEN_GEN_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "backend/backend.h"
#include "backend/request.h"
#include "cli.h"
#include "text/template.h"

extern const struct llm_verb llm_gen_verb_run;
extern const struct llm_verb llm_gen_verb_batch_export;
extern const struct llm_verb llm_gen_verb_batch_import;

/* The request options (prompt, messages, template, sampling) and the record fields
 * (--output-field, --id-field); a verb adds --model-name to its own table. */
extern const struct llm_opt llm_gen_opts_request[];

/* The fields llm-gen writes (besides the output field): a derived id leaves them out. */
#define GEN_WRITTEN_FIELDS                                                                         \
	"usage", "latency_ms", "ttft_ms", "model", "finish_reason", "logprobs", "cached", "error"
#define GEN_NWRITTEN 8

struct gen_input {
	enum { GEN_EP_AUTO, GEN_EP_CHAT, GEN_EP_COMPLETIONS } mode;
	const char *prompt_field, *messages_field, *output_field, *id_field;
	const char *template_path;
	struct llm_prompt_template *tmpl;
	struct llm_sampling sampling;
	json_t *params;
	char **stop;
	size_t nstop;
	const char *exclude[GEN_NWRITTEN + 1]; /* the output field and GEN_WRITTEN_FIELDS */
	size_t nexclude;
};

/* Read --output-field and --id-field, and with request also the request options.
 * Returns 0, or the exit status of a usage error already reported. */
int gen_input_setup(struct llm_cli *c, struct gen_input *g, bool request);
void gen_input_free(struct gen_input *g);

/* The request for a record: its endpoint and body.  A record that cannot make one (no prompt,
 * messages of the wrong shape, a template field missing) fills why with its FILE:LINE. */
enum llm_err gen_request(const struct gen_input *g, const struct llm_record *rec,
			 enum llm_endpoint *ep, json_t **body, struct llm_diag *why);

/* The record's id (id field, or derived), into out (cleared first). */
enum llm_err gen_record_id(const struct gen_input *g, const struct llm_record *rec,
			   struct llm_buf *out, struct llm_diag *why);

/* The custom_id of the k-th occurrence (k from 1) of an id in a batch: the id, then "ID#2",
 * "ID#3", ... (the Batch API wants them unique). */
enum llm_err gen_custom_id(const char *id, size_t len, uint64_t k, struct llm_buf *out);

/* The members an answer or a failure sets on a record. */
struct gen_edits {
	struct llm_edit e[GEN_NWRITTEN + 1];
	char *owned[GEN_NWRITTEN + 1];
	size_t n;
	/* For the report, from an answer. */
	int64_t prompt_tokens, completion_tokens; /* -1 when the response had no usage */
};

void gen_edits_free(struct gen_edits *x);

/* The fields of an answer: output (a string; an array when the response has several
 * choices), usage, latency_ms, ttft_ms (null when < 0 or NAN), model (the response's, else
 * model), finish_reason, logprobs when any choice has them, and "cached": true when cached.
 * A body that is not a response fills why (no FILE:LINE). */
enum llm_err gen_answer_edits(struct gen_edits *x, const struct gen_input *g, const char *body,
			      size_t len, double latency_ms, double ttft_ms, const char *model,
			      bool cached, struct llm_diag *why);

/* The fields of a failure: "error": {"code", "message"[, "status"]}, and the output field set to
 * null when the record already has it (a chain's earlier answer must not pass as this one). */
enum llm_err gen_error_edits(struct gen_edits *x, const struct gen_input *g,
			     const struct llm_record *rec, const char *code, const char *message,
			     int status);

/* Split --stop values at commas not preceded by a backslash, decoding \n, \t, \r, \\ and \,.
 * NULL-terminated; free with llm_strv_free. */
enum llm_err gen_split_stops(char *const *vals, size_t nvals, char ***out, size_t *n);

#endif
