"""Learning-rate schedules of BERT pretraining and fine-tuning, as optax schedules.

Both schedules warm up linearly from 0 over the first W steps and decay linearly to 0 at step T.
They differ after the warmup:

* `bert_schedule` is the original google-research/bert `create_optimizer`: the linear decay
  runs from step 0 over all T steps and the warmup merely overrides it while t < W, so

      lr(t) = init_lr * t / W          for t < W
      lr(t) = init_lr * (1 - t / T)    for W <= t <= T, and 0 after T.

  The peak is never reached: right after a 10% warmup the rate drops to 0.9 * init_lr.

* `linear_warmup_linear_decay` is the Hugging Face `get_linear_schedule_with_warmup` form, which
  peaks at exactly init_lr and decays over the remaining T - W steps:

      lr(t) = init_lr * t / W                  for t < W
      lr(t) = init_lr * (T - t) / (T - W)      for W <= t <= T, and 0 after T.

`t` is the optax update count: 0 on the first update, matching the original's `global_step`,
which is read before it is incremented. So the very first update of a warmed-up run has lr 0.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax


def _check_steps(num_train_steps: int, num_warmup_steps: int) -> None:
    if num_train_steps <= 0:
        raise ValueError(f"num_train_steps must be positive, got {num_train_steps}")
    if not 0 <= num_warmup_steps <= num_train_steps:
        raise ValueError(
            f"num_warmup_steps must be in [0, num_train_steps={num_train_steps}], "
            f"got {num_warmup_steps}"
        )


def bert_schedule(init_lr: float, num_train_steps: int, num_warmup_steps: int) -> optax.Schedule:
    """The original BERT schedule: linear warmup over a linear decay counted from step 0.

    Reproduces `optimization.create_optimizer` of google-research/bert: a power-1
    `polynomial_decay` of the global step to 0 at `num_train_steps`, and, while the step is below
    `num_warmup_steps`, `init_lr * step / num_warmup_steps` in its place.

    Args:
      init_lr: nominal peak learning rate (e.g. 1e-4 pretraining, 2e-5..5e-5 fine-tuning).
      num_train_steps: T, the step at which the rate reaches 0 (and stays).
      num_warmup_steps: W, length of the warmup; 0 disables it.

    Returns:
      An optax schedule mapping the update count to the learning rate.
    """
    _check_steps(num_train_steps, num_warmup_steps)
    decay = optax.polynomial_schedule(
        init_value=init_lr, end_value=0.0, power=1, transition_steps=num_train_steps
    )
    if not num_warmup_steps:
        return decay
    warmup = optax.linear_schedule(
        init_value=0.0, end_value=init_lr, transition_steps=num_warmup_steps
    )

    def schedule(count):
        # As the original: the decay is evaluated on the global step, the warmup replaces it.
        return jnp.where(count < num_warmup_steps, warmup(count), decay(count))

    return schedule


def linear_warmup_linear_decay(
    init_lr: float, num_train_steps: int, num_warmup_steps: int
) -> optax.Schedule:
    """Hugging Face style schedule: warm up to exactly `init_lr`, then decay to 0 over T - W steps.

    Args:
      init_lr: peak learning rate, reached at step W.
      num_train_steps: T, the step at which the rate reaches 0 (and stays).
      num_warmup_steps: W, length of the warmup; 0 disables it.

    Returns:
      An optax schedule mapping the update count to the learning rate.
    """
    _check_steps(num_train_steps, num_warmup_steps)
    if num_warmup_steps == num_train_steps:
        # optax holds a 0-step linear schedule at its init value; HF's rate is 0 from step T on.
        decay = optax.constant_schedule(0.0)
    else:
        decay = optax.linear_schedule(
            init_value=init_lr, end_value=0.0, transition_steps=num_train_steps - num_warmup_steps
        )
    if not num_warmup_steps:
        return decay
    warmup = optax.linear_schedule(
        init_value=0.0, end_value=init_lr, transition_steps=num_warmup_steps
    )
    return optax.join_schedules([warmup, decay], boundaries=[num_warmup_steps])


SCHEDULES = {"bert": bert_schedule, "hf": linear_warmup_linear_decay}


def make_schedule(
    name: str, init_lr: float, num_train_steps: int, num_warmup_steps: int
) -> optax.Schedule:
    """The schedule called `name` ("bert" or "hf"), for configs that pick it by name."""
    if name not in SCHEDULES:
        raise ValueError(
            f"unknown learning-rate schedule {name!r}; expected one of {sorted(SCHEDULES)}"
        )
    return SCHEDULES[name](init_lr, num_train_steps, num_warmup_steps)
