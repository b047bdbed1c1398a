"""The quickstart's data: reasoning-gym puzzles generated offline, as prompt records (train and
held-out splits) plus worked answers for the supervised warm start.

reasoning-gym (Apache-2.0) generates every puzzle locally from a seed
(`reasoning_gym.create_dataset(task, size=n, seed=seed, **difficulty)`); the tasks below are its
own generators at an easy difficulty, so that a ~1M-parameter policy can learn part of them in a
few CPU minutes. Logic tasks become domain "logic" records scored by reasoning-gym's own scorer
on the `<answer>` content (ProRL spec §8); the math task becomes domain "math" records scored by
math-verify on the last `\\boxed{}`.

Worked answers (the SFT targets; ProRL starts from an SFT-distilled model) are short: a
`<think>` block that spells out the steps, then the final answer in the format the verifiers
parse (`<answer>..</answer>` for logic, `\\boxed{}` for math), e.g. leg_counting:

    <think> 2 cows 4 x 2 = 8, 1 bee 6 x 1 = 6, 8 + 6 = 14</think>
    <answer> 14</answer>

Files (`write_quickstart_data`): train.jsonl and heldout.jsonl (prompt records,
`data/schema.py`), sft.jsonl ({"id", "prompt", "completion"} per line, from the train split) and
manifest.json. Held-out questions never occur in train (same question text -> removed from
train).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from prorl_jax.data.readers import write_jsonl
from prorl_jax.data.schema import Record, parse_record
from prorl_jax.evaluation.jsonl import iter_json_lines

LICENCE = "Apache-2.0 (reasoning-gym)"
LOGIC_INSTRUCTION = "Give your final answer inside <answer></answer> tags."
MATH_INSTRUCTION = "Put your final answer within \\boxed{}."
TRAIN_FILE, HELDOUT_FILE, SFT_FILE, MANIFEST_FILE = (
    "train.jsonl", "heldout.jsonl", "sft.jsonl", "manifest.json")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """One reasoning-gym task of the quickstart mixture.

  Attributes:
    name: the reasoning-gym dataset name.
    domain: "logic" (reasoning-gym scorer on `<answer>`) or "math" (math-verify on `\\boxed{}`).
    config: reasoning-gym config overrides (the difficulty), as (key, value) pairs.
  """
  name: str
  domain: str
  config: tuple[tuple[str, Any], ...] = ()

  def __post_init__(self):
    if self.domain not in ("logic", "math"):
      raise ValueError(f"TaskSpec {self.name!r}: domain {self.domain!r} is not logic or math")
    if self.name not in _WORKED:
      raise ValueError(f"TaskSpec {self.name!r}: no worked-answer writer for this task; "
                       f"known: {sorted(_WORKED)}")


def _leg_counting(entry: Mapping[str, Any]) -> str:
  from reasoning_gym.arithmetic.leg_counting import ANIMALS  # pylint: disable=g-import-not-at-top
  # The question lists "2 grasshoppers, 1 woodlouse"; the steps repeat each item as written.
  listed = entry["question"].rsplit("if you have ", 1)[-1].split("?")[0].split(", ")
  animals = entry["metadata"]["animals"]
  if len(listed) != len(animals):
    raise ValueError(f"leg_counting entry: cannot find the {len(animals)} animals in "
                     f"{entry['question']!r}")
  steps, totals = [], []
  for item, (animal, count) in zip(listed, animals.items()):
    legs = ANIMALS[animal]
    steps.append(f"{item} {legs} x {count} = {legs * count}")
    totals.append(legs * count)
  if len(totals) > 1:
    steps.append(" + ".join(map(str, totals)) + f" = {sum(totals)}")
  return ", ".join(steps)


def _family_relationships(entry: Mapping[str, Any]) -> str:
  meta = entry["metadata"]
  return f"{meta['person1']} to {meta['person2']}"


def _aiw_siblings(entry: Mapping[str, Any]) -> str:
  """"X has 5 sisters and she also has 3 brothers. How many sisters does Y's brother have?":
  X's sisters plus X herself."""
  m = re.search(r"has (\d+) sisters", entry["question"])
  if entry["metadata"].get("task_type") != "siblings" or m is None:
    raise ValueError(f"aiw entry: only the siblings task type has worked answers: "
                     f"{entry['question'][:80]!r}")
  sisters = int(m.group(1))
  if str(sisters + 1) != str(entry["answer"]):
    raise ValueError(f"aiw worked answer {sisters + 1} != gold {entry['answer']!r}")
  return f"{sisters} sisters + 1 = {sisters + 1}"


def _word_sequence_reversal(entry: Mapping[str, Any]) -> str:
  return ", ".join(entry["metadata"]["words"])


def _arithmetic(entry: Mapping[str, Any]) -> str:
  """Left to right, one operation per step: "4 - 1 - 7" -> "4 - 1 = 3, 3 - 7 = -4"."""
  expression = entry["metadata"].get("expression")
  if expression is None:  # basic_arithmetic: "Calculate <expression>."
    expression = entry["question"].split("Calculate", 1)[-1].strip().rstrip(".")
  tokens = expression.split()
  if len(tokens) < 3 or len(tokens) % 2 == 0 or any(op not in "+-" for op in tokens[1::2]):
    return f"{expression} = {entry['answer']}"   # not a plain +/- chain: one step
  steps, value = [], int(tokens[0])
  for op, term in zip(tokens[1::2], tokens[2::2]):
    new = value + int(term) if op == "+" else value - int(term)
    steps.append(f"{value} {op} {term} = {new}")
    value = new
  if str(value) != str(entry["answer"]).strip():
    raise ValueError(f"worked answer {value} != gold {entry['answer']!r} for {expression!r}")
  return ", ".join(steps)


# task name -> the <think> content of its worked answer
_WORKED: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "leg_counting": _leg_counting,
    "family_relationships": _family_relationships,
    "aiw": _aiw_siblings,
    "word_sequence_reversal": _word_sequence_reversal,
    "basic_arithmetic": _arithmetic,
    "chain_sum": _arithmetic,
}

QUICKSTART_TASKS = (
    TaskSpec("leg_counting", "logic", (("min_animals", 1), ("max_animals", 2),
                                       ("min_instances", 1), ("max_instances", 3))),
    TaskSpec("aiw", "logic", (("task_types", ("siblings",)), ("task_type_weights", (1.0,)),
                              ("max_entities", 6))),
    TaskSpec("chain_sum", "logic", (("min_terms", 2), ("max_terms", 3), ("min_digits", 1),
                                    ("max_digits", 1))),
    TaskSpec("basic_arithmetic", "math", (("min_terms", 2), ("max_terms", 2),
                                          ("min_digits", 1), ("max_digits", 1),
                                          ("operators", ("+", "-")),
                                          ("allow_parentheses", False),
                                          ("allow_negation", False))),
)


def worked_answer(task: TaskSpec, entry: Mapping[str, Any]) -> str:
  """The SFT target for one entry: `<think>steps</think>` then the answer in the verifier's
  format (`<answer>a</answer>` for logic, `\\boxed{a}` for math)."""
  think = _WORKED[task.name](entry)
  # A space after each opening tag: words then tokenize as they do inside the question
  # (" power", not "power"); the verifiers strip it.
  final = (f"\\boxed{{{entry['answer']}}}" if task.domain == "math"
           else f"<answer> {entry['answer']}</answer>")
  return f"<think> {think}</think>\n{final}"


def to_record(task: TaskSpec, entry: Mapping[str, Any], *, index: int, seed: int) -> Record:
  """One entry as a prompt record (logic: ground truth {"task", "entry"}; math: the answer
  string), id "quickstart/<task>/<seed>/<index>"."""
  metadata = {"source": "reasoning-gym", "licence": LICENCE, "task": task.name, "seed": seed,
              "index": index}
  record_id = f"quickstart/{task.name}/{seed}/{index}"
  question = entry["question"].rstrip()
  if task.domain == "math":
    obj = {"domain": "math", "prompt": f"{question}\n\n{MATH_INSTRUCTION}",
           "ground_truth": str(entry["answer"])}
  else:
    obj = {"domain": "logic", "prompt": f"{question}\n\n{LOGIC_INSTRUCTION}",
           "ground_truth": {"task": task.name, "entry": dict(entry)}}
  return parse_record({**obj, "id": record_id, "metadata": metadata}, record_id)


def generate_entries(task: TaskSpec, n: int, seed: int) -> list[dict[str, Any]]:
  """`n` reasoning-gym entries of `task` (seeded), each after a JSON round trip (what a record
  file stores).

  Raises:
    ValueError: an entry whose gold answer no longer scores 1.0 with reasoning-gym's scorer
      after the round trip (the record would be unscorable), naming the task and index.
  """
  import reasoning_gym  # pylint: disable=g-import-not-at-top
  config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in task.config}
  if task.name == "aiw" and "task_types" in config:  # reasoning-gym wants its enum here
    from reasoning_gym.logic.aiw import TaskType  # pylint: disable=g-import-not-at-top
    config["task_types"] = [TaskType(t) for t in config["task_types"]]
  with contextlib.redirect_stdout(sys.stderr):
    dataset = reasoning_gym.create_dataset(task.name, size=n, seed=seed, **config)
    entries = [json.loads(json.dumps(dataset[i])) for i in range(n)]
  score = reasoning_gym.get_score_answer_fn(task.name)
  for i, entry in enumerate(entries):
    if score(entry["answer"], entry) != 1.0:
      raise ValueError(f"reasoning-gym task {task.name!r} entry {i}: the gold answer does not "
                       "score 1.0 after a JSON round trip")
  return entries


@dataclasses.dataclass
class QuickstartData:
  """The splits of one build: train and held-out records, SFT pairs (from train) and a report
  per task ({"train", "heldout", "train_duplicates_removed"})."""
  train: list[Record]
  heldout: list[Record]
  sft: list[dict[str, str]]
  report: dict[str, dict[str, int]]


def build_quickstart_data(tasks: Sequence[TaskSpec] = QUICKSTART_TASKS, *, train_per_task: int,
                          heldout_per_task: int, seed: int) -> QuickstartData:
  """Generates every task and splits it (module docstring).

  Per task, `train_per_task + heldout_per_task` entries are generated with `seed`; a seeded
  permutation (seed, crc32(task)) picks `heldout_per_task` entries with distinct questions as
  held out; train is the rest minus any entry whose question is held out (easy tasks repeat
  questions), so train can be smaller than `train_per_task`.

  Raises:
    ValueError: no tasks, non-positive sizes, a duplicate task name, or `generate_entries`'.
  """
  if not tasks:
    raise ValueError("build_quickstart_data: no tasks")
  if train_per_task < 1 or heldout_per_task < 1:
    raise ValueError(f"train_per_task={train_per_task} and heldout_per_task="
                     f"{heldout_per_task} must be >= 1")
  names = [t.name for t in tasks]
  if len(set(names)) != len(names):
    raise ValueError(f"build_quickstart_data: duplicate task names in {names}")
  train, heldout, sft, report = [], [], [], {}
  for task in tasks:
    entries = generate_entries(task, train_per_task + heldout_per_task, seed)
    order = np.random.default_rng([seed, zlib.crc32(task.name.encode())]).permutation(
        len(entries))
    held_idx, held_questions = [], set()
    for i in order.tolist():
      if len(held_idx) == heldout_per_task:
        break
      if entries[i]["question"] not in held_questions:
        held_idx.append(i)
        held_questions.add(entries[i]["question"])
    held_set = set(held_idx)
    train_idx = [i for i in range(len(entries)) if i not in held_set]
    kept = [i for i in train_idx if entries[i]["question"] not in held_questions]
    for i in sorted(held_idx):
      heldout.append(to_record(task, entries[i], index=i, seed=seed))
    for i in kept:
      record = to_record(task, entries[i], index=i, seed=seed)
      train.append(record)
      sft.append({"id": record.id, "prompt": record.prompt,
                  "completion": worked_answer(task, entries[i])})
    report[task.name] = {"train": len(kept), "heldout": len(held_idx),
                         "train_duplicates_removed": len(train_idx) - len(kept)}
  return QuickstartData(train=train, heldout=heldout, sft=sft, report=report)


def data_paths(out_dir: str) -> dict[str, str]:
  """{"train", "heldout", "sft", "manifest"} -> the file paths under `out_dir`."""
  return {key: os.path.join(out_dir, name) for key, name in
          (("train", TRAIN_FILE), ("heldout", HELDOUT_FILE), ("sft", SFT_FILE),
           ("manifest", MANIFEST_FILE))}


def write_quickstart_data(data: QuickstartData, out_dir: str, *,
                          extra_manifest: Mapping[str, Any] | None = None) -> dict[str, str]:
  """Writes train.jsonl, heldout.jsonl, sft.jsonl and manifest.json under `out_dir` (created);
  returns {"train", "heldout", "sft", "manifest"} -> path."""
  os.makedirs(out_dir, exist_ok=True)
  paths = data_paths(out_dir)
  write_jsonl(data.train, paths["train"])
  write_jsonl(data.heldout, paths["heldout"])
  with open(paths["sft"], "w", encoding="utf-8") as f:
    for pair in data.sft:
      f.write(json.dumps(pair, ensure_ascii=False) + "\n")
  manifest = {"source": "reasoning-gym", "licence": LICENCE, "tasks": data.report,
              **(extra_manifest or {})}
  with open(paths["manifest"], "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=1)
  return paths


def read_sft_pairs(path: str) -> list[dict[str, str]]:
  """sft.jsonl -> [{"id", "prompt", "completion"}]. Raises ValueError naming path:line on a
  line that is not such an object."""
  pairs = []
  for line_no, obj in iter_json_lines(path):
    if not (isinstance(obj, dict) and isinstance(obj.get("prompt"), str)
            and isinstance(obj.get("completion"), str)):
      raise ValueError(f"{path}:{line_no}: expected an object with string 'prompt' and "
                       "'completion'")
    pairs.append(obj)
  return pairs
