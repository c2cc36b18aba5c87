/* The shape of a Llama-architecture model: what a Hugging Face LlamaForCausalLM config.json
 * says, read and written in that file's own keys so the model directories the engine writes
 * load in transformers and vLLM unchanged.
 *
 * Only what the engine runs is accepted: the SiLU activation, no rope_scaling, no attention or
 * MLP biases, head_dim = hidden_size / num_attention_heads.  Everything else in the file is
 * ignored on reading.  The presets are the embedded defaults that `llm-tune init` starts from. */
#ifndef LLM_ENGINE_HPARAMS_H
#define LLM_ENGINE_HPARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/err.h"

struct llm_model_config {
	int vocab_size;
	int hidden_size;
	int intermediate_size;
	int num_hidden_layers;
	int num_attention_heads;
	int num_key_value_heads; /* divides num_attention_heads: groups of query heads share one */
	int max_position_embeddings;
	double rms_norm_eps;
	double rope_theta;
	bool tie_word_embeddings; /* the output head is the token embedding (no lm_head.weight) */
	int bos_token_id;	  /* -1 when the model has none (written as null) */
	int eos_token_id;	  /* -1 when none; the first id when the file lists several */
};

/* Fill c with a named preset: "tiny" (about 2.4M parameters; trains on two cores in minutes)
 * or "small" (about 27M).  Their vocab_size is a default the caller replaces with its
 * tokenizer's; bos and eos are -1 until the caller sets them.  LLM_ERR_USAGE for another name. */
enum llm_err llm_model_config_preset(struct llm_model_config *c, const char *name,
				     struct llm_diag *diag);

/* The names of the presets, NULL-terminated, for help texts. */
const char *const *llm_model_config_preset_names(void);

/* Check that the engine can run c: positive sizes, heads dividing hidden_size, key/value heads
 * dividing heads, an even head_dim, eps and theta positive.  file names the source in the
 * diagnostic (may be NULL).  LLM_ERR_RANGE names the offending key. */
enum llm_err llm_model_config_check(const struct llm_model_config *c, const char *file,
				    struct llm_diag *diag);

/* Read a config.json object (already parsed).  Missing required keys are LLM_ERR_MISSING,
 * wrong JSON types LLM_ERR_TYPE, values the engine cannot run LLM_ERR_RANGE; each names file and
 * key.  Optional keys take Hugging Face's LlamaConfig defaults. */
enum llm_err llm_model_config_from_json(struct llm_model_config *c, const json_t *root,
					const char *file, struct llm_diag *diag);

/* Read and parse the file at path (LLM_ERR_JSON with line and column when it is not JSON). */
enum llm_err llm_model_config_load(struct llm_model_config *c, const char *path,
				   struct llm_diag *diag);

/* The config.json object for c, with the keys transformers writes (architectures, model_type,
 * hidden_act, torch_dtype "float32", ...).  NULL when memory runs out. */
json_t *llm_model_config_to_json(const struct llm_model_config *c);

/* Write config.json atomically, pretty-printed with sorted keys as transformers does. */
enum llm_err llm_model_config_save(const struct llm_model_config *c, const char *path,
				   struct llm_diag *diag);

/* hidden_size / num_attention_heads. */
int llm_model_config_head_dim(const struct llm_model_config *c);

/* The number of parameters (the shared embedding counted once when tied). */
size_t llm_model_config_num_params(const struct llm_model_config *c);

#endif
