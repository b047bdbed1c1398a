"""The actor update of one RL step: jitted log-probs and PPO-clip + KL updates (spec §1 step
5-6, §3, §4).

    ts = TrainStep(graphdef, make_optimizer(), UpdateConfig(), temperature=1.2, mesh=mesh)
    params, opt_state = ts.place_params(params), ts.init_opt_state(params)
    batch = actor_batch(training_batch(rollouts))                  # zeros for old/ref/adv
    batch = batch.replace(old_logprobs_BxS=ts.logprobs(params, batch),
                          ref_logprobs_BxS=ts.logprobs(ref_params, batch),
                          advantages_BxS=advantages_to_columns(batch, advantages_BxT))
    params, opt_state, metrics = ts.update(params, opt_state, batch, key)

One `update` call = ppo_epochs × (num_groups / mini_batch_groups) optimizer updates, all in one
jitted program (a `lax.scan` over updates) with donated params / optimizer state. Mini-batches
take whole groups (shuffled per epoch with the step key). Each update accumulates gradients
over micro-batches of `micro_batch_rows` rows (a `lax.scan`); the loss normalizers (token and
sequence counts, `loss_aggregation.batch_normalizers`) are computed ONCE over the whole
mini-batch and passed to every micro-batch, so the accumulated gradient equals the gradient of
the full mini-batch loss for every `loss_agg_mode` (spec §1 step 6).

Loss per update (spec §3, §4): L = pg_loss + β·kl − entropy_coef·H, each aggregated with
`loss_agg_mode`. A non-finite loss or gradient skips the update (the optimizer's
`skip_nonfinite` guard; params stay bit-identical) and is counted in actor/skipped_updates.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from prorl_jax import sharding
from prorl_jax.algorithms import entropy as entropy_lib
from prorl_jax.algorithms import kl as kl_lib
from prorl_jax.algorithms import loss_aggregation, policy_loss
from prorl_jax.sampling.rollouts import TrainingBatch
from prorl_jax.training import logprobs as logprobs_lib
from prorl_jax.training import optimizer as opt_lib
from prorl_jax.training.actor_batch import (DATA_FIELDS, ActorBatch, actor_batch,
                                            advantages_to_columns)

__all__ = ["ActorBatch", "TrainStep", "UpdateConfig", "actor_batch", "advantages_to_columns",
           "minibatch_rows", "num_updates_per_step"]


@gin.configurable
@dataclasses.dataclass(frozen=True)
class UpdateConfig:
  """How one RL step updates the actor (defaults: ProRL v2, spec §7).

  Attributes:
    clip_low, clip_high: PPO ε_low / ε_high (decoupled "clip-higher"; v1 0.2/0.4, v2 0.2/0.28).
    clip_ratio_c: dual-clip constant c > 1 (verl clip_ratio_c), None = off.
    loss_agg_mode: token-mean | seq-mean-token-mean | seq-mean-token-sum-norm (the sum-norm
      constant is the response width T).
    kl_coef: β of the KL loss term (1e-4); 0 disables its gradient (the metric is still logged).
    kl_type: k1 | k2 | k3 | kl | mse | low_var_kl (algorithms/kl.py).
    kl_clamp: log-ratio clamp of the KL estimator (ProRL v2: 10); None = none.
    kl_value_clamp: clamp of the estimate itself; None = none (or the preset of low_var_kl).
    entropy_coef: entropy bonus coefficient (0 = metric only, no gradient through H).
    mini_batch_groups: groups (prompts) per optimizer update; 0 = the whole step batch. Must
      divide the number of groups in a batch (v1: 256 prompts / 64 = 4 updates).
    micro_batch_rows: rows per gradient-accumulation micro-batch; 0 = the whole mini-batch.
      Must divide the rows of a mini-batch.
    ppo_epochs: passes over the step batch.
    shuffle: shuffle the groups into mini-batches each epoch (seeded by the `update` key).
    vocab_chunk: vocabulary ids per chunk of the chunked log-softmax (None = materialize the
      [rows, T, V] float32 window logits).
  """
  clip_low: float = 0.2
  clip_high: float = 0.28
  clip_ratio_c: float | None = None
  loss_agg_mode: str = "token-mean"
  kl_coef: float = 1e-4
  kl_type: str = "k2"
  kl_clamp: float | None = 10.0
  kl_value_clamp: float | None = None
  entropy_coef: float = 0.0
  mini_batch_groups: int = 0
  micro_batch_rows: int = 0
  ppo_epochs: int = 1
  shuffle: bool = True
  vocab_chunk: int | None = None

  def __post_init__(self):
    def bad(field: str, why: str):
      raise ValueError(f"UpdateConfig.{field}={getattr(self, field)!r}: {why}")
    if not 0.0 <= self.clip_low < 1.0:
      bad("clip_low", "must be in [0, 1)")
    if self.clip_high < 0:
      bad("clip_high", "must be >= 0")
    if self.clip_ratio_c is not None and self.clip_ratio_c <= 1.0:
      bad("clip_ratio_c", "must be > 1 or None")
    if self.loss_agg_mode not in loss_aggregation.LOSS_AGG_MODES:
      bad("loss_agg_mode", f"must be one of {loss_aggregation.LOSS_AGG_MODES}")
    if self.kl_type not in kl_lib.KL_KINDS:
      bad("kl_type", f"must be one of {kl_lib.KL_KINDS}")
    for field in ("kl_clamp", "kl_value_clamp", "vocab_chunk"):
      if getattr(self, field) is not None and getattr(self, field) <= 0:
        bad(field, "must be > 0 or None")
    for field in ("kl_coef", "entropy_coef", "mini_batch_groups", "micro_batch_rows"):
      if getattr(self, field) < 0:
        bad(field, "must be >= 0")
    if self.ppo_epochs < 1:
      bad("ppo_epochs", "must be >= 1")


def num_updates_per_step(num_groups: int, config: UpdateConfig) -> int:
  """ppo_epochs · (N / mini_batch_groups) optimizer updates for a batch of N groups.

  Raises:
    ValueError: mini_batch_groups does not divide N (names the field).
  """
  mbg = config.mini_batch_groups or num_groups
  if num_groups < 1 or num_groups % mbg:
    raise ValueError(f"UpdateConfig.mini_batch_groups={config.mini_batch_groups} does not "
                     f"divide the {num_groups} groups of the batch")
  return config.ppo_epochs * (num_groups // mbg)


def minibatch_rows(key: jax.Array, num_groups: int, group_size: int, config: UpdateConfig
                   ) -> jax.Array:
  """int32 [U, M]: the rows of each of the U = ppo_epochs·(N / mini_batch_groups) updates, in
  order. Each epoch permutes the N groups (key folded with the epoch; identity if not
  `config.shuffle`) and cuts them into mini-batches of whole groups.

  Raises:
    ValueError: mini_batch_groups does not divide N (names the field).
  """
  mbg = config.mini_batch_groups or num_groups
  num_updates_per_step(num_groups, config)
  per_epoch = []
  for epoch in range(config.ppo_epochs):
    if config.shuffle:
      order = jax.random.permutation(jax.random.fold_in(key, epoch), num_groups)
    else:
      order = jnp.arange(num_groups)
    rows = order[:, None] * group_size + jnp.arange(group_size)[None, :]
    per_epoch.append(rows.reshape(num_groups // mbg, mbg * group_size))
  return jnp.concatenate(per_epoch).astype(jnp.int32)


def _guard_count(opt_state: Any) -> jax.Array | None:
  try:
    return opt_lib.skipped_updates(opt_state)[0]
  except ValueError:
    return None


class TrainStep:
  """Jitted actor log-probs and updates for one policy graph (module docstring).

  Args:
    graphdef: the policy's `nnx.GraphDef` (`nnx.split(model)[0]`); params are its `nnx.State`.
    optimizer: from `training.optimizer.make_optimizer` (clips gradients; its `skip_nonfinite`
      guard skips non-finite updates). Without the guard the train step reverts a non-finite
      update itself (params and optimizer state unchanged) and still counts it.
    config: the `UpdateConfig`.
    temperature: τ of the log-probs (the sampler's `Rollouts.temperature`), > 0.
    mesh: optional ('data', 'fsdp', 'tensor') mesh: params and optimizer state are laid out by
      `rules` (explicit in/out shardings), batch rows over the 'batch' rule's axes.
    rules: parameter logical-axis rules (default `sharding.TRAIN_RULES`).

  Raises:
    ValueError: temperature <= 0.
  """

  def __init__(self, graphdef: Any, optimizer: optax.GradientTransformation,
               config: UpdateConfig, *, temperature: float,
               mesh: jax.sharding.Mesh | None = None, rules: sharding.Rules | None = None):
    if not temperature > 0:
      raise ValueError(f"TrainStep: temperature must be > 0, got {temperature}")
    self.graphdef = graphdef
    self.tx = optimizer
    self.config = config
    self.temperature = float(temperature)
    self.mesh = mesh
    self.rules = sharding.TRAIN_RULES if rules is None else rules
    self._jitted: dict[Any, Any] = {}

  # ------------------------------------------------------------------------------ placement

  def _replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  def param_shardings(self, params: Any) -> Any:
    """NamedSharding tree of `params` under `rules` (None without a mesh)."""
    if self.mesh is None:
      return None
    return sharding.state_shardings(params, self.mesh, self.rules)

  def opt_state_shardings(self, params: Any) -> Any:
    """NamedSharding tree of the optimizer state: parameter-shaped leaves (moments) as their
    parameter; everything else replicated: counts, lr, guard counters, and leaves that mirror
    the parameter tree with other shapes (Adafactor's factored row/column moments, which are
    small). None without a mesh."""
    if self.mesh is None:
      return None
    abstract = jax.eval_shape(self.tx.init, params)
    replicated = self._replicated()

    def like_param(leaf, param_sharding, param):
      return param_sharding if tuple(leaf.shape) == tuple(param.shape) else replicated
    return optax.tree_map_params(self.tx, like_param, abstract, self.param_shardings(params),
                                 params, transform_non_params=lambda _: replicated)

  def batch_shardings(self, batch: ActorBatch) -> Any:
    """Rows over the 'batch' rule's mesh axes (where they divide B), other dims replicated."""
    if self.mesh is None:
      return None
    return jax.tree.map(
        lambda x: sharding.batch_sharding(self.mesh, len(x.shape), self.rules, shape=x.shape),
        batch)

  def place_params(self, params: Any) -> Any:
    """`params` laid out by the rules on the mesh (unchanged without a mesh)."""
    return params if self.mesh is None else sharding.shard_pytree(
        params, self.param_shardings(params))

  def init_opt_state(self, params: Any) -> Any:
    """`optimizer.init(params)`, created directly in its sharding."""
    return jax.jit(self.tx.init, out_shardings=self.opt_state_shardings(params))(params)

  def place_batch(self, batch: ActorBatch) -> ActorBatch:
    """The batch as device arrays (sharded over rows on a mesh); float fields as float32,
    integer fields as int32. Host arrays must hold the full batch on every process; global
    jax.Arrays are resharded."""
    batch = batch.normalized_dtypes()
    if self.mesh is None:
      return jax.tree.map(jnp.asarray, batch)
    return jax.device_put(batch, self.batch_shardings(batch))

  def _call(self, kind: str, fn, args: tuple, shardings, donate: tuple):
    """Runs `fn(*args)` jitted, compiled once per (kind, argument structure and shapes);
    `shardings()` gives (in_shardings, out_shardings) on a mesh (evaluated once)."""
    key = (kind, jax.tree.structure(args), tuple(np.shape(x) for x in jax.tree.leaves(args)))
    if key not in self._jitted:
      if self.mesh is None:
        self._jitted[key] = jax.jit(fn, donate_argnums=donate)
      else:
        in_sh, out_sh = shardings()
        self._jitted[key] = jax.jit(fn, in_shardings=in_sh, out_shardings=out_sh,
                                    donate_argnums=donate)
    if self.mesh is None:
      return self._jitted[key](*args)
    with jax.set_mesh(self.mesh):
      return self._jitted[key](*args)

  # ------------------------------------------------------------------------------- log-probs

  def _model(self, params):
    return nnx.merge(self.graphdef, params)

  def _constrain_rows(self, tree: Any) -> Any:
    if self.mesh is None:
      return tree
    return jax.tree.map(lambda x: sharding.constrain(x, ("batch",) + (None,) * (x.ndim - 1),
                                                     self.rules), tree)

  def _window_logp(self, params, mb: dict[str, jax.Array], window, compute_entropy: bool):
    return logprobs_lib.window_logprobs_and_entropy(
        self._model(params), mb["tokens_BxS"], mb["positions_BxS"], mb["attention_mask_BxS"],
        mb["targets_BxS"], window=window, temperature=self.temperature,
        vocab_chunk=self.config.vocab_chunk, compute_entropy=compute_entropy)

  def logprobs(self, params: Any, batch: ActorBatch | TrainingBatch) -> jax.Array:
    """log softmax(logits / τ)[target] at every column: float32 [B, S], 0 where the loss mask
    is 0. Jitted, LM head on the response window only, chunked over V per `vocab_chunk`, and
    over rows in micro-batches of `micro_batch_rows` (when it divides B). Use it for the old
    (policy) and reference (ref params) log-probs."""
    if isinstance(batch, TrainingBatch):
      batch = actor_batch(batch)
    batch.check()
    batch = self.place_batch(batch)
    b, s = batch.tokens_BxS.shape
    rows = self.config.micro_batch_rows
    k = b // rows if rows and b % rows == 0 else 1
    window = batch.window
    names = ("tokens_BxS", "positions_BxS", "attention_mask_BxS", "targets_BxS")

    def fn(params, batch):
      split = {n: jnp.moveaxis(getattr(batch, n).reshape(b // k, k, s), 1, 0) for n in names}

      # The parameters ride in the scan carry rather than in the body's closure: a model
      # merged from closed-over (outer-trace) parameters cannot be run under nnx.remat
      # (TraceContextError, "Cannot mutate Param from a different trace level").
      def one(p, mb):
        logp_BxW, _ = self._window_logp(p, self._constrain_rows(mb), window, False)
        return p, logp_BxW
      _, logp_KxRxW = jax.lax.scan(one, params, split)
      logp_BxW = jnp.moveaxis(logp_KxRxW, 0, 1).reshape(b, window[1])
      start, width = window
      logp_BxS = jnp.pad(logp_BxW, ((0, 0), (start, s - start - width)))
      return jnp.where(batch.loss_mask_BxS, logp_BxS, 0.0)

    def shardings():
      batch_sh = self.batch_shardings(batch)
      return (self.param_shardings(params), batch_sh), batch_sh.old_logprobs_BxS
    return self._call("logprobs", fn, (params, batch), shardings, ())

  # ---------------------------------------------------------------------------------- update

  def _loss(self, params, mb: dict[str, jax.Array], norms: dict[str, jax.Array], window):
    """Loss contribution of one micro-batch (sums over micro-batches to the mini-batch loss)."""
    cfg = self.config
    logp, ent = self._window_logp(params, mb, window, True)
    start, width = window
    win = {n: jax.lax.slice_in_dim(x, start, start + width, axis=1) for n, x in mb.items()}
    mask = win["loss_mask_BxS"]
    # Off-mask values never matter, not even a NaN there (it would reach the gradient through
    # the masked product's derivative).
    for n in ("old_logprobs_BxS", "ref_logprobs_BxS", "advantages_BxS"):
      win[n] = jnp.where(mask, win[n], 0.0)
    agg = dict(loss_agg_mode=cfg.loss_agg_mode, norm_constant=width, **norms)
    pg, metrics = policy_loss.ppo_policy_loss(
        logp, win["old_logprobs_BxS"], win["advantages_BxS"], mask, clip_low=cfg.clip_low,
        clip_high=cfg.clip_high, clip_ratio_c=cfg.clip_ratio_c, **agg)
    kl, kl_metrics = kl_lib.kl_loss(
        logp if cfg.kl_coef else jax.lax.stop_gradient(logp), win["ref_logprobs_BxS"], mask,
        kind=cfg.kl_type, coef=cfg.kl_coef, log_ratio_clamp=cfg.kl_clamp,
        value_clamp=cfg.kl_value_clamp, **agg)
    if not cfg.entropy_coef:
      ent = jax.lax.stop_gradient(ent)
    bonus, ent_metrics = entropy_lib.entropy_bonus(ent, mask, coef=cfg.entropy_coef, **agg)
    loss = pg + kl + bonus
    return loss, {**metrics, **kl_metrics, **ent_metrics, "loss": jax.lax.stop_gradient(loss)}

  def _one_update(self, params, opt_state, mb: dict[str, jax.Array], window):
    """Gradient of the mini-batch `mb` (accumulated over micro-batches) and one optimizer step."""
    cfg = self.config
    m, s = mb["tokens_BxS"].shape
    rows = cfg.micro_batch_rows or m  # divides m: checked in `update`
    k = m // rows
    start, width = window
    # Normalizers of the WHOLE mini-batch, shared by every micro-batch (spec §1 step 6).
    norms = loss_aggregation.batch_normalizers(
        jax.lax.slice_in_dim(mb["loss_mask_BxS"], start, start + width, axis=1))
    grad_fn = jax.value_and_grad(self._loss, has_aux=True)
    to_f32 = lambda tree: jax.tree.map(lambda x: x.astype(jnp.float32), tree)
    if k == 1:
      (_, metrics), grads = grad_fn(params, self._constrain_rows(mb), norms, window)
      grads = to_f32(grads)
    else:
      # Strided micro-batches (rows j, j + k, ...) keep every micro-batch spread over the
      # row-sharded devices.
      split = {n: jnp.moveaxis(x.reshape(rows, k, s), 1, 0) for n, x in mb.items()}

      def micro(acc, micro_mb):
        (_, met), g = grad_fn(params, self._constrain_rows(micro_mb), norms, window)
        return jax.tree.map(jnp.add, acc, (to_f32(g), met)), None
      shapes = jax.eval_shape(lambda p, x: grad_fn(p, x, norms, window), params,
                              jax.tree.map(lambda x: x[0], split))
      zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, jnp.float32),
                           (shapes[1], shapes[0][1]))
      (grads, metrics), _ = jax.lax.scan(micro, zeros, split)
    # A non-finite loss poisons the gradient so the guard skips the update even if the
    # gradient itself came out finite.
    loss_ok = jnp.isfinite(metrics.pop("loss"))
    grads = jax.tree.map(lambda g: jnp.where(loss_ok, g, jnp.nan), grads)
    metrics["actor/grad_norm"] = optax.tree.norm(grads)  # before clipping (verl)
    # Accumulated in float32; handed to the optimizer in the parameters' dtype.
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)
    before = _guard_count(opt_state)
    updates, new_opt_state = self.tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    # Keep the carried dtypes (a scan carry) whatever the optimizer promotes to.
    same_dtype = lambda new, old: jax.tree.map(lambda n, o: n.astype(o.dtype), new, old)
    new_params, new_opt_state = (same_dtype(new_params, params),
                                 same_dtype(new_opt_state, opt_state))
    if before is not None:
      skipped = _guard_count(new_opt_state) - before
    else:
      skipped = jnp.logical_not(opt_lib.all_finite(grads)).astype(jnp.int32)
      new_opt_state = jax.tree.map(lambda n, o: jnp.where(skipped > 0, o, n), new_opt_state,
                                   opt_state)
    # Bit-identical params on a skipped update (p + 0.0 would turn -0.0 into +0.0).
    new_params = jax.tree.map(lambda n, o: jnp.where(skipped > 0, o, n), new_params, params)
    metrics["actor/skipped_updates"] = skipped
    try:
      metrics["actor/lr"] = jnp.asarray(opt_lib.current_learning_rate(new_opt_state),
                                        jnp.float32)
    except ValueError:
      pass
    return new_params, new_opt_state, metrics

  def update(self, params: Any, opt_state: Any, batch: ActorBatch, key: jax.Array
             ) -> tuple[Any, Any, dict[str, jax.Array]]:
    """All optimizer updates of one RL step (module docstring). `params` and `opt_state` are
    DONATED: use the returned ones.

    Args:
      params: the policy `nnx.State` (placed with `place_params` on a mesh).
      opt_state: from `init_opt_state`.
      batch: the step's `ActorBatch` (old/ref log-probs and advantages filled in).
      key: PRNG key for the group shuffle.

    Returns:
      (params, opt_state, metrics); metrics are float32/int32 scalar device arrays (pull them
      with `metrics.to_scalar` when convenient): actor/pg_loss, actor/pg_clipfrac,
      actor/pg_clipfrac_lower, actor/pg_clipfrac_dual, actor/ppo_kl, actor/kl_loss,
      actor/entropy, actor/grad_norm (pre-clip) averaged over the updates; actor/lr of the
      last update; actor/num_updates; actor/skipped_updates (updates skipped in this call).

    Raises:
      ValueError: a bad batch, or mini_batch_groups / micro_batch_rows not dividing the batch.
    """
    batch.check()
    batch = self.place_batch(batch)
    b, s = batch.tokens_BxS.shape
    num_groups = b // batch.group_size
    num_updates = num_updates_per_step(num_groups, self.config)
    rows = (self.config.mini_batch_groups or num_groups) * batch.group_size
    if self.config.micro_batch_rows and rows % self.config.micro_batch_rows:
      raise ValueError(f"UpdateConfig.micro_batch_rows={self.config.micro_batch_rows} does not "
                       f"divide the {rows} rows of a mini-batch")
    window = batch.window
    names = [n for n in DATA_FIELDS if n != "group_B"]

    def fn(params, opt_state, batch, key):
      rows_UxM = minibatch_rows(key, num_groups, batch.group_size, self.config)

      def body(carry, rows_M):
        mb = {n: jnp.take(getattr(batch, n), rows_M, axis=0) for n in names}
        p, o, met = self._one_update(*carry, self._constrain_rows(mb), window)
        return (p, o), met
      (params, opt_state), met_U = jax.lax.scan(body, (params, opt_state), rows_UxM)
      out = {n: jnp.mean(v) for n, v in met_U.items()}
      out["actor/skipped_updates"] = jnp.sum(met_U["actor/skipped_updates"])
      if "actor/lr" in met_U:
        out["actor/lr"] = met_U["actor/lr"][-1]
      out["actor/num_updates"] = jnp.asarray(num_updates, jnp.int32)
      return params, opt_state, out

    def shardings():
      p_sh, o_sh = self.param_shardings(params), self.opt_state_shardings(params)
      return ((p_sh, o_sh, self.batch_shardings(batch), self._replicated()),
              (p_sh, o_sh, self._replicated()))
    return self._call("update", fn, (params, opt_state, batch, key), shardings, (0, 1))
