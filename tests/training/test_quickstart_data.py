"""Quickstart data: reasoning-gym records, worked answers checked by the real verifiers, splits."""

from __future__ import annotations

import json
import re

import pytest

from prorl_jax.data.readers import read_records
from prorl_jax.rewards import score_response
from prorl_jax.training import quickstart_data as qd


@pytest.fixture(scope="module")
def data():
  return qd.build_quickstart_data(train_per_task=60, heldout_per_task=10, seed=3)


def _task(record):
  return record.metadata["task"]


def test_every_worked_answer_scores_one_with_the_verifiers(data):
  # The verifiers are the independent judges: reasoning-gym's scorer (logic) and math-verify.
  by_id = {r.id: r for r in data.train}
  assert len(data.sft) == len(data.train)
  for pair in data.sft:
    result = score_response(by_id[pair["id"]], pair["completion"])
    assert result.reward == 1.0, (pair, result)


def test_a_wrong_answer_scores_zero(data):
  for task in qd.QUICKSTART_TASKS:
    record = next(r for r in data.heldout if _task(r) == task.name)
    text = ("<think> x</think>\n\\boxed{zzz}" if task.domain == "math"
            else "<think> x</think>\n<answer> zzz</answer>")
    assert score_response(record, text).reward == 0.0


def test_domains_prompts_and_formats(data):
  domains = {t.name: t.domain for t in qd.QUICKSTART_TASKS}
  assert sorted(domains.values()).count("logic") >= 3 and "math" in domains.values()
  for record, pair in zip(data.train, data.sft):
    domain = domains[_task(record)]
    assert record.domain == domain
    if domain == "math":
      assert record.prompt.endswith(qd.MATH_INSTRUCTION)
      assert re.fullmatch(r"<think> .+</think>\n\\boxed\{-?\d+\}", pair["completion"])
    else:
      assert record.prompt.endswith(qd.LOGIC_INSTRUCTION)
      assert record.ground_truth["task"] == _task(record)
      assert re.fullmatch(r"<think> .+</think>\n<answer> .+</answer>", pair["completion"])


def test_leg_counting_steps_follow_the_animal_table(data):
  # Independent table: legs per animal written out here, not read from reasoning-gym.
  legs = {"spider": 8, "cow": 4, "duck": 2, "snake": 0, "crab": 10, "woodlouse": 14,
          "starfish": 5, "ant": 6}
  checked = 0
  for pair, record in zip(data.sft, data.train):
    if _task(record) != "leg_counting":
      continue
    think = pair["completion"].split("</think>")[0][len("<think> "):]
    for step in think.split(", "):
      m = re.fullmatch(r"(\d+) ([a-z ]+?)s? (\d+) x (\d+) = (\d+)", step)
      if m is None:
        continue
      count, animal, per, count2, total = m.groups()
      assert count == count2 and int(per) * int(count) == int(total)
      if animal in legs:
        assert int(per) == legs[animal]
        checked += 1
  assert checked > 0


def test_arithmetic_steps_by_hand():
  entry = {"question": "State the final answer to the following arithmetic problem: 4 - 1 - 7 =",
           "answer": "-4", "metadata": {"expression": "4 - 1 - 7"}}
  chain = next(t for t in qd.QUICKSTART_TASKS if t.name == "chain_sum")
  assert qd.worked_answer(chain, entry) == ("<think> 4 - 1 = 3, 3 - 7 = -4</think>\n"
                                            "<answer> -4</answer>")
  basic = next(t for t in qd.QUICKSTART_TASKS if t.name == "basic_arithmetic")
  entry = {"question": "Calculate 82 + 74.", "answer": "156", "metadata": {}}
  assert qd.worked_answer(basic, entry) == "<think> 82 + 74 = 156</think>\n\\boxed{156}"
  bad = {"question": "Calculate 2 + 2.", "answer": "5", "metadata": {}}
  with pytest.raises(ValueError, match="gold"):
    qd.worked_answer(basic, bad)


def test_aiw_steps_by_hand():
  aiw = next(t for t in qd.QUICKSTART_TASKS if t.name == "aiw")
  entry = {"question": "Susan has 3 brothers and she also has 5 sisters. How many sisters does "
                       "James's brother have?", "answer": "6",
           "metadata": {"task_type": "siblings"}}
  # James's brother's sisters: Susan's 5 sisters and Susan herself.
  assert qd.worked_answer(aiw, entry) == "<think> 5 sisters + 1 = 6</think>\n<answer> 6</answer>"
  with pytest.raises(ValueError, match="siblings"):
    qd.worked_answer(aiw, {**entry, "metadata": {"task_type": "friends"}})


def test_split_sizes_disjoint_and_deterministic(data):
  for task in qd.QUICKSTART_TASKS:
    train = [r for r in data.train if _task(r) == task.name]
    held = [r for r in data.heldout if _task(r) == task.name]
    assert len(held) == 10
    assert len(train) + data.report[task.name]["train_duplicates_removed"] == 60
    assert {r.prompt for r in train}.isdisjoint({r.prompt for r in held})
    assert len({r.prompt for r in held}) == 10
  again = qd.build_quickstart_data(train_per_task=60, heldout_per_task=10, seed=3)
  assert [r.to_json() for r in again.heldout] == [r.to_json() for r in data.heldout]
  other = qd.build_quickstart_data(train_per_task=60, heldout_per_task=10, seed=4)
  assert [r.prompt for r in other.heldout] != [r.prompt for r in data.heldout]


def test_write_and_read_back(data, tmp_path):
  paths = qd.write_quickstart_data(data, str(tmp_path), extra_manifest={"seed": 3})
  train, _, _ = read_records(paths["train"])
  heldout, _, _ = read_records(paths["heldout"])
  assert [r.to_json() for r in train] == [r.to_json() for r in data.train]
  assert [r.to_json() for r in heldout] == [r.to_json() for r in data.heldout]
  assert qd.read_sft_pairs(paths["sft"]) == data.sft
  manifest = json.loads(open(paths["manifest"]).read())
  assert manifest["seed"] == 3 and set(manifest["tasks"]) == {t.name for t in
                                                              qd.QUICKSTART_TASKS}


def test_bad_input(tmp_path):
  with pytest.raises(ValueError, match="domain 'code'"):
    qd.TaskSpec("leg_counting", "code")
  with pytest.raises(ValueError, match="no worked-answer writer"):
    qd.TaskSpec("sudoku", "logic")
  with pytest.raises(ValueError, match="no tasks"):
    qd.build_quickstart_data((), train_per_task=1, heldout_per_task=1, seed=0)
  with pytest.raises(ValueError, match="must be >= 1"):
    qd.build_quickstart_data(train_per_task=0, heldout_per_task=1, seed=0)
  bad = tmp_path / "sft.jsonl"
  bad.write_text('{"prompt": "p", "completion": "c"}\n{"prompt": 3}\n')
  with pytest.raises(ValueError, match=r"sft.jsonl:2"):
    qd.read_sft_pairs(str(bad))
