"""The trainer's host-side state and its checkpoint extras (JSON beside the arrays).

The array state of a checkpoint is `{"policy", "reference", "opt_state"}`; everything else a
resumed run needs to continue exactly lives in the extras:

  step              rollout steps done (the checkpoint's step)
  updates_done      optimizer updates done (the length schedule's counter, spec §5)
  rng               the run's base PRNG key (`checkpoint.key_to_json`); step keys are
                    `fold_in(base, step)`, so the key needs no advancing
  data_iterator     one `PromptIterator.get_state()` per process, in process order
  reset_state       `algorithms.reset.ResetState.to_dict()`: reset history, KL statistics and
                    the validation history of the reset triggers
  length_schedule   {"counter": updates_done, "on": whether the length term is on next}
  model_dir         the HF directory the policy started from (architecture + tokenizer for
                    `prorl_jax.evaluate`, evaluation/checkpoints.py convention)
  process_count     processes of the run that wrote it (a resume must use the same count)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax

from prorl_jax.algorithms.reset import ResetState
from prorl_jax.training import checkpoint as ckpt_lib

EXTRAS_VERSION = 1


@dataclasses.dataclass
class LoopState:
  """What the loop carries between steps besides the arrays.

  Attributes:
    step: rollout steps done.
    updates_done: optimizer updates done.
    key: the base PRNG key (typed).
    reset: the reset triggers' state and history.
  """
  step: int
  updates_done: int
  key: jax.Array
  reset: ResetState = dataclasses.field(default_factory=ResetState)

  def step_key(self, step: int) -> jax.Array:
    """The key of rollout step `step` (1-based)."""
    return jax.random.fold_in(self.key, step)

  def to_extras(self, *, data_states: list[Any], model_dir: str, length_on_next: bool,
                process_count: int) -> dict[str, Any]:
    return {
        "version": EXTRAS_VERSION,
        "step": int(self.step),
        "updates_done": int(self.updates_done),
        "rng": ckpt_lib.key_to_json(self.key),
        "data_iterator": list(data_states),
        "reset_state": self.reset.to_dict(),
        "length_schedule": {"counter": int(self.updates_done), "on": bool(length_on_next)},
        "model_dir": model_dir,
        "process_count": int(process_count),
    }

  @classmethod
  def from_extras(cls, extras: Mapping[str, Any], *, process_count: int) -> tuple[LoopState,
                                                                                   Any]:
    """(state, this process's data-iterator state) from a checkpoint's extras.

    Raises:
      ValueError: another extras version, or a checkpoint written by a run with a different
        number of processes (names both counts).
    """
    if extras.get("version") != EXTRAS_VERSION:
      raise ValueError(f"checkpoint extras version {extras.get('version')!r}, expected "
                       f"{EXTRAS_VERSION}")
    if int(extras["process_count"]) != process_count:
      raise ValueError(f"the checkpoint was written by {extras['process_count']} processes; "
                       f"this run has {process_count}: resume with the same process count")
    state = cls(step=int(extras["step"]), updates_done=int(extras["updates_done"]),
                key=ckpt_lib.key_from_json(extras["rng"]),
                reset=ResetState.from_dict(extras["reset_state"]))
    return state, extras["data_iterator"][jax.process_index()]
