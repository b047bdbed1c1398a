"""`python -m prorl_jax.main` end to end on the tiny config, and exact resume: a run interrupted
by SIGINT, by kill -9 during a checkpoint save and by kill -9 during training, resumed each
time, writes the same metrics and ends with the same parameters as an uninterrupted run
(bit-exact on CPU). Bad configuration fails at start-up naming the binding."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from prorl_jax.evaluation.checkpoints import load_policy, param_arrays, read_extras

_spec = importlib.util.spec_from_file_location(
    "loop_helpers", os.path.join(os.path.dirname(__file__), "loop_helpers.py"))
h = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(h)

TIMEOUT_S = 300


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  root = tmp_path_factory.mktemp("resume")
  assets = h.make_assets(str(root))
  return {"root": str(root), "assets": assets,
          "cache": str(tmp_path_factory.getbasetemp() / "xla_cache")}


def _wait(proc: subprocess.Popen, workdir: str) -> int:
  try:
    return proc.wait(timeout=TIMEOUT_S)
  except subprocess.TimeoutExpired:
    proc.kill()
    raise AssertionError(f"run timed out:\n{h.log_tail(workdir)}")


def _wait_for(cond, proc: subprocess.Popen, workdir: str, what: str) -> None:
  deadline = time.monotonic() + TIMEOUT_S
  while not cond():
    if proc.poll() is not None:
      raise AssertionError(f"run exited ({proc.returncode}) before {what}:\n"
                           f"{h.log_tail(workdir)}")
    assert time.monotonic() < deadline, f"timed out waiting for {what}"
    time.sleep(0.02)


def _rows_written(workdir: str) -> int:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    return sum(1 for line in f if line.endswith("\n") and '"step": 0,' not in line)


def _committed(workdir: str) -> list[int]:
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


@pytest.fixture(scope="module")
def reference_run(env):
  """The uninterrupted run (also the end-to-end test of main.py on the tiny config), started
  here and running beside the interrupted runs; call it to wait for it."""
  workdir = os.path.join(env["root"], "uninterrupted")
  proc = h.start_main(workdir, h.bindings(env["assets"]), env["cache"])

  def finished() -> str:
    assert _wait(proc, workdir) == 0, h.log_tail(workdir)
    return workdir
  yield finished
  if proc.poll() is None:
    proc.kill()


def test_interrupted_runs_resume_exactly(reference_run, env):
  workdir = os.path.join(env["root"], "interrupted")
  args = (workdir, h.bindings(env["assets"]), env["cache"])
  # 1. SIGINT once step 1 is logged: the step in flight finishes, a checkpoint is saved, exit 0.
  proc = h.start_main(*args)
  _wait_for(lambda: _rows_written(workdir) >= 1, proc, workdir, "step 1")
  proc.send_signal(signal.SIGINT)
  assert _wait(proc, workdir) == 0, h.log_tail(workdir)
  stopped_at = _rows_written(workdir)
  assert stopped_at < 8 and _committed(workdir)[-1] == stopped_at
  assert not os.path.exists(os.path.join(workdir, "final_hf"))
  # 2. kill -9 while step 4's checkpoint is being committed (its files written, the final
  #    rename pending): step 4 is not committed; the previous checkpoint stays usable.
  mark = os.path.join(env["root"], "MARK")
  proc = h.start_main(*args, PRORL_TEST_PAUSE_COMMIT="4", PRORL_TEST_MARK=mark)
  _wait_for(lambda: os.path.exists(mark), proc, workdir, "the commit of step 4")
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert "4.orbax-checkpoint-tmp" in os.listdir(os.path.join(workdir, "checkpoints"))
  assert 4 not in _committed(workdir)
  # 3. kill -9 during training, once step 7 is logged (the last checkpoint is 6 or earlier).
  proc = h.start_main(*args)
  _wait_for(lambda: _rows_written(workdir) >= 7, proc, workdir, "step 7")
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert max(_committed(workdir)) <= 6
  # 4. Resume to the end.
  proc = h.start_main(*args)
  assert _wait(proc, workdir) == 0, h.log_tail(workdir)

  reference = reference_run()
  assert h.stable_rows(workdir) == h.stable_rows(reference)
  ours, ref = h.read_safetensors(os.path.join(workdir, "final_hf")), h.read_safetensors(
      os.path.join(reference, "final_hf"))
  assert sorted(ours) == sorted(ref)
  for name in ref:
    assert ours[name].tobytes() == ref[name].tobytes(), name
  for step in (6, 8):  # data-iterator states, reset history, counters, key
    assert (read_extras(os.path.join(workdir, "checkpoints", str(step)))
            == read_extras(os.path.join(reference, "checkpoints", str(step))))


def test_main_end_to_end(reference_run, env):
  workdir = reference_run()
  rows = h.stable_rows(workdir)
  assert [r["step"] for r in rows] == list(range(1, 9))
  for name in ("critic/score/mean", "actor/pg_loss", "actor/kl_loss", "actor/entropy",
               "response_length/mean", "prorl/kept_group_frac", "prorl/ref_resets",
               "prorl/length_penalty_on", "rollout/logprob_diff", "actor/grad_norm"):
    assert all(name in r for r in rows), name
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    raw = [json.loads(line) for line in f]
  for name in ("timing_s/gen", "timing_s/reward", "timing_s/old_log_prob", "timing_s/ref",
               "timing_s/update_actor", "timing_s/step", "perf/throughput"):
    assert all(r[name] > 0 for r in raw), name
  # ResetPolicy.interval = 3: resets after steps 3 and 6; validation every 4 steps.
  assert [r["prorl/ref_resets"] for r in rows] == [0, 0, 1, 1, 1, 2, 2, 2]
  assert "val/score" in rows[3] and "val/score" in rows[7] and "val/score" not in rows[0]
  assert any(n.startswith("events.out.tfevents") for n in os.listdir(workdir))
  assert _committed(workdir) == [4, 6, 8]  # every 2 steps, TrainCheckpointer keeps 3
  extras = read_extras(os.path.join(workdir, "checkpoints", "8"))
  assert extras["step"] == 8 and extras["model_dir"] == env["assets"]["model_dir"]
  assert [e["step"] for e in extras["reset_state"]["history"]] == [3, 6]
  # The final policy as a HF directory that transformers loads, equal to the orbax policy.
  final = os.path.join(workdir, "final_hf")
  import torch
  import transformers
  model = transformers.AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32)
  ours = h.read_safetensors(final)
  theirs = model.state_dict()
  tied_only = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
  assert set(ours) == set(theirs) - tied_only, sorted(set(ours) ^ set(theirs))
  for name, p in ours.items():
    np.testing.assert_array_equal(theirs[name].numpy(), p)
  # The evaluation loader reads the checkpoint's policy (architecture from extras["model_dir"]).
  orbax_params = param_arrays(load_policy(os.path.join(workdir, "checkpoints")).model)
  hf_params = param_arrays(load_policy(final).model)
  assert sorted(orbax_params) == sorted(hf_params)
  for name, value in hf_params.items():
    np.testing.assert_array_equal(orbax_params[name], value)


@pytest.mark.parametrize("binding, culprit", [
    ("ResetPolicy.intervall = 3", "intervall"),
    ("NoSuchThing.x = 1", "NoSuchThing"),
    ("ResetPolicy.interval = -1", "ResetPolicy.interval"),
    ("RolloutConfig.group_size = 1", "RolloutConfig.group_size"),
    ("run_job.job = 'sft'", "run_job.job"),
])
def test_bad_binding_fails_at_start_up_naming_it(env, tmp_path, binding, culprit):
  import gin
  from prorl_jax.main import parse_gin
  from prorl_jax.training import jobs
  try:
    with pytest.raises(ValueError, match=culprit):  # unknown names: when parsing
      parse_gin([h.TINY_CONFIG],
                h.bindings(env["assets"]) + [binding])
      jobs.run_job(str(tmp_path / "run"))  # bad values: when the trainer is built
  finally:
    gin.clear_config()
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_main_exits_on_bad_binding_naming_it(env):
  workdir = os.path.join(env["root"], "bad")
  proc = h.start_main(workdir, h.bindings(env["assets"]) + ["ResetPolicy.interval = 0"],
                      env["cache"])
  assert _wait(proc, workdir) != 0
  log = h.log_tail(workdir)
  assert "bad configuration: ResetPolicy.interval" in log, log
  assert not os.path.exists(os.path.join(workdir, "checkpoints"))
