"""Inverted dropout with 16-bit keep decisions: two decisions per 32-bit random word.

BERT drops activations and attention probabilities with rate p (0.1) at every layer, about
40M decisions per BERT-base step at B=8, S=128. jax.random.bernoulli turns one 32-bit
threefry word into one float per decision; on CPU generating and converting those words was
13% of the whole train step (benchmarks/README.md). Here each word gives two decisions from its
two 16-bit halves, compared as integers: word j of a row of n/2 words decides element j with
its low half and element j + n/2 with its high half (halves side by side rather than
interleaved, so the mask is two contiguous blocks and XLA need not materialise an interleaved
copy; that made the BERT-base step about 9% faster on CPU):

    drop  where  half < round(p * 2^16)
    keep  otherwise, scaled by 1 / (1 - round(p * 2^16) / 2^16)

so the drop probability is p rounded to a multiple of 2^-16 (0.1 -> 0.100006; TF's dropout,
which the original uses, has float32 resolution) and the scale is the inverse of the realised
keep probability, so E[dropout(x)] = x exactly. Decisions are independent across elements
(threefry's output words are, and so are the halves of a word).

Shape legend: any input shape; the last axis is split into two halves.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

_RESOLUTION = 1 << 16


def drop_threshold(rate: float) -> int:
    """Integer threshold on a uniform 16-bit value: elements below it are dropped."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate {rate} must be in [0, 1)")
    return round(rate * _RESOLUTION)


def keep_mask(key: jax.Array, rate: float, shape: tuple[int, ...]) -> jax.Array:
    """Bool [*shape]: True where kept, each with probability 1 - drop_threshold(rate) / 2^16."""
    threshold = jnp.uint32(drop_threshold(rate))
    if not shape or shape[-1] % 2:  # odd last axis: one word per element, its top half
        return (jax.random.bits(key, shape, jnp.uint32) >> 16) >= threshold
    words = jax.random.bits(key, (*shape[:-1], shape[-1] // 2), jnp.uint32)
    return jnp.concatenate([(words & 0xFFFF) >= threshold, (words >> 16) >= threshold], axis=-1)


def dropout(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """Inverted dropout of x (any shape); see the module docstring for the exact rule."""
    threshold = drop_threshold(rate)
    if threshold == 0:
        return x
    scale = _RESOLUTION / (_RESOLUTION - threshold)
    return jnp.where(keep_mask(key, rate, x.shape), x * jnp.asarray(scale, x.dtype),
                     jnp.zeros((), x.dtype))


class Dropout(nn.Module):
    """nn.Dropout's interface with the 16-bit rule; draws from the "dropout" rng stream."""

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        if deterministic or drop_threshold(self.rate) == 0:
            return x
        return dropout(x, self.rate, self.make_rng("dropout"))
