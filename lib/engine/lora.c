/* LoRA adapters: parsing the specification, attaching (allocation and PEFT's initialisation),
 * merging, and the PEFT and GGUF files.  The forward and backward terms live in model.c, beside
 * the Linears they adapt. */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rand.h"
#include "engine/gguf.h"
#include "engine/lora.h"
#include "engine/matmul.h"
#include "engine/peft.h"
#include "engine/safetensors.h"

#define MAX_RANK 65536

static const char *const short_names[LLM_LORA__COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};
static const char *const module_names[LLM_LORA__COUNT] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
/* The module's parent in a Llama layer, for the module path. */
static const char *const parents[LLM_LORA__COUNT] = {
    "self_attn", "self_attn", "self_attn", "self_attn", "mlp", "mlp", "mlp"};

const char *llm_lora_target_name(enum llm_lora_target t)
{
	return (unsigned)t < LLM_LORA__COUNT ? short_names[t] : "?";
}

const char *llm_lora_target_module(enum llm_lora_target t)
{
	return (unsigned)t < LLM_LORA__COUNT ? module_names[t] : "?";
}

/* --- the specification ---------------------------------------------------------------------- */

/* The target called name (short or PEFT module name) or -1. */
static int target_by_name(const char *name, size_t len)
{
	for (int t = 0; t < LLM_LORA__COUNT; t++)
		if ((strlen(short_names[t]) == len && memcmp(name, short_names[t], len) == 0) ||
		    (strlen(module_names[t]) == len && memcmp(name, module_names[t], len) == 0))
			return t;
	return -1;
}

#define TARGETS_ACCEPTED "q, k, v, o, gate, up, down, their PEFT names (q_proj ...) or all-linear"

enum llm_err llm_lora_config_check(const struct llm_lora_config *cfg, struct llm_diag *diag)
{
	if (cfg->r < 1 || cfg->r > MAX_RANK)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0, "LoRA rank r=%d is not in 1..%d",
				    cfg->r, MAX_RANK);
	if (!(isfinite(cfg->alpha) && cfg->alpha > 0))
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "LoRA alpha=%g is not a positive number", (double)cfg->alpha);
	if (!cfg->targets || (cfg->targets & ~LLM_LORA_ALL_LINEAR))
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "LoRA targets 0x%x are not a nonempty set of the 7 Linears",
				    cfg->targets);
	return LLM_OK;
}

/* One item of the specification: key=value, or a bare word that continues targets. */
static enum llm_err parse_item(const char *item, size_t len, struct llm_lora_config *cfg,
			       bool *in_targets, unsigned *seen, struct llm_diag *diag)
{
	const char *eq = memchr(item, '=', len);
	const char *val = item;
	size_t vlen = len;
	if (eq) {
		size_t klen = (size_t)(eq - item);
		val = eq + 1;
		vlen = len - klen - 1;
		static const char *const keys[] = {"r", "alpha", "targets"};
		int k = -1;
		for (int i = 0; i < 3; i++)
			if (strlen(keys[i]) == klen && memcmp(item, keys[i], klen) == 0)
				k = i;
		if (k < 0)
			return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
					    "LoRA: unknown key '%.*s' (the keys are r, alpha and "
					    "targets: r=16,alpha=32,targets=q,k,v,o)",
					    (int)klen, item);
		if (*seen & (1u << k))
			return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "LoRA: %s is given twice",
					    keys[k]);
		*seen |= 1u << k;
		*in_targets = k == 2;
		if (k == 2) {
			cfg->targets = 0;
		} else {
			char buf[64];
			if (vlen == 0 || vlen >= sizeof buf)
				return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
						    "LoRA: %s needs a number (%s=%s)", keys[k],
						    keys[k], k ? "32" : "16");
			memcpy(buf, val, vlen);
			buf[vlen] = '\0';
			char *end;
			if (k == 0) {
				long long r = strtoll(buf, &end, 10);
				if (*end || r < 1 || r > MAX_RANK)
					return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
							    "LoRA: r=%s is not an integer in 1..%d",
							    buf, MAX_RANK);
				cfg->r = (int)r;
			} else {
				double a = strtod(buf, &end);
				if (*end || !isfinite(a) || a <= 0 || a > 1e30)
					return llm_diag_set(
					    diag, LLM_ERR_USAGE, NULL, 0,
					    "LoRA: alpha=%s is not a positive number", buf);
				cfg->alpha = (float)a;
			}
			return LLM_OK;
		}
	} else if (!*in_targets) {
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "LoRA: '%.*s' is not key=value (r=16,alpha=32,targets=q,k,v,o)",
				    (int)len, item);
	}
	/* A target. */
	if (vlen == 0)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "LoRA: empty target (the targets are " TARGETS_ACCEPTED ")");
	if ((vlen == 10 && memcmp(val, "all-linear", 10) == 0)) {
		cfg->targets |= LLM_LORA_ALL_LINEAR;
		return LLM_OK;
	}
	int t = target_by_name(val, vlen);
	if (t < 0)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "LoRA: unknown target '%.*s' (the targets are " TARGETS_ACCEPTED
				    ")",
				    (int)vlen, val);
	cfg->targets |= 1u << t;
	return LLM_OK;
}

enum llm_err llm_lora_parse(const char *spec, struct llm_lora_config *cfg, struct llm_diag *diag)
{
	struct llm_lora_config c = {
	    .r = 8, .alpha = 8.0f, .targets = 1u << LLM_LORA_Q | 1u << LLM_LORA_V};
	bool in_targets = false;
	unsigned seen = 0;
	const char *p = spec;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		enum llm_err e = parse_item(p, len, &c, &in_targets, &seen, diag);
		if (e)
			return e;
		if (!end)
			break;
		p = end + 1;
		if (!*p)
			return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
					    "LoRA: '%s' ends with a comma", spec);
	}
	if (!c.targets)
		return llm_diag_set(
		    diag, LLM_ERR_USAGE, NULL, 0,
		    "LoRA: targets= names no Linear (the targets are " TARGETS_ACCEPTED ")");
	*cfg = c;
	return LLM_OK;
}

/* --- attaching -------------------------------------------------------------------------------- */

/* The (out, in) shape of Linear t in model m. */
static void linear_shape(const struct llm_model_config *c, enum llm_lora_target t, int *out,
			 int *in)
{
	int d = c->hidden_size, f = c->intermediate_size;
	int kv = llm_model_config_head_dim(c) * c->num_key_value_heads;
	const int outs[LLM_LORA__COUNT] = {d, kv, kv, d, f, f, d};
	const int ins[LLM_LORA__COUNT] = {d, d, d, d, d, d, f};
	*out = outs[t];
	*in = ins[t];
}

/* The base weight an adapter adds to. */
static float *base_weight(struct llm_model *m, int layer, enum llm_lora_target t)
{
	struct llm_layer_weights *w = &m->w.layer[layer];
	float *const ws[LLM_LORA__COUNT] = {w->wq,     w->wk,	w->wv,	  w->wo,
					    w->w_gate, w->w_up, w->w_down};
	return ws[t];
}

static void lora_free(struct llm_lora *lo)
{
	if (!lo)
		return;
	free(lo->params);
	free(lo->grads);
	free(lo->adapter);
	free(lo->slot);
	free(lo);
}

/* Allocate adapters for cfg with A, B and the gradients zero. */
static enum llm_err lora_new(const struct llm_model *m, const struct llm_lora_config *cfg,
			     struct llm_lora **out, struct llm_diag *diag)
{
	*out = NULL;
	const struct llm_model_config *c = &m->config;
	int nl = c->num_hidden_layers, per_layer = 0;
	size_t floats = 0, r = (size_t)cfg->r;
	for (int t = 0; t < LLM_LORA__COUNT; t++) {
		if (!(cfg->targets & 1u << t))
			continue;
		int o, i;
		linear_shape(c, (enum llm_lora_target)t, &o, &i);
		floats += r * (size_t)(o + i);
		per_layer++;
	}
	floats *= (size_t)nl;
	struct llm_lora *lo = calloc(1, sizeof *lo);
	if (!lo)
		goto nomem;
	lo->config = *cfg;
	lo->scale = cfg->alpha / (float)cfg->r;
	lo->num_params = floats;
	lo->n_adapters = (size_t)nl * per_layer;
	size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
	lo->params = aligned_alloc(64, bytes);
	lo->grads = aligned_alloc(64, bytes);
	lo->adapter = calloc(lo->n_adapters, sizeof *lo->adapter);
	lo->slot = calloc((size_t)nl * LLM_LORA__COUNT, sizeof *lo->slot);
	if (!lo->params || !lo->grads || !lo->adapter || !lo->slot)
		goto nomem;
	memset(lo->params, 0, floats * sizeof(float));
	memset(lo->grads, 0, floats * sizeof(float));
	size_t k = 0, off = 0;
	for (int l = 0; l < nl; l++)
		for (int t = 0; t < LLM_LORA__COUNT; t++) {
			if (!(cfg->targets & 1u << t))
				continue;
			struct llm_lora_adapter *ad = &lo->adapter[k++];
			ad->layer = l;
			ad->target = (enum llm_lora_target)t;
			linear_shape(c, ad->target, &ad->out, &ad->in);
			ad->a = lo->params + off, ad->da = lo->grads + off;
			off += r * (size_t)ad->in;
			ad->b = lo->params + off, ad->db = lo->grads + off;
			off += r * (size_t)ad->out;
			lo->slot[(size_t)l * LLM_LORA__COUNT + t] = ad;
		}
	*out = lo;
	return LLM_OK;
nomem:
	lora_free(lo);
	return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0,
			    "out of memory for LoRA adapters of %zu parameters", floats);
}

enum llm_err llm_lora_attach(struct llm_model *m, const struct llm_lora_config *cfg, uint64_t seed,
			     struct llm_diag *diag)
{
	if (m->lora)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "the model already has LoRA adapters");
	enum llm_err e = llm_lora_config_check(cfg, diag);
	if (e)
		return e;
	struct llm_lora *lo;
	if ((e = lora_new(m, cfg, &lo, diag)))
		return e;
	/* PEFT: nn.init.kaiming_uniform_(A, a=√5), bound = gain · √(3 / fan_in) with
	 * gain = √(2 / (1 + a²)) = √(1/3), so U(−1/√in, 1/√in). */
	struct llm_rand rng;
	llm_rand_seed(&rng, seed);
	for (size_t k = 0; k < lo->n_adapters; k++) {
		struct llm_lora_adapter *ad = &lo->adapter[k];
		double bound = 1.0 / sqrt((double)ad->in);
		size_t n = (size_t)cfg->r * ad->in;
		for (size_t i = 0; i < n; i++)
			ad->a[i] = (float)((2.0 * llm_rand_double(&rng) - 1.0) * bound);
	}
	m->lora = lo;
	return LLM_OK;
}

void llm_lora_detach(struct llm_model *m)
{
	lora_free(m->lora);
	m->lora = NULL;
}

float *llm_lora_params(struct llm_model *m, size_t *n)
{
	*n = m->lora ? m->lora->num_params : 0;
	return m->lora ? m->lora->params : NULL;
}

float *llm_lora_grads(struct llm_model *m, size_t *n)
{
	*n = m->lora ? m->lora->num_params : 0;
	return m->lora ? m->lora->grads : NULL;
}

void llm_lora_zero_grad(struct llm_model *m)
{
	if (m->lora)
		memset(m->lora->grads, 0, m->lora->num_params * sizeof(float));
}

enum llm_err llm_lora_merge(struct llm_model *m, struct llm_diag *diag)
{
	struct llm_lora *lo = m->lora;
	if (!lo)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "no LoRA adapters to merge");
	for (size_t k = 0; k < lo->n_adapters; k++) {
		const struct llm_lora_adapter *ad = &lo->adapter[k];
		int r = lo->config.r;
		llm_matmul(false, false, ad->out, ad->in, r, lo->scale, ad->b, r, ad->a, ad->in,
			   1.0f, base_weight(m, ad->layer, ad->target), ad->in);
	}
	llm_lora_detach(m);
	return LLM_OK;
}

/* --- files ------------------------------------------------------------------------------------ */

/* The PEFT module path of an adapter: "model.layers.3.self_attn.q_proj". */
static void module_path(const struct llm_lora_adapter *ad, char *out, size_t outsz)
{
	snprintf(out, outsz, "model.layers.%d.%s.%s", ad->layer, parents[ad->target],
		 module_names[ad->target]);
}

#define MODULE_MAX 96

/* The adapters as peft.h's pairs, with their module paths in names (MODULE_MAX each). */
static enum llm_err make_pairs(const struct llm_lora *lo, struct llm_lora_pair **pairs,
			       char **names, const char *file, struct llm_diag *diag)
{
	*pairs = calloc(lo->n_adapters, sizeof **pairs);
	*names = calloc(lo->n_adapters, MODULE_MAX);
	if (!*pairs || !*names) {
		free(*pairs);
		free(*names);
		return llm_diag_set(diag, LLM_ERR_NOMEM, file, 0, "out of memory");
	}
	for (size_t k = 0; k < lo->n_adapters; k++) {
		const struct llm_lora_adapter *ad = &lo->adapter[k];
		char *name = *names + k * MODULE_MAX;
		module_path(ad, name, MODULE_MAX);
		(*pairs)[k] = (struct llm_lora_pair){
		    .module = name,
		    .r = (uint32_t)lo->config.r,
		    .in = (uint32_t)ad->in,
		    .out = (uint32_t)ad->out,
		    .a = ad->a,
		    .b = ad->b,
		};
	}
	return LLM_OK;
}

enum llm_err llm_lora_save_peft(const struct llm_model *m, const char *dir,
				const char *base_model_name, struct llm_diag *diag)
{
	const struct llm_lora *lo = m->lora;
	if (!lo)
		return llm_diag_set(diag, LLM_ERR_USAGE, dir, 0, "no LoRA adapters to save");
	char *targets[LLM_LORA__COUNT];
	size_t nt = 0;
	for (int t = 0; t < LLM_LORA__COUNT; t++)
		if (lo->config.targets & 1u << t)
			targets[nt++] = (char *)module_names[t];
	struct llm_peft_config pc = {
	    .r = (uint32_t)lo->config.r,
	    .lora_alpha = lo->config.alpha,
	    .lora_dropout = 0.0,
	    .target_modules = targets,
	    .n_target_modules = nt,
	    .base_model_name_or_path = (char *)base_model_name,
	};
	struct llm_lora_pair *pairs;
	char *names;
	enum llm_err e = make_pairs(lo, &pairs, &names, dir, diag);
	if (e)
		return e;
	e = llm_peft_write(dir, &pc, pairs, lo->n_adapters, diag);
	free(pairs);
	free(names);
	return e;
}

enum llm_err llm_lora_save_gguf(const struct llm_model *m, const char *path, struct llm_diag *diag)
{
	const struct llm_lora *lo = m->lora;
	if (!lo)
		return llm_diag_set(diag, LLM_ERR_USAGE, path, 0, "no LoRA adapters to save");
	struct llm_lora_pair *pairs;
	char *names;
	enum llm_err e = make_pairs(lo, &pairs, &names, path, diag);
	if (e)
		return e;
	e = llm_gguf_lora_write(path, pairs, lo->n_adapters, lo->config.alpha,
				(uint32_t)m->config.num_attention_heads,
				(uint32_t)m->config.num_key_value_heads, diag);
	free(pairs);
	free(names);
	return e;
}

/* Every tensor of st is the A or B of one of lo's adapters (nl layers): a file with more in it
 * is for another model or another configuration, and loading part of it would be silent. */
static enum llm_err check_no_strangers(const struct llm_lora *lo, int nl,
				       const struct llm_safetensors *st, struct llm_diag *diag)
{
	for (size_t i = 0; i < st->n_tensors; i++) {
		const char *name = st->tensors[i].name;
		char module[256], which, *end;
		bool ours = false;
		if (llm_peft_parse_name(name, module, sizeof module, &which) == LLM_OK &&
		    strncmp(module, "model.layers.", 13) == 0) {
			long layer = strtol(module + 13, &end, 10);
			for (int t = 0; t < LLM_LORA__COUNT && layer >= 0 && layer < nl; t++) {
				const struct llm_lora_adapter *ad =
				    lo->slot[(size_t)layer * LLM_LORA__COUNT + t];
				char want[MODULE_MAX];
				if (!ad)
					continue;
				module_path(ad, want, sizeof want);
				ours |= strcmp(module, want) == 0;
			}
		}
		if (!ours)
			return llm_diag_set(diag, LLM_ERR_CHECK, st->path, 0,
					    "tensor %s is not the LoRA A or B of a module that "
					    "adapter_config.json targets in this model",
					    name);
	}
	return LLM_OK;
}

enum llm_err llm_lora_load_peft(struct llm_model *m, const char *dir, struct llm_diag *diag)
{
	char path[4096];
	struct llm_peft_config pc;
	snprintf(path, sizeof path, "%s/adapter_config.json", dir);
	enum llm_err e = llm_peft_config_read(path, &pc, diag);
	if (e)
		return e;
	struct llm_lora_config cfg = {.r = (int)pc.r, .alpha = (float)pc.lora_alpha, .targets = 0};
	for (size_t i = 0; i < pc.n_target_modules && !e; i++) {
		const char *name = pc.target_modules[i];
		int t = target_by_name(name, strlen(name));
		if (t < 0)
			e = llm_diag_set(diag, LLM_ERR_CHECK, path, 0,
					 "target module '%s' is not a Llama Linear the engine "
					 "adapts (q_proj k_proj v_proj o_proj gate_proj up_proj "
					 "down_proj)",
					 name);
		else
			cfg.targets |= 1u << t;
	}
	/* lora_dropout is ignored: it acts only while training, the adapter is the same. */
	llm_peft_config_free(&pc);
	if (e)
		return e;
	if (!cfg.targets)
		return llm_diag_set(diag, LLM_ERR_CHECK, path, 0, "target_modules is empty");
	if (!(isfinite(cfg.alpha) && cfg.alpha > 0))
		return llm_diag_set(diag, LLM_ERR_RANGE, path, 0,
				    "lora_alpha %g is not a positive number", (double)cfg.alpha);
	struct llm_lora *lo;
	if ((e = lora_new(m, &cfg, &lo, diag)))
		return e;
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	struct llm_safetensors *st;
	if ((e = llm_safetensors_open(&st, path, diag))) {
		lora_free(lo);
		return e;
	}
	e = check_no_strangers(lo, m->config.num_hidden_layers, st, diag);
	char module[MODULE_MAX];
	for (size_t k = 0; k < lo->n_adapters && !e; k++) {
		const struct llm_lora_adapter *ad = &lo->adapter[k];
		module_path(ad, module, sizeof module);
		e = llm_peft_read_pair(st, module, (uint32_t)cfg.r, (uint32_t)ad->in,
				       (uint32_t)ad->out, ad->a, ad->b, diag);
	}
	llm_safetensors_close(st);
	if (e) {
		lora_free(lo);
		return e;
	}
	llm_lora_detach(m);
	m->lora = lo;
	return LLM_OK;
}
