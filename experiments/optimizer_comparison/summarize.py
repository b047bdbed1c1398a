"""Table of an optimizer comparison: python experiments/optimizer_comparison/summarize.py
runs/opt_adamw runs/opt_lion ... (each a workdir with metrics.jsonl)."""

import json
import os
import statistics
import sys


def summarize(workdir: str, last: int = 10) -> dict:
  rows = {}
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      r = json.loads(line)
      rows[r["step"]] = r  # a resumed run's later rows win
  steps = [rows[s] for s in sorted(rows) if s > 0 and "actor/pg_loss" in rows[s]]
  head, tail = steps[:last], steps[-last:]
  mean = lambda rs, k: statistics.fmean(r[k] for r in rs if r.get(k) is not None)
  return {
      "run": os.path.basename(workdir.rstrip("/")), "steps": len(steps),
      "score_first": mean(head, "critic/score/mean"),
      "score_last": mean(tail, "critic/score/mean"),
      "score_all_gen_last": mean(tail, "rollout/score_all/mean"),
      "kl_last": mean(tail, "actor/kl_loss"), "entropy_last": mean(tail, "actor/entropy"),
      "grad_norm_last": mean(tail, "actor/grad_norm"),
      "skipped_updates": sum(r.get("actor/skipped_updates", 0) for r in steps),
      "step_s_median": statistics.median(r["timing_s/step"] for r in steps[2:] or steps),
  }


if __name__ == "__main__":
  table = [summarize(d) for d in sys.argv[1:]]
  keys = list(table[0])
  print(" | ".join(keys))
  for row in table:
    print(" | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))
