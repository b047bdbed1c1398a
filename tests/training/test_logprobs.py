"""The trainer's log-probs: vocabulary-chunked = unchunked = a float64 numpy log-softmax, their
gradients agree, and `TrainStep.logprobs` equals the sampler's log-probs of the same tokens."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from prorl_jax.models import Decoder, ModelConfig
from prorl_jax.sampling import Sampler, SamplingConfig, training_batch
from prorl_jax.training import logprobs as lp
from prorl_jax.training import train_step as ts_lib


def _np_logp_entropy(h, w_dv, targets, tau):
  """float64 numpy reference: log softmax(h·W / τ)[target] and the entropy."""
  z = np.einsum("btd,dv->btv", h.astype(np.float64), w_dv.astype(np.float64)) / tau
  z = z - z.max(-1, keepdims=True)
  logp_all = z - np.log(np.exp(z).sum(-1, keepdims=True))
  logp = np.take_along_axis(logp_all, targets[..., None], -1)[..., 0]
  return logp, -(np.exp(logp_all) * logp_all).sum(-1)


@pytest.mark.parametrize("vocab_major", [False, True])
def test_chunked_equals_unchunked_and_float64_reference(vocab_major):
  rng = np.random.default_rng(0)
  b, t, d, v, tau = 3, 5, 8, 37, 0.7          # V = 37 is not a multiple of any chunk below
  h = rng.normal(size=(b, t, d)).astype(np.float32)
  w_dv = (6.0 * rng.normal(size=(d, v))).astype(np.float32)   # logits up to ~±100: stability
  targets = rng.integers(0, v, (b, t)).astype(np.int32)
  targets[0, :] = np.arange(v - t, v)                          # the last (padded-chunk) ids
  w = w_dv.T.copy() if vocab_major else w_dv
  ref_logp, ref_ent = _np_logp_entropy(h, w_dv, targets, tau)

  full_logits = jnp.einsum("btd,dv->btv", h, w_dv)
  full = lp.full_logprobs_and_entropy(full_logits, jnp.asarray(targets), temperature=tau)
  np.testing.assert_allclose(full[0], ref_logp, atol=2e-4)
  np.testing.assert_allclose(full[1], ref_ent, atol=2e-4)
  for chunk in (1, 10, 64):
    logp, ent = lp.chunked_logprobs_and_entropy(
        jnp.asarray(h), jnp.asarray(w), jnp.asarray(targets), vocab_major=vocab_major,
        temperature=tau, vocab_chunk=chunk)
    np.testing.assert_allclose(logp, ref_logp, atol=2e-4, err_msg=f"chunk {chunk}")
    np.testing.assert_allclose(ent, ref_ent, atol=2e-4, err_msg=f"chunk {chunk}")
    np.testing.assert_allclose(logp, full[0], atol=1e-4, err_msg=f"chunk {chunk}")

  # Gradients w.r.t. hidden states and the unembedding agree with the unchunked ones.
  c_logp, c_ent = rng.normal(size=(2, b, t)).astype(np.float32)

  def objective(h, w, chunk):
    if chunk is None:
      w_dv_ = w.T if vocab_major else w
      logp, ent = lp.full_logprobs_and_entropy(jnp.einsum("btd,dv->btv", h, w_dv_),
                                               jnp.asarray(targets), temperature=tau)
    else:
      logp, ent = lp.chunked_logprobs_and_entropy(h, w, jnp.asarray(targets),
                                                  vocab_major=vocab_major, temperature=tau,
                                                  vocab_chunk=chunk)
    return jnp.sum(c_logp * logp + c_ent * ent)

  g_full = jax.grad(objective, argnums=(0, 1))(jnp.asarray(h), jnp.asarray(w), None)
  g_chunk = jax.grad(objective, argnums=(0, 1))(jnp.asarray(h), jnp.asarray(w), 10)
  for a, c in zip(g_full, g_chunk):
    assert np.all(np.isfinite(c))
    np.testing.assert_allclose(c, a, rtol=1e-4, atol=1e-4)


def test_chunked_rejects_bad_arguments():
  h, w, tgt = jnp.zeros((1, 2, 4)), jnp.zeros((4, 9)), jnp.zeros((1, 2), jnp.int32)
  with pytest.raises(ValueError, match="vocab_chunk"):
    lp.chunked_logprobs_and_entropy(h, w, tgt, vocab_major=False, temperature=1.0,
                                    vocab_chunk=0)
  with pytest.raises(ValueError, match="temperature"):
    lp.chunked_logprobs_and_entropy(h, w, tgt, vocab_major=False, temperature=0.0,
                                    vocab_chunk=3)
  with pytest.raises(ValueError, match="hidden_BxWxD"):
    lp.chunked_logprobs_and_entropy(h, w, tgt, vocab_major=True, temperature=1.0,
                                    vocab_chunk=3)


def _tiny_model(tied: bool) -> Decoder:
  cfg = ModelConfig(vocab_size=56, hidden_size=32, intermediate_size=64, num_layers=2,
                    num_heads=4, num_kv_heads=2, head_dim=8, qkv_bias=True,
                    tie_word_embeddings=tied)
  model = Decoder(cfg, rngs=nnx.Rngs(3))
  # Re-scale the N(0, 0.02) init so logits are O(1) (a near-uniform policy tests little).
  state = nnx.state(model)
  nnx.update(model, jax.tree.map(lambda x: x * (50.0 if x.ndim == 2 and x.shape[0] == 56
                                                else 8.0 if x.ndim >= 2 else 1.0), state))
  return model


@pytest.mark.parametrize("tied,vocab_chunk,micro_rows", [(False, None, 0), (True, 24, 3)])
def test_trainer_logprobs_equal_sampler_logprobs(tied, vocab_chunk, micro_rows):
  model = _tiny_model(tied)
  graphdef, params = nnx.split(model)
  tau = 1.3
  cfg = SamplingConfig(max_new_tokens=7, temperature=tau, eos_token_ids=(5,), cache_segments=1)
  prompts = [[1, 2, 3], [7, 8, 9, 10, 11, 12], [40]]
  rollouts = Sampler(model, cfg).generate(params, prompts, 2, jax.random.key(0))
  assert rollouts.temperature == tau
  tb = training_batch(rollouts, prompt_width=8)
  step = ts_lib.TrainStep(graphdef, optax.sgd(1.0),
                          ts_lib.UpdateConfig(vocab_chunk=vocab_chunk,
                                              micro_batch_rows=micro_rows),
                          temperature=tau)
  got = np.asarray(step.logprobs(params, tb))
  mask = tb.loss_mask_BxS
  assert mask.sum() == rollouts.response_mask_BxT.sum() > 6
  np.testing.assert_array_less(np.abs(got - tb.sampler_logprobs_BxS)[mask], 1e-4)
  assert (got[~mask] == 0).all()
  # Not trivially equal: the log-probs vary (the rescaled model is far from uniform).
  assert np.std(got[mask]) > 0.1
