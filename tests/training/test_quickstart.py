"""The quickstart (`python -m prorl_jax.main`, configs/quickstart.gin) shortened to a few steps:
every phase runs on real reasoning-gym puzzles, the ProRL v2 schedule really turns within the
run (a reference reset, the length reward on then off), the outputs the README promises are
written, and a second invocation resumes instead of redoing anything."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

_spec = importlib.util.spec_from_file_location(
    "loop_helpers", os.path.join(os.path.dirname(__file__), "loop_helpers.py"))
lh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lh)

QUICKSTART_CONFIG = os.path.join(lh.REPO, "configs", "quickstart.gin")
SHORT = {
    "QuickstartConfig.train_per_task": 40,
    "QuickstartConfig.heldout_per_task": 3,
    "QuickstartConfig.vocab_size": 400,
    "QuickstartConfig.hidden_size": 32,
    "QuickstartConfig.intermediate_size": 64,
    "QuickstartConfig.num_layers": 1,
    "SFTConfig.steps": 6,
    "SFTConfig.batch_size": 8,
    "TrainerConfig.num_steps": 4,
    "TrainerConfig.checkpoint_every": 2,
    "DataConfig.batch_size": 4,
    "RolloutConfig.group_size": 4,
    "SamplingConfig.max_new_tokens": 12,
    "UpdateConfig.mini_batch_groups": 2,  # 2 updates per step
    "ResetPolicy.interval": 2,
    "LengthRewardConfig.on_updates": 2,
    "LengthRewardConfig.off_updates": 2,
    "EvalConfig.n": 2,
    "EvalConfig.ks": (1, 2),
    "EvalConfig.max_new_tokens": 12,
}


def _run(workdir: str, cache: str) -> str:
  bindings = [f"{k} = {lh.gin_value(v)}" for k, v in SHORT.items()]
  log = workdir + ".log"
  proc = lh.start_main(workdir, bindings, cache, config=QUICKSTART_CONFIG, log=log)
  rc = proc.wait(timeout=900)
  with open(log, errors="replace") as f:
    text = f.read()
  assert rc == 0, text[-4000:]
  return text


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  root = tmp_path_factory.mktemp("quickstart")
  workdir, cache = str(root / "run"), str(root / "xla_cache")
  first = _run(workdir, cache)
  return workdir, cache, first


def test_every_phase_writes_its_outputs(run):
  workdir, _, log = run
  for name in ("data/train.jsonl", "data/heldout.jsonl", "base/config.json",
               "base/tokenizer.json", "final_hf/config.json", "metrics.jsonl",
               "eval/summary.json", "eval/pass_at_k_curves.png", "training_curves.png",
               "quickstart_summary.json"):
    assert os.path.isfile(os.path.join(workdir, name)), name
  assert os.listdir(os.path.join(workdir, "checkpoints"))
  with open(os.path.join(workdir, "quickstart_summary.json")) as f:
    head = json.load(f)
  # a mixture of >= 3 reasoning-gym logic tasks plus a math task, each evaluated held-out
  domains = {t["domain"] for t in head["tasks"].values()}
  assert len(head["tasks"]) >= 4 and domains == {"logic", "math"}
  for t in head["tasks"].values():
    assert t["prompts"] == 3 and 0.0 <= t["base"] <= 1.0 and 0.0 <= t["final"] <= 1.0
  assert set(head["timing_s"]) == {"data", "base", "rl", "eval", "total"}
  assert "all tasks" in log and "held-out pass@1" in log  # the table on stdout


def test_headline_pass_at_1_equals_rescored_samples(run):
  """The table's pass@1 per task, recomputed by hand: every evaluated response re-scored by the
  verifier against its held-out record, then the mean over prompts of the fraction of the n=2
  samples that score 1.0."""
  from prorl_jax.data.readers import read_records
  from prorl_jax.rewards import score_response
  workdir, _, _ = run
  records, _, _ = read_records(os.path.join(workdir, "data", "heldout.jsonl"))
  by_id = {r.id: r for r in records}
  with open(os.path.join(workdir, "quickstart_summary.json")) as f:
    head = json.load(f)
  for checkpoint in ("base", "final"):
    correct: dict[str, dict[str, list[bool]]] = {}
    with open(os.path.join(workdir, "eval", checkpoint, "samples.jsonl")) as f:
      for line in f:
        row = json.loads(line)
        reward = score_response(by_id[row["prompt_id"]], row["response"]).reward
        assert reward == row["score"], row
        correct.setdefault(row["dataset"], {}).setdefault(row["prompt_id"], []).append(
            reward >= 1.0)
    assert set(correct) == set(head["tasks"])
    for task, prompts in correct.items():
      assert len(prompts) == 3 and all(len(v) == 2 for v in prompts.values())
      expected = sum(sum(v) / len(v) for v in prompts.values()) / len(prompts)
      assert head["tasks"][task][checkpoint] == pytest.approx(expected), (checkpoint, task)


def test_the_v2_schedule_turns_inside_the_run(run):
  workdir, _, _ = run
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  assert rows[-1]["prorl/ref_resets"] >= 1  # interval 2 over 4 steps
  on = [r["prorl/length_penalty_on"] for r in rows]
  assert 1.0 in on and 0.0 in on  # 2 updates on, 2 off, 2 updates per step
  assert all(0.0 <= r["critic/score/mean"] <= 1.0 for r in rows)


def test_second_invocation_resumes_without_redoing(run):
  workdir, cache, _ = run
  stamps = {p: os.path.getmtime(os.path.join(workdir, p))
            for p in ("data/train.jsonl", "base/model.safetensors",
                      "final_hf/model.safetensors", "eval/summary.json")}
  with open(os.path.join(workdir, "quickstart_summary.json")) as f:
    before = json.load(f)
  log = _run(workdir, cache)
  for p, t in stamps.items():
    assert os.path.getmtime(os.path.join(workdir, p)) == t, p
  with open(os.path.join(workdir, "quickstart_summary.json")) as f:
    after = json.load(f)
  assert after["tasks"] == before["tasks"]
  assert "all tasks" in log
