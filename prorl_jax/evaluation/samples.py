"""The per-sample evaluation result: one scored response, and its JSONL file form.

One row per (dataset, prompt, sample); JSONL files hold one JSON object per line with the fields

  dataset          str    benchmark name, e.g. "aime24", "rg/leg_counting"
  domain           str    "math" | "code" | "stem" | "logic" | "ifeval"  (ProRL spec §8)
  prompt_id        str    identifies the prompt within the dataset (ints are accepted, as str)
  sample_idx       int    >= 0; which of the n samples drawn for the prompt
  score            float  verifier reward in [0, 1] (continuous for code, logic, ifeval)
  response_length  int    >= 0, response tokens
  truncated        bool   the response hit the token cap without an end-of-sequence token

Extra fields are ignored (the sampler may keep the response text for novelty analysis).
`parse_sample` raises `SampleError` naming the source (path:line or row index) and the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from prorl_jax.data.schema import DOMAINS
from prorl_jax.evaluation.jsonl import iter_json_lines

FIELDS = ("dataset", "domain", "prompt_id", "sample_idx", "score", "response_length", "truncated")


class SampleError(ValueError):
  """A per-sample row that does not follow the schema; the message names source and field."""


@dataclasses.dataclass(frozen=True)
class SampleResult:
  """One scored response (fields as in the module docstring)."""

  dataset: str
  domain: str
  prompt_id: str
  sample_idx: int
  score: float
  response_length: int
  truncated: bool

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def _fail(source: str, field: str, why: str) -> SampleError:
  return SampleError(f"{source}: field {field!r}: {why}")


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def parse_sample(obj: Any, source: str = "<row>") -> SampleResult:
  """Validates one row (a dict with `FIELDS`, or a `SampleResult`) and returns a SampleResult.

  Raises:
    SampleError: a missing or ill-typed field, an unknown domain, a score outside [0, 1], a
      negative sample_idx or response_length; the message names `source` and the field.
  """
  if isinstance(obj, SampleResult):
    obj = obj.to_json()
  if not isinstance(obj, Mapping):
    raise SampleError(f"{source}: expected a JSON object, got {type(obj).__name__}")
  for field in FIELDS:
    if field not in obj:
      raise _fail(source, field, "missing")
  dataset, domain = obj["dataset"], obj["domain"]
  if not (isinstance(dataset, str) and dataset):
    raise _fail(source, "dataset", "must be a non-empty string")
  if domain not in DOMAINS:
    raise _fail(source, "domain", f"unknown domain {domain!r}; expected one of {DOMAINS}")
  prompt_id = obj["prompt_id"]
  if not (isinstance(prompt_id, str) and prompt_id) and not _is_int(prompt_id):
    raise _fail(source, "prompt_id", "must be a non-empty string or an int")
  sample_idx = obj["sample_idx"]
  if not _is_int(sample_idx) or sample_idx < 0:
    raise _fail(source, "sample_idx", f"must be an int >= 0, got {sample_idx!r}")
  score = obj["score"]
  if isinstance(score, bool) or not isinstance(score, (int, float)):
    raise _fail(source, "score", f"must be a number, got {type(score).__name__}")
  if not (math.isfinite(score) and 0.0 <= score <= 1.0):
    raise _fail(source, "score", f"{score!r} is not in [0, 1]")
  length = obj["response_length"]
  if not _is_int(length) or length < 0:
    raise _fail(source, "response_length", f"must be an int >= 0 (tokens), got {length!r}")
  truncated = obj["truncated"]
  if not isinstance(truncated, bool):
    raise _fail(source, "truncated", f"must be true or false, got {truncated!r}")
  return SampleResult(dataset=dataset, domain=domain, prompt_id=str(prompt_id),
                      sample_idx=sample_idx, score=float(score), response_length=length,
                      truncated=truncated)


def parse_samples(rows: Iterable[Any], source: str = "rows") -> list[SampleResult]:
  """Validates a sequence of rows; errors name `source[index]`."""
  return [parse_sample(row, f"{source}[{i}]") for i, row in enumerate(rows)]


def read_samples_jsonl(path: str | os.PathLike[str]) -> list[SampleResult]:
  """Reads a per-sample JSONL file (blank lines skipped).

  Raises:
    FileNotFoundError: no such file.
    SampleError: a line that is not JSON or not a valid row; the message names path:line.
  """
  rows = []
  for line_no, obj in iter_json_lines(path, SampleError):
    rows.append(parse_sample(obj, f"{os.fspath(path)}:{line_no}"))
  return rows


def write_samples_jsonl(rows: Iterable[SampleResult], path: str | os.PathLike[str]) -> None:
  """Writes rows as JSONL (the inverse of `read_samples_jsonl`)."""
  with open(path, "w", encoding="utf-8") as f:
    for row in rows:
      f.write(json.dumps(row.to_json()) + "\n")
