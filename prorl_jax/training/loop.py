"""The ProRL trainer: the RL loop of spec §1 with resets (§6), validation and exact resume.

    Trainer(workdir).run()        # every setting from gin (TrainerConfig, RolloutConfig, ...)

One step t (1-based):
  rollouts (`rollout_step.collect_rollouts`: generate, score overlapped with generation,
  length reward, dynamic sampling) -> advantages on the global batch -> old log-probs
  (`TrainStep.logprobs` of the policy, or the sampler's) and reference log-probs -> the updates
  (`TrainStep.update`: mini-batches x epochs, donated params / optimizer state) -> validation
  when due -> reset check (`algorithms.reset`: interval, KL threshold/spike, validation stall;
  the reference becomes a copy of the policy in this process, the optimizer state is kept or
  re-initialised per `ResetPolicy`) -> metrics row t (metrics.jsonl + TensorBoard) ->
  checkpoint when due (async; orbax commits it atomically in the background).

Checkpoints hold {"policy", "reference", "opt_state"} and the JSON extras of
`loop_state.LoopState` (step, updates, base key, every process's data-iterator state, reset
state, length-schedule phase, model_dir). A run resumes from the latest committed checkpoint of
`<workdir>/checkpoints` and continues exactly (bit-exact on CPU): the reference comes from the
checkpoint (a resume never resets it), metrics rows after the checkpoint are dropped and
re-written. SIGINT/SIGTERM finish the step, save and return. After the last step the policy is
written as a Hugging Face directory `<workdir>/final_hf`.

Metrics are fetched to the host at the end of each step (the reset triggers need this step's KL
and the next step's generation waits for the updated parameters anyway).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

import gin
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from prorl_jax import sharding
from prorl_jax.algorithms import reset as reset_lib
from prorl_jax.data import pipeline as data_pipeline
from prorl_jax.evaluation.config import EvalConfig
from prorl_jax.evaluation.sample_and_score import end_token_ids
from prorl_jax.models import Decoder, ModelConfig, load_hf_checkpoint, load_tokenizer
from prorl_jax.models import save_hf_checkpoint
from prorl_jax.rewards.length import length_schedule_on
from prorl_jax.sampling import Sampler
from prorl_jax.training import configurables as cfgs
from prorl_jax.training import distributed, flops, rollout_step
from prorl_jax.training import optimizer as opt_lib
from prorl_jax.training import validation as val_lib
from prorl_jax.training.loop_state import LoopState
from prorl_jax.training.metrics import MetricsWriter, to_scalar
from prorl_jax.training.progress import ProgressBar
from prorl_jax.training.signals import StopSignal
from prorl_jax.training.train_step import ActorBatch, TrainStep, UpdateConfig

CHECKPOINT_DIR = "checkpoints"
FINAL_HF_DIR = "final_hf"


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TrainerConfig:
  """Run-level settings (the others: RolloutConfig, SamplingConfig, DynamicSamplingConfig,
  LengthRewardConfig, UpdateConfig, make_optimizer, ResetPolicy, DataConfig, ValidationConfig,
  EvalConfig, RewardConfig, TrainCheckpointer).

  Attributes:
    model_dir: local HF directory of the initial policy (config.json, safetensors, tokenizer).
    num_steps: rollout steps to train for (a resumed run stops at the same step).
    seed: the run's base PRNG key (sampling, mini-batch shuffles).
    param_dtype, dtype: parameter and compute dtypes ("float32" | "bfloat16").
    remat: recompute block activations in the backward pass.
    mesh: (data, fsdp, tensor) sizes of the training mesh over all devices; -1 = the rest.
    checkpoint_every: save every N steps (and after the last step and on a stop signal).
    reward_workers: verifier worker processes (0: score in a thread of this process).
    reward_item_timeout_s, reward_batch_deadline_s: `RewardPool` limits (seconds).
    old_logprobs_from_sampler: use the sampler's log-probs as π_old instead of recomputing them
      with the trainer's forward pass (saves one forward; `rollout/logprob_diff` then reads 0).
    export_final_hf: write `<workdir>/final_hf` after the last step.
    export_dtype: dtype of the exported tensors (None: the parameter dtype).
    tensorboard: also write TensorBoard event files.
    progress: show the progress bar (None: when stderr is a terminal).
  """
  model_dir: str | None = None
  num_steps: int = 1000
  seed: int = 0
  param_dtype: str = "float32"
  dtype: str = "bfloat16"
  remat: bool = False
  mesh: tuple[int, int, int] = (-1, 1, 1)
  checkpoint_every: int = 50
  reward_workers: int = 8
  reward_item_timeout_s: float = 10.0
  reward_batch_deadline_s: float | None = 600.0
  old_logprobs_from_sampler: bool = False
  export_final_hf: bool = True
  export_dtype: str | None = None
  tensorboard: bool = True
  progress: bool | None = None

  def __post_init__(self):
    def bad(field, why):
      raise ValueError(f"TrainerConfig.{field}={getattr(self, field)!r}: {why}")
    if self.num_steps < 0:
      bad("num_steps", "must be >= 0")
    if self.checkpoint_every < 1:
      bad("checkpoint_every", "must be >= 1")
    if tuple(self.mesh) and len(self.mesh) != 3:
      bad("mesh", "must be (data, fsdp, tensor)")
    for field in ("param_dtype", "dtype"):
      if getattr(self, field) not in ("float32", "bfloat16"):
        bad(field, "must be 'float32' or 'bfloat16'")


def _copy_tree(tree: Any) -> Any:
  """A copy of a pytree of device arrays in new buffers, same shardings (the reference)."""
  return jax.jit(lambda t: jax.tree.map(jnp.copy, t))(tree)


@jax.jit
def _logprob_diff(a_BxS, b_BxS, mask_BxS):
  d = jnp.abs(a_BxS - b_BxS)
  n = jnp.maximum(mask_BxS.sum(), 1)
  return jnp.stack([jnp.where(mask_BxS, d, 0).sum() / n, jnp.where(mask_BxS, d, 0).max()])


class Trainer:
  """Builds every part from gin (module docstring) and runs the loop.

  Args:
    workdir: run directory (metrics, checkpoints, final_hf, operative_config.gin).
    config: the `TrainerConfig` (default: from gin).
    model_dir: overrides `config.model_dir`.
    data_overrides: `DataConfig` fields set by the caller (e.g. the tiny assets' files).

  Raises (at construction, before any heavy work):
    ValueError: a bad setting, naming the binding (e.g. "RolloutConfig.group_size=1 ...").
    FileNotFoundError: no model_dir / tokenizer files.
  """

  def __init__(self, workdir: str, config: TrainerConfig | None = None, *,
               model_dir: str | None = None, data_overrides: dict[str, Any] | None = None):
    self.workdir = os.path.abspath(workdir)
    self.config = config or TrainerConfig()
    self.model_dir = model_dir or self.config.model_dir
    if not self.model_dir:
      raise ValueError("TrainerConfig.model_dir is not set: bind it to a local HF directory")
    self.rollout = rollout_step.RolloutConfig()
    self.update_config = UpdateConfig()
    self.reset_policy = cfgs.ResetPolicy()
    self.validation = val_lib.ValidationConfig()
    self.eval_config = EvalConfig()
    self.data_config = cfgs.DataConfig(**(data_overrides or {}))
    self.reward_config = cfgs.RewardConfig()
    self.tx = opt_lib.make_optimizer()
    self.tokenizer = load_tokenizer(self.model_dir)
    pad = getattr(self.tokenizer, "pad_token_id", None)
    ends = end_token_ids(self.tokenizer)
    self.sampling = cfgs.SamplingConfig(eos_token_ids=ends,
                                        pad_token_id=int(pad) if pad is not None else ends[0])
    self.length = cfgs.LengthRewardConfig(max_length=self.sampling.max_new_tokens)
    count = jax.process_count()
    if self.data_config.batch_size % count:
      raise ValueError(f"DataConfig.batch_size={self.data_config.batch_size} is not a multiple "
                       f"of the {count} processes")
    self.dynamic = cfgs.DynamicSamplingConfig(target_groups=self.data_config.batch_size // count)
    if count > 1 and self.dynamic.on_cap == "take_available":
      raise ValueError("DynamicSamplingConfig.on_cap='take_available' gives processes different "
                       "batch sizes: use 'pad' or 'raise' in a multi-process run")
    mbg = self.update_config.mini_batch_groups
    if mbg and self.data_config.batch_size % mbg:
      raise ValueError(f"UpdateConfig.mini_batch_groups={mbg} does not divide "
                       f"DataConfig.batch_size={self.data_config.batch_size}")
    self.model_config = ModelConfig.from_hf_dir(
        self.model_dir, param_dtype=self.config.param_dtype, dtype=self.config.dtype,
        remat=self.config.remat)
    self.mesh = sharding.make_mesh(*self.config.mesh)
    rows = self.data_config.batch_size * self.rollout.group_size
    dp = self.mesh.shape["data"] * self.mesh.shape["fsdp"]
    if rows % dp:
      raise ValueError(f"DataConfig.batch_size x RolloutConfig.group_size = {rows} rows do not "
                       f"split over the {dp} data-parallel devices of TrainerConfig.mesh")
    self.metrics_history: list[dict[str, Any]] = []

  # ------------------------------------------------------------------------------- set-up

  def _build(self) -> None:
    cfg = self.config
    abstract = nnx.eval_shape(lambda: Decoder(self.model_config, rngs=nnx.Rngs(0)))
    self.graphdef, abstract_params = nnx.split(abstract)
    self.train_step = TrainStep(self.graphdef, self.tx, self.update_config,
                                temperature=self.sampling.logprob_temperature, mesh=self.mesh)
    if distributed.is_multiprocess():
      self.sample_mesh = sharding.make_mesh(data=-1, devices=jax.local_devices())
    else:
      self.sample_mesh = self.mesh
    self.sampler = Sampler(abstract, self.sampling, mesh=self.sample_mesh)
    self.checkpointer = cfgs.TrainCheckpointer(os.path.join(self.workdir, CHECKPOINT_DIR))
    self.pipeline = data_pipeline.PromptPipeline(self.data_config, self.tokenizer)
    self.prompts = iter(self.pipeline)
    self.validation_sets = self.pipeline.validation_records()
    latest = self.checkpointer.latest_step()
    if latest is None:
      model = load_hf_checkpoint(self.model_dir, mesh=self.mesh, rules=sharding.TRAIN_RULES,
                                 param_dtype=cfg.param_dtype, dtype=cfg.dtype, remat=cfg.remat)
      self.params = self.train_step.place_params(nnx.split(model)[1])
      del model
      self.reference = _copy_tree(self.params)
      self.opt_state = self.train_step.init_opt_state(self.params)
      self.state = LoopState(step=0, updates_done=0, key=jax.random.key(cfg.seed))
      resume_step = None
    else:
      p_sh = self.train_step.param_shardings(abstract_params)
      o_sh = self.train_step.opt_state_shardings(abstract_params)
      with_sh = lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s)
      p_target = jax.tree.map(with_sh, abstract_params, p_sh)
      o_target = jax.tree.map(with_sh, jax.eval_shape(self.tx.init, abstract_params), o_sh)
      restored = self.checkpointer.restore(
          {"policy": p_target, "reference": p_target, "opt_state": o_target})
      self.params = restored.state["policy"]
      self.reference = restored.state["reference"]
      self.opt_state = restored.state["opt_state"]
      self.state, data_state = LoopState.from_extras(restored.extras,
                                                     process_count=jax.process_count())
      self.prompts.set_state(data_state)
      resume_step = restored.step
      logging.info("resumed from %s (step %d, %d resets so far)",
                   self.checkpointer.step_path(restored.step), restored.step,
                   self.state.reset.num_resets)
    self.scorer = rollout_step.Scorer(
        cfg.reward_workers, item_timeout_s=cfg.reward_item_timeout_s,
        batch_deadline_s=cfg.reward_batch_deadline_s, config=self.reward_config)
    self.writer = MetricsWriter(self.workdir, resume_step=resume_step,
                                tensorboard=cfg.tensorboard)
    self.progress = ProgressBar(cfg.num_steps, initial_step=self.state.step,
                                enabled=cfg.progress)
    self.decoder_shape = flops.DecoderShape.from_hf_config(self.model_config.to_hf_dict())
    self._last_save_s = 0.0
    if jax.process_index() == 0:
      with open(os.path.join(self.workdir, "operative_config.gin"), "w") as f:
        f.write(gin.operative_config_str())

  def _close(self) -> None:
    for name in ("checkpointer", "scorer", "writer", "progress"):
      obj = getattr(self, name, None)
      if obj is not None:
        obj.close()

  # -------------------------------------------------------------------------------- steps

  def _sampler_params(self) -> Any:
    if distributed.is_multiprocess():
      local = sharding.state_shardings(self.params, self.sample_mesh, sharding.SAMPLING_RULES)
      return distributed.to_local_devices(self.params, local)
    return self.sampler.reshard(self.params)

  def _data_states(self) -> list[Any]:
    return distributed.allgather_json(self.prompts.get_state())

  def _save(self, step: int) -> None:
    t0 = time.perf_counter()
    extras = self.state.to_extras(
        data_states=self._data_states(), model_dir=self.model_dir,
        length_on_next=length_schedule_on(self.state.updates_done, self.length),
        process_count=jax.process_count())
    self.checkpointer.save(step, {"policy": self.params, "reference": self.reference,
                                  "opt_state": self.opt_state}, extras)
    self._last_save_s = time.perf_counter() - t0

  def _validate(self, params: Any) -> dict[str, float]:
    t0 = time.perf_counter()
    out = val_lib.validate(self.sampler, params, self.tokenizer, self.validation_sets,
                           eval_config=self.eval_config,
                           max_prompts=self.validation.max_prompts,
                           reward_pool=self.scorer.pool)
    if out:
      out["timing_s/validation"] = time.perf_counter() - t0
    return out

  def reset_reference(self, reset_optimizer: bool) -> None:
    """π_ref ← a copy of the current policy (in this process); re-initialises the optimizer
    state when `reset_optimizer` (ProRL v1) and keeps it otherwise (v2)."""
    self.reference = _copy_tree(self.params)
    if reset_optimizer:
      self.opt_state = self.train_step.init_opt_state(self.params)

  def train_one_step(self, step: int) -> dict[str, float]:
    """Rollouts, log-probs and updates of rollout step `step`; returns its metrics."""
    t_step = time.perf_counter()
    timing: dict[str, float] = {}
    sparams = self._sampler_params()
    rb = rollout_step.collect_rollouts(
        sampler=self.sampler, params=sparams, tokenizer=self.tokenizer,
        prompt_iter=self.prompts, scorer=self.scorer, sampling=self.sampling,
        config=self.rollout, dynamic=self.dynamic, length=self.length,
        step_key=jax.random.fold_in(self.state.step_key(step), 0),
        updates_done=self.state.updates_done)
    del sparams
    timing["timing_s/gen"], timing["timing_s/reward"] = rb.gen_s, rb.reward_s
    fields = rollout_step.device_fields(rb, self.mesh, self.rollout)
    sampler_lp = fields["sampler_logprobs_BxS"]
    batch = ActorBatch(
        tokens_BxS=fields["tokens_BxS"], positions_BxS=fields["positions_BxS"],
        attention_mask_BxS=fields["attention_mask_BxS"], targets_BxS=fields["targets_BxS"],
        loss_mask_BxS=fields["loss_mask_BxS"], old_logprobs_BxS=sampler_lp,
        ref_logprobs_BxS=sampler_lp, advantages_BxS=fields["advantages_BxS"],
        group_B=fields["group_B"], group_size=self.rollout.group_size,
        prompt_width=rb.batch.prompt_width)
    t0 = time.perf_counter()
    if self.config.old_logprobs_from_sampler:
      old = sampler_lp
    else:
      old = jax.block_until_ready(self.train_step.logprobs(self.params, batch))
    timing["timing_s/old_log_prob"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = jax.block_until_ready(self.train_step.logprobs(self.reference, batch))
    timing["timing_s/ref"] = time.perf_counter() - t0
    batch = batch.replace(old_logprobs_BxS=old, ref_logprobs_BxS=ref)
    self.last_batch = batch  # the step's device batch (tests, debugging)
    diff = np.asarray(jax.device_get(_logprob_diff(old, sampler_lp, fields["loss_mask_BxS"])))
    metrics = rollout_step.rollout_metrics(rb, fields)
    t0 = time.perf_counter()
    self.params, self.opt_state, update_metrics = self.train_step.update(
        self.params, self.opt_state, batch, jax.random.fold_in(self.state.step_key(step), 1))
    update_metrics = {k: to_scalar(k, v) for k, v in jax.device_get(update_metrics).items()}
    jax.block_until_ready(self.params)
    timing["timing_s/update_actor"] = time.perf_counter() - t0
    metrics.update(update_metrics)
    metrics["actor/lr"] = to_scalar("actor/lr", opt_lib.current_learning_rate(self.opt_state))
    metrics["rollout/logprob_diff"] = float(diff[0])
    metrics["rollout/logprob_diff_max"] = float(diff[1])
    self.state.updates_done += int(round(metrics.get("actor/num_updates", 1)))
    metrics.update(self._perf(rb, timing["timing_s/update_actor"]))
    timing["timing_s/step"] = time.perf_counter() - t_step
    metrics["perf/throughput"] = metrics.pop("perf/total_num_tokens_") / timing["timing_s/step"]
    metrics.update(timing)
    return metrics

  def _perf(self, rb: rollout_step.RolloutBatch, update_s: float) -> dict[str, float]:
    """Tokens of the step (all processes) and the actor update's MFU where the peak is known."""
    seq_lens = distributed.allgather_concat(rb.batch.attention_mask_BxS.sum(1))
    tokens = float(seq_lens.sum())
    out = {"perf/total_num_tokens": tokens, "perf/total_num_tokens_": tokens}
    flops_total = (flops.training_flops(self.decoder_shape, seq_lens.tolist())
                   * self.update_config.ppo_epochs)
    peak = flops.peak_flops_per_device(jax.devices()[0].device_kind)
    if peak is not None and update_s > 0:
      out["perf/mfu/actor"] = flops_total / update_s / (jax.device_count() * peak)
    return out

  # --------------------------------------------------------------------------------- run

  def run(self) -> list[dict[str, Any]]:
    """Trains from the latest checkpoint (or the start) to `num_steps`; returns the metrics
    rows written by this call."""
    with StopSignal() as stop:
      try:
        self._build()
        self._loop(stop)
      finally:
        self._close()
    return self.metrics_history

  def _write(self, step: int, metrics: dict[str, Any]) -> None:
    self.writer.write(step, metrics)
    self.metrics_history.append({"step": step, **metrics})
    self.progress.update(step, metrics)

  def _loop(self, stop: StopSignal) -> None:
    cfg = self.config
    last = cfg.num_steps
    if self.state.step == 0 and self.validation.due(0, last):
      val = self._validate(self._sampler_params())
      if val:
        self._write(0, val)
        self.state.reset = reset_lib.update(self.reset_policy, self.state.reset, 0, val,
                                            reset_lib.ResetDecision(False, "", False))
    stopped = False
    while self.state.step < last:
      step = self.state.step + 1
      metrics = self.train_one_step(step)
      if self.validation.due(step, last):
        metrics.update(self._validate(self._sampler_params()))
      decision, self.state.reset = reset_lib.decide_and_update(
          self.reset_policy, self.state.reset, step, metrics)
      if decision.reset:
        self.reset_reference(decision.reset_optimizer)
        logging.info("step %d: reference reset (%s), optimizer state %s", step,
                     decision.reason, "re-initialised" if decision.reset_optimizer else "kept")
      metrics["prorl/ref_resets"] = float(self.state.reset.num_resets)
      metrics["prorl/ref_reset_this_step"] = float(decision.reset)
      metrics["timing_s/save_checkpoint"] = self._last_save_s
      self.state.step = step
      self._write(step, metrics)
      stopped = distributed.any_process(stop.requested)
      if step % cfg.checkpoint_every == 0 or step == last or stopped:
        self._save(step)
      if stopped:
        logging.warning("stopped by %s after step %d (checkpoint saved)", stop.signal_name,
                        step)
        break
    self.checkpointer.wait_until_finished()
    if not stopped and self.state.step == last and cfg.export_final_hf:
      save_hf_checkpoint(nnx.merge(self.graphdef, self.params),
                         os.path.join(self.workdir, FINAL_HF_DIR), source_dir=self.model_dir,
                         dtype=cfg.export_dtype)
