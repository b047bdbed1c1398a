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
  # The session's compilation cache, shared with the subprocess runs of test_loop_resume.py.
  jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.getbasetemp() / "xla_cache"))
  for name, value in h.CACHE_ENV.items():
    jax.config.update(name.lower(), int(value))
  assets = h.make_assets(str(root))
  gin.clear_config()
  parse_gin([], h.bindings(assets, **{
      "TrainerConfig.num_steps": 3, "TrainerConfig.checkpoint_every": 100,
      "TrainerConfig.export_final_hf": False, "ResetPolicy.interval": 2,
      "UpdateConfig.mini_batch_groups": 0, "ValidationConfig.every_steps": 0,
      "UpdateConfig.kl_coef": 0.1, "RolloutConfig.dynamic_sampling": False}))
  t = Trainer(str(root / "run"))
  try:
    yield t
  finally:
    t._close()
    gin.clear_config()


def test_interval_reset_zeroes_kl_then_manual_resets_keep_or_reinit_optimizer(trainer):
  t = trainer
  rows = t.run() if not t.metrics_history else t.metrics_history
  by_step = {r["step"]: r for r in rows}
  # Step 1 starts with reference == policy: its only update sees KL ~0 (the update's forward and
  # the log-prob program round differently, ~1e-7 in log-probs, ~1e-16 in k2). Step 2 sees the
  # policy moved away from the initial reference; the interval trigger resets after step 2, so
  # step 3's single update is at policy == reference again.
  assert by_step[1]["actor/kl_loss"] < 1e-12
  assert by_step[2]["actor/kl_loss"] > 1e-6
  assert by_step[2]["prorl/ref_resets"] == 1.0 and by_step[2]["prorl/ref_reset_this_step"] == 1
  assert by_step[3]["actor/kl_loss"] < 1e-12 and by_step[3]["prorl/ref_resets"] == 1.0
  assert [h["step"] for h in t.state.reset.history] == [2]

  # run() closed the checkpointer etc.; the arrays are still live. After step 3's update the
  # policy differs from the reference again.
  assert any((a != b).any() for a, b in zip(_leaves(t.params), _leaves(t.reference)))
  opt_before = _leaves(t.opt_state)
  adam = _adam_states(t.opt_state)
  assert len(adam) == 1 and int(adam[0].count) == 3
  batch = t.last_batch
  lp_policy = np.asarray(t.train_step.logprobs(t.params, batch))
  assert np.abs(lp_policy - np.asarray(t.train_step.logprobs(t.reference, batch))).max() > 1e-6
  # Keep (v2): reference == policy bit for bit, in its own buffers; optimizer state untouched.
  t.reset_reference(reset_optimizer=False)
  assert all((a == b).all() for a, b in zip(_leaves(t.params), _leaves(t.reference)))
  lp_ref = np.asarray(t.train_step.logprobs(t.reference, batch))
  assert (lp_ref == lp_policy).all()
  mask = np.asarray(batch.loss_mask_BxS)
  # k2 = ½(log π − log π_ref)² (spec §4), by hand: exactly 0 on every response token.
  assert (0.5 * (lp_policy - lp_ref)[mask] ** 2 == 0).all() and mask.sum() > 0
  assert all((a == b).all() for a, b in zip(opt_before, _leaves(t.opt_state)))
  params_ptrs = {x.unsafe_buffer_pointer() for x in jax.tree.leaves(t.params)}
  assert not params_ptrs & {x.unsafe_buffer_pointer() for x in jax.tree.leaves(t.reference)}
  # Re-initialise (v1): Adam's moments and count start over.
  t.reset_reference(reset_optimizer=True)
  adam = _adam_states(t.opt_state)
  assert int(adam[0].count) == 0
  assert all((np.asarray(x) == 0).all() for x in jax.tree.leaves((adam[0].mu, adam[0].nu)))
  assert all((a == b).all() for a, b in zip(_leaves(t.params), _leaves(t.reference)))
