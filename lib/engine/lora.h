/* LoRA: low-rank adapters on the Llama decoder's linear layers, trained with the base frozen.
 *
 * An adapted Linear computes y = W x + (alpha / r) · B (A x), with A (r, in) and B (out, r), as
 * Hugging Face PEFT's LoraLayer does (no dropout, no bias).  A starts as PEFT starts it,
 * kaiming-uniform with a = √5, which is U(−1/√in, 1/√in); B starts at zero, so a freshly
 * attached model computes exactly what the base computes.
 *
 * Memory follows the model's: every adapter's A and B in one allocation, their gradients in a
 * second of the same layout, so AdamW sees two flat arrays (llm_lora_params, llm_lora_grads).
 * Once attached, llm_model_forward adds each adapter's term and llm_model_backward computes the
 * adapters' gradients and the activation gradients they need, but no gradient of a base
 * weight: the weight-gradient products are skipped, which is where LoRA saves time.
 *
 * Adapters leave the model in three ways: merged into the base weights (llm_lora_merge), saved
 * in PEFT's layout (adapter_config.json + adapter_model.safetensors, which PEFT's
 * PeftModel.from_pretrained loads) or as a llama.cpp GGUF LoRA adapter. */
#ifndef LLM_ENGINE_LORA_H
#define LLM_ENGINE_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "engine/model.h"

/* The linear layers an adapter can sit on, in the order of a layer's tensors; the bit of target
 * t is 1u << t. */
enum llm_lora_target {
	LLM_LORA_Q = 0,	   /* self_attn.q_proj */
	LLM_LORA_K = 1,	   /* self_attn.k_proj */
	LLM_LORA_V = 2,	   /* self_attn.v_proj */
	LLM_LORA_O = 3,	   /* self_attn.o_proj */
	LLM_LORA_GATE = 4, /* mlp.gate_proj */
	LLM_LORA_UP = 5,   /* mlp.up_proj */
	LLM_LORA_DOWN = 6, /* mlp.down_proj */
	LLM_LORA__COUNT
};

#define LLM_LORA_ALL_LINEAR ((1u << LLM_LORA__COUNT) - 1)

struct llm_lora_config {
	int r;		  /* rank, 1 .. 65536 */
	float alpha;	  /* the update is scaled by alpha / r */
	unsigned targets; /* bits 1u << enum llm_lora_target */
};

/* One adapted Linear: views into the adapter allocations. */
struct llm_lora_adapter {
	int layer;
	enum llm_lora_target target;
	int in, out;
	float *a, *b;	/* (r, in) and (out, r), in llm_lora.params */
	float *da, *db; /* the same in llm_lora.grads */
};

/* The adapters attached to a model (model->lora).  Read-only for callers. */
struct llm_lora {
	struct llm_lora_config config;
	float scale; /* alpha / r */
	size_t num_params;
	float *params; /* every A and B: layer by layer, q k v o gate up down, A before B */
	float *grads;  /* the same layout */
	struct llm_lora_adapter *adapter;
	size_t n_adapters;
	/* slot[layer · LLM_LORA__COUNT + target]: that Linear's adapter, or NULL */
	struct llm_lora_adapter **slot;
};

/* The short name ("q") and PEFT module name ("q_proj") of a target. */
const char *llm_lora_target_name(enum llm_lora_target t);
const char *llm_lora_target_module(enum llm_lora_target t);

/* Parse a --lora specification: comma-separated key=value items, r (rank), alpha and targets,
 * where targets takes the rest of the list up to the next key=value item:
 *     "r=16,alpha=32,targets=q,k,v,o"
 * Targets are short names (q k v o gate up down), PEFT module names (q_proj ... down_proj) or
 * "all-linear" (all seven).  What is not given keeps PEFT LoraConfig's defaults for Llama: r 8,
 * alpha 8, targets q,v.  LLM_ERR_USAGE, with a message that names the item and what is
 * accepted, for anything else. */
enum llm_err llm_lora_parse(const char *spec, struct llm_lora_config *cfg, struct llm_diag *diag);

/* Check a configuration: r in 1 .. 65536, alpha finite and positive, targets a nonempty subset
 * of LLM_LORA_ALL_LINEAR.  LLM_ERR_RANGE naming the field. */
enum llm_err llm_lora_config_check(const struct llm_lora_config *cfg, struct llm_diag *diag);

/* Attach adapters on the targeted Linears of every layer: A from PEFT's initialisation drawn
 * from seed (the same seed gives the same adapters everywhere), B zero, gradients zero.  The
 * base weights are frozen from now on.  LLM_ERR_USAGE when adapters are already attached,
 * LLM_ERR_RANGE for a bad configuration, LLM_ERR_NOMEM. */
enum llm_err llm_lora_attach(struct llm_model *m, const struct llm_lora_config *cfg, uint64_t seed,
			     struct llm_diag *diag);

/* Remove the adapters (the base weights are as they were) and free them.  No-op without any. */
void llm_lora_detach(struct llm_model *m);

/* The adapters' flat parameter and gradient arrays for the optimizer; *n gets their length.
 * NULL (and *n = 0) when no adapters are attached. */
float *llm_lora_params(struct llm_model *m, size_t *n);
float *llm_lora_grads(struct llm_model *m, size_t *n);

/* Set the adapters' gradients to zero (llm_model_zero_grad does too). */
void llm_lora_zero_grad(struct llm_model *m);

/* W += (alpha / r) · B · A for every adapter, then detach: the model now computes what the
 * adapted model computed, with no adapters.  LLM_ERR_USAGE when none are attached. */
enum llm_err llm_lora_merge(struct llm_model *m, struct llm_diag *diag);

/* Write dir/adapter_config.json and dir/adapter_model.safetensors as PEFT does (dir must
 * exist): tensors base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight (r, in) and
 * ...lora_B.weight (out, r); r, lora_alpha, target_modules, task_type CAUSAL_LM, peft_type
 * LORA, bias none, lora_dropout 0.  base_model_name may be NULL.  LLM_ERR_USAGE without
 * adapters. */
enum llm_err llm_lora_save_peft(const struct llm_model *m, const char *dir,
				const char *base_model_name, struct llm_diag *diag);

/* Attach the adapters saved in dir by PEFT (or llm_lora_save_peft), replacing any attached.
 * Every targeted Linear of every layer must be in the file with the model's shapes, and every
 * tensor in the file must belong to one: LLM_ERR_CHECK naming the tensor otherwise.  Errors of
 * the files as llm_peft_config_read, llm_safetensors_open and llm_safetensors_read_f32 give
 * them.  On any error the model keeps the adapters it had. */
enum llm_err llm_lora_load_peft(struct llm_model *m, const char *dir, struct llm_diag *diag);

/* Write a llama.cpp LoRA adapter (GGUF: general.type adapter, adapter.lora.alpha, tensors
 * blk.N.attn_q.weight.lora_a / .lora_b) for a GGUF of the same base model.  LLM_ERR_USAGE
 * without adapters. */
enum llm_err llm_lora_save_gguf(const struct llm_model *m, const char *path, struct llm_diag *diag);

#endif
