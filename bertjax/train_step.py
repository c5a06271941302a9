"""The jit-compiled pieces of training: state, sharded init, the train step and the eval step.

Everything here is a pure function of its arguments, so the trainer (bertjax.train) only feeds
batches and logs. A train step:
  1. splits the global batch into `grad_accum_steps` microbatches and accumulates gradients with
     lax.scan. Each microbatch's loss is normalised by the WHOLE batch's denominators (sum of
     masked_lm_weights, number of sequences), so the accumulated gradient equals the large-batch
     gradient exactly, not an average of per-microbatch means;
  2. draws dropout randomness from fold_in(state.rng, step) (and the microbatch index), so a
     resumed run repeats an uninterrupted one bit for bit, and vmapped states with different
     keys run different seeds in one program;
  3. applies the optax transformation (clipping, schedule, update rule);
  4. guards against non-finite values: a step whose loss or gradient norm is not finite is not
     applied, and one whose updated params are not finite is rolled back ("skip") or frozen
     ("stop"); the first bad step is recorded in the state, for the host to report ("stop",
     before it saves anything) or to count ("skip").
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from bertjax import losses, modeling, sharding


@flax.struct.dataclass
class TrainState:
    """step: updates applied so far (also the data position); rng: the base PRNG key (uint32[2])
    of dropout, which draws from fold_in(rng, step); nonfinite_step: the first step whose loss,
    gradient norm or updated params were not finite, -1 if none. Everything a resumed run needs is here."""

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    nonfinite_step: jax.Array


def dropout_key(seed: int) -> jax.Array:
    """The base dropout key of a run seeded with `seed` (independent of the params' key)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), 0x0D120)


def _state_builders(model: nn.Module, tx: optax.GradientTransformation, seed: int,
                    init_args: tuple, init_kwargs: dict | None):
    init_kwargs = init_kwargs or {}

    def init_params(rng):
        return model.init({"params": rng}, *init_args, **init_kwargs)["params"]

    def init_fn(rng):
        params = nn.meta.unbox(init_params(rng))
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                          rng=dropout_key(seed), nonfinite_step=jnp.full((), -1, jnp.int32))

    return init_params, init_fn


def abstract_train_state(model: nn.Module, tx: optax.GradientTransformation, mesh, seed: int,
                         init_args: tuple, init_kwargs: dict | None = None):
    """(abstract TrainState, its shardings), nothing allocated.

    The abstract state's leaves are ShapeDtypeStructs carrying their target shardings: the
    restore target of a checkpoint, and the input of ahead-of-time compilation. Shardings come
    from the params' logical axes (bertjax.sharding); the optimizer state follows the params.
    """
    init_params, init_fn = _state_builders(model, tx, seed, init_args, init_kwargs)
    rng = jax.random.PRNGKey(seed)
    # Traced outside the mesh context on purpose: flax initialises DenseGeneral kernels flat and
    # reshapes them, and a logical constraint on the flat kernel would fail under an active mesh.
    # The out_shardings alone place every shard.
    boxed = jax.eval_shape(init_params, rng)
    param_shardings = sharding.param_shardings(boxed, mesh)
    abstract = jax.eval_shape(init_fn, rng)
    replicated = NamedSharding(mesh, P())
    state_shardings = TrainState(
        step=replicated,
        params=param_shardings,
        opt_state=sharding.follow_params(abstract.opt_state, abstract.params, param_shardings,
                                         mesh),
        rng=replicated,
        nonfinite_step=replicated)
    abstract = jax.tree_util.tree_map(
        lambda leaf, placement: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=placement),
        abstract, state_shardings)
    return abstract, state_shardings


def init_train_state(model: nn.Module, tx: optax.GradientTransformation, mesh, seed: int,
                     init_args: tuple, init_kwargs: dict | None = None):
    """Builds the train state directly into its shardings.

    `jax.eval_shape` gives the abstract, logically-annotated params without allocating them;
    their shardings come from the logical rules, the optimizer state follows the params, and a
    jit with those out_shardings materialises each shard on its own device.
    Returns (state, state_shardings).
    """
    _, init_fn = _state_builders(model, tx, seed, init_args, init_kwargs)
    _, state_shardings = abstract_train_state(model, tx, mesh, seed, init_args, init_kwargs)
    state = jax.jit(init_fn, out_shardings=state_shardings)(jax.random.PRNGKey(seed))
    return state, state_shardings


def jit_train_step(step_fn: Callable, state_shardings, *, donate: bool = True):
    """The train step as every run compiles it: the state keeps its shardings in and out (and
    is donated, so XLA updates it in place); the batch comes in as given."""
    return jax.jit(step_fn, in_shardings=(state_shardings, None),
                   out_shardings=(state_shardings, None), donate_argnums=0 if donate else ())


def _microbatches(batch: dict, num: int) -> dict:
    """[B, ...] -> [num, B / num, ...], microbatch i taking rows i, i + num, i + 2 num, ...

    Strided rather than contiguous so every data shard holds rows of every microbatch and no
    resharding is needed.
    """
    def split(x):
        if x.shape[0] % num:
            raise ValueError(f"batch of {x.shape[0]} rows is not divisible by "
                             f"grad_accum_steps={num}")
        x = x.reshape(x.shape[0] // num, num, *x.shape[1:])
        return jnp.swapaxes(x, 0, 1)
    return jax.tree_util.tree_map(split, batch)


def _pretraining_forward(model, params, batch, rng, deterministic):
    # The losses read only [CLS] and the masked rows of the last layer: compute just those.
    return model.apply(
        {"params": params}, batch["input_ids"], batch["segment_ids"], batch["input_mask"],
        masked_lm_positions=batch["masked_lm_positions"], deterministic=deterministic,
        final_layer_at_masked_only=True, rngs=None if deterministic else {"dropout": rng})


def make_train_step(model: nn.Module, tx: optax.GradientTransformation,
                    schedule: Callable[[jax.Array], jax.Array], *,
                    grad_accum_steps: int = 1, nan_policy: str = "stop",
                    forward: Callable = _pretraining_forward,
                    loss_sums: Callable = losses.pretraining_sums):
    """Returns train_step(state, batch) -> (state, metrics), to be jitted by the caller.

    `forward(model, params, batch, rng, deterministic)` and `loss_sums(outputs, batch)` default to
    pretraining (MLM + NSP); fine-tuning passes its own. `loss_sums` returns a dict of groups
    {name: {"loss", "weight", ...}}; the total loss is the sum over groups of loss / weight.
    """
    if nan_policy not in ("stop", "skip"):
        raise ValueError(f"nan_policy={nan_policy!r}; expected 'stop' or 'skip'")

    def train_step(state: TrainState, batch: dict):
        step_rng = jax.random.fold_in(state.rng, state.step)
        # Denominators of the whole batch: see the module docstring.
        denominators = _denominators(batch, loss_sums, model, state.params, forward)

        def loss_fn(params, microbatch, rng):
            sums = loss_sums(forward(model, params, microbatch, rng, False), microbatch)
            loss = sum(sums[g]["loss"] / jnp.maximum(denominators[g], 1e-12) for g in sums)
            return loss, sums

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        if grad_accum_steps == 1:
            (loss, sums), grads = grad_fn(state.params, batch, step_rng)
        else:
            def body(carry, inputs):
                index, microbatch = inputs
                (loss, sums), grads = grad_fn(state.params, microbatch,
                                              jax.random.fold_in(step_rng, index))
                return losses.tree_sum(carry, (loss, sums, grads)), None

            micro = _microbatches(batch, grad_accum_steps)
            zero = jax.eval_shape(lambda: grad_fn(state.params, jax.tree_util.tree_map(
                lambda x: x[0], micro), step_rng))
            zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), zero)
            (loss, sums, grads), _ = jax.lax.scan(
                body, (zero[0][0], zero[0][1], zero[1]),
                (jnp.arange(grad_accum_steps), micro))

        grad_norm = optax.global_norm(grads)
        already_bad = state.nonfinite_step >= 0
        finite_grads = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

        def apply_update(operand):
            params, opt_state = operand
            updates, new_opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), new_opt_state

        old = (state.params, state.opt_state)
        if nan_policy == "stop":
            # lax.cond runs only the taken branch, so the update stays one in-place pass over
            # params and moments; selecting between new and old trees afterwards costs about 6%
            # of a BERT-base step on CPU. Once a step is bad the state is frozen.
            new_params, new_opt_state = jax.lax.cond(finite_grads & ~already_bad, apply_update,
                                                     lambda operand: operand, old)
        else:
            new_params, new_opt_state = apply_update(old)
        # Finite gradients can still overflow the params (a huge learning rate). Checked after
        # the update: "stop" keeps the bad state frozen and the host stops before saving it;
        # "skip" puts the old state back.
        finite = finite_grads & jnp.isfinite(optax.global_norm(new_params))
        if nan_policy == "skip":
            new_params, new_opt_state = jax.tree_util.tree_map(
                lambda n, o: jnp.where(finite, n, o), (new_params, new_opt_state), old)
        new_state = TrainState(
            step=state.step + 1,
            params=new_params,
            opt_state=new_opt_state,
            rng=state.rng,
            nonfinite_step=jnp.where(~already_bad & ~finite, state.step, state.nonfinite_step))
        metrics = {"loss": loss, "grad_norm": grad_norm, "learning_rate": schedule(state.step),
                   "nonfinite": (~finite).astype(jnp.float32)}
        metrics.update(summarise(sums))
        return new_state, metrics

    return train_step


def _denominators(batch, loss_sums, model, params, forward):
    """The whole batch's loss denominators, read from the weights (no forward pass needed).

    `loss_sums` is traced on zero logits of the right shapes: its "weight" sums depend only on
    the batch's weights, and XLA removes the unused dummy computation.
    """
    abstract_out = jax.eval_shape(lambda: forward(model, params, batch, None, True))
    zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), abstract_out)
    sums = loss_sums(zeros, batch)
    return {group: values["weight"] for group, values in sums.items()}


def summarise(sums: dict) -> dict:
    """Per-group mean loss and accuracy from sums, e.g. mlm_loss, mlm_accuracy, nsp_loss."""
    out = {}
    for group, values in sums.items():
        out[f"{group}_loss"] = losses.ratio(values["loss"], values["weight"])
        if "correct" in values:
            out[f"{group}_accuracy"] = losses.ratio(values["correct"], values["weight"])
    return out


def make_eval_step(model: nn.Module, forward: Callable = _pretraining_forward,
                   loss_sums: Callable = losses.pretraining_sums):
    """eval_step(params, batch) -> sums (add them over batches, then `summarise`)."""

    def eval_step(params, batch):
        return loss_sums(forward(model, params, batch, None, True), batch)

    return eval_step


def validate_pretraining_batch(config, batch: dict, max_predictions: int) -> None:
    """Host-side check of a numpy batch before it reaches the device (JAX would clamp bad ids).

    Raises ValueError naming the field and value.
    """
    modeling.validate_inputs(config, batch["input_ids"], batch["segment_ids"], batch["input_mask"],
                             batch["masked_lm_positions"])
    ids = batch["masked_lm_ids"]
    if ids.shape[-1] != max_predictions:
        raise ValueError(f"masked_lm_ids has {ids.shape[-1]} positions; the config says "
                         f"max_predictions_per_seq={max_predictions}")
    if ids.size and (ids.min() < 0 or ids.max() >= config.vocab_size):
        raise ValueError(f"masked_lm_ids has value {int(ids.max())} outside [0, "
                         f"{config.vocab_size})")
