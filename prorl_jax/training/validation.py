"""Periodic validation during training, on the evaluation code path (ProRL spec §1 step 7, §9).

The validation sets are the pipeline's held-out records (`PromptPipeline.validation_records()`:
held-out training rows and `DataConfig.validation_files`). They are sampled and scored with
`evaluation.sample_and_score.evaluate_records` — the function `python -m prorl_jax.evaluate`
uses — with the settings of `EvalConfig` (n, temperature, top-p, max_new_tokens, ks, seed, ...;
a training config may bind them), and reported with `evaluation.report.build_report` /
`flatten_metrics` (`val/<set>/pass@1`, `val/<set>/pass@k`, `val/<set>/response_length/mean`,
`val/domain/<domain>/...`), plus `val/score`: the mean pass@1 over the sets (the default
metric of the validation-stall reset trigger).

Multi-host: process p of P evaluates prompts p, p+P, ... of every set; the per-sample rows are
gathered so every process computes the same report (the reset decision must agree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import gin
import jax
import numpy as np

from prorl_jax.data.schema import Record
from prorl_jax.evaluation.config import EvalConfig
from prorl_jax.evaluation.report import build_report, flatten_metrics
from prorl_jax.evaluation.sample_and_score import evaluate_records, split_by_domain
from prorl_jax.evaluation.samples import SampleResult
from prorl_jax.rewards import RewardPool
from prorl_jax.sampling import Sampler
from prorl_jax.training import distributed

SCORE_METRIC = "val/score"


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ValidationConfig:
  """When to validate (how: `EvalConfig`).

  Attributes:
    every_steps: validate after every N-th step; 0 = never (except `at_start` / `at_end`).
    at_start: also validate the initial policy (logged as step 0).
    at_end: also validate after the last step.
    max_prompts: use only the first N records of each validation set (None: all).
  """
  every_steps: int = 0
  at_start: bool = False
  at_end: bool = False
  max_prompts: int | None = None

  def __post_init__(self):
    if self.every_steps < 0:
      raise ValueError(f"ValidationConfig.every_steps={self.every_steps} must be >= 0")
    if self.max_prompts is not None and self.max_prompts < 1:
      raise ValueError(f"ValidationConfig.max_prompts={self.max_prompts} must be >= 1 or None")

  def due(self, step: int, last_step: int) -> bool:
    """Whether to validate after `step` (0 = before training)."""
    if step == 0:
      return self.at_start
    return ((self.every_steps > 0 and step % self.every_steps == 0)
            or (self.at_end and step == last_step))


def _with_ids(records: Sequence[Record]) -> list[Record]:
  return [r if r.id is not None else dataclasses.replace(r, id=str(i))
          for i, r in enumerate(records)]


def validate(sampler: Sampler, params: Any, tokenizer: Any,
             datasets: Mapping[str, Sequence[Record]], *, eval_config: EvalConfig,
             max_prompts: int | None = None, reward_pool: RewardPool | None = None
             ) -> dict[str, float]:
  """Samples and scores the validation sets; returns the `val/...` metrics (module docstring).

  Args:
    sampler, params: the trainer's sampler and the policy in its layout (this process).
    tokenizer: the policy's tokenizer.
    datasets: set name -> records (a set spanning several domains is split by domain).
    eval_config: sampling and reporting settings.
    max_prompts: first N records of each set.
    reward_pool: the trainer's reward pool (None: score in this process).

  Returns:
    {} when there are no validation records.
  """
  sets = {name: _with_ids(list(recs)[:max_prompts])
          for name, recs in split_by_domain(datasets).items() if recs}
  if not sets:
    return {}
  p, count = jax.process_index(), jax.process_count()
  sampling = eval_config.sampling_config(tokenizer)
  local: list[tuple[float, ...]] = []
  names = list(sets)
  for d, name in enumerate(names):
    records = sets[name]
    share = list(range(p, len(records), count))
    if not share:
      continue
    rows = evaluate_records(
        sampler, tokenizer, [records[i] for i in share], dataset_name=name, params=params,
        n=eval_config.n, sampling=sampling, seed=eval_config.seed, reward_pool=reward_pool,
        reward_config=eval_config.reward_config(),
        prompts_per_batch=eval_config.prompts_per_batch,
        use_chat_template=eval_config.use_chat_template)
    index = {records[i].id: i for i in share}
    local += [(d, index[r.prompt_id], r.sample_idx, r.score, r.response_length, r.truncated)
              for r in rows]
  table = distributed.allgather_concat(np.asarray(local, np.float64).reshape(-1, 6))
  rows = [SampleResult(dataset=names[int(d)], domain=sets[names[int(d)]][int(i)].domain,
                       prompt_id=sets[names[int(d)]][int(i)].id, sample_idx=int(s),
                       score=float(score), response_length=int(length), truncated=bool(t))
          for d, i, s, score, length, t in table]
  ks = [k for k in eval_config.pass_ks if k <= eval_config.n]
  report = build_report(rows, ks=ks, threshold=eval_config.threshold)
  out = flatten_metrics(report, prefix="val")
  out[SCORE_METRIC] = float(np.mean([r["pass@1"] for r in report["datasets"].values()]))
  return out
