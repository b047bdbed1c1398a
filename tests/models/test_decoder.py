"""Decoder properties: causality, KV-cache decode == full forward (and == HF), the cache in a
jitted `lax.while_loop`, repeated cache rows, remat."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from prorl_jax.models.config import ModelConfig
from prorl_jax.models.decoder import Decoder
from prorl_jax.models.hf_load import load_hf_checkpoint
from prorl_jax.models.kv_cache import KVCache, init_cache


@pytest.fixture(scope="module")
def qwen(ckpt):
  path = ckpt("qwen2_untied")
  return path, load_hf_checkpoint(path)


def test_causality(qwen, apply):
  """Changing tokens from position k on leaves the logits before k unchanged."""
  _, model = qwen
  rng = np.random.default_rng(1)
  a = rng.integers(0, model.config.vocab_size, (2, 24)).astype(np.int32)
  b = a.copy()
  b[:, 13:] = rng.integers(0, model.config.vocab_size, (2, 11))
  la, lb = (np.asarray(apply(model, x)[0]) for x in (a, b))
  np.testing.assert_allclose(la[:, :13], lb[:, :13], atol=1e-6, rtol=0)
  assert np.abs(la[:, 13:] - lb[:, 13:]).max() > 1e-2


def test_prefill_then_decode_equals_full_forward_and_hf(qwen, apply, hf_logits, pad_batch):
  """Left-padded prompts of different lengths: prefill, then one token per step; the logits
  at each step equal the full forward logits of that row's whole sequence and HF's."""
  path, model = qwen
  rng = np.random.default_rng(2)
  v = model.config.vocab_size
  prompts = [rng.integers(0, v, n).tolist() for n in (6, 11, 3)]
  cont = rng.integers(0, v, (3, 7)).astype(np.int32)  # teacher-forced continuation
  tokens, mask = pad_batch(prompts, "left")
  cache = init_cache(model.config, 3, tokens.shape[1] + cont.shape[1])
  logits, cache = apply(model, tokens, mask=mask, cache=cache)
  steps = [np.asarray(logits[:, -1])]
  lengths = np.array([len(p) for p in prompts], np.int32)
  for t in range(cont.shape[1] - 1):
    step, cache = apply(model, cont[:, t:t + 1], lengths[:, None] + t, cache=cache)
    steps.append(np.asarray(step[:, 0]))
  assert isinstance(cache, KVCache) and cache.index_B.tolist() == [tokens.shape[1] + 6] * 3
  fulls = [p + cont[i].tolist() for i, p in enumerate(prompts)]
  full_tokens, full_mask = pad_batch(fulls, "left")
  ours_full = np.asarray(apply(model, full_tokens, mask=full_mask)[0])
  for i, p in enumerate(prompts):
    got = np.stack([s[i] for s in steps])  # logits predicting tokens len(p) .. len(full)-1
    n = len(cont[i])
    np.testing.assert_allclose(got, ours_full[i, -n - 1:-1], atol=1e-5, rtol=0)
    np.testing.assert_allclose(got, hf_logits(path, fulls[i])[len(p) - 1:-1], atol=1e-4, rtol=0)


def test_repeated_cache_rows_and_default_positions(qwen, apply, pad_batch):
  """A prefilled prompt batch repeated G times along the batch decodes each copy like its own
  full forward; positions default to the count of real tokens already in the cache."""
  _, model = qwen
  rng = np.random.default_rng(3)
  v, g = model.config.vocab_size, 3
  prompts = np.array([rng.integers(0, v, 5), rng.integers(0, v, 5)], np.int32)
  mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], np.int32)
  cache = init_cache(model.config, 2, 9)
  _, cache = apply(model, prompts, mask=mask, cache=cache)
  cache = cache.repeat(g)
  assert cache.k[0].shape == (6, model.config.num_kv_heads, model.config.head_dim, 9)
  assert cache.v[0].shape == (6, model.config.num_kv_heads, 9, model.config.head_dim)
  new = rng.integers(0, v, (6, 2)).astype(np.int32)
  logits, _ = apply(model, new, cache=cache)
  fulls = [prompts[r // g][mask[r // g].astype(bool)].tolist() + new[r].tolist()
           for r in range(6)]
  full_tokens, full_mask = pad_batch(fulls, "left")
  full = np.asarray(apply(model, full_tokens, mask=full_mask)[0])
  np.testing.assert_allclose(np.asarray(logits), full[:, -2:], atol=1e-5, rtol=0)


def test_cache_in_jitted_while_loop_greedy_equals_hf_generate(qwen):
  """Greedy decoding with the cache carried through a jitted lax.while_loop reproduces
  transformers' greedy `generate` for a left-padded batch."""
  import torch
  import transformers
  path, model = qwen
  prompts = np.array([[0, 0, 5, 17, 42, 9], [3, 8, 13, 21, 34, 55]], np.int32)
  mask = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], np.int32)
  n_new = 6
  graphdef, state = nnx.split(model)

  @jax.jit
  def greedy(state, tokens, mask):
    m = nnx.merge(graphdef, state)
    cache = init_cache(m.config, tokens.shape[0], tokens.shape[1] + n_new)
    logits, cache = m(tokens, attention_mask_BxT=mask, cache=cache)
    first = jnp.argmax(logits[:, -1], -1).astype(jnp.int32)
    out = jnp.zeros((tokens.shape[0], n_new), jnp.int32).at[:, 0].set(first)

    def body(carry):
      i, cache, out = carry
      logits, cache = m(jax.lax.dynamic_slice_in_dim(out, i - 1, 1, axis=1), cache=cache)
      return i + 1, cache, out.at[:, i].set(jnp.argmax(logits[:, 0], -1).astype(jnp.int32))

    return jax.lax.while_loop(lambda c: c[0] < n_new, body, (1, cache, out))[2]

  ours = np.asarray(greedy(state, jnp.asarray(prompts), jnp.asarray(mask)))
  hf = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
  with torch.no_grad():
    ref = hf.generate(torch.tensor(prompts, dtype=torch.long),
                      attention_mask=torch.tensor(mask, dtype=torch.long),
                      max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                      pad_token_id=0, eos_token_id=None)[:, prompts.shape[1]:].numpy()
  np.testing.assert_array_equal(ours, ref)


def test_remat_same_loss_and_gradients():
  cfg = ModelConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=1,
                    num_heads=4, num_kv_heads=2, head_dim=8, qkv_bias=True)
  tokens = jnp.asarray(np.random.default_rng(4).integers(0, 64, (2, 8)), jnp.int32)
  results = []
  for remat in (False, True):
    graphdef, state = nnx.split(Decoder(cfg.replace(remat=remat), rngs=nnx.Rngs(0)))

    def loss(state):
      return jnp.mean(jax.nn.log_softmax(nnx.merge(graphdef, state)(tokens)[0]) ** 2)

    results.append(jax.jit(jax.value_and_grad(loss))(state))
  (l1, g1), (l2, g2) = results
  assert np.isclose(l1, l2, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)
