"""gin names for the settings classes that live below `training` (which does not import gin).

Bind them in a config file by class name, e.g. `ResetPolicy.interval = 200`,
`SamplingConfig.temperature = 1.2`, `DataConfig.batch_size = 256`,
`RewardConfig.sandbox = @SandboxConfig()`. Their defaults stay in their own modules; the
trainer supplies the fields only it knows (`SamplingConfig.eos_token_ids` / `pad_token_id` from
the tokenizer, `LengthRewardConfig.max_length` = the response cap,
`DynamicSamplingConfig.target_groups` = this process's share of `DataConfig.batch_size`).
Calling the names below applies the bindings; the original classes are unaffected.
"""

from __future__ import annotations

import gin

from prorl_jax.algorithms import dynamic_sampling, reset
from prorl_jax.data import pipeline
from prorl_jax.rewards import length, sandbox, verify
from prorl_jax.sampling import config as sampling_config
from prorl_jax.training.checkpoint import TrainCheckpointer  # already gin-configurable

ResetPolicy = gin.external_configurable(reset.ResetPolicy, module="prorl_jax")
DynamicSamplingConfig = gin.external_configurable(dynamic_sampling.DynamicSamplingConfig,
                                                  module="prorl_jax")
LengthRewardConfig = gin.external_configurable(length.LengthRewardConfig, module="prorl_jax")
SamplingConfig = gin.external_configurable(sampling_config.SamplingConfig, module="prorl_jax")
DataConfig = gin.external_configurable(pipeline.DataConfig, module="prorl_jax")
RewardConfig = gin.external_configurable(verify.RewardConfig, module="prorl_jax")
SandboxConfig = gin.external_configurable(sandbox.SandboxConfig, module="prorl_jax")

__all__ = ["DataConfig", "DynamicSamplingConfig", "LengthRewardConfig", "ResetPolicy",
           "RewardConfig", "SamplingConfig", "SandboxConfig", "TrainCheckpointer"]
