"""Device mesh, logical-axis rules, and placing pytrees on the mesh.

Every parameter of the decoder carries `logical_axes` metadata: one logical name per dimension
(e.g. the q projection kernel [D, H, Dh] is ('embed', 'heads', 'head_dim')). A *rules* tuple maps
logical names to mesh axes; rules are plain data, so the training layout (FSDP + tensor parallel)
and the sampling layout (parameters replicated over 'fsdp', only tensor-sharded) are just two
rule tuples applied to the same model (design.md: "train vs sampling layouts").

Rules: a tuple of `(logical_name, mesh_axes)` with `mesh_axes` a mesh axis name, a tuple of them,
or None (replicated). A logical name may appear several times: the entries are candidates tried in
order, and the first one whose mesh axes (a) exist in the mesh, (b) are not already used by an
earlier dimension of the same array and (c) divide that dimension's size is used; if none fits
the dimension is replicated. So 2 KV heads on a tensor axis of 4 are replicated, not an error.

Mesh axes are ('data', 'fsdp', 'tensor') of type `AxisType.Auto`: XLA propagates shardings
through the model from the parameter and input shardings, and the model adds a few activation
constraints (`constrain`) when run under `jax.set_mesh(mesh)`. (With Explicit axes, checked on
jax 0.10.2, `with_sharding_constraint` turns into an assertion and every layout change, e.g. the
FSDP all-gather of a kernel, would need an explicit `jax.sharding.reshard`; with Auto axes the
same model code runs on one device and on a mesh.)
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

Rules = tuple[tuple[str, Any], ...]

# Training layout: batch over data x fsdp, weights FSDP-sharded on 'embed' and Megatron-style
# tensor-parallel on heads / mlp / vocab.
TRAIN_RULES: Rules = (
    # parameters
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("norm", None),
    ("layers", None),
    # activations
    ("batch", ("data", "fsdp")),
    ("batch", "data"),
    ("length", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_kv_heads", "tensor"),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
    ("cache_length", None),
)

# Sampling layout: no FSDP gathers inside the decode loop; weights only tensor-sharded.
SAMPLING_RULES: Rules = tuple(
    (name, None) if name == "embed" else (name, axes) for name, axes in TRAIN_RULES)


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, *,
              devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
  """A mesh over axes ('data', 'fsdp', 'tensor'), all `AxisType.Auto`.

  Args:
    data, fsdp, tensor: axis sizes; at most one may be -1, meaning "all remaining devices".
    devices: the devices to use (default: `jax.devices()`).
  Raises:
    ValueError: more than one -1, a size < 1, or sizes whose product is not the device count
      (the message names the sizes and the device count).
  """
  devices = list(devices if devices is not None else jax.devices())
  sizes = {"data": data, "fsdp": fsdp, "tensor": tensor}
  fill = [k for k, v in sizes.items() if v == -1]
  if len(fill) > 1:
    raise ValueError(f"at most one mesh axis may be -1, got {sizes}")
  if any(v < 1 for k, v in sizes.items() if k not in fill):
    raise ValueError(f"mesh axis sizes must be >= 1 or -1, got {sizes}")
  fixed = math.prod(v for k, v in sizes.items() if k not in fill)
  if fill:
    if len(devices) % fixed:
      raise ValueError(f"mesh sizes {sizes} do not divide the {len(devices)} devices")
    sizes[fill[0]] = len(devices) // fixed
  if math.prod(sizes.values()) != len(devices):
    raise ValueError(f"mesh sizes {sizes} need {math.prod(sizes.values())} devices, "
                     f"have {len(devices)}")
  shape = tuple(sizes[a] for a in MESH_AXES)
  return jax.make_mesh(shape, MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3,
                       devices=devices)


def _axis_sizes(mesh: Any) -> dict[str, int]:
  return dict(zip(mesh.axis_names, mesh.axis_sizes)) if hasattr(mesh, "axis_sizes") else \
      dict(mesh.shape)


def logical_to_spec(logical_axes: Sequence[str | None], rules: Rules, *,
                    mesh: Any = None, shape: Sequence[int] | None = None) -> PartitionSpec:
  """Resolves logical axis names to a `PartitionSpec` with `rules` (see module docstring).

  Args:
    logical_axes: one logical name (or None) per array dimension.
    rules: the rules tuple.
    mesh: if given (a Mesh or AbstractMesh), candidates naming axes not in it are skipped.
    shape: if given (with mesh), candidates whose mesh size does not divide the dim are skipped.
  Raises:
    KeyError: a logical name that no rule mentions (names it), so a new parameter can't be
      silently replicated.
  """
  sizes = _axis_sizes(mesh) if mesh is not None else None
  used: set[str] = set()
  out = []
  for i, name in enumerate(logical_axes):
    if name is None:
      out.append(None)
      continue
    candidates = [axes for lname, axes in rules if lname == name]
    if not candidates:
      raise KeyError(f"logical axis {name!r} has no sharding rule")
    chosen = None
    for axes in candidates:
      if axes is None:
        break
      tup = (axes,) if isinstance(axes, str) else tuple(axes)
      if used.intersection(tup):
        continue
      if sizes is not None:
        if any(a not in sizes for a in tup):
          continue
        if shape is not None and shape[i] % math.prod(sizes[a] for a in tup):
          continue
      chosen = tup
      break
    if chosen is None:
      out.append(None)
    else:
      used.update(chosen)
      out.append(chosen[0] if len(chosen) == 1 else chosen)
  return PartitionSpec(*out)


def variable_spec(variable: nnx.Variable, rules: Rules, mesh: Any = None) -> PartitionSpec:
  """PartitionSpec of one parameter from its `logical_axes` metadata (replicated if it has none)."""
  axes = variable.get_metadata().get("logical_axes")
  value = variable.get_value()
  if axes is None:
    return PartitionSpec()
  return logical_to_spec(axes, rules, mesh=mesh, shape=getattr(value, "shape", None))


def state_shardings(tree: Any, mesh: jax.sharding.Mesh, rules: Rules = TRAIN_RULES) -> Any:
  """NamedSharding pytree for an `nnx.State` / model (concrete or from `nnx.eval_shape`).

  Returns the same structure as `nnx.state(tree)` with each Variable holding a `NamedSharding`,
  usable as `jax.jit` in/out_shardings or with `shard_pytree`.
  """
  state = tree if isinstance(tree, nnx.State) else nnx.state(tree)
  return jax.tree.map(
      lambda v: v.replace(NamedSharding(mesh, variable_spec(v, rules, mesh))), state,
      is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_sharding(mesh: jax.sharding.Mesh, ndim: int, rules: Rules = TRAIN_RULES, *,
                   shape: Sequence[int] | None = None) -> NamedSharding:
  """Rows (dim 0) over the mesh axes of the 'batch' rule, the other `ndim - 1` dims replicated;
  with `shape`, mesh axes whose size does not divide the row count are skipped."""
  return NamedSharding(mesh, logical_to_spec(("batch",) + (None,) * (ndim - 1), rules,
                                             mesh=mesh, shape=shape))


def shard_pytree(tree: Any, shardings: Any) -> Any:
  """Places `tree` on `shardings` (a matching pytree or prefix of NamedShardings).

  Each leaf goes straight to its sharding (`jax.device_put`): a host leaf is split, an already
  placed leaf is resharded; no replicated copy is made first.
  """
  return jax.device_put(tree, shardings)


def shard_model(model: nnx.Module, mesh: jax.sharding.Mesh, rules: Rules = TRAIN_RULES) -> None:
  """Reshards `model`'s variables in place to the layout `rules` gives on `mesh`."""
  state = nnx.state(model)
  nnx.update(model, shard_pytree(state, state_shardings(state, mesh, rules)))


def create_sharded(make_model: Callable[[], nnx.Module], mesh: jax.sharding.Mesh,
                   rules: Rules = TRAIN_RULES) -> nnx.Module:
  """Builds `make_model()` (e.g. `lambda: Decoder(cfg, rngs=nnx.Rngs(0))`) with every variable
  created directly in its shard (a jitted initializer with `out_shardings`): no full copy of
  the model on any single device."""
  graphdef, abstract_state = nnx.split(nnx.eval_shape(make_model))
  shardings = state_shardings(abstract_state, mesh, rules)
  state = jax.jit(lambda: nnx.state(make_model()), out_shardings=shardings)()
  return nnx.merge(graphdef, state)


def constrain(x: jax.Array, logical_axes: Sequence[str | None], rules: Rules) -> jax.Array:
  """`with_sharding_constraint` for an activation, a no-op when no mesh is set.

  Under `jax.set_mesh(mesh)` the constraint pins `x` to the spec `rules` give (dims that the
  mesh axes do not divide are left replicated); without a mesh context (one device, plain jit)
  `x` is returned unchanged, so the same model code runs in both settings.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return x
  spec = logical_to_spec(logical_axes, rules, mesh=mesh, shape=x.shape)
  return jax.lax.with_sharding_constraint(x, spec)

