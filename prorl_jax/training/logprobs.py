"""The trainer's token log-probs and entropies, restricted to the response window and chunked
over the vocabulary (spec §1 step 5, §10 "logits memory").

With z = logits / τ (τ the sampling temperature, as the sampler: `Rollouts.temperature`) and
log Z = logsumexp(z) over the whole vocabulary:
  log π(a) = z_a − log Z                     H = −Σ_v π_v log π_v
The forward pass runs the decoder over all S columns (the response attends to the prompt), but
the LM head is applied only to the W window columns that predict response tokens (columns
[P − 1, P − 1 + T) of the `TrainingBatch` layout), so [B, S, V] logits never exist.

Vocabulary chunking (`vocab_chunk` = C): the V columns of the unembedding are visited C at a
time in a `lax.scan` with an online (streaming) logsumexp (Milakov & Gimelshein 2018, "Online
normalizer calculation for softmax"): with a running max m (no gradient: the result does not
depend on it), s = Σ e^{z−m}, a = Σ e^{z−m}(z − m), and the target logit z_a,
  log Z = m + log s,          H = log s − a / s.
Each scan step is rematerialized (`jax.checkpoint`), so forward and backward hold one
[B, W, C] float32 block at a time plus [B, W] carries, never [B, W, V]. Chunks are STRIDED
(chunk c holds vocabulary ids c, c + n, c + 2n, ..., n = ceil(V / C)), so a vocabulary dim that
is tensor-sharded stays evenly spread over the shards in every chunk. V need not be a multiple
of C (the padding ids are masked). Memory per chunk ≈ B·W·C·4 bytes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from prorl_jax import sharding
from prorl_jax.algorithms import entropy as entropy_lib
from prorl_jax.models.decoder import Decoder

_NEG = -1e30  # "minus infinity" for padded vocabulary ids that keeps 0·(z − m) finite


def unembedding(model: Decoder) -> tuple[jax.Array, bool]:
  """The LM-head matrix of `model` and its layout: ([V, D] embed table, True) when the
  embeddings are tied, else ([D, V] lm_head, False)."""
  if model.lm_head is None:
    return model.embed[...], True
  return model.lm_head[...], False


def chunked_logprobs_and_entropy(hidden_BxWxD: jax.Array, w: jax.Array, targets_BxW: jax.Array,
                                 *, vocab_major: bool, temperature: float, vocab_chunk: int,
                                 compute_dtype=jnp.float32, compute_entropy: bool = True
                                 ) -> tuple[jax.Array, jax.Array | None]:
  """log π(target) and H per position from hidden states, chunked over V (module docstring).

  Args:
    hidden_BxWxD: final-normed hidden states at the positions predicting `targets_BxW`.
    w: the unembedding, [V, D] if `vocab_major` (tied embeddings) else [D, V].
    targets_BxW: int token ids in [0, V) (out-of-range ids give garbage, unchecked under jit).
    temperature: τ > 0 (Python float).
    vocab_chunk: C > 0, vocabulary ids per chunk (static).
    compute_dtype: dtype of the matmul inputs (the model's `dtype`); accumulation is float32.
    compute_entropy: False returns None for the entropy.

  Returns:
    (logp_BxW, entropy_BxW or None), float32. Differentiable w.r.t. hidden and w.

  Raises:
    ValueError: vocab_chunk <= 0, temperature <= 0, or inconsistent shapes.
  """
  if vocab_chunk <= 0:
    raise ValueError(f"vocab_chunk must be > 0, got {vocab_chunk}")
  if temperature <= 0:
    raise ValueError(f"temperature must be > 0, got {temperature}")
  v, d = (w.shape if vocab_major else w.shape[::-1])
  if hidden_BxWxD.ndim != 3 or hidden_BxWxD.shape[-1] != d:
    raise ValueError(f"hidden_BxWxD {hidden_BxWxD.shape} must be [B, W, {d}] for the "
                     f"unembedding {w.shape}")
  if targets_BxW.shape != hidden_BxWxD.shape[:2]:
    raise ValueError(f"targets_BxW {targets_BxW.shape} != hidden [B, W] "
                     f"{hidden_BxWxD.shape[:2]}")
  c = min(vocab_chunk, v)
  n = -(-v // c)
  pad = n * c - v
  w = w.astype(compute_dtype)
  # Strided chunks: vocabulary id i·n + k is element i of chunk k.
  if vocab_major:
    w_NxCxD = jnp.moveaxis(jnp.pad(w, ((0, pad), (0, 0))).reshape(c, n, d), 1, 0)
  else:
    w_NxDxC = jnp.moveaxis(jnp.pad(w, ((0, 0), (0, pad))).reshape(d, c, n), 2, 0)
  h = hidden_BxWxD.astype(compute_dtype)
  tgt = targets_BxW.astype(jnp.int32)
  tgt_chunk_BxW, tgt_index_BxW = tgt % n, tgt // n
  b, t = tgt.shape

  @jax.checkpoint
  def step(carry, xs):
    m, s, a, z_tgt = carry
    w_chunk, k = xs
    eq = "btd,cd->btc" if vocab_major else "btd,dc->btc"
    z = jnp.einsum(eq, h, w_chunk, preferred_element_type=jnp.float32) / temperature
    valid_C = jnp.arange(c) * n + k < v
    z = jnp.where(valid_C, z, _NEG)
    m_new = jax.lax.stop_gradient(jnp.maximum(m, jnp.max(z, axis=-1)))
    scale = jnp.exp(m - m_new)
    zc = z - m_new[..., None]
    e = jnp.exp(zc)
    s_new = s * scale + jnp.sum(e, axis=-1)
    if compute_entropy:
      a = scale * (a + (m - m_new) * s) + jnp.sum(e * zc, axis=-1)
    picked = jnp.take_along_axis(z, tgt_index_BxW[..., None], axis=-1)[..., 0]
    z_tgt = z_tgt + jnp.where(tgt_chunk_BxW == k, picked, 0.0)
    return (m_new, s_new, a, z_tgt), None

  zeros = jnp.zeros((b, t), jnp.float32)
  init = (jnp.full((b, t), _NEG, jnp.float32), zeros, zeros, zeros)
  xs = (w_NxCxD if vocab_major else w_NxDxC, jnp.arange(n, dtype=jnp.int32))
  (m, s, a, z_tgt), _ = jax.lax.scan(step, init, xs)
  log_s = jnp.log(s)
  logp = z_tgt - (m + log_s)
  return logp, (log_s - a / s if compute_entropy else None)


def full_logprobs_and_entropy(logits_BxWxV: jax.Array, targets_BxW: jax.Array, *,
                              temperature: float, compute_entropy: bool = True
                              ) -> tuple[jax.Array, jax.Array | None]:
  """The unchunked computation from materialized logits (float32 [B, W] outputs)."""
  logp = entropy_lib.token_logprobs_from_logits(logits_BxWxV, targets_BxW, temperature)
  ent = (entropy_lib.entropy_from_logits(logits_BxWxV, temperature) if compute_entropy
         else None)
  return logp, ent


def window_logprobs_and_entropy(model: Decoder, tokens_BxS: jax.Array, positions_BxS: jax.Array,
                                attention_mask_BxS: jax.Array, targets_BxS: jax.Array, *,
                                window: tuple[int, int], temperature: float,
                                vocab_chunk: int | None, compute_entropy: bool = True
                                ) -> tuple[jax.Array, jax.Array | None]:
  """Decoder forward over S columns, LM head on the window columns only.

  Args:
    model: the policy `Decoder` (merged from graphdef + params inside the caller's jit).
    tokens_BxS, positions_BxS, attention_mask_BxS, targets_BxS: the `TrainingBatch` layout
      (`targets_BxS[:, s] = tokens_BxS[:, s + 1]`).
    window: (start, width) static columns; (P − 1, T) for the layout above.
    temperature: τ of the log-probs (the sampler's).
    vocab_chunk: None materializes the [B, W, V] float32 window logits; an int chunks over V.
    compute_entropy: also return the per-position entropy.

  Returns:
    (logp_BxW, entropy_BxW or None), float32, unmasked.
  """
  start, width = window
  s = tokens_BxS.shape[1]
  if not (0 <= start and width >= 1 and start + width <= s):
    raise ValueError(f"window {window} does not fit in the S={s} columns")
  hidden_BxSxD, _ = model.hidden(tokens_BxS, positions_BxS, attention_mask_BxS)
  hidden_BxWxD = jax.lax.slice_in_dim(hidden_BxSxD, start, start + width, axis=1)
  targets_BxW = jax.lax.slice_in_dim(targets_BxS, start, start + width, axis=1)
  if vocab_chunk is None:
    return full_logprobs_and_entropy(model.unembed(hidden_BxWxD), targets_BxW,
                                     temperature=temperature, compute_entropy=compute_entropy)
  w, vocab_major = unembedding(model)
  # FSDP: gather the head's 'embed' dim once (as Decoder.hidden does for the embed table).
  rules = model.activation_rules
  axes = ("act_vocab", "act_embed") if vocab_major else ("act_embed", "act_vocab")
  w = sharding.constrain(w, axes, rules)
  return chunked_logprobs_and_entropy(
      hidden_BxWxD, w, targets_BxW, vocab_major=vocab_major, temperature=temperature,
      vocab_chunk=vocab_chunk, compute_dtype=model.config.dtype,
      compute_entropy=compute_entropy)
