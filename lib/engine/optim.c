/* AdamW, gradient clipping and learning-rate schedules; see optim.h. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/optim.h"

void llm_adamw_params_default(struct llm_adamw_params *p)
{
	*p = (struct llm_adamw_params){
	    .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
}

enum llm_err llm_adamw_init(struct llm_adamw *o, size_t n, const struct llm_adamw_params *p,
			    struct llm_diag *diag)
{
	memset(o, 0, sizeof *o);
	if (!(p->beta1 >= 0.0 && p->beta1 < 1.0) || !(p->beta2 >= 0.0 && p->beta2 < 1.0))
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0,
				    "betas must be in [0, 1), not %g, %g", p->beta1, p->beta2);
	if (!(p->eps >= 0.0) || !(p->weight_decay >= 0.0) || isinf(p->eps) ||
	    isinf(p->weight_decay))
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0,
				    "eps and weight_decay must be finite and >= 0");
	if (n > SIZE_MAX / sizeof(float))
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0, "%zu parameters is too many", n);
	o->m = calloc(n ? n : 1, sizeof *o->m);
	o->v = calloc(n ? n : 1, sizeof *o->v);
	if (!o->m || !o->v) {
		llm_adamw_free(o);
		return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0,
				    "no memory for the optimizer state of %zu parameters", n);
	}
	o->params = *p;
	o->n = n;
	return LLM_OK;
}

void llm_adamw_free(struct llm_adamw *o)
{
	free(o->m);
	free(o->v);
	free(o->decay);
	memset(o, 0, sizeof *o);
}

enum llm_err llm_adamw_no_decay(struct llm_adamw *o, size_t offset, size_t count,
				struct llm_diag *diag)
{
	if (offset > o->n || count > o->n - offset)
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0,
				    "range %zu+%zu is outside the %zu parameters", offset, count,
				    o->n);
	if (!o->decay) {
		o->decay = malloc(o->n ? o->n : 1);
		if (!o->decay)
			return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0,
					    "no memory for the weight-decay mask");
		memset(o->decay, 1, o->n);
	}
	memset(o->decay + offset, 0, count);
	return LLM_OK;
}

void llm_adamw_step(struct llm_adamw *o, float *params, const float *grads, double lr)
{
	const struct llm_adamw_params *p = &o->params;
	o->step++;
	/* The scalars are Python floats (doubles) in torch and reach the float kernels rounded to
	 * float; computing them the same way keeps us within an ulp or two of it. */
	double b1 = p->beta1, b2 = p->beta2;
	float decay = (float)(1.0 - lr * p->weight_decay);
	float beta1 = (float)b1, beta2 = (float)b2, eps = (float)p->eps;
	float one_m_b1 = (float)(1.0 - b1), one_m_b2 = (float)(1.0 - b2);
	float step_size = (float)(lr / (1.0 - pow(b1, (double)o->step)));
	float bc2_sqrt = (float)sqrt(1.0 - pow(b2, (double)o->step));
	const uint8_t *mask = o->decay;
	for (size_t i = 0; i < o->n; i++) {
		float g = grads[i];
		float w = params[i];
		if (!mask || mask[i])
			w *= decay;
		float m = beta1 * o->m[i] + one_m_b1 * g;
		float v = beta2 * o->v[i] + one_m_b2 * g * g;
		float denom = sqrtf(v) / bc2_sqrt + eps;
		params[i] = w - step_size * (m / denom);
		o->m[i] = m;
		o->v[i] = v;
	}
}

float llm_clip_grad_norm(float *grads, size_t n, float max_norm)
{
	/* Double accumulation: a float sum over millions of squares loses the small ones. */
	double ss = 0.0;
	for (size_t i = 0; i < n; i++)
		ss += (double)grads[i] * grads[i];
	float norm = (float)sqrt(ss);
	/* torch computes max_norm / tensor as reciprocal times max_norm. */
	float coef = (1.0f / (norm + 1e-6f)) * max_norm;
	if (coef < 1.0f)
		for (size_t i = 0; i < n; i++)
			grads[i] *= coef;
	return norm;
}

double llm_lr_at(const struct llm_lr_schedule *s, int64_t step)
{
	if (step < 0)
		step = 0;
	if (step < s->warmup_steps)
		return s->lr * (double)step / (double)(s->warmup_steps > 1 ? s->warmup_steps : 1);
	int64_t span = s->total_steps - s->warmup_steps;
	double progress = (double)(step - s->warmup_steps) / (double)(span > 1 ? span : 1);
	double factor;
	switch (s->kind) {
	case LLM_LR_LINEAR:
		factor = fmax(0.0, (double)(s->total_steps - step) / (double)(span > 1 ? span : 1));
		break;
	case LLM_LR_COSINE:
		factor = 0.5 * (1.0 + cos(M_PI * progress));
		/* HF's plain cosine goes on past total_steps (up again); clamping at the floor is
		 * what a run that overshoots its planned length wants. */
		if (progress >= 1.0)
			factor = 0.0;
		break;
	case LLM_LR_CONSTANT:
	default:
		return s->lr;
	}
	factor = factor * (1.0 - s->min_lr_ratio) + s->min_lr_ratio;
	return s->lr * fmax(0.0, factor);
}
