/* The optimizer and its helpers: AdamW, clipping by global norm, learning-rate schedules.
 *
 * Each is the PyTorch / Hugging Face function of the same name, step for step, so a run here
 * and a run with torch.optim.AdamW, torch.nn.utils.clip_grad_norm_ and transformers'
 * schedulers agree to float rounding; tests/unit/test-optim.c checks this against values that
 * scripts/maint/make-optim-reference computes with PyTorch 1.13.
 *
 * Everything works on one flat float array of parameters and one of gradients (llm.c's layout:
 * all parameters in one allocation), so the optimizer knows nothing about the model. */
#ifndef LLM_ENGINE_OPTIM_H
#define LLM_ENGINE_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* torch.optim.AdamW's defaults come from llm_adamw_params_default().  Doubles, as Python's
 * floats are: torch rounds 1 - beta1 to float after the subtraction, and so do we. */
struct llm_adamw_params {
	double beta1;	     /* 0.9 */
	double beta2;	     /* 0.999 */
	double eps;	     /* 1e-8 */
	double weight_decay; /* 0.01 */
};

/* The state is plain data so the checkpoint writer can save and restore it as it is: m and v
 * hold n floats each, step counts the updates taken (PyTorch's state['step']).  Restoring is
 * copying m, v and step back after llm_adamw_init. */
struct llm_adamw {
	struct llm_adamw_params params;
	size_t n;
	float *m; /* first moment, exp_avg */
	float *v; /* second moment, exp_avg_sq */
	int64_t step;
	/* decay[i] == 0 exempts parameter i from weight decay (norms, embeddings, biases, as
	 * PyTorch users do with a second parameter group at weight_decay 0).  NULL: decay all. */
	uint8_t *decay;
};

void llm_adamw_params_default(struct llm_adamw_params *p);

/* Allocate zeroed state for n parameters.  LLM_ERR_RANGE for the values torch refuses
 * (betas outside [0, 1), eps or weight_decay < 0). */
enum llm_err llm_adamw_init(struct llm_adamw *o, size_t n, const struct llm_adamw_params *p,
			    struct llm_diag *diag);
void llm_adamw_free(struct llm_adamw *o);

/* Exempt params[offset .. offset + count) from weight decay. */
enum llm_err llm_adamw_no_decay(struct llm_adamw *o, size_t offset, size_t count,
				struct llm_diag *diag);

/* One update of params[0..n) from grads[0..n) at learning rate lr, as torch 1.13 does it:
 *     step += 1
 *     p *= 1 - lr * wd                                (only where decay applies)
 *     m = beta1 m + (1 - beta1) g
 *     v = beta2 v + (1 - beta2) g^2
 *     p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 * The decay uses the parameter before the Adam update (decoupled: it does not go through m). */
void llm_adamw_step(struct llm_adamw *o, float *params, const float *grads, double lr);

/* torch.nn.utils.clip_grad_norm_ over one flat gradient: the L2 norm of grads[0..n), and when
 * max_norm / (norm + 1e-6) < 1, every gradient scaled by that factor.  Returns the norm before
 * clipping.  A NaN or infinite norm leaves grads as they are (PyTorch would scale them by NaN
 * or zero): check the result and skip the step, as torch's GradScaler does. */
float llm_clip_grad_norm(float *grads, size_t n, float max_norm);

enum llm_lr_kind {
	LLM_LR_CONSTANT = 0, /* get_constant_schedule_with_warmup */
	LLM_LR_LINEAR = 1,   /* get_linear_schedule_with_warmup */
	LLM_LR_COSINE = 2,   /* get_cosine_schedule_with_warmup (half a cosine) */
};

struct llm_lr_schedule {
	enum llm_lr_kind kind;
	double lr;	      /* the peak, reached at the end of warmup */
	int64_t warmup_steps; /* linear ramp from 0 */
	int64_t total_steps;  /* where linear and cosine reach their floor */
	/* The floor as a fraction of lr for linear and cosine, as HF's
	 * get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate=); 0 gives the plain schedules.
	 */
	double min_lr_ratio;
};

/* The learning rate for the update that follows step completed updates (0 for the first), as
 * torch's LambdaLR gives it: note the first warmup step runs at lr 0, as in HF's Trainer. */
double llm_lr_at(const struct llm_lr_schedule *s, int64_t step);

#endif
