"""Grouped rollouts from the NNX decoder: bucketed, jitted prefill + while-loop decode.

    sampler = Sampler(model, SamplingConfig(...), mesh=mesh)   # once
    params = sampler.reshard(nnx.state(model))                  # training -> sampling layout
    rollouts = sampler.generate(params, prompts, group_size=16, key=jax.random.key(step))

One call:
1. The N prompts are left-padded to a prompt bucket P and the count to a batch bucket N' (a
   multiple of the data-parallel device count); padding prompts are marked done.
2. Prefill (jitted): each prompt is run ONCE through the decoder into a KV cache of P + T/8
   slots (the first segment); the cache rows and next-token logits are repeated G times
   (row b = prompt b // G) and response token 0 is sampled for all B = N'·G rows.
3. Decode (jitted `lax.while_loop`, `decode_loop.decode_until`): until every row has ended or
   the segment's cache is full. With `cache_segments` = 4 the cache grows P+T/8 -> P+T/4 ->
   P+T/2 -> P+T between loops (one host check per segment), so attention reads ~1.34x the live
   response context rather than P+T slots every step (notes_performance.md item 1).
4. The state is pulled to host as `Rollouts`.

Compiled once per (P, N', segment) and reused across calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding

from prorl_jax import sharding
from prorl_jax.models import kv_cache
from prorl_jax.models.decoder import Decoder
from prorl_jax.sampling import decode_loop, token_sampling
from prorl_jax.sampling.config import SamplingConfig, bucket_up
from prorl_jax.sampling.rollouts import Rollouts


def reshard_for_sampling(params: Any, mesh: jax.sharding.Mesh | None,
                         rules: sharding.Rules = sharding.SAMPLING_RULES) -> Any:
  """Places model parameters (an `nnx.State`, e.g. `nnx.state(model)` in the training layout)
  in the sampling layout: on a mesh, `rules` (default `SAMPLING_RULES`: no FSDP sharding, so
  the decode loop does no parameter all-gathers; tensor-parallel dims stay sharded). Returns a
  new State; arrays already in that layout are reused, others are copied (the training
  parameters are not modified). Without a mesh, returns `params` unchanged."""
  if mesh is None:
    return params
  return sharding.shard_pytree(params, sharding.state_shardings(params, mesh, rules))


class Sampler:
  """Jitted grouped-rollout sampler for a `Decoder` (see module docstring).

  Args:
    model: the policy `Decoder` (its graph is kept; parameters are passed per call).
    config: default sampling controls (a `generate` call may override them).
    mesh: optional mesh ('data', 'fsdp', 'tensor'); rows are split over the axes the 'batch'
      rule of `rules` names (data x fsdp by default).
    rules: logical-axis rules of the sampling layout (parameters and cache).
  """

  def __init__(self, model: Decoder, config: SamplingConfig, *,
               mesh: jax.sharding.Mesh | None = None,
               rules: sharding.Rules = sharding.SAMPLING_RULES):
    self.graphdef, _ = nnx.split(model)
    self.model_config = model.config
    self.config = config
    self.mesh = mesh
    self.rules = rules
    if mesh is not None:
      probe = sharding.logical_to_spec(("batch",), rules, mesh=mesh)
      axes = probe[0] if probe[0] is not None else ()
      axes = (axes,) if isinstance(axes, str) else tuple(axes)
      sizes = dict(zip(mesh.axis_names, mesh.devices.shape))
      self.data_parallel = int(np.prod([sizes[a] for a in axes])) if axes else 1
    else:
      self.data_parallel = 1

  def reshard(self, params: Any) -> Any:
    """`reshard_for_sampling(params, self.mesh, self.rules)`."""
    return reshard_for_sampling(params, self.mesh, self.rules)

  def generate(self, params: Any, prompts: Sequence[Sequence[int]], group_size: int,
               key: jax.Array, config: SamplingConfig | None = None,
               prompt_index: Sequence[int] | None = None) -> Rollouts:
    """Samples `group_size` responses for every prompt.

    Args:
      params: the model's `nnx.State` (ideally from `reshard`).
      prompts: N token-id sequences (lists or 1-D int arrays), each of length >= 1.
      group_size: G >= 1.
      key: a PRNG key (`jax.random.key(seed)`); same key and inputs -> same rollouts.
      config: overrides the sampler's default `SamplingConfig` for this call.
      prompt_index: N distinct ints >= 0 naming each prompt's random streams: response g of
        prompt i draws from `fold_in(key, prompt_index[i] * G + g)`. Default `0 .. N-1` (row b
        uses row id b). A caller that splits one batch over several calls or processes passes
        each prompt's position in the whole batch, so the rollouts do not depend on the split.
    Returns:
      `Rollouts` with B = N·G rows (row b answers prompt b // G).
    Raises:
      ValueError: no prompts, an empty prompt (names its index), group_size < 1, a token id
        outside the vocabulary (names the prompt), a prompt longer than the largest
        configured prompt bucket, or a `prompt_index` of the wrong length or with negative or
        repeated values.
    """
    cfg = config or self.config
    if group_size < 1:
      raise ValueError(f"group_size must be >= 1, got {group_size}")
    if len(prompts) == 0:
      raise ValueError("generate: no prompts")
    prompt_list = [np.asarray(p, dtype=np.int64).reshape(-1) for p in prompts]
    vocab = self.model_config.vocab_size
    for i, p in enumerate(prompt_list):
      if p.size == 0:
        raise ValueError(f"generate: prompt {i} is empty")
      if p.min() < 0 or p.max() >= vocab:
        raise ValueError(f"generate: prompt {i} has a token id outside [0, {vocab})")
    n = len(prompt_list)
    lengths_N = np.array([p.size for p in prompt_list], np.int32)
    width = cfg.prompt_bucket(int(lengths_N.max()))
    n_pad = bucket_up(n, cfg.batch_buckets, 1, "batch_buckets")
    n_pad = -(-n_pad // self.data_parallel) * self.data_parallel

    # Left-padded prompts; padding prompts hold one pad token.
    tokens_NxP = np.full((n_pad, width), cfg.pad_token_id, np.int32)
    mask_NxP = np.zeros((n_pad, width), bool)
    for i, p in enumerate(prompt_list):
      tokens_NxP[i, width - p.size:] = p
      mask_NxP[i, width - p.size:] = True
    mask_NxP[n:, -1] = True
    plen_N = np.concatenate([lengths_N, np.ones(n_pad - n, np.int32)])
    live_N = np.arange(n_pad) < n
    if prompt_index is None:
      index_N = np.arange(n_pad, dtype=np.int32)
    else:
      index = np.asarray(prompt_index, np.int64).reshape(-1)
      if index.size != n or (n and index.min() < 0) or np.unique(index).size != n:
        raise ValueError(f"generate: prompt_index must be {n} distinct ints >= 0, got "
                         f"{index[:8].tolist()}{'...' if index.size > 8 else ''}")
      if int(index.max()) + n_pad >= 2**31 // max(group_size, 1):
        raise ValueError("generate: prompt_index values too large for int32 row ids")
      # Padding prompts take ids past every real one (their rows are discarded).
      index_N = np.concatenate([index, index.max() + 1 + np.arange(n_pad - n)]).astype(np.int32)

    inputs = (tokens_NxP, mask_NxP, plen_N, live_N, index_N)
    if self.mesh is not None:
      inputs = tuple(jax.device_put(x, self._batch_sharding(x.ndim)) for x in inputs)
    segments = cfg.segment_lengths(width)
    with self._mesh_context():
      state = _prefill(self.graphdef, params, *inputs, key, group_size=group_size,
                       cache_length=segments[0], config=cfg, rules=self.rules,
                       model_config=self.model_config)
      for cache_length in segments:
        limit = min(cfg.max_new_tokens, cache_length - width)
        if int(state.step) >= cfg.max_new_tokens or bool(jnp.all(state.done_B)):
          break
        if state.cache.max_length < cache_length:
          state = _grow(state, cache_length=cache_length, rules=self.rules)
        state = _decode(self.graphdef, params, state, limit=limit, config=cfg, rules=self.rules)
    return self._to_host(state, prompt_list, lengths_N, group_size, cfg)

  # ----------------------------------------------------------------------------- internals

  def _batch_sharding(self, ndim: int) -> NamedSharding:
    return sharding.batch_sharding(self.mesh, ndim, self.rules)

  def _mesh_context(self):
    if self.mesh is None:
      return contextlib.nullcontext()
    return jax.set_mesh(self.mesh)

  def _to_host(self, state: decode_loop.DecodeState, prompt_list: list[np.ndarray],
               lengths_N: np.ndarray, group_size: int, cfg: SamplingConfig) -> Rollouts:
    n = len(prompt_list)
    b = n * group_size
    host = jax.device_get({"tokens": state.tokens_BxT, "logprobs": state.logprobs_BxT,
                           "mask": state.mask_BxT, "lengths": state.lengths_B,
                           "ended": state.ended_B})
    prompt_ids = np.full((n, int(lengths_N.max())), cfg.pad_token_id, np.int32)
    for i, p in enumerate(prompt_list):
      prompt_ids[i, :p.size] = p
    return Rollouts(
        prompt_ids_NxP=prompt_ids,
        prompt_lengths_N=lengths_N,
        response_ids_BxT=np.asarray(host["tokens"][:b], np.int32),
        response_logprobs_BxT=np.asarray(host["logprobs"][:b], np.float32),
        response_mask_BxT=np.asarray(host["mask"][:b], bool),
        response_lengths_B=np.asarray(host["lengths"][:b], np.int32),
        truncated_B=~np.asarray(host["ended"][:b], bool),
        group_size=group_size,
        temperature=cfg.logprob_temperature,
        pad_token_id=cfg.pad_token_id)


def _constrain_cache(cache: kv_cache.KVCache, rules: sharding.Rules) -> kv_cache.KVCache:
  k_axes = ("batch", "act_kv_heads", None, "cache_length")  # kv_cache layout [B, K, Dh, S]
  v_axes = ("batch", "act_kv_heads", "cache_length", None)  # [B, K, S, Dh]
  return kv_cache.KVCache(
      k=tuple(sharding.constrain(x, k_axes, rules) for x in cache.k),
      v=tuple(sharding.constrain(x, v_axes, rules) for x in cache.v),
      valid_BxS=sharding.constrain(cache.valid_BxS, ("batch", "cache_length"), rules),
      index_B=sharding.constrain(cache.index_B, ("batch",), rules))


@functools.partial(jax.jit, static_argnames=("graphdef", "group_size", "cache_length", "config",
                                             "rules", "model_config"))
def _prefill(graphdef, params, tokens_NxP, mask_NxP, plen_N, live_N, index_N, key, *,
             group_size: int,
             cache_length: int, config: SamplingConfig, rules, model_config
             ) -> decode_loop.DecodeState:
  """Prefills N prompts once, repeats cache rows G times, samples response token 0."""
  model = nnx.merge(graphdef, params)
  n = tokens_NxP.shape[0]
  cache = kv_cache.init_cache(model_config, n, cache_length, config.cache_dtype())
  cache = _constrain_cache(cache, rules)
  hidden_NxPxD, cache = model.hidden(tokens_NxP, None, mask_NxP, cache)
  logits_NxV = model.unembed(hidden_NxPxD[:, -1:, :])[:, 0, :]
  g = group_size
  cache = _constrain_cache(cache.repeat(g), rules)
  logits_BxV = jnp.repeat(logits_NxV, g, axis=0)
  row_ids_B = (jnp.repeat(index_N, g, axis=0) * g
               + jnp.tile(jnp.arange(g, dtype=jnp.int32), n)).astype(jnp.int32)
  row_keys_B = token_sampling.row_keys(key, row_ids_B)
  return decode_loop.first_state(logits_BxV, cache, jnp.repeat(plen_N, g, axis=0),
                                 jnp.repeat(live_N, g, axis=0), row_keys_B, config)


@functools.partial(jax.jit, static_argnames=("cache_length", "rules"))
def _grow(state: decode_loop.DecodeState, *, cache_length: int, rules
          ) -> decode_loop.DecodeState:
  """The state with its cache grown to `cache_length` slots (a copy; the next segment)."""
  return dataclasses.replace(
      state, cache=_constrain_cache(state.cache.grow(cache_length), rules))


@functools.partial(jax.jit, static_argnames=("graphdef", "limit", "config", "rules"),
                   donate_argnames=("state",))
def _decode(graphdef, params, state: decode_loop.DecodeState, *, limit: int,
            config: SamplingConfig, rules) -> decode_loop.DecodeState:
  """Decodes until every row is done or column `limit` (the state's buffers are reused)."""
  model = nnx.merge(graphdef, params)

  def decode_fn(tokens_Bx1, positions_Bx1, live_Bx1, cache):
    logits_Bx1xV, cache = model(tokens_Bx1, positions_Bx1, live_Bx1, cache)
    return logits_Bx1xV[:, 0, :], cache

  state = dataclasses.replace(state, cache=_constrain_cache(state.cache, rules))
  return decode_loop.decode_until(state, decode_fn, limit, config)
