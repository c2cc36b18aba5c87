/* LoRA adapters in Hugging Face PEFT's layout: adapter_config.json beside
 * adapter_model.safetensors, tensors named base_model.model.<module>.lora_A.weight (r, in) and
 * .lora_B.weight (out, r), where <module> is the adapted Linear's path in the base model
 * ("model.layers.0.self_attn.q_proj").  PEFT leaves the adapter name ("default") out of saved
 * keys, so these are the names it writes and reads.  ΔW = (lora_alpha / r) · B · A. */
#ifndef LLM_ENGINE_PEFT_H
#define LLM_ENGINE_PEFT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "engine/safetensors.h"

/* The fields of adapter_config.json the engine uses; peft_type is LORA, task_type CAUSAL_LM and
 * bias "none" always. */
struct llm_peft_config {
	uint32_t r;
	double lora_alpha;
	double lora_dropout;
	char **target_modules; /* "q_proj", "v_proj", ... */
	size_t n_target_modules;
	char *base_model_name_or_path; /* NULL when unknown */
};

/* One adapted Linear: A is (r, in), B is (out, r), both row-major float32. */
struct llm_lora_pair {
	const char *module;
	uint32_t r;
	uint32_t in;
	uint32_t out;
	const float *a;
	const float *b;
};

/* Write c as adapter_config.json at path (atomically), as PEFT does: sorted keys, indented. */
enum llm_err llm_peft_config_write(const char *path, const struct llm_peft_config *c,
				   struct llm_diag *diag);
/* Read and check path: peft_type must be LORA; r, lora_alpha and target_modules present.
 * Free with llm_peft_config_free(). */
enum llm_err llm_peft_config_read(const char *path, struct llm_peft_config *c,
				  struct llm_diag *diag);
void llm_peft_config_free(struct llm_peft_config *c);

/* The saved name of module's A ('A') or B ('B') matrix.  LLM_ERR_TOO_BIG when out is short. */
enum llm_err llm_peft_tensor_name(const char *module, char which, char *out, size_t outsz);
/* The inverse: module path and 'A' or 'B' from a saved name; LLM_ERR_NOT_FOUND when name is
 * not a PEFT LoRA tensor name. */
enum llm_err llm_peft_parse_name(const char *name, char *module, size_t modsz, char *which);

/* Write dir/adapter_config.json and dir/adapter_model.safetensors (metadata format "pt"). */
enum llm_err llm_peft_write(const char *dir, const struct llm_peft_config *c,
			    const struct llm_lora_pair *pairs, size_t n, struct llm_diag *diag);

/* Read module's A into a (r, in) and B into b (out, r) from an open adapter_model.safetensors,
 * checking both shapes. */
enum llm_err llm_peft_read_pair(const struct llm_safetensors *st, const char *module, uint32_t r,
				uint32_t in, uint32_t out, float *a, float *b,
				struct llm_diag *diag);

#endif
