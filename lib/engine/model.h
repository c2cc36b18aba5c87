/* A Llama-architecture decoder that trains and runs on the CPU in float32.
 *
 * Token embedding; per layer RMSNorm → grouped-query causal self-attention with rotary position
 * embedding (Hugging Face's rotate-half convention) → residual, RMSNorm → SwiGLU MLP → residual;
 * a final RMSNorm and an output head, tied to the embedding or its own.  The arithmetic is that
 * of transformers' LlamaForCausalLM in float32 (tests/unit/test-engine.c checks logits, loss and
 * gradients against a PyTorch reference).
 *
 * Memory follows llm.c: every parameter lives in one allocation, with a view per tensor; the
 * gradients in a second allocation of the same layout (made on first use, so a model that only
 * generates never pays for it); everything the forward pass keeps for the backward pass, and
 * the backward pass's scratch, in a third, sized for the largest batch seen so far.
 *
 * Threads are OpenMP's (omp_set_num_threads or OMP_NUM_THREADS); matrix products go through
 * engine/matmul.  Tensors are row-major; a linear layer's weight is (out, in) as in PyTorch, and
 * a parameter's Hugging Face name and shape come from llm_model_param(), so a checkpoint reader
 * or writer needs nothing else. */
#ifndef LLM_ENGINE_MODEL_H
#define LLM_ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "engine/hparams.h"

/* Views of one layer's tensors, inside the parameter (or gradient) allocation. */
struct llm_layer_weights {
	float *attn_norm; /* (hidden)          input_layernorm */
	float *wq;	  /* (hidden, hidden)  self_attn.q_proj */
	float *wk;	  /* (kv_dim, hidden)  self_attn.k_proj; kv_dim = kv heads · head_dim */
	float *wv;	  /* (kv_dim, hidden)  self_attn.v_proj */
	float *wo;	  /* (hidden, hidden)  self_attn.o_proj */
	float *ffn_norm;  /* (hidden)          post_attention_layernorm */
	float *w_gate;	  /* (inter, hidden)   mlp.gate_proj */
	float *w_up;	  /* (inter, hidden)   mlp.up_proj */
	float *w_down;	  /* (hidden, inter)   mlp.down_proj */
};

/* Views of the whole model's tensors.  lm_head == embed when the embeddings are tied. */
struct llm_weights {
	float *embed; /* (vocab, hidden)  model.embed_tokens */
	struct llm_layer_weights *layer;
	float *norm;	/* (hidden)         model.norm */
	float *lm_head; /* (vocab, hidden)  lm_head */
};

struct llm_acts; /* what the forward pass keeps for the backward pass (model.c) */
struct llm_lora; /* LoRA adapters (engine/lora.h) */

struct llm_model {
	struct llm_model_config config;
	size_t num_params;    /* floats in params (and in grads) */
	float *params;	      /* the one parameter allocation */
	float *grads;	      /* the same layout; NULL until the first backward or zero_grad */
	struct llm_weights w; /* views into params */
	struct llm_weights g; /* views into grads (NULL pointers until grads exists) */

	/* The last forward pass: B sequences of T tokens.  logits is (B·T, vocab) and valid
	 * after llm_model_forward until llm_model_backward, which reuses it for the gradient. */
	int B, T;
	float *logits;
	float loss; /* the mean cross-entropy of the last forward with targets */

	struct llm_acts *acts;
	float *rope_cos, *rope_sin; /* (max_position_embeddings, head_dim / 2) */

	/* LoRA adapters, NULL when none (engine/lora.h attaches them).  While they are attached,
	 * forward adds their terms and backward computes their gradients into lora->grads and
	 * leaves the base gradients alone: the base weights are frozen. */
	struct llm_lora *lora;
};

/* Allocate a model of shape config (checked with llm_model_config_check).  The parameters are
 * zero; fill them with llm_model_init_random or a checkpoint reader. */
enum llm_err llm_model_new(struct llm_model **out, const struct llm_model_config *config,
			   struct llm_diag *diag);
void llm_model_free(struct llm_model *m);

/* Initialise as transformers does: every linear and the embedding from N(0, std²) (std 0.02,
 * LlamaConfig's initializer_range), the RMSNorm weights to one.  The same seed gives the same
 * weights on every machine. */
void llm_model_init_random(struct llm_model *m, uint64_t seed, float std);

/* Run B sequences of T tokens (tokens[b·T + t]).  The logits land in m->logits.  With targets
 * (same layout; the token that should follow each position) the mean cross-entropy is computed,
 * stored in *loss when loss is not NULL and in m->loss, and the pass keeps what backward needs.
 * loss_mask (NULL: all ones) weights each target, so 0 leaves a position out of the mean (only
 * answer tokens count when fine-tuning on prompts); the loss is Σ w·ce / Σ w, and 0 when every
 * weight is 0.  Errors: LLM_ERR_RANGE for a token or target outside the vocabulary or T beyond
 * max_position_embeddings, LLM_ERR_NOMEM. */
enum llm_err llm_model_forward(struct llm_model *m, const uint32_t *tokens, const uint32_t *targets,
			       const float *loss_mask, int B, int T, float *loss,
			       struct llm_diag *diag);

/* llm_model_forward for packed rows: positions[b·T + t] is token t's position in its own
 * document (NULL: t, one document per row).  A row may then hold several documents back to
 * back, each starting at position 0: a token attends only to the tokens of its own document,
 * and its rotary angle is that of its position there, so the logits, loss and gradients of
 * each document are those it would have alone in a row (a block-diagonal causal mask).  A
 * position must be 0 or one more than the one before it: LLM_ERR_RANGE otherwise.  Backward
 * uses the same positions. */
enum llm_err llm_model_forward_packed(struct llm_model *m, const uint32_t *tokens,
				      const uint32_t *targets, const float *loss_mask,
				      const uint32_t *positions, int B, int T, float *loss,
				      struct llm_diag *diag);

/* Add the gradient of the last forward pass's loss to m->grads (allocating it at first use),
 * so micro-batches accumulate.  Needs a forward pass with targets just before; afterwards
 * m->logits holds the gradient of the loss with respect to the logits.  With LoRA adapters
 * attached the gradients go to the adapters' (m->lora->grads) instead, and m->grads is neither
 * allocated nor changed.  LLM_ERR_USAGE when no forward with targets preceded it (or adapters
 * were attached or detached since), LLM_ERR_NOMEM. */
enum llm_err llm_model_backward(struct llm_model *m, struct llm_diag *diag);

/* Set every gradient to zero (allocating the gradients at first use), the adapters' too. */
enum llm_err llm_model_zero_grad(struct llm_model *m, struct llm_diag *diag);

/* One parameter tensor as a checkpoint sees it. */
struct llm_param {
	char name[96];	  /* Hugging Face name: "model.layers.3.self_attn.q_proj.weight" */
	int ndim;	  /* 1 or 2 */
	int64_t shape[2]; /* PyTorch order: (out, in) for a linear weight */
	size_t numel;
	float *data; /* into m->params */
	float *grad; /* into m->grads, NULL before the gradients exist */
};

/* The number of parameter tensors: 2 + 9 per layer, plus lm_head when not tied. */
size_t llm_model_param_count(const struct llm_model *m);

/* Tensor i (0 ≤ i < count), in the order transformers lists them: the embedding, each layer's
 * attention, MLP and norms, the final norm, lm_head. */
void llm_model_param(const struct llm_model *m, size_t i, struct llm_param *out);

/* The index of the tensor called name, or -1. */
long llm_model_param_find(const struct llm_model *m, const char *name);

#endif
