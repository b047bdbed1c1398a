"""Command line of `python -m prorl_jax.evaluate` (issue 7).

Subcommands (an argument list starting with an option, e.g. `--checkpoint`, means `evaluate`):
  evaluate --checkpoint [NAME=]PATH ... --datasets [NAME=]FILE,... [--config X.gin]
           [--n 16] [--k 1,2,4,...] [--out DIR] [--max-new-tokens T] ...
                              sample n responses per prompt of each dataset from each checkpoint
                              (HF directory or orbax checkpoint of the trainer), score them with
                              the verifiers, and write per-sample JSONL, report JSON, summary.json
                              and pass@k PNGs (checkpoint_eval.py); tables on stdout. Several
                              checkpoints are compared on the same prompts and seeds (gain-vs-base
                              scatter against --base, default the first).
  plot-run --workdir DIR      DIR/metrics.jsonl -> DIR/training_curves.png (reward, KL, entropy,
                              response length; resets as vertical lines); prints the PNG path
                              and the panels skipped for missing metrics.
  report --samples FILE       per-sample JSONL (prorl_jax.evaluation.samples) -> table on stdout,
                              optionally --json OUT.
  compare --samples NAME=FILE ... --base NAME --out DIR
                              several checkpoints on the same prompts -> comparison table,
                              pass_at_k_curves.png and gain_vs_base_k<K>.png in DIR.
  novelty --corpus FILE ... --responses FILE
                              mean n-gram novelty of the responses (a JSONL string field,
                              default "response") against the corpus files; JSON on stdout.

`evaluate` settings come from `EvalConfig` (config.py): code defaults < `--config` gin file and
`--gin_bindings` < explicit flags. The heavy imports (jax, the model, the verifiers) happen only
when `evaluate` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence

from prorl_jax.evaluation import novelty as nv
from prorl_jax.evaluation.jsonl import iter_string_field
from prorl_jax.evaluation import plots
from prorl_jax.evaluation import report as rp
from prorl_jax.evaluation.metrics_log import MetricsLogError, read_metrics_jsonl
from prorl_jax.evaluation.samples import SampleError, read_samples_jsonl

TRAINING_CURVES_PNG = "training_curves.png"
PASS_AT_K_PNG = "pass_at_k_curves.png"


class CliError(Exception):
  """A user error reported as `error: ...` with exit status 1."""


def _parse_ks(text: str) -> list[int]:
  try:
    ks = [int(part) for part in text.split(",") if part.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"--k {text!r}: expected comma-separated integers, "
                                     "e.g. 1,2,4,8") from None
  if not ks or min(ks) < 1:
    raise argparse.ArgumentTypeError(f"--k {text!r}: each k must be >= 1")
  return ks


def _parse_named_file(text: str) -> tuple[str, str]:
  name, sep, path = text.partition("=")
  if not sep or not name or not path:
    raise argparse.ArgumentTypeError(f"--samples {text!r}: expected NAME=FILE")
  return name, path


def plot_run(workdir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None,
             metrics_file: str = "metrics.jsonl") -> tuple[list[str], dict[str, str]]:
  """Draws a run's training curves: reads `workdir/metrics_file`, writes training_curves.png
  into `out_dir` (default `workdir`).

  Returns:
    (written PNG paths, skipped metric -> reason).

  Raises:
    FileNotFoundError: no metrics file. MetricsLogError: a malformed line (path:line).
    CliError: none of the plotted metrics is in the file.
  """
  log = read_metrics_jsonl(os.path.join(workdir, metrics_file))
  fig, skipped = plots.plot_training_curves(log)
  if fig is None:
    raise CliError(f"{log.path}: none of the metrics {[m for m, _ in plots.DEFAULT_RUN_METRICS]} "
                   "is logged; nothing to plot")
  path = plots.save_png(fig, os.path.join(out_dir or workdir, TRAINING_CURVES_PNG))
  return [path], skipped


def _cmd_plot_run(args: argparse.Namespace) -> int:
  paths, skipped = plot_run(args.workdir, args.out, args.metrics_file)
  for metric, why in skipped.items():
    print(f"skipped panel {metric}: {why}")
  for path in paths:
    print(path)
  return 0


def _cmd_report(args: argparse.Namespace) -> int:
  report = rp.build_report(read_samples_jsonl(args.samples), args.k, args.threshold)
  print(rp.format_table(report))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      f.write(rp.report_to_json(report) + "\n")
    print(args.json)
  return 0


def _cmd_compare(args: argparse.Namespace) -> int:
  rows_by_checkpoint = {}
  for name, path in args.samples:
    if name in rows_by_checkpoint:
      raise CliError(f"--samples: checkpoint name {name!r} given twice")
    rows_by_checkpoint[name] = read_samples_jsonl(path)
  if args.base not in rows_by_checkpoint:
    raise CliError(f"--base {args.base!r} is not among the --samples names "
                   f"{list(rows_by_checkpoint)}")
  comparison = rp.compare_checkpoints(rows_by_checkpoint, args.k, args.threshold)
  print(rp.format_comparison_table(comparison))
  curves = {name: rp.pass_at_k_curves(rows, args.threshold)
            for name, rows in rows_by_checkpoint.items()}
  written = [plots.save_png(plots.plot_pass_at_k_curves(curves),
                            os.path.join(args.out, PASS_AT_K_PNG))]
  if len(rows_by_checkpoint) > 1:
    k = args.boundary_k or min(c.size for per in curves.values() for c in per.values())
    written.append(plots.save_png(plots.plot_gain_vs_base(curves, args.base, k),
                                  os.path.join(args.out, f"gain_vs_base_k{k}.png")))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      f.write(rp.report_to_json(comparison) + "\n")
    written.append(args.json)
  for path in written:
    print(path)
  return 0


def _cmd_novelty(args: argparse.Namespace) -> int:
  index = nv.NgramIndex.from_files(args.corpus, args.n, args.corpus_field)
  result = nv.mean_novelty(list(iter_string_field(args.responses, args.field, CliError)), index)
  result.update(corpus_ngrams=len(index), corpus_documents=index.num_documents)
  print(json.dumps(result))
  return 0


def _named_paths(items: Sequence[str], what: str, name_of) -> dict[str, str]:
  """"NAME=PATH" or "PATH" items (each possibly comma-separated) -> {name: path}."""
  out: dict[str, str] = {}
  for item in items:
    for part in (p.strip() for p in item.split(",")):
      if not part:
        continue
      name, sep, path = part.partition("=")
      if not sep or os.sep in name:
        name, path = name_of(part), part
      if not name or not path:
        raise CliError(f"{what} {part!r}: expected PATH or NAME=PATH")
      if name in out:
        raise CliError(f"{what}: two entries are named {name!r}; name them NAME=PATH")
      out[name] = path
  return out


def _file_stem(path: str) -> str:
  base = os.path.basename(os.path.normpath(path))
  for ext in (".gz", ".jsonl", ".json", ".parquet"):
    if base.endswith(ext):
      base = base[:-len(ext)]
  return re.sub(r"[^A-Za-z0-9_.+-]", "_", base)


_FLAG_FIELDS = ("n", "max_new_tokens", "temperature", "top_p", "top_k", "seed",
                "prompts_per_batch", "threshold", "max_prompts", "reward_workers",
                "param_dtype", "dtype", "kv_cache_dtype", "boundary_k")


def eval_config_from_args(args: argparse.Namespace):
  """The `EvalConfig` of an `evaluate` command line: code defaults, then the --config gin files
  and --gin_bindings, then the explicit flags.

  Raises:
    ValueError: a bad binding of EvalConfig (gin's message names it) or a bad value.
  """
  import gin

  from prorl_jax.evaluation.config import EvalConfig
  parsed_gin = bool(args.config or args.gin_bindings)
  try:
    if parsed_gin:
      # Bindings of configurables this command does not import (the trainer's) are skipped;
      # a wrong parameter of EvalConfig still fails here, naming the binding.
      gin.parse_config_files_and_bindings(args.config or [], args.gin_bindings or [],
                                          skip_unknown=True)
    changes = {f: getattr(args, f) for f in _FLAG_FIELDS if getattr(args, f) is not None}
    if args.k is not None:
      changes["ks"] = tuple(args.k)
    return EvalConfig().replace(**changes)
  finally:
    if parsed_gin:
      gin.clear_config()


def _cmd_evaluate(args: argparse.Namespace) -> int:
  from prorl_jax.evaluation import checkpoint_eval
  config = eval_config_from_args(args)
  checkpoints = _named_paths(args.checkpoint, "--checkpoint", _file_stem)
  dataset_items = args.datasets or list(config.datasets)
  if not dataset_items:
    raise CliError("no datasets: give --datasets FILE,... (or bind EvalConfig.datasets)")
  datasets = checkpoint_eval.read_datasets(
      _named_paths(dataset_items, "--datasets", _file_stem), config.max_prompts)
  checkpoint_eval.evaluate_checkpoints(checkpoints, datasets, config, args.out, base=args.base,
                                       model_dir=args.model_dir, step=args.step)
  return 0


def _add_evaluate(sub) -> None:
  p = sub.add_parser("evaluate", help="sample and score checkpoints on datasets (pass@k)")
  p.add_argument("--checkpoint", required=True, nargs="+", metavar="[NAME=]PATH",
                 help="HF directory or orbax checkpoint (root or step); several are compared")
  p.add_argument("--datasets", nargs="+", default=None, metavar="[NAME=]FILE[,...]",
                 help="record files (JSONL/Parquet); name = file stem unless NAME= is given")
  p.add_argument("--config", nargs="+", default=None, metavar="FILE.gin",
                 help="gin files binding EvalConfig.* (other bindings are skipped)")
  p.add_argument("--gin_bindings", nargs="+", default=None, metavar="BINDING",
                 help="extra gin bindings, e.g. 'EvalConfig.n = 4'")
  p.add_argument("--out", default="eval_out", help="output folder (default ./eval_out)")
  p.add_argument("--base", default=None, help="NAME of the base checkpoint (default: first)")
  p.add_argument("--model-dir", dest="model_dir", default=None,
                 help="HF dir with config.json + tokenizer for orbax checkpoints")
  p.add_argument("--step", type=int, default=None, help="step of an orbax root (default latest)")
  p.add_argument("--n", type=int, default=None, help="samples per prompt (default 16)")
  p.add_argument("--k", type=_parse_ks, default=None,
                 help="pass@k to report, e.g. 1,2,4,16 (default 1,2,4,... up to n)")
  p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=None,
                 help="response cap in tokens (default 8192)")
  p.add_argument("--temperature", type=float, default=None, help="default 0.6")
  p.add_argument("--top-p", dest="top_p", type=float, default=None, help="default 0.95")
  p.add_argument("--top-k", dest="top_k", type=int, default=None, help="default 0 (off)")
  p.add_argument("--seed", type=int, default=None, help="evaluation seed (default 0)")
  p.add_argument("--prompts-per-batch", dest="prompts_per_batch", type=int, default=None,
                 help="prompts per sampler call (default 32)")
  p.add_argument("--threshold", type=float, default=None,
                 help="score >= threshold counts as correct for pass@k (default 1.0)")
  p.add_argument("--max-prompts", dest="max_prompts", type=int, default=None,
                 help="only the first N prompts of each dataset")
  p.add_argument("--reward-workers", dest="reward_workers", type=int, default=None,
                 help="verifier worker processes; 0 = score in this process (default 2)")
  p.add_argument("--param-dtype", dest="param_dtype", default=None,
                 choices=("float32", "bfloat16"))
  p.add_argument("--dtype", default=None, choices=("float32", "bfloat16"),
                 help="compute dtype")
  p.add_argument("--kv-cache-dtype", dest="kv_cache_dtype", default=None,
                 choices=("float32", "bfloat16", "float16"))
  p.add_argument("--boundary-k", dest="boundary_k", type=int, default=None,
                 help="k of the gain-vs-base scatter (paper: 128; default n)")
  p.set_defaults(func=_cmd_evaluate)


def build_parser() -> argparse.ArgumentParser:
  """The argument parser (subcommands in the module docstring)."""
  parser = argparse.ArgumentParser(prog="python -m prorl_jax.evaluate",
                                   description="ProRL evaluation: reports, pass@k, plots.")
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  _add_evaluate(sub)

  p = sub.add_parser("plot-run", help="training curves of a run (metrics.jsonl) to PNG")
  p.add_argument("--workdir", required=True, help="the run directory holding metrics.jsonl")
  p.add_argument("--metrics-file", default="metrics.jsonl", help="file name inside --workdir")
  p.add_argument("--out", default=None, help="folder for the PNG (default: --workdir)")
  p.set_defaults(func=_cmd_plot_run)

  def add_scoring(q: argparse.ArgumentParser) -> None:
    q.add_argument("--k", type=_parse_ks, default=[1], help="pass@k to report, e.g. 1,2,4,16")
    q.add_argument("--threshold", type=float, default=1.0,
                   help="score >= threshold counts as correct for pass@k (default 1.0)")
    q.add_argument("--json", default=None, help="also write the report as JSON here")

  p = sub.add_parser("report", help="per-dataset/per-domain report of per-sample JSONL")
  p.add_argument("--samples", required=True, help="per-sample results (JSONL)")
  add_scoring(p)
  p.set_defaults(func=_cmd_report)

  p = sub.add_parser("compare", help="compare checkpoints on the same prompts; pass@k plots")
  p.add_argument("--samples", required=True, nargs="+", type=_parse_named_file,
                 metavar="NAME=FILE", help="per-sample JSONL of each checkpoint")
  p.add_argument("--base", required=True, help="the NAME of the base checkpoint")
  p.add_argument("--boundary-k", type=int, default=None,
                 help="k of the gain-vs-base scatter (paper: 128; default the largest k)")
  p.add_argument("--out", required=True, help="folder for the PNGs")
  add_scoring(p)
  p.set_defaults(func=_cmd_compare)

  p = sub.add_parser("novelty", help="n-gram novelty of responses against a reference corpus")
  p.add_argument("--corpus", required=True, nargs="+",
                 help="corpus files: *.jsonl (one document per line) or plain text")
  p.add_argument("--corpus-field", default="text", help="the text field of corpus JSONL lines")
  p.add_argument("--responses", required=True, help="JSONL with one response per line")
  p.add_argument("--field", default="response", help="the response text field")
  p.add_argument("--n", type=int, default=nv.DEFAULT_N, help="n-gram length in words")
  p.set_defaults(func=_cmd_novelty)
  return parser


def _with_default_command(argv: Sequence[str]) -> list[str]:
  """An argument list starting with an option (other than -h) is an `evaluate` command line
  (the issue's form: `python -m prorl_jax.evaluate --config X.gin --checkpoint DIR`)."""
  argv = list(argv)
  if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
    return ["evaluate"] + argv
  return argv


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command line; returns the exit status (errors print `error: ...`, status 1)."""
  argv = _with_default_command(sys.argv[1:] if argv is None else argv)
  args = build_parser().parse_args(argv)
  try:
    return args.func(args)
  except (CliError, FileNotFoundError, MetricsLogError, SampleError, ValueError) as e:
    # CorpusError, MetricsLogError and SampleError are ValueErrors naming path:line.
    print(f"error: {e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
