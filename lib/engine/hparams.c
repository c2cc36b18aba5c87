/* Llama model configuration: presets, checks, and the Hugging Face config.json. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/atomic.h"
#include "engine/hparams.h"

/* --- presets -------------------------------------------------------------------------------- */

struct preset {
	const char *name;
	struct llm_model_config c;
};

/* tiny: hidden 192 with 4 layers is about 1.6M parameters in the blocks plus 0.8M in the tied
 * embedding of a 4096-token vocabulary; about 15 MFLOP a token to train, so a few MB of text
 * is an epoch of minutes on two cores.  intermediate = 8/3 hidden, as Llama sizes its MLP.
 * small: the same recipe at hidden 512, 8 layers, for a machine with more time. */
static const struct preset presets[] = {
    {"tiny",
     {.vocab_size = 4096,
      .hidden_size = 192,
      .intermediate_size = 512,
      .num_hidden_layers = 4,
      .num_attention_heads = 4,
      .num_key_value_heads = 2,
      .max_position_embeddings = 256,
      .rms_norm_eps = 1e-5,
      .rope_theta = 10000.0,
      .tie_word_embeddings = true,
      .bos_token_id = -1,
      .eos_token_id = -1}},
    {"small",
     {.vocab_size = 8192,
      .hidden_size = 512,
      .intermediate_size = 1376,
      .num_hidden_layers = 8,
      .num_attention_heads = 8,
      .num_key_value_heads = 4,
      .max_position_embeddings = 1024,
      .rms_norm_eps = 1e-5,
      .rope_theta = 10000.0,
      .tie_word_embeddings = true,
      .bos_token_id = -1,
      .eos_token_id = -1}},
};

#define NPRESETS (sizeof presets / sizeof presets[0])

const char *const *llm_model_config_preset_names(void)
{
	static const char *const names[] = {"tiny", "small", NULL};
	return names;
}

enum llm_err llm_model_config_preset(struct llm_model_config *c, const char *name,
				     struct llm_diag *diag)
{
	for (size_t i = 0; i < NPRESETS; i++) {
		if (strcmp(presets[i].name, name) == 0) {
			*c = presets[i].c;
			return LLM_OK;
		}
	}
	return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
			    "unknown model preset '%s' (expected tiny or small)", name);
}

/* --- checks --------------------------------------------------------------------------------- */

int llm_model_config_head_dim(const struct llm_model_config *c)
{
	return c->num_attention_heads > 0 ? c->hidden_size / c->num_attention_heads : 0;
}

size_t llm_model_config_num_params(const struct llm_model_config *c)
{
	size_t d = (size_t)c->hidden_size, f = (size_t)c->intermediate_size;
	size_t kv = (size_t)llm_model_config_head_dim(c) * (size_t)c->num_key_value_heads;
	size_t layer = 2 * d + 2 * d * d + 2 * kv * d + 3 * d * f;
	size_t n = (size_t)c->vocab_size * d + (size_t)c->num_hidden_layers * layer + d;
	if (!c->tie_word_embeddings)
		n += (size_t)c->vocab_size * d;
	return n;
}

/* Sizes are kept well inside int so that products of two of them index size_t arrays and
 * the matrix kernels' int dimensions never overflow. */
#define SIZE_LIMIT (1 << 24)

static enum llm_err check_positive(int v, const char *key, const char *file, struct llm_diag *diag)
{
	if (v <= 0 || v > SIZE_LIMIT)
		return llm_diag_set(diag, LLM_ERR_RANGE, file, 0,
				    "%s: %d is out of range (1 to %d)", key, v, SIZE_LIMIT);
	return LLM_OK;
}

enum llm_err llm_model_config_check(const struct llm_model_config *c, const char *file,
				    struct llm_diag *diag)
{
	static const struct {
		const char *key;
		size_t off;
	} sizes[] = {
	    {"vocab_size", offsetof(struct llm_model_config, vocab_size)},
	    {"hidden_size", offsetof(struct llm_model_config, hidden_size)},
	    {"intermediate_size", offsetof(struct llm_model_config, intermediate_size)},
	    {"num_hidden_layers", offsetof(struct llm_model_config, num_hidden_layers)},
	    {"num_attention_heads", offsetof(struct llm_model_config, num_attention_heads)},
	    {"num_key_value_heads", offsetof(struct llm_model_config, num_key_value_heads)},
	    {"max_position_embeddings", offsetof(struct llm_model_config, max_position_embeddings)},
	};
	enum llm_err e;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		int v = *(const int *)((const char *)c + sizes[i].off);
		if ((e = check_positive(v, sizes[i].key, file, diag)))
			return e;
	}
	if (c->hidden_size % c->num_attention_heads)
		return llm_diag_set(diag, LLM_ERR_RANGE, file, 0,
				    "num_attention_heads: %d does not divide hidden_size %d",
				    c->num_attention_heads, c->hidden_size);
	if (c->num_attention_heads % c->num_key_value_heads)
		return llm_diag_set(
		    diag, LLM_ERR_RANGE, file, 0,
		    "num_key_value_heads: %d does not divide num_attention_heads %d",
		    c->num_key_value_heads, c->num_attention_heads);
	if (llm_model_config_head_dim(c) % 2)
		return llm_diag_set(
		    diag, LLM_ERR_RANGE, file, 0,
		    "hidden_size / num_attention_heads = %d is odd; rotary embedding "
		    "needs an even head dimension",
		    llm_model_config_head_dim(c));
	if (!(c->rms_norm_eps > 0 && c->rms_norm_eps < 1))
		return llm_diag_set(diag, LLM_ERR_RANGE, file, 0,
				    "rms_norm_eps: %g is out of range (0 to 1, exclusive)",
				    c->rms_norm_eps);
	if (!(c->rope_theta > 1 && isfinite(c->rope_theta)))
		return llm_diag_set(diag, LLM_ERR_RANGE, file, 0,
				    "rope_theta: %g is out of range (greater than 1)",
				    c->rope_theta);
	if (c->bos_token_id < -1 || c->bos_token_id >= c->vocab_size)
		return llm_diag_set(diag, LLM_ERR_RANGE, file, 0,
				    "bos_token_id: %d is not below vocab_size %d", c->bos_token_id,
				    c->vocab_size);
	if (c->eos_token_id < -1 || c->eos_token_id >= c->vocab_size)
		return llm_diag_set(diag, LLM_ERR_RANGE, file, 0,
				    "eos_token_id: %d is not below vocab_size %d", c->eos_token_id,
				    c->vocab_size);
	return LLM_OK;
}

/* --- reading config.json -------------------------------------------------------------------- */

static enum llm_err get_int(const json_t *root, const char *key, bool required, int dflt, int *out,
			    const char *file, struct llm_diag *diag)
{
	const json_t *v = json_object_get(root, key);
	if (!v || json_is_null(v)) {
		if (required)
			return llm_diag_set(diag, LLM_ERR_MISSING, file, 0,
					    "missing required key '%s'", key);
		*out = dflt;
		return LLM_OK;
	}
	if (!json_is_integer(v))
		return llm_diag_set(diag, LLM_ERR_TYPE, file, 0, "%s: expected an integer", key);
	json_int_t x = json_integer_value(v);
	if (x < INT_MIN || x > INT_MAX)
		return llm_diag_set(diag, LLM_ERR_RANGE, file, 0, "%s: %lld is out of range", key,
				    (long long)x);
	*out = (int)x;
	return LLM_OK;
}

static enum llm_err get_real(const json_t *root, const char *key, double dflt, double *out,
			     const char *file, struct llm_diag *diag)
{
	const json_t *v = json_object_get(root, key);
	if (!v || json_is_null(v)) {
		*out = dflt;
		return LLM_OK;
	}
	if (!json_is_number(v))
		return llm_diag_set(diag, LLM_ERR_TYPE, file, 0, "%s: expected a number", key);
	*out = json_number_value(v);
	return LLM_OK;
}

static enum llm_err get_bool(const json_t *root, const char *key, bool dflt, bool *out,
			     const char *file, struct llm_diag *diag)
{
	const json_t *v = json_object_get(root, key);
	if (!v || json_is_null(v)) {
		*out = dflt;
		return LLM_OK;
	}
	if (!json_is_boolean(v))
		return llm_diag_set(diag, LLM_ERR_TYPE, file, 0, "%s: expected true or false", key);
	*out = json_is_true(v);
	return LLM_OK;
}

/* A token id: an integer, null (none), or a list of integers (Llama 3 lists several eos ids;
 * the first is the one the engine appends). */
static enum llm_err get_token_id(const json_t *root, const char *key, int dflt, int *out,
				 const char *file, struct llm_diag *diag)
{
	const json_t *v = json_object_get(root, key);
	if (!v) {
		*out = dflt;
		return LLM_OK;
	}
	if (json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0)) {
		*out = -1;
		return LLM_OK;
	}
	if (json_is_array(v))
		v = json_array_get(v, 0);
	if (!json_is_integer(v))
		return llm_diag_set(diag, LLM_ERR_TYPE, file, 0,
				    "%s: expected an integer, a list of integers or null", key);
	json_int_t x = json_integer_value(v);
	if (x < 0 || x > INT_MAX)
		return llm_diag_set(diag, LLM_ERR_RANGE, file, 0, "%s: %lld is out of range", key,
				    (long long)x);
	*out = (int)x;
	return LLM_OK;
}

/* Keys whose other values would make the engine compute something else than the file means. */
static enum llm_err check_unsupported(const json_t *root, const char *file, struct llm_diag *diag)
{
	const json_t *v = json_object_get(root, "model_type");
	if (v && !(json_is_string(v) && strcmp(json_string_value(v), "llama") == 0))
		return llm_diag_set(diag, LLM_ERR_RANGE, file, 0,
				    "model_type: only \"llama\" is supported");
	v = json_object_get(root, "hidden_act");
	if (v && !(json_is_string(v) && strcmp(json_string_value(v), "silu") == 0))
		return llm_diag_set(diag, LLM_ERR_RANGE, file, 0,
				    "hidden_act: only \"silu\" is supported");
	v = json_object_get(root, "rope_scaling");
	if (v && !json_is_null(v))
		return llm_diag_set(diag, LLM_ERR_RANGE, file, 0,
				    "rope_scaling: not supported (must be null)");
	static const char *const no_bias[] = {"attention_bias", "mlp_bias"};
	for (size_t i = 0; i < 2; i++) {
		v = json_object_get(root, no_bias[i]);
		if (v && !json_is_false(v) && !json_is_null(v))
			return llm_diag_set(diag, LLM_ERR_RANGE, file, 0,
					    "%s: biases are not supported (must be false)",
					    no_bias[i]);
	}
	return LLM_OK;
}

enum llm_err llm_model_config_from_json(struct llm_model_config *c, const json_t *root,
					const char *file, struct llm_diag *diag)
{
	if (!json_is_object(root))
		return llm_diag_set(diag, LLM_ERR_TYPE, file, 0, "expected a JSON object");
	struct llm_model_config n = {0};
	enum llm_err e;
	/* The defaults are transformers' LlamaConfig defaults, so a file that leaves a key out
	 * means here what it means there. */
	if ((e = get_int(root, "vocab_size", true, 0, &n.vocab_size, file, diag)) ||
	    (e = get_int(root, "hidden_size", true, 0, &n.hidden_size, file, diag)) ||
	    (e = get_int(root, "intermediate_size", true, 0, &n.intermediate_size, file, diag)) ||
	    (e = get_int(root, "num_hidden_layers", true, 0, &n.num_hidden_layers, file, diag)) ||
	    (e = get_int(root, "num_attention_heads", true, 0, &n.num_attention_heads, file, diag)))
		return e;
	if ((e = get_int(root, "num_key_value_heads", false, n.num_attention_heads,
			 &n.num_key_value_heads, file, diag)) ||
	    (e = get_int(root, "max_position_embeddings", false, 2048, &n.max_position_embeddings,
			 file, diag)) ||
	    (e = get_real(root, "rms_norm_eps", 1e-6, &n.rms_norm_eps, file, diag)) ||
	    (e = get_real(root, "rope_theta", 10000.0, &n.rope_theta, file, diag)) ||
	    (e = get_bool(root, "tie_word_embeddings", false, &n.tie_word_embeddings, file,
			  diag)) ||
	    (e = get_token_id(root, "bos_token_id", 1, &n.bos_token_id, file, diag)) ||
	    (e = get_token_id(root, "eos_token_id", 2, &n.eos_token_id, file, diag)))
		return e;
	if ((e = check_unsupported(root, file, diag)))
		return e;
	if ((e = llm_model_config_check(&n, file, diag)))
		return e;
	const json_t *hd = json_object_get(root, "head_dim");
	if (hd && !json_is_null(hd) &&
	    !(json_is_integer(hd) && json_integer_value(hd) == llm_model_config_head_dim(&n)))
		return llm_diag_set(diag, LLM_ERR_RANGE, file, 0,
				    "head_dim: only hidden_size / num_attention_heads (%d) is "
				    "supported",
				    llm_model_config_head_dim(&n));
	*c = n;
	return LLM_OK;
}

enum llm_err llm_model_config_load(struct llm_model_config *c, const char *path,
				   struct llm_diag *diag)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (json_error_code(&jerr) == json_error_cannot_open_file)
			return llm_diag_set(diag, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO,
					    path, 0, "%s", jerr.text);
		return llm_diag_set(diag, LLM_ERR_JSON, path, jerr.line, "column %d: %s",
				    jerr.column, jerr.text);
	}
	enum llm_err e = llm_model_config_from_json(c, root, path, diag);
	json_decref(root);
	return e;
}

/* --- writing config.json -------------------------------------------------------------------- */

static json_t *token_id_json(int id)
{
	return id < 0 ? json_null() : json_integer(id);
}

json_t *llm_model_config_to_json(const struct llm_model_config *c)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_t *arch = json_array();
	int bad = !arch || json_array_append_new(arch, json_string("LlamaForCausalLM"));
	bad |= json_object_set_new(o, "architectures", arch);
	bad |= json_object_set_new(o, "model_type", json_string("llama"));
	bad |= json_object_set_new(o, "hidden_act", json_string("silu"));
	bad |= json_object_set_new(o, "torch_dtype", json_string("float32"));
	bad |= json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
	bad |= json_object_set_new(o, "hidden_size", json_integer(c->hidden_size));
	bad |= json_object_set_new(o, "intermediate_size", json_integer(c->intermediate_size));
	bad |= json_object_set_new(o, "num_hidden_layers", json_integer(c->num_hidden_layers));
	bad |= json_object_set_new(o, "num_attention_heads", json_integer(c->num_attention_heads));
	bad |= json_object_set_new(o, "num_key_value_heads", json_integer(c->num_key_value_heads));
	bad |= json_object_set_new(o, "head_dim", json_integer(llm_model_config_head_dim(c)));
	bad |= json_object_set_new(o, "max_position_embeddings",
				   json_integer(c->max_position_embeddings));
	bad |= json_object_set_new(o, "rms_norm_eps", json_real(c->rms_norm_eps));
	bad |= json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
	bad |= json_object_set_new(o, "rope_scaling", json_null());
	bad |= json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_word_embeddings));
	bad |= json_object_set_new(o, "attention_bias", json_false());
	bad |= json_object_set_new(o, "attention_dropout", json_real(0.0));
	bad |= json_object_set_new(o, "mlp_bias", json_false());
	bad |= json_object_set_new(o, "initializer_range", json_real(0.02));
	bad |= json_object_set_new(o, "pretraining_tp", json_integer(1));
	bad |= json_object_set_new(o, "use_cache", json_true());
	bad |= json_object_set_new(o, "bos_token_id", token_id_json(c->bos_token_id));
	bad |= json_object_set_new(o, "eos_token_id", token_id_json(c->eos_token_id));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

enum llm_err llm_model_config_save(const struct llm_model_config *c, const char *path,
				   struct llm_diag *diag)
{
	json_t *o = llm_model_config_to_json(c);
	/* 15 significant digits print 1e-05 as 1e-05, not as its nearest double's 17 digits. */
	char *s =
	    o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15)) : NULL;
	json_decref(o);
	if (!s)
		return llm_diag_set(diag, LLM_ERR_NOMEM, path, 0, "out of memory");
	size_t n = strlen(s);
	/* The text ends with a newline, as a text file should. */
	char *t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return llm_diag_set(diag, LLM_ERR_NOMEM, path, 0, "out of memory");
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	enum llm_err e = llm_atomic_write_file(path, t, n + 1, diag);
	free(t);
	return e;
}
