"""Shared by the loop tests: tiny assets, gin bindings and a `python -m prorl_jax.main` runner.

Every run uses the same persistent XLA compilation cache (one directory per test session), so
only the first run of a session pays for compiling the sampler and the train step.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE_ENV = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
             "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
VOLATILE = ("timing_s/", "perf/throughput")


def make_assets(directory: str) -> dict[str, Any]:
  """A 1-layer, 32-wide random Qwen2 and instruction-following prompts (training/tiny_assets)."""
  from prorl_jax.training.tiny_assets import tiny_assets
  return tiny_assets(directory, num_train=32, num_validation=4, logic_task=None,
                     hidden_size=32, num_layers=1, intermediate_size=64)


TINY_CONFIG = os.path.join(REPO, "configs", "tiny_cpu.gin")


def bindings(assets: dict[str, Any], **overrides: Any) -> list[str]:
  """gin bindings (over configs/tiny_cpu.gin) of a short tiny run on `assets`; `overrides`
  are 'Name.field' -> value."""
  values: dict[str, Any] = {
      "run_job.setup": None,
      "TrainerConfig.model_dir": assets["model_dir"],
      "TrainerConfig.num_steps": 8,
      "TrainerConfig.checkpoint_every": 2,
      "TrainerConfig.dtype": "float32",
      "TrainerConfig.reward_workers": 0,
      "DataConfig.train_files": assets["data"]["train_files"],
      "DataConfig.validation_files": assets["data"]["validation_files"],
      "DataConfig.batch_size": 4,
      "DataConfig.max_prompt_length": 96,  # no prompt is dropped (tiny prompts: 40-75 tokens)
      "DataConfig.num_threads": 0,
      "RolloutConfig.group_size": 4,
      "SamplingConfig.max_new_tokens": 8,
      "SamplingConfig.cache_segments": 1,
      "SamplingConfig.prompt_buckets": (96,),
      "LengthRewardConfig.truncated_reward": None,
      "RolloutConfig.advantage_estimator": "reinforce_pp_baseline",
      "UpdateConfig.mini_batch_groups": 0,  # one update per step (layout-independent)
      "make_optimizer.learning_rate": 1e-2,
      "ResetPolicy.interval": 3,
      "ValidationConfig.every_steps": 4,
      "EvalConfig.n": 2,
      "EvalConfig.max_new_tokens": 8,
  }
  values.update(overrides)
  return [f"{k} = {gin_value(v)}" for k, v in values.items()]


def gin_value(v: Any) -> str:
  if isinstance(v, str) and v.startswith("@"):
    return v
  if isinstance(v, tuple):
    return "(" + "".join(f"{gin_value(x)}, " for x in v) + ")"
  return json.dumps(v) if not isinstance(v, bool) and v is not None else repr(v)


CHILD = """
import os, sys, time
pause = os.environ.get("PRORL_TEST_PAUSE_COMMIT")
if pause:
  real_rename = os.rename
  def paused_rename(src, dst):
    dst = os.fspath(dst)
    if (os.path.basename(dst) == pause
        and os.path.basename(os.path.dirname(dst)) == "checkpoints"):
      with open(os.environ["PRORL_TEST_MARK"], "w") as f:
        f.write(f"{src} -> {dst}")
      time.sleep(600)
    return real_rename(src, dst)
  os.rename = paused_rename
from absl import app
from prorl_jax import main
app.run(main.main, argv=["prorl_jax.main"] + sys.argv[1:])
"""


@contextlib.contextmanager
def compilation_cache(cache_dir: str):
  """This process's persistent XLA cache in `cache_dir` for the duration (also after JAX has
  already compiled something); the previous settings are restored after."""
  import jax
  from jax.experimental.compilation_cache import compilation_cache as cc
  names = ["jax_compilation_cache_dir"] + [n.lower() for n in CACHE_ENV]
  before = {n: jax.config.values[n] for n in names}
  jax.config.update("jax_compilation_cache_dir", cache_dir)
  for name, value in CACHE_ENV.items():
    jax.config.update(name.lower(), int(value))
  cc.reset_cache()
  try:
    yield
  finally:
    for n, v in before.items():
      jax.config.update(n, v)
    cc.reset_cache()


def child_env(cache_dir: str, **extra: str) -> dict[str, str]:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO,
             JAX_COMPILATION_CACHE_DIR=cache_dir, **CACHE_ENV)
  env.pop("XLA_FLAGS", None)
  env.update(extra)
  return env


def start_main(workdir: str, gin_bindings: list[str], cache_dir: str, *,
               config: str | None = None, flags: tuple[str, ...] = (),
               log: str | None = None, **env: str) -> subprocess.Popen:
  """`python -m prorl_jax.main` in a subprocess (stdout+stderr to `log`, default
  `<workdir>.log`)."""
  args = [sys.executable, "-c", textwrap.dedent(CHILD), "--workdir", workdir,
          "--config", config or TINY_CONFIG]
  for b in gin_bindings:
    args += ["--gin_bindings", b]
  args += list(flags)
  out = open(log or workdir.rstrip("/") + ".log", "ab")
  return subprocess.Popen(args, env=child_env(cache_dir, **env), stdout=out,
                          stderr=subprocess.STDOUT, cwd=REPO)


def log_tail(workdir: str, n: int = 4000) -> str:
  path = workdir.rstrip("/") + ".log"
  if not os.path.exists(path):
    return ""
  with open(path, errors="replace") as f:
    return f.read()[-n:]


def stable_rows(workdir: str) -> list[dict[str, Any]]:
  """metrics.jsonl rows without the wall-clock figures."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in rows]


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  from safetensors.numpy import load_file
  return load_file(os.path.join(path, "model.safetensors"))


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]
