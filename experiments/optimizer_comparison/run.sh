#!/usr/bin/env bash
# Runs every optimizer config of this folder on the tiny CPU config, then prints the table.
# Usage (from the repository root): bash experiments/optimizer_comparison/run.sh [runs_dir]
set -euo pipefail
out=${1:-runs/optimizer_comparison}
dirs=()
for cfg in adamw lion sgd adafactor; do
  python -m prorl_jax.main --config "experiments/optimizer_comparison/${cfg}.gin" \
      --workdir "${out}/${cfg}" 2> "${out}_${cfg}.log" || { echo "${cfg} failed: ${out}_${cfg}.log"; exit 1; }
  dirs+=("${out}/${cfg}")
done
python experiments/optimizer_comparison/summarize.py "${dirs[@]}"
