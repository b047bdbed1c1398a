"""Supervised fine-tuning (the warm start before RL): next-token cross-entropy on worked answers.

ProRL starts RL from an SFT-distilled model (spec §7: DeepSeek-R1-Distill); the quickstart
builds its base the same way at toy scale: `train_sft` fits a policy to (prompt, completion)
pairs, the loss counting only completion tokens (the closing EOS included, so the policy learns
to stop).

Layout of one example (right-padded to S <= `SFTConfig.max_length`: each batch is cut to its
longest example rounded up to a multiple of `SFTConfig.length_bucket`):
    tokens     [chat-rendered prompt][completion][EOS][pad ...]
    positions  0 .. L-1 then 0
    loss mask  1 where the next token is a completion or EOS token
    loss       token-mean over the batch of -log softmax(logits)[next token] (fp32)

Pairs longer than S are dropped and counted (never truncated: a cut completion would teach
the policy to stop mid-answer).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from prorl_jax.models.decoder import Decoder
from prorl_jax.models.tokenizer import render_prompt


@gin.configurable
@dataclasses.dataclass(frozen=True)
class SFTConfig:
  """Settings of the supervised warm start.

  Attributes:
    steps: optimizer updates (each on `batch_size` pairs; pairs are drawn epoch by epoch in a
      seeded random order).
    batch_size: pairs per update.
    learning_rate: AdamW peak learning rate (linear warmup, then cosine decay to 10%).
    warmup_steps: linear warmup updates.
    weight_decay: AdamW weight decay.
    grad_clip_norm: global-norm gradient clipping (None: off).
    max_length: S, prompt + completion + EOS tokens; longer pairs are dropped.
    length_bucket: each batch is cut to its longest pair rounded up to a multiple of this
      (fewer padded tokens; one compiled program per bucket).
    seed: the order of the pairs.
    log_every: updates between log lines (0: none).
  """
  steps: int = 300
  batch_size: int = 32
  learning_rate: float = 3e-3
  warmup_steps: int = 20
  weight_decay: float = 0.0
  grad_clip_norm: float | None = 1.0
  max_length: int = 160
  length_bucket: int = 32
  seed: int = 0
  log_every: int = 50

  def __post_init__(self):
    def bad(field: str, why: str):
      raise ValueError(f"SFTConfig.{field}={getattr(self, field)!r}: {why}")
    for field in ("steps", "batch_size", "max_length", "length_bucket"):
      if getattr(self, field) < 1:
        bad(field, "must be >= 1")
    if not self.learning_rate > 0:
      bad("learning_rate", "must be > 0")
    if self.warmup_steps < 0:
      bad("warmup_steps", "must be >= 0")
    if self.weight_decay < 0:
      bad("weight_decay", "must be >= 0")


@dataclasses.dataclass(frozen=True)
class SFTBatchData:
  """Every kept pair, tokenized (module docstring layout).

  Attributes:
    tokens_NxS, positions_NxS: int32.
    attention_mask_NxS, loss_mask_NxS: bool; loss_mask[:, s] = tokens[:, s + 1] is a completion
      or EOS token.
    dropped: pairs longer than S (not included).
  """
  tokens_NxS: np.ndarray
  positions_NxS: np.ndarray
  attention_mask_NxS: np.ndarray
  loss_mask_NxS: np.ndarray
  dropped: int


def tokenize_pairs(tokenizer: Any, pairs: Sequence[Mapping[str, Any]], max_length: int
                   ) -> SFTBatchData:
  """Tokenizes {"prompt", "completion"} pairs (prompt: a string or chat messages, rendered with
  the tokenizer's chat template and the assistant opening; completion: plain text followed by
  the EOS token).

  Raises:
    ValueError: no pairs, a tokenizer without an EOS token, or no pair fits in `max_length`.
  """
  if not pairs:
    raise ValueError("tokenize_pairs: no pairs")
  eos = getattr(tokenizer, "eos_token_id", None)
  if eos is None:
    raise ValueError("tokenize_pairs: the tokenizer has no eos_token_id")
  has_template = bool(getattr(tokenizer, "chat_template", None))
  pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
  rows = []
  dropped = 0
  for pair in pairs:
    prompt_ids = tokenizer(render_prompt(tokenizer, pair["prompt"]),
                           add_special_tokens=not has_template)["input_ids"]
    completion_ids = tokenizer(pair["completion"], add_special_tokens=False)["input_ids"] + [eos]
    if len(prompt_ids) + len(completion_ids) > max_length:
      dropped += 1
      continue
    rows.append((prompt_ids, completion_ids))
  if not rows:
    raise ValueError(f"tokenize_pairs: all {len(pairs)} pairs are longer than max_length="
                     f"{max_length} tokens")
  n = len(rows)
  tokens = np.full((n, max_length), pad, np.int32)
  positions = np.zeros((n, max_length), np.int32)
  attention = np.zeros((n, max_length), bool)
  loss = np.zeros((n, max_length), bool)
  for i, (p, c) in enumerate(rows):
    length = len(p) + len(c)
    tokens[i, :length] = p + c
    positions[i, :length] = np.arange(length)
    attention[i, :length] = True
    loss[i, len(p) - 1:length - 1] = True   # predicts completion tokens and the EOS
  return SFTBatchData(tokens, positions, attention, loss, dropped)


def make_sft_optimizer(config: SFTConfig) -> optax.GradientTransformation:
  """AdamW with linear warmup then cosine decay to 10% of the peak over `config.steps`."""
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate,
      warmup_steps=min(config.warmup_steps, config.steps - 1) if config.steps > 1 else 0,
      decay_steps=config.steps, end_value=0.1 * config.learning_rate)
  tx = optax.adamw(schedule, weight_decay=config.weight_decay)
  if config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
  return tx


def sft_loss(model: Decoder, tokens_BxS: jax.Array, positions_BxS: jax.Array,
             attention_mask_BxS: jax.Array, loss_mask_BxS: jax.Array) -> jax.Array:
  """Token-mean cross-entropy (fp32 scalar) of the next tokens where `loss_mask_BxS` is 1."""
  logits_BxSxV, _ = model(tokens_BxS, positions_BxS, attention_mask_BxS)
  logp_BxSxV = jax.nn.log_softmax(logits_BxSxV[:, :-1].astype(jnp.float32), axis=-1)
  nll_BxS = -jnp.take_along_axis(logp_BxSxV, tokens_BxS[:, 1:, None], axis=-1)[..., 0]
  mask_BxS = loss_mask_BxS[:, :-1].astype(jnp.float32)
  return jnp.sum(nll_BxS * mask_BxS) / jnp.maximum(jnp.sum(mask_BxS), 1.0)


def train_sft(model: Decoder, tokenizer: Any, pairs: Sequence[Mapping[str, Any]],
              config: SFTConfig = SFTConfig(),
              log_fn: Callable[[str], None] | None = print) -> dict[str, float]:
  """Fits `model` (updated in place) to the pairs (module docstring).

  Args:
    model: the policy (any initialisation); its parameters are replaced by the trained ones.
    tokenizer: the policy's tokenizer (chat template, EOS).
    pairs: {"prompt", "completion"} dicts (`quickstart_data.read_sft_pairs`).
    config: the settings.
    log_fn: receives a progress line every `config.log_every` updates (None: silent).
  Returns:
    {"sft/loss_first", "sft/loss_last" (mean of the last 10 updates), "sft/pairs",
     "sft/dropped", "sft/steps", "sft/seconds"}.
  Raises:
    ValueError: as `tokenize_pairs`.
  """
  data = tokenize_pairs(tokenizer, pairs, config.max_length)
  n = data.tokens_NxS.shape[0]
  lengths_N = data.attention_mask_NxS.sum(axis=1)
  arrays = (data.tokens_NxS, data.positions_NxS, data.attention_mask_NxS, data.loss_mask_NxS)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = make_sft_optimizer(config)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, tokens, positions, attention, loss_mask):
    def loss_fn(p):
      return sft_loss(nnx.merge(graphdef, p, rest), tokens, positions, attention, loss_mask)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(config.seed)
  order = np.empty(0, np.int64)
  losses = []
  start = time.perf_counter()
  for i in range(config.steps):
    if order.size < config.batch_size:
      order = np.concatenate([order, rng.permutation(n)])
    idx, order = order[:config.batch_size], order[config.batch_size:]
    width = min(config.max_length,
                -(-int(lengths_N[idx].max()) // config.length_bucket) * config.length_bucket)
    params, opt_state, loss = step(params, opt_state, *(a[idx, :width] for a in arrays))
    losses.append(loss)
    if log_fn is not None and config.log_every and (i + 1) % config.log_every == 0:
      log_fn(f"sft step {i + 1}/{config.steps}: loss {float(loss):.4f} "
             f"({time.perf_counter() - start:.0f} s)")
  nnx.update(model, params)
  losses = [float(x) for x in jax.device_get(losses)]
  return {"sft/loss_first": losses[0], "sft/loss_last": float(np.mean(losses[-10:])),
          "sft/pairs": float(n), "sft/dropped": float(data.dropped),
          "sft/steps": float(config.steps), "sft/seconds": time.perf_counter() - start,
          "sft/epochs": config.steps * config.batch_size / n if n else math.nan}
