"""The rollout half of one RL step (ProRL spec §1 steps 1-5): generate -> decode -> score ->
length reward -> dynamic sampling -> training batch + advantages.

One step on one process (each process of a multi-host run does this for its share):

1. Round r takes `ceil(prompts_per_round x B_local)` prompts from the data iterator (B_local =
   the step's groups on this process).
2. The round's prompts are generated in `score_chunks` sampler calls; the decoded responses of
   chunk c go to the verifiers (`Scorer.submit`, worker processes or a thread) while chunk c + 1
   generates, so scoring overlaps generation (the last chunk's scoring is waited for).
   Sampling keys: `fold_in(step_key, r)`, and prompt j of process p of P is prompt `p + P·j` of
   the round (`Sampler.generate(prompt_index=...)`), so a round's rollouts do not depend on the
   chunking or on how the prompts are spread over processes.
3. The verifier rewards R get the scheduled cosine length reward and the truncation rule
   (`rewards/length.py`, counter = optimizer updates done so far).
4. Dynamic sampling (`GroupAccumulator`): groups whose shaped rewards are all equal are dropped
   and rounds continue until B_local informative groups are kept or `max_rounds` is reached;
   at the cap, `on_cap="pad"` fills with uninformative groups (static shapes), whose tokens are
   left out of the loss when `mask_padded_groups` (their advantages are 0; this keeps them out
   of the token-mean denominators and the KL term).
5. The kept groups are laid out with `sampling.training_batch` at a bucketed prompt width (the
   same on every process) and advantages are computed on the global batch
   (`algorithms.advantages.compute_advantages`, so REINFORCE++-baseline whitens over all
   processes' tokens).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import gin
import jax
import jax.numpy as jnp
import numpy as np

from prorl_jax import sharding
from prorl_jax.algorithms import advantages as adv_lib
from prorl_jax.algorithms.dynamic_sampling import (DynamicSamplingConfig, GroupAccumulator,
                                                   informative_mask)
from prorl_jax.evaluation.sample_and_score import decode_responses
from prorl_jax.data.schema import DOMAINS
from prorl_jax.rewards import (ERROR_KINDS, RewardConfig, RewardPool, RewardResult, batch_metrics,
                               score_response)
from prorl_jax.rewards.length import LengthRewardConfig, apply_length_reward
from prorl_jax.sampling import Rollouts, Sampler, SamplingConfig, TrainingBatch, training_batch
from prorl_jax.training import distributed


@gin.configurable
@dataclasses.dataclass(frozen=True)
class RolloutConfig:
  """How a step's rollouts are drawn and turned into a batch.

  Attributes:
    group_size: G, responses per prompt (spec §7: 16).
    dynamic_sampling: filter uninformative groups and refill (spec §1.4; settings in
      `DynamicSamplingConfig`: max_rounds, tolerance, on_cap). False: every group of one round
      is trained on.
    prompts_per_round: prompts generated per round as a multiple of the step's groups (>= 1;
      > 1 oversamples so that fewer rounds are needed).
    mask_padded_groups: leave padding groups (uninformative, added at the round cap) out of
      the loss (module docstring).
    score_chunks: sampler calls per round; scoring of one overlaps generation of the next.
    advantage_estimator: one of `algorithms.advantages.ESTIMATORS` ("grpo" for ProRL v1,
      "reinforce_pp_baseline" for v2).
    advantage_kwargs: extra keyword arguments of the estimator (e.g. {"eps": 1e-6}).
  """
  group_size: int = 16
  dynamic_sampling: bool = True
  prompts_per_round: float = 1.0
  mask_padded_groups: bool = True
  score_chunks: int = 2
  advantage_estimator: str = "grpo"
  advantage_kwargs: Mapping[str, Any] | None = None

  def __post_init__(self):
    def bad(field, why):
      raise ValueError(f"RolloutConfig.{field}={getattr(self, field)!r}: {why}")
    if self.group_size < 2:
      bad("group_size", "must be >= 2 (group baselines need two responses)")
    if not self.prompts_per_round >= 1.0:
      bad("prompts_per_round", "must be >= 1")
    if self.score_chunks < 1:
      bad("score_chunks", "must be >= 1")
    if self.advantage_estimator not in adv_lib.ESTIMATORS:
      bad("advantage_estimator", f"must be one of {adv_lib.ESTIMATORS}")


class Scorer:
  """Scores (record, response) batches in the background: a `RewardPool` with `num_workers`
  processes, or (num_workers = 0) one thread of this process calling `score_response`.

  Raises:
    ValueError: num_workers < 0.
  """

  def __init__(self, num_workers: int, *, item_timeout_s: float = 10.0,
               batch_deadline_s: float | None = None,
               config: RewardConfig = RewardConfig()):
    if num_workers < 0:
      raise ValueError(f"reward num_workers={num_workers} must be >= 0 (0: in this process)")
    self.config = config
    self._pool = (RewardPool(num_workers, item_timeout_s=item_timeout_s,
                             batch_deadline_s=batch_deadline_s, config=config)
                  if num_workers > 0 else None)
    self._thread = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="prorl-score")
                    if num_workers == 0 else None)

  @property
  def pool(self) -> RewardPool | None:
    return self._pool

  def submit(self, items: Sequence[tuple[Any, str]]) -> concurrent.futures.Future:
    """A Future of one `RewardResult` per item, in order."""
    if self._pool is not None:
      return self._pool.submit(items)
    return self._thread.submit(
        lambda: [score_response(r, t, config=self.config) for r, t in items])

  def close(self) -> None:
    if self._pool is not None:
      self._pool.close()
    if self._thread is not None:
      self._thread.shutdown(wait=True)


@dataclasses.dataclass(frozen=True)
class RolloutBatch:
  """This process's share of a step's training data (host numpy).

  Attributes:
    batch: `TrainingBatch` of the kept groups (N_local·G rows), loss mask cleared on groups
      left out of the loss.
    scores_NxG: float64 verifier rewards of the kept groups.
    rewards_NxG: float64 rewards after the length reward / truncation rule (what the
      advantages use).
    in_loss_N: bool, the group takes part in the loss.
    informative_N: bool, the group's rewards differ.
    truncated_B: bool, the kept rows that hit max_new_tokens without an end token.
    all_scores_B: float64 verifier rewards of every response generated this step (all rounds).
    reward_results: the kept rows' `RewardResult`s (error kinds, domains).
    stats: dynamic-sampling and length-reward figures of this process.
    gen_s, reward_s: seconds spent generating, and waiting for the verifiers after generating.
  """
  batch: TrainingBatch
  scores_NxG: np.ndarray
  rewards_NxG: np.ndarray
  in_loss_N: np.ndarray
  informative_N: np.ndarray
  truncated_B: np.ndarray
  all_scores_B: np.ndarray
  reward_results: list[RewardResult]
  stats: dict[str, float]
  gen_s: float
  reward_s: float


@dataclasses.dataclass
class _Round:
  rollouts: Rollouts
  prompts: list[Any]
  scores_B: np.ndarray
  rewards_B: np.ndarray
  results: list[RewardResult]


def collect_rollouts(*, sampler: Sampler, params: Any, tokenizer: Any, prompt_iter: Any,
                     scorer: Scorer, sampling: SamplingConfig, config: RolloutConfig,
                     dynamic: DynamicSamplingConfig, length: LengthRewardConfig,
                     step_key: jax.Array, updates_done: int) -> RolloutBatch:
  """Runs steps 1-4 of the module docstring on this process.

  Args:
    sampler, params: the sampler and the policy parameters in its layout (this process's
      devices).
    tokenizer: decodes responses.
    prompt_iter: the `PromptIterator` of this process (advanced by the rounds' prompts).
    scorer: the verifiers.
    sampling: the training `SamplingConfig` (temperature, max_new_tokens, end tokens).
    config: `RolloutConfig`.
    dynamic: `DynamicSamplingConfig` whose `target_groups` is this process's share.
    length: `LengthRewardConfig` (max_length = sampling.max_new_tokens).
    step_key: the step's sampling key.
    updates_done: optimizer updates so far (the length schedule's counter, spec §5).

  Raises:
    StopIteration: the data iterator ended (finite `num_epochs`).
  """
  g = config.group_size
  target = dynamic.target_groups
  n_round = math.ceil(config.prompts_per_round * target) if config.dynamic_sampling else target
  p, count = jax.process_index(), jax.process_count()
  acc = GroupAccumulator(dynamic if config.dynamic_sampling
                         else dataclasses.replace(dynamic, max_rounds=1, on_cap="pad"))
  rounds: list[_Round] = []
  gen_s = reward_s = 0.0
  length_stats: dict[str, float] = {}
  while not acc.done:
    r = len(rounds)
    prompts = prompt_iter.take(n_round)
    key = jax.random.fold_in(step_key, r)
    parts, futures = [], []
    for chunk in np.array_split(np.arange(n_round), min(config.score_chunks, n_round)):
      t0 = time.perf_counter()
      ro = sampler.generate(params, [prompts[j].prompt_ids for j in chunk], g, key,
                            config=sampling, prompt_index=[p + count * int(j) for j in chunk])
      gen_s += time.perf_counter() - t0
      texts = decode_responses(tokenizer, ro, sampling.end_token_ids)
      futures.append(scorer.submit([(prompts[int(chunk[b // g])].record, text)
                                    for b, text in enumerate(texts)]))
      parts.append(ro)
    t0 = time.perf_counter()
    results = [res for f in futures for res in f.result()]
    reward_s += time.perf_counter() - t0
    ro = Rollouts.concatenate(parts)
    scores_B = np.array([res.reward for res in results], np.float64)
    rewards_B, length_stats = apply_length_reward(scores_B, ro.response_lengths_B,
                                                  ro.truncated_B, updates_done, length)
    rounds.append(_Round(ro, prompts, scores_B, rewards_B, results))
    if config.dynamic_sampling:
      acc.add(rewards_B.reshape(n_round, g))
    else:
      acc.add(np.tile(np.arange(g, dtype=np.float64), (n_round, 1)))  # keep all, in order
  result = acc.result()
  kept = [rounds[r].rollouts.take_groups([i]) for r, i in result.items]
  rows = [(r, i * g + k) for r, i in result.items for k in range(g)]
  rollouts = Rollouts.concatenate(kept)
  scores = np.array([rounds[r].scores_B[b] for r, b in rows]).reshape(-1, g)
  rewards = np.array([rounds[r].rewards_B[b] for r, b in rows]).reshape(-1, g)
  informative = informative_mask(rewards, dynamic.tolerance)
  in_loss = (result.informative if config.dynamic_sampling and config.mask_padded_groups
             else np.ones(len(result.items), bool))
  stats = dict(length_stats)
  if config.dynamic_sampling:
    stats.update(result.stats)
  else:
    stats.update({"prorl/kept_group_frac": float(informative.mean()),
                  "prorl/sampling_rounds": 1.0,
                  "prorl/informative_groups": float(informative.sum()),
                  "prorl/padded_groups": 0.0})
  stats["prorl/generated_groups"] = float(acc.groups_seen)
  longest = distributed.allgather_concat(np.asarray([rollouts.prompt_lengths_N.max()]))
  tb = training_batch(rollouts, prompt_width=sampling.prompt_bucket(int(longest.max())))
  if not in_loss.all():
    row_in_loss = np.repeat(in_loss, g)
    tb = dataclasses.replace(tb, loss_mask_BxS=tb.loss_mask_BxS & row_in_loss[:, None])
  return RolloutBatch(
      batch=tb, scores_NxG=scores, rewards_NxG=rewards, in_loss_N=in_loss,
      informative_N=informative, truncated_B=np.asarray(rollouts.truncated_B, bool),
      all_scores_B=np.concatenate([rd.scores_B for rd in rounds]),
      reward_results=[rounds[r].results[b] for r, b in rows], stats=stats, gen_s=gen_s,
      reward_s=reward_s)


@functools.partial(jax.jit, static_argnames=("estimator", "kwargs", "prompt_width"))
def _advantages_BxS(rewards_NxG, loss_mask_BxS, *, estimator: str, kwargs: tuple,
                    prompt_width: int):
  """Advantages at the batch's loss columns: response token t sits at column P - 1 + t."""
  s = loss_mask_BxS.shape[1]
  t = s - prompt_width
  mask_BxT = loss_mask_BxS[:, prompt_width - 1:prompt_width - 1 + t]
  adv_BxT = adv_lib.compute_advantages(estimator, rewards_NxG.astype(jnp.float32),
                                       mask_BxT.astype(jnp.float32), **dict(kwargs))
  return jnp.pad(adv_BxT, ((0, 0), (prompt_width - 1, s - prompt_width + 1 - t)))


def device_fields(rb: RolloutBatch, mesh: jax.sharding.Mesh, config: RolloutConfig
                  ) -> dict[str, jax.Array]:
  """The global (all processes) device arrays of the step: the `TrainingBatch` fields, the
  advantages (float32 [B, S], 0 off the loss mask), `group_B` (int32 global group index) and
  `sampler_logprobs_BxS`; rows of process p follow those of process p - 1.

  Raises:
    ValueError: the global row count is not a multiple of the mesh's batch-axis size.
  """
  tb = rb.batch
  n_local = rb.rewards_NxG.shape[0]
  put = lambda x: distributed.global_batch_array(np.asarray(x),
                                                 sharding.batch_sharding(mesh, x.ndim))
  fields = {
      "tokens_BxS": put(tb.tokens_BxS.astype(np.int32)),
      "positions_BxS": put(tb.positions_BxS.astype(np.int32)),
      "attention_mask_BxS": put(tb.attention_mask_BxS),
      "targets_BxS": put(tb.targets_BxS.astype(np.int32)),
      "loss_mask_BxS": put(tb.loss_mask_BxS),
      "sampler_logprobs_BxS": put(tb.sampler_logprobs_BxS.astype(np.float32)),
      "group_B": put((tb.prompt_index_B + jax.process_index() * n_local).astype(np.int32)),
  }
  rewards = put(rb.rewards_NxG.astype(np.float32))
  kwargs = tuple(sorted((config.advantage_kwargs or {}).items()))
  fields["advantages_BxS"] = _advantages_BxS(
      rewards, fields["loss_mask_BxS"], estimator=config.advantage_estimator, kwargs=kwargs,
      prompt_width=tb.prompt_width)
  return fields


def rollout_metrics(rb: RolloutBatch, fields: Mapping[str, jax.Array]) -> dict[str, float]:
  """Step metrics over all processes (design.md names): critic/score (verifier reward),
  critic/rewards (after the length reward), critic/advantages (over loss tokens),
  response_length (+ clip_ratio = truncated fraction), prompt_length, rewards/<domain>/mean,
  rewards/errors/<kind>, prorl/kept_group_frac and the other dynamic-sampling counts,
  prorl/length_penalty_on, rollout/score_all/mean (every response generated this step)."""
  tb = rb.batch
  p = tb.prompt_width
  resp_len = tb.attention_mask_BxS[:, p:].sum(1)
  prompt_len = tb.attention_mask_BxS[:, :p].sum(1)
  truncated = rb.truncated_B
  local = np.stack([rb.scores_NxG.reshape(-1), rb.rewards_NxG.reshape(-1), resp_len,
                    prompt_len, truncated], axis=1).astype(np.float64)
  rows = distributed.allgather_concat(local)
  all_scores = distributed.allgather_concat(rb.all_scores_B.astype(np.float64))
  adv = np.asarray(jax.device_get(_masked_stats(fields["advantages_BxS"],
                                                fields["loss_mask_BxS"])))
  out = {
      "critic/score/mean": rows[:, 0].mean(), "critic/score/max": rows[:, 0].max(),
      "critic/score/min": rows[:, 0].min(),
      "critic/rewards/mean": rows[:, 1].mean(), "critic/rewards/max": rows[:, 1].max(),
      "critic/rewards/min": rows[:, 1].min(),
      "critic/advantages/mean": adv[0], "critic/advantages/max": adv[1],
      "critic/advantages/min": adv[2],
      "response_length/mean": rows[:, 2].mean(), "response_length/max": rows[:, 2].max(),
      "response_length/min": rows[:, 2].min(), "response_length/clip_ratio": rows[:, 4].mean(),
      "prompt_length/mean": rows[:, 3].mean(), "prompt_length/max": rows[:, 3].max(),
      "rollout/score_all/mean": all_scores.mean(),
      "prorl/length_penalty_on": rb.stats["prorl/length_penalty_on"],
  }
  counts = ("prorl/informative_groups", "prorl/padded_groups", "prorl/generated_groups",
            "prorl/sampling_rounds")
  summed = dict(zip(counts, distributed.host_sum([rb.stats[k] for k in counts])))
  kept = distributed.host_sum([rb.stats["prorl/kept_group_frac"]
                               * rb.stats["prorl/generated_groups"]])[0]
  out.update({k: summed[k] for k in counts[:3]})
  out["prorl/sampling_rounds"] = summed["prorl/sampling_rounds"] / jax.process_count()
  out["prorl/kept_group_frac"] = kept / max(summed["prorl/generated_groups"], 1.0)
  # Per-domain sums and counts, error counts: summed over processes in a fixed order.
  keys = [f"rewards/errors/{k}" for k in ERROR_KINDS]
  local_errors = batch_metrics(rb.reward_results)
  vec = [local_errors.get(k, 0.0) for k in keys]
  for d in DOMAINS:
    rs = [r.reward for r in rb.reward_results if r.domain == d]
    vec += [sum(rs), float(len(rs))]
  total = distributed.host_sum(vec)
  out.update(dict(zip(keys, total[:len(keys)])))
  for i, d in enumerate(DOMAINS):
    s_, n_ = total[len(keys) + 2 * i], total[len(keys) + 2 * i + 1]
    if n_ > 0:
      out[f"rewards/{d}/mean"] = s_ / n_
  return {k: float(v) for k, v in out.items()}


@jax.jit
def _masked_stats(x_BxS, mask_BxS):
  """(mean, max, min) of x over the mask (float32 scalars; 0s when the mask is empty)."""
  n = jnp.maximum(mask_BxS.sum(), 1)
  any_ = mask_BxS.any()
  return jnp.stack([jnp.where(mask_BxS, x_BxS, 0).sum() / n,
                    jnp.where(any_, jnp.where(mask_BxS, x_BxS, -jnp.inf).max(), 0.0),
                    jnp.where(any_, jnp.where(mask_BxS, x_BxS, jnp.inf).min(), 0.0)])
