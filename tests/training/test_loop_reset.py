"""Reference resets in the running trainer (spec §6): the reference becomes the policy (KL is
exactly 0 right after), and the optimizer state is kept (v2) or re-initialised (v1)."""

from __future__ import annotations

import importlib.util
import os

import gin
import jax
import numpy as np
import optax
import pytest

_spec = importlib.util.spec_from_file_location(
    "loop_helpers", os.path.join(os.path.dirname(__file__), "loop_helpers.py"))
h = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(h)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def _adam_states(opt_state):
  return [s for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
          if isinstance(s, optax.ScaleByAdamState)]


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
  from prorl_jax.main import parse_gin
  from prorl_jax.training.loop import Trainer
  root = tmp_path_factory.mktemp("reset")
  assets = h.make_assets(str(root))
  gin.clear_config()
  # The bindings of test_loop_resume.py but for host-side settings: the programs compiled here
  # go to the session's persistent cache and its subprocess runs load them.
  parse_gin([h.TINY_CONFIG], h.bindings(assets, **{
      "TrainerConfig.num_steps": 2, "TrainerConfig.checkpoint_every": 100,
      "TrainerConfig.export_final_hf": False, "ResetPolicy.interval": 2,
      "ValidationConfig.every_steps": 0}))
  t = Trainer(str(root / "run"))
  try:
    with h.compilation_cache(str(tmp_path_factory.getbasetemp() / "xla_cache")):
      t.run()
      yield t
  finally:
    t._close()
    gin.clear_config()


def test_interval_reset_then_manual_resets_keep_or_reinit_optimizer(trainer):
  t = trainer
  by_step = {r["step"]: r for r in t.metrics_history}
  # Step 1's update starts at reference == policy (KL ~0: the update's forward and the
  # log-prob program round differently, ~1e-7 in log-probs); step 2's sees the policy moved by
  # step 1. The interval trigger (2) resets after step 2, the last step.
  assert by_step[1]["prorl/ref_resets"] == 0.0 and by_step[1]["prorl/ref_reset_this_step"] == 0
  assert by_step[2]["actor/kl_loss"] > by_step[1]["actor/kl_loss"]
  assert by_step[2]["prorl/ref_resets"] == 1.0 and by_step[2]["prorl/ref_reset_this_step"] == 1
  assert [h_["step"] for h_ in t.state.reset.history] == [2]
  batch = t.last_batch
  mask = np.asarray(batch.loss_mask_BxS)
  assert mask.sum() > 0
  # Right after the loop's reset: reference == policy, so KL is exactly 0 (k2 = ½(log π −
  # log π_ref)², spec §4, by hand on the log-probs of the step's batch).
  assert all((a == b).all() for a, b in zip(_leaves(t.params), _leaves(t.reference)))
  lp_policy = np.asarray(t.train_step.logprobs(t.params, batch))
  lp_ref = np.asarray(t.train_step.logprobs(t.reference, batch))
  assert (0.5 * (lp_policy - lp_ref)[mask] ** 2 == 0).all()

  # One more step moves the policy away from the reference (run() closed the verifiers).
  from prorl_jax.training.rollout_step import Scorer
  t.scorer = Scorer(0, config=t.reward_config)
  t.train_one_step(3)
  lp_policy = np.asarray(t.train_step.logprobs(t.params, batch))
  assert np.abs(lp_policy - np.asarray(t.train_step.logprobs(t.reference, batch)))[mask].max() > 0
  opt_before = _leaves(t.opt_state)
  adam = _adam_states(t.opt_state)
  assert len(adam) == 1 and int(adam[0].count) == 3  # 3 steps x 1 update
  # Keep (v2): reference == policy bit for bit, in its own buffers; optimizer state untouched.
  t.reset_reference(reset_optimizer=False)
  assert all((a == b).all() for a, b in zip(_leaves(t.params), _leaves(t.reference)))
  assert (np.asarray(t.train_step.logprobs(t.reference, batch)) == lp_policy).all()
  assert all((a == b).all() for a, b in zip(opt_before, _leaves(t.opt_state)))
  params_ptrs = {x.unsafe_buffer_pointer() for x in jax.tree.leaves(t.params)}
  assert not params_ptrs & {x.unsafe_buffer_pointer() for x in jax.tree.leaves(t.reference)}
  # Re-initialise (v1): Adam's moments and count start over; the reference is the policy.
  t.reset_reference(reset_optimizer=True)
  adam = _adam_states(t.opt_state)
  assert int(adam[0].count) == 0
  assert all((np.asarray(x) == 0).all() for x in jax.tree.leaves((adam[0].mu, adam[0].nu)))
  assert all((a == b).all() for a, b in zip(_leaves(t.params), _leaves(t.reference)))
