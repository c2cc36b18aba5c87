/* Model directories in Hugging Face layout, and llama GGUF files, to and from an llm_model.
 *
 * A model directory holds config.json (hparams.h), model.safetensors (every parameter under
 * the name and shape transformers' LlamaForCausalLM gives it in its state_dict; lm_head.weight
 * absent when the embeddings are tied), generation_config.json, tokenizer.json and a minimal
 * tokenizer_config.json.  Loading accepts F32, F16 and BF16 tensors (converted to float32) and
 * checks every shape; a tied model's file may still carry lm_head.weight (it is ignored), and
 * rotary_emb.inv_freq buffers older transformers saved are skipped.  Any other tensor the model
 * has no place for is an error, so a file for another architecture never loads half-way.
 *
 * Saving a directory is atomic: everything is written into a temporary sibling, synced, and
 * swapped with the old directory in one rename (Linux's RENAME_EXCHANGE where available), so a
 * crash at any moment leaves the old directory or the new one whole, never a mixture.  A
 * training checkpoint adds its own files (optimizer state, trainer state) through a callback
 * that runs inside the temporary directory before the swap.
 *
 * GGUF: a llama GGUF with F32, F16 or BF16 tensors loads into a model (Q and K rows
 * un-permuted); export writes one llama.cpp loads, with tokenizer metadata taken from a Hugging
 * Face byte-level BPE tokenizer.json (tokenizer.ggml.model "gpt2"). */
#ifndef LLM_ENGINE_MODELDIR_H
#define LLM_ENGINE_MODELDIR_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "engine/model.h"

/* Read dir/config.json and dir/model.safetensors into a new model.  A missing directory or
 * file is LLM_ERR_NOT_FOUND naming it; a bad config is what llm_model_config_load says; a
 * tensor of the wrong shape is LLM_ERR_CHECK; a missing tensor LLM_ERR_MISSING; a truncated or
 * malformed safetensors file what llm_safetensors_open says. */
enum llm_err llm_modeldir_load(struct llm_model **out, const char *dir, struct llm_diag *diag);

/* Load model.safetensors (or any file of that layout) into an existing model's parameters. */
enum llm_err llm_modeldir_read_weights(struct llm_model *m, const char *path,
				       struct llm_diag *diag);

/* Write m's parameters as float32 safetensors at path (atomically), metadata format "pt". */
enum llm_err llm_modeldir_write_weights(const struct llm_model *m, const char *path,
					struct llm_diag *diag);

/* Extra files to write into the directory before it is swapped into place. */
typedef enum llm_err (*llm_modeldir_extra_fn)(const char *tmpdir, void *arg,
					      struct llm_diag *diag);

struct llm_modeldir_save_opts {
	const char *tokenizer; /* a tokenizer.json to copy in, or NULL */
	llm_modeldir_extra_fn extra;
	void *extra_arg;
};

/* Write the model files (config.json, model.safetensors, generation_config.json and, with a
 * tokenizer, tokenizer.json and tokenizer_config.json) into the existing directory dir, each
 * file atomically.  For a directory that holds more than a model (a training output). */
enum llm_err llm_modeldir_write_files(const struct llm_model *m, const char *dir,
				      const struct llm_modeldir_save_opts *o,
				      struct llm_diag *diag);

/* Save m as the directory dir, atomically as a whole: dir is created or replaced, its parent
 * must exist.  o may be NULL. */
enum llm_err llm_modeldir_save(const struct llm_model *m, const char *dir,
			       const struct llm_modeldir_save_opts *o, struct llm_diag *diag);

/* Load a llama GGUF (F32, F16 or BF16 tensors) into a new model; bos and eos come from
 * tokenizer.ggml.*_token_id when present.  LLM_ERR_CHECK for another architecture. */
enum llm_err llm_modeldir_load_gguf(struct llm_model **out, const char *path,
				    struct llm_diag *diag);

/* Load a model reference: a .gguf file or a model directory. */
enum llm_err llm_modeldir_open(struct llm_model **out, const char *ref, struct llm_diag *diag);

struct llm_gguf_export_opts {
	const char *tokenizer; /* a Hugging Face tokenizer.json (byte-level BPE), or NULL */
	const char *name;      /* general.name, or NULL */
	bool f16;	       /* matrices as F16 (norms stay F32, as llama.cpp's converter does) */
};

/* Write m as a llama GGUF at path (atomically).  With a tokenizer: tokenizer.ggml.model
 * "gpt2", tokens in id order (the model's vocabulary beyond the tokenizer's padded with
 * "[PAD<id>]" tokens of type unused), token_type (1 normal, 3 control for added tokens),
 * merges, bos/eos ids and a pre-tokenizer name llama.cpp knows for the tokenizer's pattern
 * ("gpt-2", "llama-bpe", "gpt-4o", else "default").  A tokenizer larger than the model's
 * vocabulary, or not byte-level BPE, is LLM_ERR_CHECK. */
enum llm_err llm_modeldir_export_gguf(const struct llm_model *m, const char *path,
				      const struct llm_gguf_export_opts *o,
				      struct llm_diag *diag);

#endif
