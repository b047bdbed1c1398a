"""Multi-host plumbing: `jax.distributed` start-up and the few host-side collectives the loop needs.

A multi-host run is N copies of `python -m prorl_jax.main` (one per host, or several per host on
CPU), each given the coordinator's address, the process count and its own id (flags
`--coordinator_address/--num_processes/--process_id` or the environment variables below), or
none of them where JAX detects the cluster itself (SLURM, Open MPI, TPU pods, ...:
`jax.distributed.initialize()` with no arguments). Each process samples and scores its share of
the prompts on its local devices; the train step runs on the global mesh, where jit all-reduces
the gradients. The helpers here gather host-side values (numbers, JSON) from every process so
that every process takes the same decisions (metrics, resets, stopping).

Environment variables (flags win): PRORL_COORDINATOR_ADDRESS ("host:port"), PRORL_NUM_PROCESSES,
PRORL_PROCESS_ID, PRORL_LOCAL_DEVICE_IDS ("0,1").
On CPU the collectives use gloo (`jax_cpu_collectives_implementation`), which must be chosen
before the backend starts: call `initialize` before any other JAX call.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

ENV_ADDRESS = "PRORL_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "PRORL_NUM_PROCESSES"
ENV_PROCESS_ID = "PRORL_PROCESS_ID"
ENV_LOCAL_DEVICES = "PRORL_LOCAL_DEVICE_IDS"


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, local_device_ids: Sequence[int] | None = None,
               *, auto: bool = False, cpu_collectives: str = "gloo") -> bool:
  """Starts `jax.distributed` when a multi-process run is asked for; returns whether it did.

  Args:
    coordinator_address, num_processes, process_id, local_device_ids: as
      `jax.distributed.initialize`; each defaults to its environment variable (module
      docstring). When none is set and `auto` is False the run is single-process (no-op).
    auto: call `jax.distributed.initialize()` with no arguments (JAX's cluster detection).
    cpu_collectives: the CPU collectives implementation ("gloo"; "none" leaves the default).

  Raises:
    ValueError: only some of address / process count / process id given, or a bad value
      (names the flag and its environment variable).
  """
  env = os.environ
  address = coordinator_address or env.get(ENV_ADDRESS) or None
  num = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
  pid = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
  if local_device_ids is None and env.get(ENV_LOCAL_DEVICES):
    local_device_ids = [int(x) for x in env[ENV_LOCAL_DEVICES].split(",")]
  given = {"coordinator_address": address, "num_processes": num, "process_id": pid}
  if all(v is None for v in given.values()) and not auto:
    return False
  if not auto and any(v is None for v in given.values()):
    missing = [k for k, v in given.items() if v is None]
    raise ValueError(f"multi-process run: {missing} not set (flags --{missing[0]} or env "
                     f"PRORL_{missing[0].upper()}); give all of coordinator_address, "
                     "num_processes and process_id")
  if num is not None and num < 1:
    raise ValueError(f"num_processes={num} must be >= 1 (--num_processes / {ENV_NUM_PROCESSES})")
  if pid is not None and num is not None and not 0 <= pid < num:
    raise ValueError(f"process_id={pid} not in [0, num_processes={num}) (--process_id / "
                     f"{ENV_PROCESS_ID})")
  if cpu_collectives != "none":
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
  jax.distributed.initialize(coordinator_address=address, num_processes=num, process_id=pid,
                             local_device_ids=local_device_ids)
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  return True


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value in (None, ""):
    return None
  try:
    return int(value)
  except ValueError as e:
    raise ValueError(f"environment variable {name}={value!r} is not an integer") from e


def is_multiprocess() -> bool:
  return jax.process_count() > 1


def allgather_concat(local: np.ndarray) -> np.ndarray:
  """Concatenates every process's `local` array along axis 0, in process order.

  The leading dimension may differ between processes; the other dimensions and the dtype must
  agree. Single process: `local` itself.
  """
  local = np.asarray(local)
  if not is_multiprocess():
    return local
  sizes = multihost_utils.process_allgather(np.asarray([local.shape[0]], np.int64))
  sizes = np.asarray(sizes).reshape(-1)
  width = int(sizes.max())
  padded = np.zeros((width,) + local.shape[1:], local.dtype)
  padded[:local.shape[0]] = local
  stacked = np.asarray(multihost_utils.process_allgather(padded))  # [P, width, ...]
  return np.concatenate([stacked[p, :int(n)] for p, n in enumerate(sizes)], axis=0)


def allgather_json(obj: Any) -> list[Any]:
  """Every process's JSON-serialisable `obj`, as a list in process order."""
  data = np.frombuffer(json.dumps(obj, sort_keys=True).encode(), np.uint8)
  if not is_multiprocess():
    return [obj]
  sizes = np.asarray(multihost_utils.process_allgather(
      np.asarray([data.size], np.int64))).reshape(-1)
  padded = np.zeros(int(sizes.max()), np.uint8)
  padded[:data.size] = data
  stacked = np.asarray(multihost_utils.process_allgather(padded))
  return [json.loads(stacked[p, :int(n)].tobytes().decode()) for p, n in enumerate(sizes)]


def host_sum(values: Sequence[float]) -> np.ndarray:
  """Element-wise sum over processes of a float vector (float64)."""
  v = np.asarray(values, np.float64)
  if not is_multiprocess():
    return v
  return np.asarray(multihost_utils.process_allgather(v)).sum(axis=0)


def any_process(flag: bool) -> bool:
  """True on every process if `flag` is True on any (e.g. a stop signal received by one)."""
  return bool(host_sum([float(flag)])[0] > 0)


def global_batch_array(local: np.ndarray, sharding: jax.sharding.NamedSharding) -> jax.Array:
  """The global array whose rows are every process's `local` rows in process order.

  `sharding` splits axis 0 over the data axes; each process must pass the same number of rows
  (its share). Single process: `local` placed with `sharding`.
  """
  local = np.asarray(local)
  if not is_multiprocess():
    return jax.device_put(local, sharding)
  global_shape = (local.shape[0] * jax.process_count(),) + local.shape[1:]
  return jax.make_array_from_process_local_data(sharding, local, global_shape)


def to_local_devices(tree: Any, local_shardings: Any) -> Any:
  """Copies a pytree of global arrays onto this process's devices (e.g. the policy parameters
  for the sampler of this host). Fully replicated arrays are read from a local shard; others
  are all-gathered across processes first. Single process: `jax.device_put(tree, shardings)`."""
  if not is_multiprocess():
    return jax.device_put(tree, local_shardings)

  def one(x):
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))

  return jax.device_put(jax.tree.map(one, tree), local_shardings)
