"""`Sampler.generate(prompt_index=...)`: a batch split over calls (or processes) samples as one."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from prorl_jax.sampling import Sampler, SamplingConfig

PROMPTS = [[5, 9, 13], [7, 8], [3, 1, 4, 1, 5], [2, 7]]


def test_split_calls_with_prompt_index_equal_one_call(tiny):
  sampler = Sampler(tiny.model, SamplingConfig(max_new_tokens=6, temperature=1.0))
  params = nnx.state(tiny.model)
  whole = sampler.generate(params, PROMPTS, 2, jax.random.key(3))
  # Interleaved split, as process p of 2 reads prompts p, p+2: rows keep their streams.
  for p in range(2):
    part = sampler.generate(params, PROMPTS[p::2], 2, jax.random.key(3),
                            prompt_index=list(range(p, 4, 2)))
    rows = np.concatenate([np.arange(2 * i, 2 * i + 2) for i in range(p, 4, 2)])
    np.testing.assert_array_equal(part.response_ids_BxT, whole.response_ids_BxT[rows])
    np.testing.assert_allclose(part.response_logprobs_BxT, whole.response_logprobs_BxT[rows],
                               atol=1e-5)
  # Without it, a second call reuses row ids 0.. and so the first prompts' streams.
  other = sampler.generate(params, PROMPTS[1:2], 2, jax.random.key(3), prompt_index=[0])
  alone = sampler.generate(params, PROMPTS[1:2], 2, jax.random.key(3))
  np.testing.assert_array_equal(other.response_ids_BxT, alone.response_ids_BxT)


def test_bad_prompt_index_is_named(tiny):
  sampler = Sampler(tiny.model, SamplingConfig(max_new_tokens=2))
  params = nnx.state(tiny.model)
  for bad in ([0], [0, 0], [-1, 2]):
    with pytest.raises(ValueError, match="prompt_index"):
      sampler.generate(params, PROMPTS[:2], 2, jax.random.key(0), prompt_index=bad)
