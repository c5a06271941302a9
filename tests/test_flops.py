"""bertjax.flops against the matmuls JAX really traces for a pretraining step.

The oracle walks the jaxpr of the train loss's value-and-gradient and adds 2 * (output size) *
(contracted size) for every dot_general, so the formula must count exactly the forward and
backward matmuls of the step: where the MLM head runs, the last layer at the masked rows only,
the pooler at [CLS] only.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from bertjax import flops, losses, modeling, train_step
from bertjax.config import BertConfig
from data_pipelines.features import synthetic_batch as make_batch

TINY = BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                  intermediate_size=48, max_position_embeddings=16)


def _dot_flops(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs_shape = eqn.invars[0].aval.shape
            contracted = math.prod(lhs_shape[d] for d in lhs_contract)
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * contracted
        for sub in jax.core.jaxprs_in_params(eqn.params):
            total += _dot_flops(sub)
    return total


def _traced_train_flops(batch, all_positions: bool) -> int:
    model = modeling.BertForPreTraining(TINY)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                            *modeling.dummy_inputs(1, batch["input_ids"].shape[1]))["params"]
    params = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), nn.meta.unbox(params))

    def loss(p):
        if all_positions:
            out = model.apply({"params": p}, batch["input_ids"], batch["segment_ids"],
                              batch["input_mask"])
            out["mlm_logits"] = modeling.gather_positions(out["mlm_logits"],
                                                          batch["masked_lm_positions"])
        else:
            out = train_step._pretraining_forward(model, p, batch, None, True)
        sums = losses.pretraining_sums(out, batch)
        return sum(group["loss"] for group in sums.values())

    jaxpr = jax.make_jaxpr(jax.value_and_grad(loss))(params)
    return _dot_flops(jaxpr.jaxpr)


@pytest.mark.parametrize("all_positions", [False, True])
def test_formula_counts_exactly_the_traced_matmuls(all_positions):
    batch = {k: jnp.asarray(v) for k, v in make_batch(3, 16, 5, TINY.vocab_size).items()}
    expected = flops.train_flops_per_step(TINY, 3, 16, None if all_positions else 5)
    assert _traced_train_flops(batch, all_positions) == expected



def test_finetune_flops_match_the_traced_matmuls():
    """The fine-tuning formula against XLA's own count of the classifier's forward+backward."""
    import jax
    import jax.numpy as jnp

    from bertjax import flops, modeling
    from bertjax.config import preset

    config = preset("tiny", vocab_size=128, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)
    model = modeling.BertForSequenceClassification(config, 3)
    ids = jnp.ones((2, 16), jnp.int32)
    params = model.init(jax.random.PRNGKey(0), ids)["params"]

    def loss(p):
        return jnp.sum(model.apply({"params": p}, ids, jnp.zeros_like(ids), ids)["logits"])

    cost = jax.jit(jax.grad(loss)).lower(params).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    expected = flops.finetune_flops_per_step(config, 2, 16, 3, per_token=False)
    # XLA also counts elementwise ops (softmax, GELU, LayerNorm): within 15% of the matmuls.
    assert expected <= cost["flops"] <= 1.15 * expected
