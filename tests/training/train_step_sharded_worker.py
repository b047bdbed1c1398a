"""Run in a subprocess by test_train_step_sharded.py with 8 fake CPU devices
(XLA_FLAGS=--xla_force_host_platform_device_count=8): the train step on a data=2 x fsdp=2 x
tensor=2 mesh gives the same log-probs, metrics and params as on one device, and params and
optimizer state stay laid out as the rules say. Asserts and prints 'OK'."""

from __future__ import annotations

import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import train_step_helpers as helpers  # noqa: E402
from prorl_jax import sharding  # noqa: E402
from prorl_jax.sampling import training_batch  # noqa: E402
from prorl_jax.training import optimizer as opt_lib  # noqa: E402
from prorl_jax.training import train_step as ts_lib  # noqa: E402

TAU = 1.2


def main() -> None:
  assert jax.device_count() == 8, jax.devices()
  graphdef, params = nnx.split(helpers.tiny_model(seed=4))
  host_params = helpers.host_copy(params)
  base = ts_lib.actor_batch(training_batch(helpers.make_rollouts(5, 4, 2, 6)))
  rng = np.random.default_rng(6)
  mask = base.loss_mask_BxS
  cfg = ts_lib.UpdateConfig(clip_ratio_c=3.0, kl_coef=0.1, entropy_coef=0.01,
                            mini_batch_groups=2, micro_batch_rows=2, vocab_chunk=16)
  tx = opt_lib.make_optimizer("sgd", learning_rate=0.1, momentum=0.9)
  single = ts_lib.TrainStep(graphdef, tx, cfg, temperature=TAU)
  mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
  multi = ts_lib.TrainStep(graphdef, tx, cfg, temperature=TAU, mesh=mesh)

  old_1 = np.asarray(single.logprobs(single.place_params(host_params), base))
  old_8 = np.asarray(multi.logprobs(multi.place_params(host_params), base))
  np.testing.assert_allclose(old_8, old_1, atol=1e-5)
  assert np.abs(old_1[mask]).min() > 0 and (old_1[~mask] == 0).all()
  batch = base.replace(
      old_logprobs_BxS=np.where(mask, old_1 - 0.3 * rng.normal(size=mask.shape), 0),
      ref_logprobs_BxS=np.where(mask, old_1 - 0.5, 0),
      advantages_BxS=np.where(mask, rng.normal(size=mask.shape), 0))
  batch = jax.tree.map(lambda x: x.astype(np.float32) if x.dtype == np.float64 else x, batch)

  results = {}
  for name, step in (("single", single), ("multi", multi)):
    p = step.place_params(helpers.host_copy(host_params))
    opt_state = step.init_opt_state(p)
    metrics = []
    for i in range(2):
      p, opt_state, m = step.update(p, opt_state, batch, jax.random.key(i))
      metrics.append({k: float(v) for k, v in m.items()})
    results[name] = (p, opt_state, metrics)

  p_1, _, met_1 = results["single"]
  p_8, opt_8, met_8 = results["multi"]
  for a, b in zip(met_8, met_1):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6, err_msg=k)
  assert met_1[0]["actor/num_updates"] == 2 and met_1[0]["actor/skipped_updates"] == 0
  moved = 0.0
  for a, b, p0 in zip(jax.tree.leaves(p_8), jax.tree.leaves(p_1), jax.tree.leaves(host_params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    moved = max(moved, float(np.abs(np.asarray(b) - p0).max()))
  assert moved > 1e-3, moved

  # Layout by the rules (TRAIN_RULES on data=2 x fsdp=2 x tensor=2), written out by hand.
  layer = p_8["layers"][0]
  expected = {
      "embed": (p_8["embed"], P("tensor", "fsdp")),
      "lm_head": (p_8["lm_head"], P("fsdp", "tensor")),
      "q": (layer["attn"]["q"], P("fsdp", "tensor", None)),
      "k (1 kv head: replicated)": (layer["attn"]["k"], P("fsdp", None, None)),
      "o": (layer["attn"]["o"], P("tensor", None, "fsdp")),
      "gate": (layer["mlp"]["gate"], P("fsdp", "tensor")),
      "down": (layer["mlp"]["down"], P("tensor", "fsdp")),
      "final_norm": (p_8["final_norm"]["scale"], P(None)),
  }
  for name, (var, spec) in expected.items():
    got = var.get_value().sharding.spec
    assert got == spec, (name, got, spec)
  want = sharding.state_shardings(p_8, mesh)
  for got, w in zip(jax.tree.leaves(p_8), jax.tree.leaves(want)):
    assert got.sharding.is_equivalent_to(w, got.ndim), (got.sharding, w)
  # The momentum of each parameter is laid out as the parameter.
  traces = [s.trace for s in jax.tree.leaves(
      opt_8, is_leaf=lambda x: isinstance(x, optax.TraceState))
      if isinstance(s, optax.TraceState)]
  assert len(traces) == 1
  for t, w in zip(jax.tree.leaves(traces[0]), jax.tree.leaves(want)):
    assert t.sharding.is_equivalent_to(w, t.ndim), (t.sharding, w)
  print("OK")


if __name__ == "__main__":
  main()
