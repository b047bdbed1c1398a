"""`python -m prorl_jax.main --config configs/X.gin [--gin_bindings ...] [--workdir DIR]`.

Parses the gin files and bindings (an unknown configurable or parameter fails here, naming the
binding), starts `jax.distributed` for a multi-process run (flags below or the PRORL_*
environment variables of `training/distributed.py`), then calls
`prorl_jax.training.jobs.run_job(workdir)`: the RL trainer, or the quickstart when the config
binds `run_job.job = "quickstart"`. The default workdir is `runs/<config stem>`; running the
same command again resumes from the latest checkpoint there.
"""

from __future__ import annotations

import logging as py_logging
import os
import sys

from absl import app, flags, logging

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO, "configs", "quickstart.gin")

_CONFIG = flags.DEFINE_multi_string("config", None, "gin config file(s); default "
                                    "configs/quickstart.gin")
_BINDINGS = flags.DEFINE_multi_string("gin_bindings", [], "extra gin bindings, e.g. "
                                      "'TrainerConfig.num_steps = 10'")
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (default runs/<config stem>)")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "multi-process: host:port of process 0")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "multi-process: process count")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "multi-process: this process's id")


def parse_gin(config_files: list[str], bindings: list[str]) -> None:
  """Imports every configurable, then parses the files and bindings.

  Raises:
    ValueError: an unknown configurable or parameter, or a file that does not parse; the
      message names the binding and its file/line (gin's).
    FileNotFoundError: a config file that does not exist.
  """
  import gin  # noqa: PLC0415
  # Register every configurable before parsing, so unknown names are errors.
  from prorl_jax.training import configurables, jobs, loop, optimizer  # noqa: F401,PLC0415
  from prorl_jax.training import rollout_step, train_step, validation  # noqa: F401,PLC0415
  from prorl_jax.evaluation import config as eval_config  # noqa: F401,PLC0415
  try:
    from prorl_jax.training import quickstart  # noqa: F401,PLC0415
  except ImportError:
    pass
  for path in config_files:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"--config {path}: no such file")
  gin.parse_config_files_and_bindings(config_files, bindings)


class _QuietOrbax(py_logging.Filter):
  """Drops orbax's per-save INFO lines (dozens per checkpoint); its warnings still show."""

  def filter(self, record) -> bool:
    return record.levelno >= py_logging.WARNING or "/orbax/" not in record.pathname


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_QuietOrbax())
  from prorl_jax.training import distributed  # noqa: PLC0415
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  configs = _CONFIG.value or [DEFAULT_CONFIG]
  try:
    parse_gin(configs, _BINDINGS.value)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"bad configuration: {e}")
  workdir = _WORKDIR.value or os.path.join(
      "runs", os.path.splitext(os.path.basename(configs[-1]))[0])
  from prorl_jax.training.jobs import ConfigError, run_job  # noqa: PLC0415
  logging.info("workdir %s", os.path.abspath(workdir))
  try:
    run_job(workdir)
  except ConfigError as e:  # a bad setting, found at start-up (the message names the binding)
    sys.exit(f"bad configuration: {e}")


if __name__ == "__main__":
  app.run(main)
