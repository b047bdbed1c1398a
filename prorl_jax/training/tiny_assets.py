"""A tiny local policy and prompt set for CPU runs (configs/tiny_cpu.gin, tests, benchmarks).

Nothing is downloaded: the policy is a random Qwen2 written by `models.tiny.
make_tiny_hf_checkpoint` (transformers, CPU) with its byte-level BPE tokenizer; the prompts are
reasoning-gym puzzles generated in-process (logic records, as tools/build_reasoning_gym.py
writes them) and IFEval-style instruction prompts (ifeval records) whose instructions a random
policy satisfies part of the time (no commas, lowercase, a word budget), so groups have
differing rewards and the policy gradient is not zero from the first step.

`tiny_assets(workdir)` (gin-configurable; `run_job.setup = @tiny_assets`) writes them under
`<workdir>/assets/` once (an existing directory is reused, so a resumed run trains on the same
files) and returns the overrides the trainer takes: the model directory and the data files.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import gin

from prorl_jax.data.readers import write_jsonl
from prorl_jax.data.schema import parse_record

LOGIC_INSTRUCTION = "Give your final answer inside <answer></answer> tags."
_TOPICS = ("cats", "rain", "a river", "bread", "the moon", "a bike", "tea", "snow", "a city",
           "music", "the sea", "a garden")
_INSTRUCTIONS = (
    ("punctuation:no_comma", {}, "Do not use any commas."),
    ("change_case:english_lowercase", {}, "Use only lowercase letters."),
    ("length_constraints:number_words", {"num_words": 4, "relation": "less than"},
     "Use fewer than 4 words."),
)


def ifeval_records(n: int, seed: int) -> list[dict[str, Any]]:
  """n short instruction-following records (one or two instructions each), seeded."""
  rng = random.Random(seed)
  out = []
  for i in range(n):
    chosen = rng.sample(_INSTRUCTIONS, rng.choice((1, 2)))
    topic = rng.choice(_TOPICS)
    prompt = f"Write about {topic}. " + " ".join(text for _, _, text in chosen)
    out.append({"id": f"if{seed}-{i}", "domain": "ifeval", "prompt": prompt,
                "ground_truth": {"instruction_id_list": [c[0] for c in chosen],
                                 "kwargs": [dict(c[1]) for c in chosen]}})
  return out


def logic_records(task: str, n: int, seed: int) -> list[dict[str, Any]]:
  """n reasoning-gym puzzles of `task` as logic records (question + the <answer> instruction)."""
  import reasoning_gym  # noqa: PLC0415 - slow import, only when logic records are asked for
  kwargs = ({"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}
            if task == "basic_arithmetic" else {})
  data = reasoning_gym.create_dataset(task, size=n, seed=seed, **kwargs)
  out = []
  for i, entry in enumerate(data):
    entry = json.loads(json.dumps(entry))
    out.append({"id": f"{task}-{seed}-{i}", "domain": "logic",
                "prompt": f"{entry['question']} {LOGIC_INSTRUCTION}",
                "ground_truth": {"task": task, "entry": entry}})
  return out


@gin.configurable
def tiny_assets(workdir: str, *, num_train: int = 64, num_validation: int = 8,
                logic_task: str | None = "basic_arithmetic", seed: int = 0,
                hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
                num_kv_heads: int = 2, intermediate_size: int = 128) -> dict[str, Any]:
  """Writes (once) a tiny model and prompt files under `<workdir>/assets`; returns
  {"model_dir": dir, "data": {"train_files": {...}, "validation_files": {...}}}.

  Args:
    num_train, num_validation: records per domain.
    logic_task: a reasoning-gym task for the logic domain; None: instruction prompts only.
    seed: the model's and the prompts' seed.
    hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size: the Qwen2 shape.
  """
  from prorl_jax.models.tiny import make_tiny_hf_checkpoint  # noqa: PLC0415 - imports torch
  root = os.path.join(os.path.abspath(workdir), "assets")
  model_dir = os.path.join(root, "model")
  data_dir = os.path.join(root, "data")
  domains = ["ifeval"] + (["logic"] if logic_task else [])
  files = {split: {d: os.path.join(data_dir, f"{d}_{split}.jsonl") for d in domains}
           for split in ("train", "validation")}
  done = os.path.join(root, "DONE")
  if not os.path.exists(done):
    os.makedirs(data_dir, exist_ok=True)
    make_tiny_hf_checkpoint(model_dir, hidden_size=hidden_size, num_layers=num_layers,
                            num_heads=num_heads, num_kv_heads=num_kv_heads,
                            intermediate_size=intermediate_size, seed=seed)
    for split, split_seed in (("train", seed), ("validation", seed + 1_000_003)):
      n = num_train if split == "train" else num_validation
      records = {"ifeval": ifeval_records(n, split_seed)}
      if logic_task:
        records["logic"] = logic_records(logic_task, n, split_seed)
      for domain, recs in records.items():
        write_jsonl([parse_record(r, f"{domain}[{i}]") for i, r in enumerate(recs)],
                    files[split][domain])
    with open(done, "w") as f:
      f.write("ok\n")
  return {"model_dir": model_dir,
          "data": {"train_files": files["train"], "validation_files": files["validation"]}}
