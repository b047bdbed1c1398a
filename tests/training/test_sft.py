"""Supervised warm start: layout, loss against a numpy reference, and learning."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from prorl_jax.models import Decoder, ModelConfig, render_prompt
from prorl_jax.models.task_tokenizer import make_task_tokenizer
from prorl_jax.sampling import Sampler, SamplingConfig
from prorl_jax.training.sft import SFTConfig, sft_loss, tokenize_pairs, train_sft

PAIRS = [{"prompt": f"Add {a} and {b}.", "completion": f"<think> {a} + {b}</think> {a + b}"}
         for a, b in ((1, 2), (3, 4), (5, 1), (2, 7))]


@pytest.fixture(scope="module")
def tok():
  corpus = [render_prompt(None, p["prompt"]) + p["completion"] for p in PAIRS] * 5
  return make_task_tokenizer(corpus, vocab_size=300)


def _model(vocab: int, seed: int = 0) -> Decoder:
  cfg = ModelConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_layers=2,
                    num_heads=2, num_kv_heads=1, head_dim=16, qkv_bias=True)
  return Decoder(cfg, rngs=nnx.Rngs(seed))


def test_layout_by_hand(tok):
  data = tokenize_pairs(tok, PAIRS[:2], max_length=64)
  for i, pair in enumerate(PAIRS[:2]):
    prompt = tok(render_prompt(tok, pair["prompt"]), add_special_tokens=False)["input_ids"]
    completion = tok(pair["completion"], add_special_tokens=False)["input_ids"]
    full = prompt + completion + [tok.eos_token_id]
    n = len(full)
    np.testing.assert_array_equal(data.tokens_NxS[i, :n], full)
    assert (data.tokens_NxS[i, n:] == tok.pad_token_id).all()
    np.testing.assert_array_equal(data.positions_NxS[i, :n], np.arange(n))
    assert data.attention_mask_NxS[i].sum() == n
    # Loss positions s predict token s + 1: exactly the completion tokens and the EOS.
    predicted = data.tokens_NxS[i, 1:][data.loss_mask_NxS[i, :-1]]
    np.testing.assert_array_equal(predicted, completion + [tok.eos_token_id])
  assert data.dropped == 0


def test_long_pairs_are_dropped_not_truncated(tok):
  long = {"prompt": "Add " + "1 " * 80, "completion": "x"}
  data = tokenize_pairs(tok, PAIRS[:1] + [long], max_length=40)
  assert data.tokens_NxS.shape[0] == 1 and data.dropped == 1
  with pytest.raises(ValueError, match="longer than max_length=40"):
    tokenize_pairs(tok, [long], max_length=40)


def test_loss_matches_numpy_cross_entropy(tok):
  model = _model(len(tok))
  data = tokenize_pairs(tok, PAIRS, max_length=48)
  args = [jnp.asarray(a) for a in (data.tokens_NxS, data.positions_NxS,
                                   data.attention_mask_NxS, data.loss_mask_NxS)]
  loss = float(sft_loss(model, *args))
  # Reference: each example alone, unpadded, cross-entropy in float64 numpy.
  nll, count = 0.0, 0
  for i in range(len(PAIRS)):
    n = int(data.attention_mask_NxS[i].sum())
    logits, _ = model(jnp.asarray(data.tokens_NxS[i:i + 1, :n]))
    z = np.asarray(logits[0], np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    for s in range(n - 1):
      if data.loss_mask_NxS[i, s]:
        nll -= logp[s, data.tokens_NxS[i, s + 1]]
        count += 1
  assert loss == pytest.approx(nll / count, rel=1e-5)


def test_training_memorises_the_completions(tok):
  model = _model(len(tok), seed=1)
  stats = train_sft(model, tok, PAIRS, SFTConfig(steps=150, batch_size=4, learning_rate=1e-2,
                                                warmup_steps=5, max_length=48,
                                                length_bucket=16, log_every=0))
  assert stats["sft/loss_last"] < 0.05 < stats["sft/loss_first"]
  assert stats["sft/pairs"] == 4 and stats["sft/dropped"] == 0
  # The trained policy greedily writes each completion and stops (EOS).
  eos = tok.eos_token_id
  sampler = Sampler(model, SamplingConfig(max_new_tokens=24, greedy=True, eos_token_ids=(eos,),
                                          pad_token_id=tok.pad_token_id))
  prompts = [tok(render_prompt(tok, p["prompt"]), add_special_tokens=False)["input_ids"]
             for p in PAIRS]
  rollouts = sampler.generate(nnx.state(model), prompts, 1, jax.random.key(0))
  for pair, ids, n in zip(PAIRS, rollouts.response_ids_BxT, rollouts.response_lengths_B):
    assert ids[n - 1] == eos
    assert tok.decode(ids[:n - 1]) == pair["completion"]


def test_bad_config():
  with pytest.raises(ValueError, match="SFTConfig.steps=0"):
    SFTConfig(steps=0)
  with pytest.raises(ValueError, match="SFTConfig.learning_rate"):
    SFTConfig(learning_rate=0.0)
  with pytest.raises(ValueError, match="no pairs"):
    tokenize_pairs(None, [], 8)
