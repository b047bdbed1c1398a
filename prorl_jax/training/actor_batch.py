"""`ActorBatch`: the actor's input for one RL step (the `sampling.TrainingBatch` layout plus
old/reference log-probs and advantages), and how to build it from a `TrainingBatch`."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import numpy as np

from prorl_jax.sampling.rollouts import TrainingBatch

DATA_FIELDS = ("tokens_BxS", "positions_BxS", "attention_mask_BxS", "targets_BxS",
               "loss_mask_BxS", "old_logprobs_BxS", "ref_logprobs_BxS", "advantages_BxS",
               "group_B")
_FLOAT_FIELDS = ("old_logprobs_BxS", "ref_logprobs_BxS", "advantages_BxS")
_BOOL_FIELDS = ("attention_mask_BxS", "loss_mask_BxS")


@functools.partial(jax.tree_util.register_dataclass, data_fields=list(DATA_FIELDS),
                   meta_fields=["group_size", "prompt_width"])
@dataclasses.dataclass(frozen=True)
class ActorBatch:
  """The actor's input for one RL step: B = N·G rows in the `sampling.TrainingBatch` layout.

  A pytree (jax.tree_util.register_dataclass): the arrays are leaves, `group_size` and
  `prompt_width` are static metadata.

  Attributes:
    tokens_BxS, positions_BxS, targets_BxS: int32 [B, S] (`targets[:, s] = tokens[:, s + 1]`).
    attention_mask_BxS, loss_mask_BxS: bool [B, S]; the loss mask is 1 at the columns whose
      target is a response token.
    old_logprobs_BxS, ref_logprobs_BxS: float32 [B, S], log π_old / log π_ref of the targets
      (0 off-mask), from `TrainStep.logprobs`.
    advantages_BxS: float32 [B, S], each row's advantage at its loss columns (0 off-mask).
    group_B: int32 [B], the group (prompt) of each row: rows b·G .. b·G + G − 1 form group b.
    group_size: G (static).
    prompt_width: P (static): the loss columns lie in the window [P − 1, S − 1), where the LM
      head is applied; None = apply it to all S columns.
  """
  tokens_BxS: Any
  positions_BxS: Any
  attention_mask_BxS: Any
  targets_BxS: Any
  loss_mask_BxS: Any
  old_logprobs_BxS: Any
  ref_logprobs_BxS: Any
  advantages_BxS: Any
  group_B: Any
  group_size: int = 1
  prompt_width: int | None = None

  def replace(self, **changes) -> ActorBatch:
    return dataclasses.replace(self, **changes)

  @property
  def window(self) -> tuple[int, int]:
    """(start, width) of the LM-head columns: (P − 1, S − P), or (0, S) without P."""
    s = self.tokens_BxS.shape[1]
    if self.prompt_width is None:
      return 0, s
    return self.prompt_width - 1, s - self.prompt_width

  def normalized_dtypes(self) -> ActorBatch:
    """The batch with the float fields as float32 and integer fields as int32 (a host float64
    or int64 array is converted; arrays already of the right dtype are kept)."""
    def fix(name):
      x = getattr(self, name)
      want = np.float32 if name in _FLOAT_FIELDS else (
          np.bool_ if name in _BOOL_FIELDS else np.int32)
      return x if x.dtype == want else x.astype(want)
    return self.replace(**{name: fix(name) for name in DATA_FIELDS})

  def check(self) -> None:
    """Raises ValueError naming the field whose shape is wrong (host-side check)."""
    b, s = self.tokens_BxS.shape
    for name in DATA_FIELDS:
      x = getattr(self, name)
      want = (b,) if name == "group_B" else (b, s)
      if tuple(x.shape) != want:
        raise ValueError(f"ActorBatch.{name} has shape {tuple(x.shape)}, expected {want}")
    if self.group_size < 1 or b % self.group_size:
      raise ValueError(f"ActorBatch: B={b} rows are not a multiple of group_size="
                       f"{self.group_size}")
    if self.prompt_width is not None and not 1 <= self.prompt_width < s:
      raise ValueError(f"ActorBatch.prompt_width={self.prompt_width} not in [1, S={s})")


def advantages_to_columns(tb: TrainingBatch | ActorBatch, advantages_BxT: Any) -> np.ndarray:
  """Places response-aligned advantages [B, T] (token t of the response) at the loss columns
  P − 1 + t of the [B, S] layout; float32, 0 off-mask."""
  mask = np.asarray(tb.loss_mask_BxS, bool)
  b, s = mask.shape
  p = tb.prompt_width
  adv = np.asarray(advantages_BxT, np.float32)
  if adv.shape != (b, s - p):
    raise ValueError(f"advantages_BxT shape {adv.shape} != (B, T) = {(b, s - p)}")
  out = np.zeros((b, s), np.float32)
  out[:, p - 1:s - 1] = adv
  return np.where(mask, out, 0.0).astype(np.float32)


def actor_batch(tb: TrainingBatch, advantages_BxT: Any = None, old_logprobs_BxS: Any = None,
                ref_logprobs_BxS: Any = None) -> ActorBatch:
  """The `ActorBatch` of a `TrainingBatch` (host numpy; old/ref may be device arrays).

  Args:
    tb: from `sampling.training_batch`; rows must come in whole contiguous groups of equal
      size (as `training_batch` lays them out, also after `Rollouts.take_groups`).
    advantages_BxT: float [B, T] response-aligned advantages; None = zeros.
    old_logprobs_BxS, ref_logprobs_BxS: [B, S] from `TrainStep.logprobs`; None = zeros (fill
      them in later with `ActorBatch.replace`).

  Raises:
    ValueError: rows not grouped contiguously in equal groups, or bad shapes.
  """
  groups = np.asarray(tb.prompt_index_B)
  b, s = tb.tokens_BxS.shape
  n = len(np.unique(groups))
  if n == 0 or b % n or not np.array_equal(groups, np.repeat(np.unique(groups), b // n)):
    raise ValueError("actor_batch: rows must form contiguous groups of equal size "
                     f"(prompt_index_B = {groups[:16].tolist()}...)")
  zeros = np.zeros((b, s), np.float32)
  adv = zeros if advantages_BxT is None else advantages_to_columns(tb, advantages_BxT)
  batch = ActorBatch(
      tokens_BxS=tb.tokens_BxS, positions_BxS=tb.positions_BxS,
      attention_mask_BxS=tb.attention_mask_BxS, targets_BxS=tb.targets_BxS,
      loss_mask_BxS=tb.loss_mask_BxS,
      old_logprobs_BxS=zeros if old_logprobs_BxS is None else old_logprobs_BxS,
      ref_logprobs_BxS=zeros if ref_logprobs_BxS is None else ref_logprobs_BxS,
      advantages_BxS=adv, group_B=(np.arange(b) // (b // n)).astype(np.int32),
      group_size=b // n, prompt_width=tb.prompt_width)
  batch.check()
  return batch
