"""Gradient accumulation over k micro-batches gives the same update as one full batch (spec §1
step 6: the token normalization is done once per update, not per micro-batch)."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from prorl_jax.sampling import training_batch
from prorl_jax.training import optimizer as opt_lib
from prorl_jax.training import train_step as ts_lib

_spec = importlib.util.spec_from_file_location(
    "training_train_step_helpers", pathlib.Path(__file__).with_name("train_step_helpers.py"))
helpers = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(helpers)

TAU = 0.9


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean"])
def test_k_microbatches_equal_one_full_batch(mode):
  graphdef, params = nnx.split(helpers.tiny_model(seed=2))
  # 8 rows of very different response lengths (1..8 tokens), so per-micro-batch token counts
  # differ and a per-micro-batch normalization would give a different update.
  tb = training_batch(helpers.make_rollouts(3, num_prompts=4, group_size=2, max_new_tokens=8))
  rng = np.random.default_rng(4)
  mask = tb.loss_mask_BxS
  counts = mask.sum(1)
  assert len(set(counts.tolist())) > 3
  base = ts_lib.actor_batch(tb)
  logp = helpers.reference_logp(graphdef, params, base, TAU)
  old = logp - rng.normal(scale=0.3, size=mask.shape)
  batch = base.replace(
      old_logprobs_BxS=np.where(mask, old, 0).astype(np.float32),
      ref_logprobs_BxS=np.where(mask, old - 0.2, 0).astype(np.float32),
      advantages_BxS=np.where(mask, rng.normal(size=mask.shape), 0).astype(np.float32))

  def run(micro_rows):
    cfg = ts_lib.UpdateConfig(loss_agg_mode=mode, kl_coef=0.05, micro_batch_rows=micro_rows,
                              shuffle=False)
    tx = opt_lib.make_optimizer("sgd", learning_rate=1.0, grad_clip_norm=None)
    step = ts_lib.TrainStep(graphdef, tx, cfg, temperature=TAU)
    new, _, metrics = step.update(helpers.host_copy(params), step.init_opt_state(params),
                                  batch, jax.random.key(0))
    return helpers.host_copy(new), {k: float(v) for k, v in metrics.items()}

  full, full_metrics = run(0)
  micro, micro_metrics = run(2)  # k = 4 micro-batches of 2 rows
  p0 = helpers.host_copy(params)
  moved = 0.0
  for f, m, p in zip(jax.tree.leaves(full), jax.tree.leaves(micro), jax.tree.leaves(p0)):
    np.testing.assert_allclose(m - p, f - p, rtol=1e-5, atol=1e-6)
    moved = max(moved, float(np.abs(f - p).max()))
  assert moved > 1e-3
  for name in ("actor/pg_loss", "actor/kl_loss", "actor/entropy", "actor/grad_norm",
               "actor/ppo_kl", "actor/pg_clipfrac", "actor/pg_clipfrac_lower"):
    np.testing.assert_allclose(micro_metrics[name], full_metrics[name], rtol=1e-5, atol=1e-7,
                               err_msg=name)
  if mode == "token-mean":
    return  # the token-mean full batch is checked against the reference in test_train_step.py
  # And the full batch is the reference full-batch gradient step (SGD, lr 1).
  ref_cfg = helpers.RefConfig(kl_coef=0.05, mode=mode)
  _, grad = helpers.reference_value_and_grad(graphdef, params, batch, np.arange(8), ref_cfg,
                                             TAU)
  for f, p, g in zip(jax.tree.leaves(full), jax.tree.leaves(p0), jax.tree.leaves(grad)):
    np.testing.assert_allclose(f - p, -np.asarray(g), rtol=1e-4, atol=2e-6)
