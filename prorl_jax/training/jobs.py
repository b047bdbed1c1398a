"""What `python -m prorl_jax.main` runs: `run_job(workdir)`, gin-configurable.

  run_job.job = "rl"          (default) build a `Trainer` from gin and run it
  run_job.job = "quickstart"  `prorl_jax.training.quickstart.run_quickstart(workdir)`
  run_job.setup = @tiny_assets   an optional callable(workdir) -> {"model_dir": ..., "data":
                              {DataConfig fields}} run before the trainer is built (it creates
                              the assets of a self-contained CPU run: configs/tiny_cpu.gin)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gin
import jax

from prorl_jax.training import tiny_assets  # noqa: F401  (registers @tiny_assets)

JOBS = ("rl", "quickstart")


class ConfigError(ValueError):
  """A setting rejected at start-up (before training); the message names the binding."""


@gin.configurable
def run_job(workdir: str, job: str = "rl",
            setup: Callable[[str], dict[str, Any]] | None = None) -> Any:
  """Runs `job` in `workdir` (module docstring).

  Raises:
    ConfigError: an unknown job name (names `run_job.job`) or a setting the trainer rejects
      when it is built (names the binding, e.g. "ResetPolicy.interval").
  """
  if job not in JOBS:
    raise ConfigError(f"run_job.job={job!r} unknown; choose one of {JOBS}")
  if job == "quickstart":
    from prorl_jax.training.quickstart import run_quickstart  # noqa: PLC0415
    return run_quickstart(workdir)
  from prorl_jax.training.loop import Trainer  # noqa: PLC0415
  overrides: dict[str, Any] = {}
  if setup is not None:
    if jax.process_count() > 1:  # process 0 writes shared assets, the others then read them
      from jax.experimental import multihost_utils  # noqa: PLC0415
      if jax.process_index() == 0:
        overrides = setup(workdir)
      multihost_utils.sync_global_devices("prorl_run_job_setup")
      if jax.process_index() != 0:
        overrides = setup(workdir)
    else:
      overrides = setup(workdir)
  try:
    trainer = Trainer(workdir, model_dir=overrides.get("model_dir"),
                      data_overrides=overrides.get("data"))
  except (ValueError, TypeError, FileNotFoundError) as e:
    raise ConfigError(str(e)) from e
  return trainer.run()
