"""Grouped-query self-attention with RoPE and optional q/k/v bias (HF Qwen2Attention /
LlamaAttention), over either the current tokens or a `KVCache`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from prorl_jax.models import kv_cache
from prorl_jax.models.config import ModelConfig
from prorl_jax.models.layers import normal_init, param, zeros_init
from prorl_jax.models.rope import apply_rope, inverse_frequencies


class Attention(nnx.Module):
  """softmax(q·kᵀ/√Dh + mask)·v with H query heads sharing K key/value heads (GQA; Ainslie et
  al. 2023), RoPE on q and k.

  Parameters: q [D, H, Dh] ('embed', 'heads', 'head_dim'); k, v [D, K, Dh]
  ('embed', 'kv_heads', 'head_dim'); o [H, Dh, D] ('heads', 'head_dim', 'embed'); with
  `config.qkv_bias`: q_bias [H, Dh], k_bias, v_bias [K, Dh].
  """

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    d, h, kv, dh, pd = (config.hidden_size, config.num_heads, config.num_kv_heads,
                        config.head_dim, config.param_dtype)
    self.dtype = config.dtype
    # A tuple (static, hashable), not an array: it is configuration, not model state.
    self.inv_freq = tuple(float(f) for f in inverse_frequencies(config))
    self.q = param(rngs, normal_init, (d, h, dh), pd, ("embed", "heads", "head_dim"))
    self.k = param(rngs, normal_init, (d, kv, dh), pd, ("embed", "kv_heads", "head_dim"))
    self.v = param(rngs, normal_init, (d, kv, dh), pd, ("embed", "kv_heads", "head_dim"))
    self.o = param(rngs, normal_init, (h, dh, d), pd, ("heads", "head_dim", "embed"))
    if config.qkv_bias:
      self.q_bias = param(rngs, zeros_init, (h, dh), pd, ("heads", "head_dim"))
      self.k_bias = param(rngs, zeros_init, (kv, dh), pd, ("kv_heads", "head_dim"))
      self.v_bias = param(rngs, zeros_init, (kv, dh), pd, ("kv_heads", "head_dim"))
    else:
      self.q_bias = self.k_bias = self.v_bias = None

  def _project(self, x_BxTxD: jax.Array, kernel: nnx.Param, bias: nnx.Param | None):
    out = jnp.einsum("btd,dnh->btnh", x_BxTxD, kernel[...].astype(self.dtype))
    if bias is not None:
      out = out + bias[...].astype(self.dtype)
    return out

  def __call__(self, x_BxTxD: jax.Array, positions_BxT: jax.Array, mask_BxTxS: jax.Array,
               layer_cache: tuple[jax.Array, jax.Array] | None = None,
               slots_BxT: jax.Array | None = None,
               ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    """Attention output [B, T, D] and the updated (k, v) layer cache (None without cache).

    Args:
      x_BxTxD: normed input, compute dtype.
      positions_BxT: int32 RoPE positions.
      mask_BxTxS: bool, query t may attend to key slot s (S = T without cache, the cache length
        with one).
      layer_cache: None, or this layer's (keys [B, K, Dh, S], values [B, K, S, Dh]) buffers
        (`kv_cache` layout).
      slots_BxT: int32 cache slots the T new keys/values are written to (with layer_cache).
    """
    x = x_BxTxD.astype(self.dtype)
    q_BxTxHxDh = apply_rope(self._project(x, self.q, self.q_bias), positions_BxT, self.inv_freq)
    k_BxTxKxDh = apply_rope(self._project(x, self.k, self.k_bias), positions_BxT, self.inv_freq)
    v_BxTxKxDh = self._project(x, self.v, self.v_bias)
    # Head-major, as the cache stores them (free bitcasts when T = 1).
    k_BxKxTxDh = jnp.swapaxes(k_BxTxKxDh, 1, 2)
    v_BxKxTxDh = jnp.swapaxes(v_BxTxKxDh, 1, 2)
    if layer_cache is not None:
      k_BxKxDhxS = kv_cache.write_keys(layer_cache[0], k_BxKxTxDh, slots_BxT)
      v_BxKxSxDh = kv_cache.write_values(layer_cache[1], v_BxKxTxDh, slots_BxT)
      new_cache = (k_BxKxDhxS, v_BxKxSxDh)
      keys, values = k_BxKxDhxS.astype(self.dtype), v_BxKxSxDh.astype(self.dtype)
    else:
      new_cache = None
      keys, values = jnp.swapaxes(k_BxKxTxDh, 2, 3), v_BxKxTxDh
    out_BxTxHxDh = grouped_attention(q_BxTxHxDh, keys, values, mask_BxTxS)
    out_BxTxD = jnp.einsum("bthk,hkd->btd", out_BxTxHxDh, self.o[...].astype(self.dtype))
    return out_BxTxD, new_cache


def grouped_attention(q_BxTxHxDh: jax.Array, k_BxKxDhxS: jax.Array, v_BxKxSxDh: jax.Array,
                      mask_BxTxS: jax.Array) -> jax.Array:
  """softmax(q·kᵀ/√Dh masked)·v (Vaswani et al. 2017, eq. 1) for H = K·G query heads, head h
  reading key/value head h // G (HF `repeat_kv` order), without repeating the keys/values.

  The queries are grouped as [B, K, G, T, Dh], so both contractions are matmuls batched over
  (B, K) that read the keys/values in their cache layout ([B, K, Dh, S] and [B, K, S, Dh], see
  `kv_cache`) without a transpose. Scores, softmax and the normalizer are float32; the
  unnormalized probabilities (max 1) are cast to the values' dtype for p·v and the
  [B, K, G, T, Dh] result is divided by the row sums (the same function as normalizing first,
  with T·Dh instead of T·S divisions). A query with no allowed key gets the mean of the values
  (its output is meaningless and never used).

  Args:
    q_BxTxHxDh: queries (after RoPE), compute dtype.
    k_BxKxDhxS: keys (after RoPE), compute dtype.
    v_BxKxSxDh: values, compute dtype.
    mask_BxTxS: bool, query t may attend to key s.
  Returns:
    [B, T, H, Dh] in the queries' dtype.
  Raises:
    ValueError: H is not a multiple of K.
  """
  b, t, h, dh = q_BxTxHxDh.shape
  kv = k_BxKxDhxS.shape[1]
  if h % kv:
    raise ValueError(f"grouped_attention: {h} query heads is not a multiple of {kv} kv heads")
  g = h // kv
  q_BxKxGxTxDh = jnp.transpose(q_BxTxHxDh.reshape(b, t, kv, g, dh), (0, 2, 3, 1, 4))
  scores_BxKxGxTxS = jnp.einsum("bkgtd,bkds->bkgts", q_BxKxGxTxDh, k_BxKxDhxS,
                                preferred_element_type=jnp.float32) * jnp.float32(dh ** -0.5)
  scores_BxKxGxTxS = jnp.where(mask_BxTxS[:, None, None, :, :], scores_BxKxGxTxS,
                               jnp.finfo(jnp.float32).min)
  max_BxKxGxTx1 = jnp.max(scores_BxKxGxTxS, axis=-1, keepdims=True)
  w_BxKxGxTxS = jnp.exp(scores_BxKxGxTxS - max_BxKxGxTx1)
  sum_BxKxGxTx1 = jnp.sum(w_BxKxGxTxS, axis=-1, keepdims=True)
  out_BxKxGxTxDh = jnp.einsum("bkgts,bksd->bkgtd", w_BxKxGxTxS.astype(v_BxKxSxDh.dtype),
                              v_BxKxSxDh, preferred_element_type=jnp.float32)
  out_BxKxGxTxDh = out_BxKxGxTxDh / sum_BxKxGxTx1
  return jnp.transpose(out_BxKxGxTxDh, (0, 3, 1, 2, 4)).reshape(b, t, h, dh).astype(
      q_BxTxHxDh.dtype)
