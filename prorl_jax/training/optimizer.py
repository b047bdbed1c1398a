"""Optimizer and learning-rate schedule from config, by name.

`make_optimizer` builds any optax optimizer (``"adamw"``, ``"lion"``, ``"adafactor"``, ``"sgd"``,
``"contrib.muon"`` ...) with any optax schedule, chains global-norm gradient clipping in front of it
and wraps the whole in a NaN/Inf guard, so that a research fork compares optimizers by writing a gin
file::

  make_optimizer.name = 'lion'
  make_optimizer.learning_rate = 1e-7
  make_optimizer.b1 = 0.95                       # any keyword of optax.lion
  make_optimizer.schedule = 'warmup_cosine_decay_schedule'
  make_optimizer.schedule_kwargs = {'init_value': 0.0, 'warmup_steps': 10, 'decay_steps': 1000}

The learning rate in effect is kept in the optimizer state (``optax.inject_hyperparams``) and read
with `current_learning_rate` (metric ``actor/lr``). The guard counts skipped updates
(`skipped_updates`). Defaults follow ProRL v1 (spec §7): AdamW, constant lr 2e-6; clipping at
global norm 1.0 is verl's default.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import gin
import jax
import jax.numpy as jnp
import optax

# Schedule argument that `learning_rate` fills, in order of preference.
_PEAK_ARGS = ("peak_value", "init_value", "value")


def _lookup(namespace: Any, name: str, kind: str, where: str) -> Callable[..., Any]:
  obj = namespace
  for part in name.split("."):
    obj = getattr(obj, part, None)
    if obj is None:
      break
  if obj is None or not callable(obj) or inspect.isclass(obj):
    raise ValueError(f"unknown {kind} name {name!r}: not a function in {where}")
  return obj


def _check_kwargs(fn: Callable[..., Any], kwargs: Mapping[str, Any], what: str) -> None:
  """Raises ValueError naming the first keyword `fn` does not accept or a missing required one."""
  params = inspect.signature(fn).parameters
  takes_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
  if not takes_var_kw:
    for key in kwargs:
      if key not in params:
        raise ValueError(
            f"{what} got an unknown keyword argument {key!r}; it accepts {sorted(params)}")
  for pname, p in params.items():
    if (p.default is inspect.Parameter.empty and pname not in kwargs
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)):
      raise ValueError(f"{what} is missing the required argument {pname!r}")


def make_schedule(
    learning_rate: float | optax.Schedule,
    schedule: str | None = None,
    schedule_kwargs: Mapping[str, Any] | None = None,
) -> float | optax.Schedule:
  """Learning rate or optax schedule by name.

  Args:
    learning_rate: the learning rate (constant) or, with `schedule`, the schedule's peak: it fills
      the schedule's first argument among ``peak_value``, ``init_value``, ``value``. A callable is
      used as the schedule itself (then `schedule` must be None).
    schedule: None or ``"constant"`` for a constant rate, or the name of any function in
      ``optax.schedules`` (``"cosine_decay_schedule"``, ``"warmup_cosine_decay_schedule"``,
      ``"linear_schedule"`` ...; the ``_schedule`` suffix may be left out).
    schedule_kwargs: the schedule's other keyword arguments (e.g. ``decay_steps``). Steps count
      optimizer updates.

  Returns:
    A float (constant rate) or an ``optax.Schedule`` (step count -> float32 scalar).

  Raises:
    ValueError: unknown schedule name, a keyword the schedule does not take, a missing required
      one, or the peak argument given both as `learning_rate` and in `schedule_kwargs`.
  """
  schedule_kwargs = dict(schedule_kwargs or {})
  if callable(learning_rate):
    if schedule is not None or schedule_kwargs:
      raise ValueError("learning_rate is already a schedule: leave schedule/schedule_kwargs unset")
    return learning_rate
  if schedule is None or schedule in ("constant", "constant_schedule"):
    if schedule_kwargs:
      raise ValueError(f"a constant learning rate takes no schedule_kwargs, got {schedule_kwargs}")
    return float(learning_rate)
  name = schedule
  fn = getattr(optax.schedules, name, None)
  if fn is None and not name.endswith("_schedule"):
    fn = getattr(optax.schedules, name + "_schedule", None)
  if fn is None or not callable(fn) or inspect.isclass(fn) or name.startswith("inject"):
    raise ValueError(f"unknown schedule name {schedule!r}: not a function in optax.schedules")
  params = inspect.signature(fn).parameters
  peak = next((p for p in _PEAK_ARGS if p in params), None)
  if peak is None:
    raise ValueError(f"schedule {schedule!r} has none of the arguments {_PEAK_ARGS} for "
                     "learning_rate; pass it as learning_rate=<an optax schedule> instead")
  if peak in schedule_kwargs:
    raise ValueError(f"schedule_kwargs[{peak!r}] duplicates learning_rate for schedule "
                     f"{schedule!r}: set learning_rate instead")
  kwargs = {peak: float(learning_rate), **schedule_kwargs}
  _check_kwargs(fn, kwargs, f"schedule {schedule!r}")
  return fn(**kwargs)


class NonFiniteGuardState(NamedTuple):
  """State of `skip_nonfinite`: int32 scalar counters and the wrapped state."""
  skipped: jax.Array          # total updates skipped since initialization
  consecutive: jax.Array      # updates skipped in a row (0 after an applied update)
  inner_state: optax.OptState


def all_finite(tree: Any) -> jax.Array:
  """Scalar bool: every floating-point leaf of `tree` is finite (other leaves are ignored)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return jnp.stack(leaves).all() if leaves else jnp.array(True)


def skip_nonfinite(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
  """Wraps `inner` so a non-finite gradient (or update) changes nothing.

  When any gradient leaf or any leaf of `inner`'s updates holds a NaN or Inf, the returned updates
  are all zeros and the inner state is left as it was (moments, step count and schedule do not
  advance); the skip is counted. Unlike ``optax.apply_if_finite`` it never gives up after a run of
  bad steps: a NaN never reaches the weights. Works under jit; the check is an all-reduce over
  sharded leaves.
  """
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    zero = jnp.zeros([], jnp.int32)
    return NonFiniteGuardState(zero, zero, inner.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    new_updates, new_inner = inner.update(updates, state.inner_state, params, **extra_args)
    ok = jnp.logical_and(all_finite(updates), all_finite(new_updates))
    new_updates = jax.tree.map(lambda u: jnp.where(ok, u, jnp.zeros_like(u)), new_updates)
    new_inner = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new_inner, state.inner_state)
    bad = jnp.logical_not(ok).astype(jnp.int32)
    return new_updates, NonFiniteGuardState(
        skipped=state.skipped + bad, consecutive=(state.consecutive + bad) * bad,
        inner_state=new_inner)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@gin.configurable
def make_optimizer(
    name: str = "adamw",
    learning_rate: float | optax.Schedule = 2e-6,
    schedule: str | None = None,
    schedule_kwargs: Mapping[str, Any] | None = None,
    grad_clip_norm: float | None = 1.0,
    skip_nonfinite_updates: bool = True,
    **optimizer_kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
  """Any optax optimizer by name, with clipping, schedule and NaN/Inf guard.

  The result is ``skip_nonfinite(chain(clip_by_global_norm(grad_clip_norm),
  inject_hyperparams(optax.<name>)(learning_rate=<schedule>, **optimizer_kwargs)))``; only the
  learning rate is injected (all other keywords are passed through unchanged, so the updates equal
  optax's own).

  Args:
    name: a function of ``optax`` (``"adamw"``, ``"adam"``, ``"lion"``, ``"adafactor"``,
      ``"sgd"``, ``"rmsprop"`` ...) or of ``optax.contrib`` written ``"contrib.<fn>"``; it must take
      a ``learning_rate`` argument.
    learning_rate: constant rate, schedule peak (with `schedule`), or an optax schedule.
    schedule: see `make_schedule`.
    schedule_kwargs: see `make_schedule`.
    grad_clip_norm: clip gradients to this global L2 norm before the optimizer; None or <= 0: off.
    skip_nonfinite_updates: wrap in `skip_nonfinite` (recommended; the state then always has the
      guard's counters).
    **optimizer_kwargs: other keyword arguments of ``optax.<name>`` (e.g. ``b1``,
      ``weight_decay``).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Raises:
    ValueError: unknown optimizer or schedule name, or a keyword argument the optax function does
      not take (the message names it), or a missing required one.
  """
  fn = _lookup(optax, name, "optimizer", "optax")
  params = inspect.signature(fn).parameters
  if "learning_rate" not in params:
    raise ValueError(f"optax.{name} is not an optimizer: it takes no learning_rate argument")
  if "learning_rate" in optimizer_kwargs:
    raise ValueError("learning_rate is an argument of make_optimizer, not an optimizer kwarg")
  _check_kwargs(fn, {"learning_rate": 0.0, **optimizer_kwargs}, f"optimizer {name!r}")
  lr = make_schedule(learning_rate, schedule, schedule_kwargs)
  static = tuple(k for k in params if k != "learning_rate" and params[k].kind not in (
      inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL))
  tx = optax.inject_hyperparams(fn, static_args=static)(learning_rate=lr, **optimizer_kwargs)
  if grad_clip_norm is not None and grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
  if skip_nonfinite_updates:
    tx = skip_nonfinite(tx)
  return optax.with_extra_args_support(tx)


def _find(opt_state: optax.OptState, cls: type | tuple[type, ...]) -> list[Any]:
  return [x for x in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, cls))
          if isinstance(x, cls)]


def current_learning_rate(opt_state: optax.OptState) -> jax.Array:
  """The learning rate of the most recent update (float32 scalar), for the ``actor/lr`` metric.

  Before any update it is the schedule at step 0; a skipped update does not advance it.

  Raises:
    ValueError: the state has no (or more than one) injected learning rate, i.e. it was not made
      by `make_optimizer`.
  """
  classes = tuple(c for c in (getattr(optax, "InjectHyperparamsState", None),
                              getattr(optax, "InjectStatefulHyperparamsState", None)) if c)
  found = [s for s in _find(opt_state, classes)
           if "learning_rate" in s.hyperparams]
  if len(found) != 1:
    raise ValueError(f"expected one injected learning_rate in the optimizer state, found "
                     f"{len(found)}: build the optimizer with make_optimizer")
  return found[0].hyperparams["learning_rate"]


def skipped_updates(opt_state: optax.OptState) -> tuple[jax.Array, jax.Array]:
  """(total, consecutive) int32 counts of updates skipped by `skip_nonfinite`.

  Raises:
    ValueError: the state has no `NonFiniteGuardState`.
  """
  found = _find(opt_state, NonFiniteGuardState)
  if len(found) != 1:
    raise ValueError(f"expected one NonFiniteGuardState in the optimizer state, found {len(found)}")
  return found[0].skipped, found[0].consecutive
