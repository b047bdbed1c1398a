"""A 2-process CPU run (jax.distributed over localhost, gloo collectives, one CPU device per
process) trains and agrees with a 1-process run: same prompts and rollouts (each
process samples its share with the same per-prompt random streams), advantages whitened over
both processes' tokens (REINFORCE++-baseline), gradients all-reduced by jit over the global
mesh."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "loop_helpers", os.path.join(os.path.dirname(__file__), "loop_helpers.py"))
h = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(h)

# Layout-independent settings (the others are loop_helpers' defaults: one source, so process
# p reads items p, p+2, ... of it and the two processes together read the 1-process batch; one
# update over the whole batch, since the order of the groups differs between layouts and a
# mini-batch split would not): every group of one round kept, since dynamic sampling would let
# each process refill on its own. Only host-side settings differ from test_loop_resume.py, so
# the 1-process run loads its programs from the session's compilation cache.
SETTINGS = {"TrainerConfig.num_steps": 3, "RolloutConfig.dynamic_sampling": False,
            "ValidationConfig.every_steps": 2, "ResetPolicy.interval": 2}
AGREE = ("critic/score/mean", "critic/rewards/mean", "response_length/mean",
         "prompt_length/mean", "actor/pg_loss", "actor/kl_loss", "actor/entropy",
         "actor/grad_norm", "critic/advantages/max", "critic/advantages/min",
         "prorl/ref_resets", "perf/total_num_tokens", "rewards/ifeval/mean")


def test_two_processes_agree_with_one(tmp_path, tmp_path_factory):
  assets = h.make_assets(str(tmp_path))
  cache = str(tmp_path_factory.getbasetemp() / "xla_cache")
  gin_b = h.bindings(assets, **SETTINGS)
  single = str(tmp_path / "single")
  multi = str(tmp_path / "multi")
  port = h.free_port()
  procs = [h.start_main(single, gin_b, cache)]
  procs += [h.start_main(multi, gin_b, cache, log=f"{multi}.{pid}.log",
                         flags=("--coordinator_address", f"localhost:{port}",
                                "--num_processes", "2", "--process_id", str(pid)))
            for pid in range(2)]
  try:
    codes = [p.wait(timeout=400) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  logs = "\n".join(open(f).read()[-3000:] for f in
                   (f"{single}.log", f"{multi}.0.log", f"{multi}.1.log"))
  assert codes == [0, 0, 0], logs
  assert "2 global devices" in open(f"{multi}.1.log").read()
  rows_1, rows_2 = h.stable_rows(single), h.stable_rows(multi)
  assert [r["step"] for r in rows_1] == [r["step"] for r in rows_2] == [1, 2, 3]
  for a, b in zip(rows_1, rows_2):
    for name in AGREE:
      np.testing.assert_allclose(b[name], a[name], rtol=1e-4, atol=1e-6, err_msg=name)
  assert any(r["actor/grad_norm"] > 0 for r in rows_1)
  assert "val/score" in rows_2[1]  # validation gathered over both processes
  assert 0.0 <= rows_2[1]["val/score"] <= 1.0
  w1, w2 = (h.read_safetensors(os.path.join(d, "final_hf")) for d in (single, multi))
  assert sorted(w1) == sorted(w2)
  for name in w1:
    np.testing.assert_allclose(w2[name], w1[name], rtol=1e-4, atol=1e-5, err_msg=name)
  assert any((w1[n] != h.read_safetensors(assets["model_dir"])[n]).any() for n in w1)
