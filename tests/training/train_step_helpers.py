"""Shared by the train-step tests (loaded by path: pytest runs with --import-mode=importlib) and
by the 8-device worker: a tiny decoder, hand-made rollouts, and an INDEPENDENT reference of the
actor loss (full [B, S, V] logits from `model(...)`, `jax.nn.log_softmax`, and the PPO-clip /
dual-clip / k2 / entropy formulas written out by case, not via prorl_jax.algorithms)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from prorl_jax.models import Decoder, ModelConfig
from prorl_jax.sampling.rollouts import Rollouts

VOCAB = 48


def tiny_model(seed: int = 0, num_layers: int = 1) -> Decoder:
  cfg = ModelConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                    num_layers=num_layers, num_heads=2, num_kv_heads=1, head_dim=8,
                    qkv_bias=True)
  model = Decoder(cfg, rngs=nnx.Rngs(seed))
  # O(1) logits instead of the near-uniform policy of the N(0, 0.02) init.
  scale = lambda x: x * (50.0 if x.shape[:1] == (VOCAB,) else 10.0) if x.ndim >= 2 else x
  nnx.update(model, jax.tree.map(scale, nnx.state(model)))
  return model


def make_rollouts(seed: int, num_prompts: int, group_size: int, max_new_tokens: int,
                  prompt_len_max: int = 5) -> Rollouts:
  """Random prompts/responses with varied prompt and response lengths (>= 1 token each)."""
  rng = np.random.default_rng(seed)
  n, g, t = num_prompts, group_size, max_new_tokens
  b = n * g
  lengths_B = rng.integers(1, t + 1, b).astype(np.int32)
  lengths_B[0] = t
  mask_BxT = np.arange(t)[None, :] < lengths_B[:, None]
  return Rollouts(
      prompt_ids_NxP=rng.integers(1, VOCAB, (n, prompt_len_max)).astype(np.int32),
      prompt_lengths_N=rng.integers(1, prompt_len_max + 1, n).astype(np.int32),
      response_ids_BxT=np.where(mask_BxT, rng.integers(1, VOCAB, (b, t)), 0).astype(np.int32),
      response_logprobs_BxT=np.zeros((b, t), np.float32), response_mask_BxT=mask_BxT,
      response_lengths_B=lengths_B, truncated_B=lengths_B == t, group_size=g, temperature=1.0,
      pad_token_id=0)


def reference_logp_entropy(graphdef, params, batch, tau: float):
  """log softmax(model(...) / τ)[targets] and the entropy at every column, [B, S] float32."""
  model = nnx.merge(graphdef, params)
  logits_BxSxV, _ = model(jnp.asarray(batch.tokens_BxS), jnp.asarray(batch.positions_BxS),
                          jnp.asarray(batch.attention_mask_BxS))
  logp_all = jax.nn.log_softmax(logits_BxSxV / tau, axis=-1)
  logp = jnp.take_along_axis(logp_all, jnp.asarray(batch.targets_BxS)[..., None], -1)[..., 0]
  return logp, -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)


@dataclasses.dataclass(frozen=True)
class RefConfig:
  clip_low: float = 0.2
  clip_high: float = 0.28
  clip_ratio_c: float | None = None
  kl_coef: float = 0.0
  kl_clamp: float = 10.0
  entropy_coef: float = 0.0
  mode: str = "token-mean"


def reference_loss(graphdef, params, batch, rows, cfg: RefConfig, tau: float):
  """(total loss, dict of terms) of the mini-batch `rows` (a numpy index array)."""
  logp, ent = reference_logp_entropy(graphdef, params, batch, tau)
  pick = lambda x: jnp.asarray(np.asarray(x)[rows], jnp.float32)
  logp, ent = logp[rows], ent[rows]
  m, old, adv, ref = (pick(batch.loss_mask_BxS), pick(batch.old_logprobs_BxS),
                      pick(batch.advantages_BxS), pick(batch.ref_logprobs_BxS))
  r = jnp.exp(logp - old)
  lo, hi = 1.0 - cfg.clip_low, 1.0 + cfg.clip_high
  # PPO-clip by case: A >= 0 -> -A·min(r, 1+ε_h); A < 0 -> -A·max(r, 1-ε_l) (dual: capped at c).
  neg_branch = jnp.maximum(r, lo)
  if cfg.clip_ratio_c is not None:
    neg_branch = jnp.minimum(neg_branch, cfg.clip_ratio_c)
  pg_tok = jnp.where(adv >= 0, -adv * jnp.minimum(r, hi), -adv * neg_branch)
  delta = jnp.clip(logp - ref, -cfg.kl_clamp, cfg.kl_clamp)
  kl_tok = 0.5 * delta ** 2

  def agg(x):
    if cfg.mode == "token-mean":
      return jnp.sum(x * m) / jnp.sum(m)
    n_b = jnp.sum(m, axis=1)
    rows_valid = n_b > 0
    per_seq = jnp.where(rows_valid, jnp.sum(x * m, axis=1) / jnp.maximum(n_b, 1), 0.0)
    return jnp.sum(per_seq) / jnp.sum(rows_valid)

  tok_mean = lambda x: jnp.sum(x * m) / jnp.sum(m)
  pg, kl, h = agg(pg_tok), agg(kl_tok), agg(ent)
  terms = {
      "actor/pg_loss": pg, "actor/kl_loss": kl, "actor/entropy": tok_mean(ent),
      "actor/pg_clipfrac": tok_mean(((adv > 0) & (r > hi)).astype(jnp.float32)),
      "actor/pg_clipfrac_lower": tok_mean(((adv < 0) & (r < lo)).astype(jnp.float32)),
      "actor/ppo_kl": tok_mean(old - logp),
  }
  if cfg.clip_ratio_c is not None:
    terms["actor/pg_clipfrac_dual"] = tok_mean(
        ((adv < 0) & (r > cfg.clip_ratio_c)).astype(jnp.float32))
  return pg + cfg.kl_coef * kl - cfg.entropy_coef * h, terms


def reference_value_and_grad(graphdef, params, batch, rows, cfg: RefConfig, tau: float):
  """((loss, terms), grads) of `reference_loss` w.r.t. params (jitted: one XLA program)."""
  fn = lambda p: reference_loss(graphdef, p, batch, rows, cfg, tau)
  return jax.jit(jax.value_and_grad(fn, has_aux=True))(params)


def reference_logp(graphdef, params, batch, tau: float):
  """`reference_logp_entropy(...)[0]` as numpy, jitted."""
  return np.asarray(jax.jit(lambda p: reference_logp_entropy(graphdef, p, batch, tau)[0])(params))


def host_copy(tree):
  """A numpy copy of every leaf (params passed to `update` are donated)."""
  return jax.tree.map(lambda x: np.array(x, copy=True), tree)
