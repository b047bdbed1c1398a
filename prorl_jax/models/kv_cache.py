"""The key/value cache of the decoder: a plain pytree a jitted sampler can carry.

Layout, head-major so a decode step reads the cache with no transpose (measured on XLA:CPU,
see README "Sampler"): for each of the L layers,
  keys   [B, K, Dh, S]  (S = the cache length, minor): q·kᵀ is a plain [G·T, Dh] x [Dh, S]
                        matmul per (row, kv head);
  values [B, K, S, Dh]: p·v is a plain [G·T, S] x [S, Dh] matmul per (row, kv head);
plus `valid_BxS` (which slots hold a real token) and `index_B` (the next slot each row writes).
(Keys stored [B, K, S, Dh] make XLA:CPU either copy-transpose them every step or run the
transposed-operand matmul ~8x slower than the read of the keys.)

A forward call with T new tokens writes them at slots index_B[b] .. index_B[b]+T-1 of row b
(writes past S are dropped), marks a slot valid iff its token's attention mask is 1, and
advances index_B by T. A query attends to the valid slots at or before its own slot, so a
left-padded prompt batch can be prefilled in one call and then decoded token by token; rows may
also be at different slots (e.g. a row reset for a new prompt).

Every leaf has the batch as axis 0, so `jax.tree.map(lambda x: jnp.repeat(x, G, 0), cache)`
(`KVCache.repeat`) turns a prefilled prompt batch into G samples per prompt.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from prorl_jax.models.config import ModelConfig


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KVCache:
  """Per-layer K/V buffers and slot bookkeeping (see module docstring).

  Attributes:
    k: L arrays [B, K, Dh, S] of keys (after RoPE), cache dtype.
    v: L arrays [B, K, S, Dh] of values, cache dtype.
    valid_BxS: bool, slot holds a real (unmasked) token.
    index_B: int32, the next slot each row writes.
  """
  k: tuple[jax.Array, ...]
  v: tuple[jax.Array, ...]
  valid_BxS: jax.Array
  index_B: jax.Array

  @property
  def batch_size(self) -> int:
    return self.valid_BxS.shape[0]

  @property
  def max_length(self) -> int:
    return self.valid_BxS.shape[1]

  def repeat(self, n: int) -> KVCache:
    """Each row repeated n times in place ([b0, b0, ..., b1, b1, ...]), like jnp.repeat."""
    return jax.tree.map(lambda x: jnp.repeat(x, n, axis=0), self)

  def grow(self, length: int) -> KVCache:
    """The cache with `length` slots (new slots empty and invalid); itself if that long already.

    Raises:
      ValueError: `length` is shorter than the cache.
    """
    extra = length - self.max_length
    if extra < 0:
      raise ValueError(f"cannot shrink the KV cache from {self.max_length} to {length} slots")
    if extra == 0:
      return self
    pad_k = lambda x: jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra)))
    pad_v = lambda x: jnp.pad(x, ((0, 0), (0, 0), (0, extra), (0, 0)))
    return KVCache(k=tuple(pad_k(x) for x in self.k), v=tuple(pad_v(x) for x in self.v),
                   valid_BxS=jnp.pad(self.valid_BxS, ((0, 0), (0, extra))),
                   index_B=self.index_B)

  def num_valid_B(self) -> jax.Array:
    """int32 [B]: real tokens already in the cache per row."""
    return jnp.sum(self.valid_BxS, axis=1, dtype=jnp.int32)


def init_cache(config: ModelConfig, batch_size: int, max_length: int,
               dtype: Any = None) -> KVCache:
  """An empty cache for `batch_size` rows and `max_length` slots.

  Args:
    config: the model config (L, K, Dh).
    batch_size: B.
    max_length: S, the most tokens (prompt incl. padding + generated) a row can hold.
    dtype: K/V dtype; default the model's compute dtype.
  """
  dtype = dtype or config.dtype
  b, kv, dh, s = batch_size, config.num_kv_heads, config.head_dim, max_length
  layers = range(config.num_layers)
  return KVCache(k=tuple(jnp.zeros((b, kv, dh, s), dtype) for _ in layers),
                 v=tuple(jnp.zeros((b, kv, s, dh), dtype) for _ in layers),
                 valid_BxS=jnp.zeros((b, s), jnp.bool_),
                 index_B=jnp.zeros((b,), jnp.int32))


def _row_head_slot(slots_BxT: jax.Array, num_heads: int):
  """Broadcastable (row [B,1,1], head [1,K,1], slot [B,1,T]) scatter indices."""
  return (jnp.arange(slots_BxT.shape[0])[:, None, None], jnp.arange(num_heads)[None, :, None],
          slots_BxT[:, None, :])


def write_keys(k_BxKxDhxS: jax.Array, new_BxKxTxDh: jax.Array, slots_BxT: jax.Array
               ) -> jax.Array:
  """Keys with row b's T new keys (every head) written at slots_BxT[b] (out-of-range slots
  dropped). An in-place scatter when the buffer is a loop carry or donated."""
  rows, heads, slots = _row_head_slot(slots_BxT, k_BxKxDhxS.shape[1])
  # Advanced indices around a slice: the indexed shape is [B, K, T] + [Dh] (numpy rules).
  return k_BxKxDhxS.at[rows, heads, :, slots].set(
      new_BxKxTxDh.astype(k_BxKxDhxS.dtype), mode="drop")


def write_values(v_BxKxSxDh: jax.Array, new_BxKxTxDh: jax.Array, slots_BxT: jax.Array
                 ) -> jax.Array:
  """Values with row b's T new values written at slots_BxT[b] (as `write_keys`)."""
  rows, heads, slots = _row_head_slot(slots_BxT, v_BxKxSxDh.shape[1])
  return v_BxKxSxDh.at[rows, heads, slots].set(
      new_BxKxTxDh.astype(v_BxKxSxDh.dtype), mode="drop")
