"""One actor update against an independent reference (full logits + closed-form PPO-clip,
dual-clip, clamped k2, entropy), mini-batches of whole groups, and the NaN guard."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from prorl_jax.sampling import training_batch
from prorl_jax.training import optimizer as opt_lib
from prorl_jax.training import train_step as ts_lib

# Shared helpers, loaded by path (pytest runs with --import-mode=importlib).
_spec = importlib.util.spec_from_file_location(
    "training_train_step_helpers", pathlib.Path(__file__).with_name("train_step_helpers.py"))
helpers = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(helpers)

TAU = 1.1
N, G, T = 4, 2, 6


def _sgd(**kw):
  """Plain SGD without clipping: params_new = params − lr·grad exactly (the guard stays on)."""
  return opt_lib.make_optimizer("sgd", grad_clip_norm=None, **kw)


@pytest.fixture(scope="module")
def setup():
  graphdef, params = nnx.split(helpers.tiny_model(seed=1))
  tb = training_batch(helpers.make_rollouts(0, N, G, T))
  base = ts_lib.actor_batch(tb)
  logp = helpers.reference_logp(graphdef, params, base, TAU)
  mask = base.loss_mask_BxS
  rng = np.random.default_rng(1)
  # log π_old = log π − offset, i.e. ratio = e^offset: inside (±0.05), above 1 + ε_high (0.6),
  # below 1 − ε_low (−0.6), above the dual-clip c = 3 (1.5); advantages of both signs.
  offsets = rng.choice([0.05, -0.05, 0.6, -0.6, 1.5], size=mask.shape)
  adv = rng.choice([-1.5, -0.7, 0.4, 1.2], size=mask.shape)
  # Reference log-probs: mostly near, a few beyond the k2 log-ratio clamp of 10.
  ref = logp - rng.normal(scale=0.3, size=mask.shape) - 12.0 * (rng.random(mask.shape) < 0.1)
  batch = base.replace(old_logprobs_BxS=np.where(mask, logp - offsets, 0).astype(np.float32),
                       ref_logprobs_BxS=np.where(mask, ref, 0).astype(np.float32),
                       advantages_BxS=np.where(mask, adv, 0).astype(np.float32))
  r = np.exp(offsets)[mask]
  a = adv[mask]
  # every regime is present
  assert ((a > 0) & (r > 1.28)).any() and ((a < 0) & (r < 0.8)).any()
  assert ((a < 0) & (r > 3)).any() and ((a > 0) & (r < 0.8)).any()
  assert ((a < 0) & (r > 1.28) & (r < 3)).any() and (np.abs(np.log(r)) < 0.1).any()
  return graphdef, params, batch


REF = helpers.RefConfig(clip_low=0.2, clip_high=0.28, clip_ratio_c=3.0, kl_coef=0.1,
                        kl_clamp=10.0, entropy_coef=0.01)
CFG = ts_lib.UpdateConfig(clip_low=0.2, clip_high=0.28, clip_ratio_c=3.0, kl_coef=0.1,
                          kl_type="k2", kl_clamp=10.0, entropy_coef=0.01, vocab_chunk=20)


@pytest.fixture(scope="module")
def step(setup):
  graphdef, _, _ = setup
  return ts_lib.TrainStep(graphdef, _sgd(learning_rate=1.0), CFG, temperature=TAU)


def test_update_equals_reference_gradient_and_metrics(setup, step):
  graphdef, params, batch = setup
  rows = np.arange(N * G)
  (_, terms), ref_grad = helpers.reference_value_and_grad(graphdef, batch, REF, TAU)(params,
                                                                                     rows)
  p0 = helpers.host_copy(params)
  opt_state = step.init_opt_state(params)
  new_params, opt_state, metrics = step.update(helpers.host_copy(params), opt_state, batch,
                                               jax.random.key(0))
  # SGD with lr 1: the update is exactly −grad.
  for got, before, g in zip(jax.tree.leaves(new_params), jax.tree.leaves(p0),
                            jax.tree.leaves(ref_grad)):
    np.testing.assert_allclose(np.asarray(got) - before, -np.asarray(g), rtol=1e-4, atol=2e-6)
  assert float(optax.tree.norm(ref_grad)) > 1e-2
  for name, value in terms.items():
    np.testing.assert_allclose(float(metrics[name]), float(value), rtol=1e-4, atol=1e-6,
                               err_msg=name)
  assert float(metrics["actor/pg_clipfrac"]) > 0 and float(metrics["actor/pg_clipfrac_lower"]) > 0
  assert float(metrics["actor/pg_clipfrac_dual"]) > 0
  np.testing.assert_allclose(float(metrics["actor/grad_norm"]),
                             float(optax.tree.norm(ref_grad)), rtol=1e-4)
  assert int(metrics["actor/num_updates"]) == 1 and int(metrics["actor/skipped_updates"]) == 0
  assert float(metrics["actor/lr"]) == 1.0


def test_nonfinite_advantage_skips_update_bit_identically(setup, step):
  _, params, batch = setup
  adv = np.array(batch.advantages_BxS)
  b, s = np.argwhere(batch.loss_mask_BxS)[3]
  adv[b, s] = np.nan
  p0 = helpers.host_copy(params)
  opt_state = step.init_opt_state(params)
  new_params, opt_state, metrics = step.update(helpers.host_copy(params), opt_state,
                                               batch.replace(advantages_BxS=adv),
                                               jax.random.key(0))
  for got, before in zip(jax.tree.leaves(new_params), jax.tree.leaves(p0)):
    np.testing.assert_array_equal(np.asarray(got).view(np.uint32), before.view(np.uint32))
  assert int(metrics["actor/skipped_updates"]) == 1
  assert int(opt_lib.skipped_updates(opt_state)[0]) == 1
  # ... and the next, finite update goes through and is not counted as skipped.
  new_params, opt_state, metrics = step.update(new_params, opt_state, batch, jax.random.key(0))
  assert int(metrics["actor/skipped_updates"]) == 0
  assert int(opt_lib.skipped_updates(opt_state)[0]) == 1
  assert any(not np.array_equal(np.asarray(a), b)
             for a, b in zip(jax.tree.leaves(new_params), jax.tree.leaves(p0)))


def test_minibatches_take_whole_groups_and_cover_each_epoch():
  cfg = ts_lib.UpdateConfig(mini_batch_groups=3, ppo_epochs=2)
  rows = np.asarray(ts_lib.minibatch_rows(jax.random.key(5), 6, 4, cfg))
  assert rows.shape == (4, 12)                     # 2 epochs x 6/3 updates, 3 groups x 4 rows
  for mb in rows:
    groups = mb.reshape(3, 4) // 4
    assert (groups == groups[:, :1]).all()          # each block of 4 rows is one group
    np.testing.assert_array_equal(mb.reshape(3, 4) % 4, np.tile(np.arange(4), (3, 1)))
  for epoch in rows.reshape(2, 24):
    np.testing.assert_array_equal(np.sort(epoch), np.arange(24))
  assert not np.array_equal(rows[:2], rows[2:])    # shuffled differently per epoch
  unshuffled = ts_lib.minibatch_rows(jax.random.key(5), 6, 4, cfg.__class__(
      mini_batch_groups=3, shuffle=False))
  np.testing.assert_array_equal(unshuffled, np.arange(24).reshape(2, 12))
  with pytest.raises(ValueError, match="mini_batch_groups"):
    ts_lib.num_updates_per_step(5, cfg)


def test_minibatches_and_epochs_are_sequential_optimizer_updates(setup):
  graphdef, params, batch = setup
  cfg = ts_lib.UpdateConfig(clip_low=0.2, clip_high=0.28, kl_coef=0.0, kl_clamp=10.0,
                            mini_batch_groups=N // 2, micro_batch_rows=2, ppo_epochs=2)
  ref_cfg = helpers.RefConfig(clip_low=0.2, clip_high=0.28)
  lrs = (0.5, 0.4, 0.3, 0.2)
  tx = _sgd(learning_rate=lrs[0], schedule="linear",
            schedule_kwargs={"end_value": 0.1, "transition_steps": 4})
  step = ts_lib.TrainStep(graphdef, tx, cfg, temperature=TAU)
  key = jax.random.key(11)
  mbs = np.asarray(ts_lib.minibatch_rows(key, N, G, cfg))
  assert mbs.shape == (4, N * G // 2)      # 2 epochs x 2 mini-batches of N/2 whole groups
  # Reference: four plain SGD steps on the mini-batches, in order, with the schedule's lr.
  ref_vg = helpers.reference_value_and_grad(graphdef, batch, ref_cfg, TAU)
  ref = params
  for rows, lr in zip(mbs, lrs):
    _, grad = ref_vg(ref, rows)
    ref = jax.tree.map(lambda p, g: p - lr * g, ref, grad)
  opt_state = step.init_opt_state(params)
  new_params, opt_state, metrics = step.update(helpers.host_copy(params), opt_state, batch, key)
  for got, want in zip(jax.tree.leaves(new_params), jax.tree.leaves(ref)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6)
  assert int(metrics["actor/num_updates"]) == 4
  counts = [s.count for s in jax.tree.leaves(
      opt_state, is_leaf=lambda x: isinstance(x, optax.InjectStatefulHyperparamsState))
      if isinstance(s, optax.InjectStatefulHyperparamsState)]
  assert [int(c) for c in counts] == [4]
  np.testing.assert_allclose(float(opt_lib.current_learning_rate(opt_state)), lrs[-1],
                             rtol=1e-6)
  np.testing.assert_allclose(float(metrics["actor/lr"]), lrs[-1], rtol=1e-6)


def test_bad_config_and_batch_fail_naming_the_culprit(setup):
  graphdef, params, batch = setup
  with pytest.raises(ValueError, match="loss_agg_mode"):
    ts_lib.UpdateConfig(loss_agg_mode="token-sum")
  with pytest.raises(ValueError, match="kl_type"):
    ts_lib.UpdateConfig(kl_type="k4")
  with pytest.raises(ValueError, match="ppo_epochs"):
    ts_lib.UpdateConfig(ppo_epochs=0)
  with pytest.raises(ValueError, match="temperature"):
    ts_lib.TrainStep(graphdef, _sgd(learning_rate=1.0), CFG, temperature=0.0)
  with pytest.raises(ValueError, match="advantages_BxS"):
    batch.replace(advantages_BxS=np.zeros((3, 3), np.float32)).check()
  step = ts_lib.TrainStep(graphdef, _sgd(learning_rate=1.0),
                          ts_lib.UpdateConfig(micro_batch_rows=3), temperature=TAU)
  with pytest.raises(ValueError, match="micro_batch_rows"):
    step.update(params, step.init_opt_state(params), batch, jax.random.key(0))


def test_adafactor_state_on_a_mesh_equals_no_mesh(setup):
  """Adafactor's factored moments mirror the parameter tree with other shapes (a [V, D]
  embedding has a [V] row and a [D] column moment): they are replicated, full-shape leaves take
  their parameter's sharding, and the update equals the one without a mesh."""
  from prorl_jax import sharding
  graphdef, params, batch = setup
  tx = opt_lib.make_optimizer("adafactor", learning_rate=1e-2)
  plain = ts_lib.TrainStep(graphdef, tx, CFG, temperature=TAU)
  meshed = ts_lib.TrainStep(graphdef, tx, CFG, temperature=TAU,
                            mesh=sharding.make_mesh(data=1, fsdp=1, tensor=1))
  out = {}
  for name, st in (("plain", plain), ("meshed", meshed)):
    p = st.place_params(helpers.host_copy(params))
    o = st.init_opt_state(p)
    p, o, _ = st.update(p, o, batch, jax.random.key(0))
    out[name] = (p, o)
  embed_shape = np.shape(params["embed"][...])
  ranks = {}
  for leaf in jax.tree.leaves(out["meshed"][1]):
    if hasattr(leaf, "sharding") and leaf.ndim:
      ranks.setdefault(leaf.ndim, []).append(len(leaf.sharding.spec))
      assert len(leaf.sharding.spec) <= leaf.ndim, (leaf.shape, leaf.sharding)
  assert 1 in ranks  # factored (rank-1) moments exist and were placed
  assert any(leaf.shape == embed_shape for leaf in jax.tree.leaves(out["meshed"][1]))
  for a, b in zip(jax.tree.leaves(out["meshed"][0]), jax.tree.leaves(out["plain"][0])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
  moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
              for a, b in zip(jax.tree.leaves(out["plain"][0]), jax.tree.leaves(params)))
  assert moved > 1e-4


def test_logprobs_in_micro_batches_under_remat_equal_reference(setup):
  """`TrainerConfig.remat=True` with micro-batched log-probs (a scan over micro-batches of a
  rematerialized model) used to fail with flax's TraceContextError; it equals the independent
  full-logit reference."""
  import dataclasses
  from prorl_jax.models import Decoder
  graphdef, params, batch = setup
  cfg = nnx.merge(graphdef, params).config
  remat_graphdef, _ = nnx.split(Decoder(dataclasses.replace(cfg, remat=True), rngs=nnx.Rngs(0)))
  step = ts_lib.TrainStep(remat_graphdef, _sgd(learning_rate=1.0),
                          ts_lib.UpdateConfig(micro_batch_rows=2), temperature=TAU)
  got = np.asarray(step.logprobs(params, batch))
  want = np.asarray(helpers.reference_logp(graphdef, params, batch, TAU))
  mask = batch.loss_mask_BxS
  np.testing.assert_allclose(got[mask], want[mask], atol=1e-5)
  assert (got[~mask] == 0).all()
