"""The CPU quickstart: `python -m prorl_jax.main` (configs/quickstart.gin binds
`run_job.job = "quickstart"`), end to end on real puzzles with nothing downloaded.

Phases (each skipped when its output exists, so re-running the command resumes):

1. data    reasoning-gym puzzles of the quickstart tasks (`quickstart_data.QUICKSTART_TASKS`:
           three logic tasks + one math task) -> <workdir>/data/{train,heldout,sft}.jsonl.
2. base    a task tokenizer trained on the chat-rendered SFT pairs (`models.task_tokenizer`),
           a small random Qwen2 policy, and a short supervised warm start on worked answers
           (`training.sft`) -> <workdir>/base (an HF directory: the warm-started "base").
3. rl      ProRL v2 with the real `Trainer` (REINFORCE++-baseline, clip-higher, dynamic
           sampling, k2 KL, reference resets, the cosine length reward on its on/off schedule:
           all bound in configs/quickstart.gin) from <workdir>/base on the train split ->
           <workdir>/metrics.jsonl, <workdir>/checkpoints, <workdir>/final_hf. The Trainer
           resumes from its latest checkpoint; Ctrl-C finishes the step, saves and stops.
4. eval    base vs final on the held-out split (`evaluation.checkpoint_eval.
           evaluate_checkpoints`: same prompts and random streams for both) ->
           <workdir>/eval/{summary.json, pass_at_k_curves.png, gain_vs_base_k<K>.png},
           <workdir>/training_curves.png, and the table on stdout.

<workdir>/quickstart_summary.json gathers the headline numbers (pass@1 per task, base vs final)
and the wall time of each phase.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import gin
import jinja2
from flax import nnx

from prorl_jax.data.readers import read_records
from prorl_jax.evaluation import plots
from prorl_jax.evaluation.checkpoint_eval import SUMMARY_JSON, evaluate_checkpoints
from prorl_jax.evaluation.config import EvalConfig
from prorl_jax.evaluation.metrics_log import read_metrics_jsonl
from prorl_jax.models import Decoder, ModelConfig, save_hf_checkpoint
from prorl_jax.models.task_tokenizer import make_task_tokenizer
from prorl_jax.training import quickstart_data as qd
from prorl_jax.training.sft import SFTConfig, train_sft

DATA_DIR, BASE_DIR, EVAL_DIR = "data", "base", "eval"
SUMMARY_FILE = "quickstart_summary.json"
TRAINING_CURVES_PNG = "training_curves.png"
RUN_METRICS = (
    # every response generated this step (critic/score/mean covers only the groups dynamic
    # sampling kept, a population that shifts as groups become all-correct or all-wrong)
    ("rollout/score_all/mean", "reward (mean verifier score, all responses)"),
    ("prorl/kept_group_frac", "dynamic sampling: kept group fraction"),
    ("actor/kl_loss", "KL loss (k2)"),
    ("actor/entropy", "entropy"),
    ("response_length/mean", "response length (tokens)"),
    ("prorl/length_penalty_on", "length reward on"),
)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class QuickstartConfig:
  """What the quickstart builds before RL (the RL settings are the Trainer's gin bindings).

  Attributes:
    seed: the run's seed: puzzles and split, model initialisation, SFT order, and (overriding
      `TrainerConfig.seed` and `DataConfig.seed`) the RL sampling and prompt order.
    tasks: names of `quickstart_data.QUICKSTART_TASKS` to use (None: all).
    train_per_task, heldout_per_task: puzzles generated per task for each split (train loses
      the few whose question is held out).
    vocab_size: target size of the task tokenizer.
    hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads: the Qwen2 policy.
  """
  seed: int = 0
  tasks: tuple[str, ...] | None = None
  train_per_task: int = 2000
  heldout_per_task: int = 50
  vocab_size: int = 1024
  hidden_size: int = 128
  intermediate_size: int = 384
  num_layers: int = 4
  num_heads: int = 4
  num_kv_heads: int = 2

  def __post_init__(self):
    if self.tasks is not None:
      object.__setattr__(self, "tasks", tuple(self.tasks))
      known = [t.name for t in qd.QUICKSTART_TASKS]
      unknown = [t for t in self.tasks if t not in known]
      if unknown or not self.tasks:
        raise ValueError(f"QuickstartConfig.tasks={self.tasks!r}: choose from {known}")
    for field in ("train_per_task", "heldout_per_task", "hidden_size", "intermediate_size",
                  "num_layers", "num_heads", "num_kv_heads"):
      if getattr(self, field) < 1:
        raise ValueError(f"QuickstartConfig.{field}={getattr(self, field)} must be >= 1")
    if self.hidden_size % self.num_heads:
      raise ValueError(f"QuickstartConfig.hidden_size={self.hidden_size} is not a multiple of "
                       f"num_heads={self.num_heads}")

  def task_specs(self) -> tuple[qd.TaskSpec, ...]:
    if self.tasks is None:
      return qd.QUICKSTART_TASKS
    return tuple(t for t in qd.QUICKSTART_TASKS if t.name in self.tasks)

  def model_config(self, vocab_size: int) -> ModelConfig:
    """The policy's Qwen2 shape (q/k/v bias, untied embeddings, head_dim = hidden/heads)."""
    return ModelConfig(vocab_size=vocab_size, hidden_size=self.hidden_size,
                       intermediate_size=self.intermediate_size, num_layers=self.num_layers,
                       num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
                       head_dim=self.hidden_size // self.num_heads, qkv_bias=True,
                       max_position_embeddings=1024, architecture="Qwen2ForCausalLM")


def _replace_dir(tmp: str, final: str) -> None:
  """Moves a finished `tmp` directory to `final` (a phase's output appears all at once)."""
  if os.path.isdir(final):
    shutil.rmtree(final)
  os.replace(tmp, final)


def build_data(workdir: str, config: QuickstartConfig) -> dict[str, str]:
  """Phase 1: the puzzles (skipped when <workdir>/data/manifest.json exists). Returns the
  file paths (`quickstart_data.write_quickstart_data`)."""
  out = os.path.join(workdir, DATA_DIR)
  paths = qd.data_paths(out)
  if os.path.isfile(paths["manifest"]):
    return paths
  data = qd.build_quickstart_data(config.task_specs(), train_per_task=config.train_per_task,
                                  heldout_per_task=config.heldout_per_task, seed=config.seed)
  tmp = out + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  qd.write_quickstart_data(data, tmp, extra_manifest={
      "seed": config.seed, "task_configs": {t.name: dict(t.config) for t in config.task_specs()}})
  _replace_dir(tmp, out)
  return paths


def build_base(workdir: str, config: QuickstartConfig, sft_path: str,
               sft_config: SFTConfig | None = None,
               log_fn: Callable[[str], None] | None = print) -> str:
  """Phase 2: tokenizer + random Qwen2 + supervised warm start -> <workdir>/base (skipped when
  it exists). Returns the directory. The SFT order is seeded by `config.seed`."""
  out = os.path.join(workdir, BASE_DIR)
  if os.path.isfile(os.path.join(out, "config.json")):
    return out
  pairs = qd.read_sft_pairs(sft_path)
  from prorl_jax.models.tiny import CHAT_TEMPLATE  # noqa: PLC0415
  template = jinja2.Template(CHAT_TEMPLATE)
  corpus = [template.render(messages=[{"role": "user", "content": p["prompt"]},
                                      {"role": "assistant", "content": p["completion"]}])
            for p in pairs]
  tmp = out + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  tokenizer = make_task_tokenizer(corpus, vocab_size=config.vocab_size, path=tmp)
  model = Decoder(config.model_config(len(tokenizer)), rngs=nnx.Rngs(config.seed))
  sft_config = dataclasses.replace(sft_config or SFTConfig(), seed=config.seed)
  stats = train_sft(model, tokenizer, pairs, sft_config, log_fn=log_fn)
  save_hf_checkpoint(model, tmp)
  with open(os.path.join(tmp, "config.json")) as f:
    hf_config = json.load(f)
  hf_config.update(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                   bos_token_id=None)
  with open(os.path.join(tmp, "config.json"), "w") as f:
    json.dump(hf_config, f, indent=2, sort_keys=True)
  with open(os.path.join(tmp, "sft_stats.json"), "w") as f:
    json.dump({**stats, "config": dataclasses.asdict(sft_config)}, f, indent=1)
  _replace_dir(tmp, out)
  return out


def run_rl(workdir: str, base_dir: str, train_path: str, config: QuickstartConfig) -> bool:
  """Phase 3: the Trainer from `base_dir` on the train split (its settings from gin; seed and
  data seed from `config.seed`). Returns whether <workdir>/final_hf exists (False after a stop
  signal: the checkpoint is saved and the next call resumes)."""
  from prorl_jax.evaluation.checkpoints import is_hf_dir  # noqa: PLC0415
  from prorl_jax.training.loop import FINAL_HF_DIR, Trainer, TrainerConfig  # noqa: PLC0415
  final = os.path.join(workdir, FINAL_HF_DIR)
  if is_hf_dir(final):
    return True
  trainer_config = dataclasses.replace(TrainerConfig(), model_dir=base_dir, seed=config.seed)
  trainer = Trainer(workdir, trainer_config,
                    data_overrides={"train_files": {"quickstart": train_path},
                                    "seed": config.seed})
  trainer.run()
  return is_hf_dir(final)


def heldout_by_task(heldout_path: str) -> dict[str, list[Any]]:
  """The held-out records grouped by task (metadata["task"]), in file order."""
  records, _, _ = read_records(heldout_path)
  out: dict[str, list[Any]] = {}
  for record in records:
    out.setdefault(record.metadata["task"], []).append(record)
  return out


def headline(summary: dict[str, Any]) -> dict[str, Any]:
  """{"tasks": {task: {"domain", "prompts", "base", "final", "gain"}}, "all": {...}} of held-out
  pass@1 (fractions) from an evaluation summary (`evaluate_checkpoints`' summary.json). "all"
  weighs every held-out prompt equally."""
  reports = summary["comparison"]["checkpoints"]
  tasks: dict[str, Any] = {}
  for task, r in reports["base"]["datasets"].items():
    final = reports["final"]["datasets"][task]
    tasks[task] = {"domain": r["domain"], "prompts": r["num_prompts"], "base": r["pass@1"],
                   "final": final["pass@1"], "gain": final["pass@1"] - r["pass@1"]}
  total = sum(t["prompts"] for t in tasks.values())
  mean = lambda key: sum(t[key] * t["prompts"] for t in tasks.values()) / total
  return {"tasks": tasks, "all": {"prompts": total, "base": mean("base"),
                                  "final": mean("final"), "gain": mean("final") - mean("base")}}


def format_headline(head: dict[str, Any], eval_settings: dict[str, Any]) -> str:
  """The quickstart's closing table (percentages)."""
  lines = [f"held-out pass@1, base (warm-started) vs final (after RL); n={eval_settings['n']} "
           f"samples per prompt, temperature {eval_settings['temperature']}, "
           f"top-p {eval_settings['top_p']}",
           f"{'task':<24} {'domain':<7} {'prompts':>7} {'base':>7} {'final':>7} {'gain':>7}"]
  lines.append("-" * len(lines[-1]))
  for task, t in head["tasks"].items():
    lines.append(f"{task:<24} {t['domain']:<7} {t['prompts']:>7d} {100 * t['base']:>7.2f} "
                 f"{100 * t['final']:>7.2f} {100 * t['gain']:>+7.2f}")
  a = head["all"]
  lines.append("-" * len(lines[1]))
  lines.append(f"{'all tasks':<24} {'':<7} {a['prompts']:>7d} {100 * a['base']:>7.2f} "
               f"{100 * a['final']:>7.2f} {100 * a['gain']:>+7.2f}")
  return "\n".join(lines)


def evaluate_run(workdir: str, base_dir: str, final_dir: str, heldout_path: str,
                 print_fn: Callable[[str], None] = print) -> dict[str, Any]:
  """Phase 4: base vs final on the held-out puzzles (one dataset per task), the training-curve
  PNG; returns the evaluation summary (also <workdir>/eval/summary.json)."""
  out = os.path.join(workdir, EVAL_DIR)
  outcome = evaluate_checkpoints({"base": base_dir, "final": final_dir},
                                 heldout_by_task(heldout_path), EvalConfig(), out,
                                 base="base", print_fn=print_fn)
  metrics = os.path.join(workdir, "metrics.jsonl")
  if os.path.isfile(metrics):
    fig, _ = plots.plot_training_curves(read_metrics_jsonl(metrics), RUN_METRICS)
    if fig is not None:
      print_fn(plots.save_png(fig, os.path.join(workdir, TRAINING_CURVES_PNG)))
  return outcome.summary


class _Timer:
  """Wall seconds per phase, accumulated over the invocations that ran it (a resumed phase
  adds up), kept in <workdir>/quickstart_timing.json."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "quickstart_timing.json")
    self.seconds: dict[str, float] = {}
    if os.path.isfile(self.path):
      with open(self.path) as f:
        self.seconds = json.load(f)

  def add(self, phase: str, seconds: float) -> None:
    self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds
    with open(self.path, "w") as f:
      json.dump(self.seconds, f, indent=1)


def run_quickstart(workdir: str, print_fn: Callable[[str], None] = print) -> dict[str, Any] | None:
  """Runs (or resumes) the four phases in `workdir` (module docstring).

  Returns:
    The headline numbers ({"tasks", "all", "timing_s"}, also <workdir>/quickstart_summary.json),
    or None when the run was stopped (Ctrl-C / SIGTERM) before the end: re-run to resume.
  Raises:
    ValueError: a bad gin setting (QuickstartConfig, SFTConfig, the Trainer's), naming it.
  """
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  config = QuickstartConfig()
  sft_config = SFTConfig()
  timer = _Timer(workdir)
  phase = "data"
  try:
    t0 = time.perf_counter()
    existed = os.path.isdir(os.path.join(workdir, DATA_DIR))
    paths = build_data(workdir, config)
    if not existed:
      timer.add("data", time.perf_counter() - t0)
    print_fn(f"[quickstart] data: {paths['train']}, {paths['heldout']}")
    phase = "base"
    t0 = time.perf_counter()
    existed = os.path.isdir(os.path.join(workdir, BASE_DIR))
    base_dir = build_base(workdir, config, paths["sft"], sft_config, log_fn=print_fn)
    if not existed:
      timer.add("base", time.perf_counter() - t0)
    print_fn(f"[quickstart] warm-started base policy: {base_dir}")
    phase = "rl"
    t0 = time.perf_counter()
    from prorl_jax.training.loop import FINAL_HF_DIR  # noqa: PLC0415
    final_dir = os.path.join(workdir, FINAL_HF_DIR)
    was_done = os.path.isdir(final_dir)
    finished = run_rl(workdir, base_dir, paths["train"], config)
    if not was_done:
      timer.add("rl", time.perf_counter() - t0)
    if not finished:
      print_fn(f"[quickstart] stopped during RL (checkpoint saved in {workdir}/checkpoints); "
               "run the same command again to resume")
      return None
    print_fn(f"[quickstart] final policy: {final_dir}")
    phase = "eval"
    summary_path = os.path.join(workdir, EVAL_DIR, SUMMARY_JSON)
    if os.path.isfile(summary_path):
      with open(summary_path) as f:
        summary = json.load(f)
    else:
      t0 = time.perf_counter()
      summary = evaluate_run(workdir, base_dir, final_dir, paths["heldout"], print_fn)
      timer.add("eval", time.perf_counter() - t0)
  except KeyboardInterrupt:
    print_fn(f"[quickstart] interrupted during the {phase} phase; run the same command again "
             "to resume (finished phases are kept)")
    return None
  head = {**headline(summary), "timing_s": dict(timer.seconds)}
  head["timing_s"]["total"] = sum(timer.seconds.values())
  with open(os.path.join(workdir, SUMMARY_FILE), "w") as f:
    json.dump(head, f, indent=1)
  print_fn(format_headline(head, summary["config"]))
  print_fn("[quickstart] wall time: " + ", ".join(
      f"{k} {v:.0f} s" for k, v in head["timing_s"].items()))
  logging.info("quickstart summary: %s", os.path.join(workdir, SUMMARY_FILE))
  return head
