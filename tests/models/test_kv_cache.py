"""The head-major KV cache layout and the grouped attention that reads it, against numpy
re-implementations (HF `repeat_kv` + softmax attention; per-row slot writes)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from prorl_jax.models.attention import grouped_attention
from prorl_jax.models.config import ModelConfig
from prorl_jax.models.kv_cache import init_cache, write_keys, write_values


def _numpy_attention(q_BxTxHxDh, k_BxSxKxDh, v_BxSxKxDh, mask_BxTxS):
  """HF eager attention: keys/values repeated per query head (head h uses kv head h // G)."""
  g = q_BxTxHxDh.shape[2] // k_BxSxKxDh.shape[2]
  k = np.repeat(k_BxSxKxDh, g, axis=2).astype(np.float64)
  v = np.repeat(v_BxSxKxDh, g, axis=2).astype(np.float64)
  q = q_BxTxHxDh.astype(np.float64)
  scores_BxHxTxS = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])
  scores_BxHxTxS = np.where(mask_BxTxS[:, None], scores_BxHxTxS, -np.inf)
  p = np.exp(scores_BxHxTxS - scores_BxHxTxS.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return np.einsum("bhts,bshd->bthd", p, v)


@pytest.mark.parametrize("heads,kv_heads", [(4, 2), (6, 1), (3, 3)])
def test_grouped_attention_equals_repeated_kv_attention(heads, kv_heads):
  rng = np.random.default_rng(heads * 10 + kv_heads)
  b, t, s, dh = 3, 5, 7, 8
  q = rng.normal(size=(b, t, heads, dh)).astype(np.float32)
  k = rng.normal(size=(b, s, kv_heads, dh)).astype(np.float32)
  v = rng.normal(size=(b, s, kv_heads, dh)).astype(np.float32)
  mask = rng.random((b, t, s)) < 0.6
  mask[:, :, 0] = True  # every query sees at least one key
  got = grouped_attention(jnp.asarray(q), jnp.asarray(k.transpose(0, 2, 3, 1)),
                          jnp.asarray(v.transpose(0, 2, 1, 3)), jnp.asarray(mask))
  assert got.shape == (b, t, heads, dh) and got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), _numpy_attention(q, k, v, mask), atol=1e-5,
                             rtol=0)


def test_grouped_attention_fully_masked_query_is_finite_mean_of_values():
  rng = np.random.default_rng(0)
  q = rng.normal(size=(1, 2, 2, 4)).astype(np.float32)
  k = rng.normal(size=(1, 1, 4, 3)).astype(np.float32)   # [B, K, Dh, S]
  v = rng.normal(size=(1, 1, 3, 4)).astype(np.float32)   # [B, K, S, Dh]
  mask = np.array([[[False, False, False], [True, True, False]]])
  got = np.asarray(grouped_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
                                     jnp.asarray(mask)))
  np.testing.assert_allclose(got[0, 0], np.broadcast_to(v[0, 0].mean(0), (2, 4)), atol=1e-6)
  with pytest.raises(ValueError, match="not a multiple"):
    grouped_attention(jnp.zeros((1, 1, 3, 4)), jnp.zeros((1, 2, 4, 3)),
                      jnp.zeros((1, 2, 3, 4)), jnp.ones((1, 1, 3), bool))


def test_writes_land_at_each_rows_slots_and_out_of_range_slots_are_dropped():
  rng = np.random.default_rng(1)
  b, kv, dh, s, t = 3, 2, 4, 6, 2
  new = rng.normal(size=(b, kv, t, dh)).astype(np.float32)
  slots = np.array([[0, 1], [4, 5], [5, 6]], np.int32)  # row 2's second slot is past the end
  keys = np.asarray(write_keys(jnp.zeros((b, kv, dh, s)), jnp.asarray(new), jnp.asarray(slots)))
  values = np.asarray(write_values(jnp.zeros((b, kv, s, dh)), jnp.asarray(new),
                                   jnp.asarray(slots)))
  want_values = np.zeros((b, kv, s, dh), np.float32)
  for row in range(b):
    for j in range(t):
      if slots[row, j] < s:
        want_values[row, :, slots[row, j]] = new[row, :, j]
  np.testing.assert_array_equal(values, want_values)
  np.testing.assert_array_equal(keys, want_values.transpose(0, 1, 3, 2))


def test_init_and_grow_layout():
  cfg = ModelConfig(vocab_size=8, hidden_size=8, intermediate_size=8, num_layers=2,
                    num_heads=2, num_kv_heads=1, head_dim=4)
  cache = init_cache(cfg, batch_size=2, max_length=3)
  assert cache.k[0].shape == (2, 1, 4, 3) and cache.v[1].shape == (2, 1, 3, 4)
  filled = type(cache)(k=tuple(x + 1 for x in cache.k), v=tuple(x + 2 for x in cache.v),
                       valid_BxS=cache.valid_BxS.at[:, :2].set(True),
                       index_B=cache.index_B + 2)
  grown = filled.grow(5)
  assert grown.max_length == 5 and grown.k[0].shape == (2, 1, 4, 5)
  assert grown.v[0].shape == (2, 1, 5, 4)
  np.testing.assert_array_equal(np.asarray(grown.k[0])[..., :3], 1)
  np.testing.assert_array_equal(np.asarray(grown.k[0])[..., 3:], 0)
  np.testing.assert_array_equal(np.asarray(grown.v[1])[:, :, :3], 2)
  np.testing.assert_array_equal(np.asarray(grown.v[1])[:, :, 3:], 0)
  np.testing.assert_array_equal(np.asarray(grown.valid_BxS),
                                [[True, True, False, False, False]] * 2)
  assert np.asarray(grown.index_B).tolist() == [2, 2]
  assert filled.grow(3) is filled
  with pytest.raises(ValueError, match="cannot shrink"):
    filled.grow(2)
