"""Time per RL step and its breakdown; MFU and memory of a 1.5B-shaped train step. Prints JSON.

  python tools/bench_rl_step.py                      # CPU: the real Trainer on a tiny model
  python tools/bench_rl_step.py --mode 1p5b          # GPU/TPU: 1.5B-shaped bf16 train step

`--mode rl` (default) builds the `Trainer` of configs/tiny_cpu.gin on a locally created random
Qwen2 (`--hidden/--layers/--heads/--kv_heads/--intermediate`) and prompt set, runs
`--warmup` steps (compilation; reported separately) then `--steps` measured steps, and reports
the median seconds of each phase of `Trainer.train_one_step` (timing_s/gen, reward,
old_log_prob, ref, update_actor, step) and the tokens/s (`perf/throughput`). Generation and
scoring overlap (`RolloutConfig.score_chunks`): `reward` is the wait after the last chunk.

`--mode 1p5b` builds DeepSeek-R1-Distill-Qwen-1.5B's shape (`models.deepseek_r1_distill_qwen_
1p5b`, random weights, nothing loaded) with `--param_dtype` parameters and bfloat16 compute,
a policy, a reference copy and the AdamW state, and times `TrainStep.update` on a synthetic
batch of `--rows` sequences of `--prompt_len + --response_len` tokens (`--micro_batch_rows`
per gradient-accumulation micro-batch, `--vocab_chunk` for the chunked log-softmax, remat on).
It reports the model FLOPs per update (`training/flops.py`: 6·N + causal attention per token),
the achieved TFLOP/s, MFU against the device's dense bf16 peak (when known), the bytes of
policy + reference + optimizer state, and the device's peak memory (`memory_stats`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench_rl(args: argparse.Namespace) -> dict:
  import gin  # noqa: PLC0415
  import jax  # noqa: PLC0415

  from prorl_jax.main import parse_gin  # noqa: PLC0415
  from prorl_jax.training.loop import Trainer  # noqa: PLC0415
  from prorl_jax.training.tiny_assets import tiny_assets  # noqa: PLC0415

  root = args.workdir or tempfile.mkdtemp(prefix="bench_rl_step_")
  assets = tiny_assets(root, num_train=max(64, args.batch * (args.warmup + args.steps) * 3),
                       num_validation=1, logic_task=args.logic_task, hidden_size=args.hidden,
                       num_layers=args.layers, num_heads=args.heads, num_kv_heads=args.kv_heads,
                       intermediate_size=args.intermediate)
  bindings = [
      "run_job.setup = None",
      f"TrainerConfig.model_dir = {json.dumps(assets['model_dir'])}",
      f"DataConfig.train_files = {json.dumps(assets['data']['train_files'])}",
      f"DataConfig.batch_size = {args.batch}",
      f"RolloutConfig.group_size = {args.group}",
      f"SamplingConfig.max_new_tokens = {args.max_new_tokens}",
      f"TrainerConfig.reward_workers = {args.reward_workers}",
      "ValidationConfig.every_steps = 0",
      "TrainerConfig.export_final_hf = False",
  ] + list(args.gin_bindings)
  gin.clear_config()
  parse_gin([os.path.join(REPO, "configs", "tiny_cpu.gin")], bindings)
  trainer = Trainer(os.path.join(root, "run"))
  trainer._build()  # pylint: disable=protected-access
  rows = []
  try:
    t0 = time.perf_counter()
    for step in range(1, args.warmup + 1):
      trainer.train_one_step(step)
    compile_s = time.perf_counter() - t0
    for step in range(args.warmup + 1, args.warmup + args.steps + 1):
      rows.append(trainer.train_one_step(step))
  finally:
    trainer._close()  # pylint: disable=protected-access
  phases = ("gen", "reward", "old_log_prob", "ref", "update_actor", "step")
  med = lambda k: statistics.median(r[k] for r in rows)
  return {
      "mode": "rl", "device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
      "model": {"hidden": args.hidden, "layers": args.layers, "heads": args.heads,
                "kv_heads": args.kv_heads, "intermediate": args.intermediate,
                "params": int(sum(x.size for x in jax.tree.leaves(trainer.params)))},
      "batch": {"prompts": args.batch, "group_size": args.group,
                "max_new_tokens": args.max_new_tokens, "reward_workers": args.reward_workers},
      "steps_measured": len(rows), "warmup_steps": args.warmup,
      "warmup_s_incl_compile": compile_s,
      "median_s": {p: med(f"timing_s/{p}") for p in phases},
      "median_tokens_per_s": med("perf/throughput"),
      "median_response_length": med("response_length/mean"),
      "median_sampling_rounds": med("prorl/sampling_rounds"),
  }


def bench_1p5b(args: argparse.Namespace) -> dict:
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  from flax import nnx  # noqa: PLC0415

  from prorl_jax import sharding  # noqa: PLC0415
  from prorl_jax.models import Decoder, deepseek_r1_distill_qwen_1p5b  # noqa: PLC0415
  from prorl_jax.training import flops  # noqa: PLC0415
  from prorl_jax.training.optimizer import make_optimizer  # noqa: PLC0415
  from prorl_jax.training.train_step import ActorBatch, TrainStep, UpdateConfig  # noqa: PLC0415

  config = deepseek_r1_distill_qwen_1p5b(param_dtype=args.param_dtype, dtype="bfloat16",
                                         remat=True, **json.loads(args.shape_overrides))
  mesh = sharding.make_mesh(data=-1)
  model = sharding.create_sharded(lambda: Decoder(config, rngs=nnx.Rngs(0)), mesh)
  graphdef, params = nnx.split(model)
  del model
  tx = make_optimizer(learning_rate=2e-6)
  ts = TrainStep(graphdef, tx, UpdateConfig(micro_batch_rows=args.micro_batch_rows,
                                            vocab_chunk=args.vocab_chunk),
                 temperature=1.0, mesh=mesh)
  params = ts.place_params(params)
  reference = jax.jit(lambda t: jax.tree.map(jnp.copy, t))(params)
  opt_state = ts.init_opt_state(params)
  nbytes = lambda tree: int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)))
  state_bytes = {"policy": nbytes(params), "reference": nbytes(reference),
                 "optimizer": nbytes(opt_state)}
  b, p, t = args.rows, args.prompt_len, args.response_len
  s = p + t
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, config.vocab_size, (b, s)).astype(np.int32)
  mask = np.zeros((b, s), bool)
  mask[:, p - 1:s - 1] = True
  batch = ActorBatch(
      tokens_BxS=tokens, positions_BxS=np.tile(np.arange(s, dtype=np.int32), (b, 1)),
      attention_mask_BxS=np.ones((b, s), bool), targets_BxS=np.roll(tokens, -1, axis=1),
      loss_mask_BxS=mask, old_logprobs_BxS=np.full((b, s), -2.0, np.float32),
      ref_logprobs_BxS=np.full((b, s), -2.0, np.float32),
      advantages_BxS=rng.standard_normal((b, s)).astype(np.float32) * mask,
      group_B=(np.arange(b) // args.group).astype(np.int32), group_size=args.group,
      prompt_width=p)
  batch = ts.place_batch(batch)
  times = []
  for i in range(args.warmup + args.steps):
    t0 = time.perf_counter()
    params, opt_state, metrics = ts.update(params, opt_state, batch, jax.random.key(i))
    jax.block_until_ready((params, metrics))
    if i >= args.warmup:
      times.append(time.perf_counter() - t0)
  t0 = time.perf_counter()
  jax.block_until_ready(ts.logprobs(reference, batch))
  logprob_s = time.perf_counter() - t0
  shape = flops.DecoderShape.from_hf_config(config.to_hf_dict())
  model_flops = flops.training_flops(shape, [s] * b)
  sec = statistics.median(times)
  dev = jax.devices()[0]
  stats = dev.memory_stats() or {}
  return {
      "mode": "1p5b", "shape_overrides": json.loads(args.shape_overrides),
      "device": dev.device_kind, "num_devices": jax.device_count(),
      "param_dtype": args.param_dtype, "compute_dtype": "bfloat16", "remat": True,
      "rows": b, "seq_len": s, "micro_batch_rows": args.micro_batch_rows,
      "vocab_chunk": args.vocab_chunk, "params": int(sum(x.size for x in jax.tree.leaves(params))),
      "update_s_median": sec, "update_s_all": times, "logprob_forward_s": logprob_s,
      "model_tflops_per_update": model_flops / 1e12,
      "achieved_tflops_per_s": model_flops / sec / 1e12,
      "mfu": flops.mfu(b * s / sec, model_flops / (b * s), jax.device_count(),
                       dev.device_kind),
      "state_gib": {k: v / 2**30 for k, v in state_bytes.items()},
      "state_gib_total": sum(state_bytes.values()) / 2**30,
      "device_peak_gib": (stats["peak_bytes_in_use"] / 2**30
                          if "peak_bytes_in_use" in stats else None),
  }


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--mode", choices=("rl", "1p5b"), default="rl")
  ap.add_argument("--warmup", type=int, default=None,
                  help="untimed steps (compilation); default 2 (rl) / 1 (1p5b)")
  ap.add_argument("--steps", type=int, default=5)
  # rl mode
  ap.add_argument("--workdir", default=None)
  ap.add_argument("--hidden", type=int, default=64)
  ap.add_argument("--layers", type=int, default=2)
  ap.add_argument("--heads", type=int, default=4)
  ap.add_argument("--kv_heads", type=int, default=2)
  ap.add_argument("--intermediate", type=int, default=128)
  ap.add_argument("--batch", type=int, default=4, help="prompts per step")
  ap.add_argument("--group", type=int, default=8, help="responses per prompt")
  ap.add_argument("--max_new_tokens", type=int, default=32)
  ap.add_argument("--reward_workers", type=int, default=0)
  ap.add_argument("--logic_task", default="basic_arithmetic")
  ap.add_argument("--gin_bindings", nargs="*", default=[])
  # 1p5b mode
  ap.add_argument("--param_dtype", default="float32", choices=("float32", "bfloat16"))
  ap.add_argument("--rows", type=int, default=64)
  ap.add_argument("--prompt_len", type=int, default=512)
  ap.add_argument("--response_len", type=int, default=1536)
  ap.add_argument("--micro_batch_rows", type=int, default=8)
  ap.add_argument("--vocab_chunk", type=int, default=16384)
  ap.add_argument("--shape_overrides", default="{}",
                  help='JSON ModelConfig fields over the 1.5B shape, e.g. \'{"num_layers": 1}\' '
                       "(a CPU smoke test)")
  args = ap.parse_args(argv)
  if args.warmup is None:
    args.warmup = 2 if args.mode == "rl" else 1
  out = bench_rl(args) if args.mode == "rl" else bench_1p5b(args)
  print(json.dumps(out, indent=2))


if __name__ == "__main__":
  main()
