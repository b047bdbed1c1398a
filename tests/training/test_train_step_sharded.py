"""The train step on 8 fake CPU devices (data=2 x fsdp=2 x tensor=2) equals one device and keeps
the rule layout; runs tests/training/train_step_sharded_worker.py in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_eight_devices_match_one_device_and_keep_the_rule_layout():
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
             JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "tests", "training", "train_step_sharded_worker.py")],
      env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), (
      proc.stdout[-3000:] + proc.stderr[-5000:])
