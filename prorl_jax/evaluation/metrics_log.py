"""Reading a run's `metrics.jsonl`: one JSON object per line, each with an integer "step" and
metrics named as in design.md "Conventions" (`critic/score/mean`, `actor/kl_loss`, ...).

A resumed run appends to the same file and re-logs the steps after its last checkpoint; a record
whose step is not larger than the one before therefore supersedes every earlier record with a
step >= its own (the series keeps what the resumed run logged). Lines that are blank are skipped.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import numpy as np

from prorl_jax.evaluation.jsonl import iter_json_lines

REF_RESETS = "prorl/ref_resets"


class MetricsLogError(ValueError):
  """A malformed metrics.jsonl line or value; the message names path:line (and the metric)."""


@dataclasses.dataclass(frozen=True)
class MetricsLog:
  """The records of one metrics.jsonl, in step order after resume handling.

  Attributes:
    path: the file read.
    records: the JSON objects kept, steps strictly increasing.
    line_numbers: the 1-based line of each kept record, for error messages.
  """

  path: str
  records: tuple[dict[str, Any], ...]
  line_numbers: tuple[int, ...]

  @property
  def steps(self) -> np.ndarray:
    """int64 [R]: the step of each record."""
    return np.array([r["step"] for r in self.records], dtype=np.int64)

  def has(self, name: str) -> bool:
    """Whether any record carries metric `name` with a non-null value."""
    return any(r.get(name) is not None for r in self.records)

  def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps int64 [M], values float64 [M]) of the records that carry `name` (null values are
    skipped; NaN and ±inf become NaN, drawn as gaps).

    Raises:
      MetricsLogError: a value that is not a number, naming path:line and the metric.
    """
    steps, values, _ = self._series(name)
    return np.array(steps, dtype=np.int64), np.array(values, dtype=np.float64)

  def _series(self, name: str) -> tuple[list[int], list[float], list[int]]:
    steps, values, lines = [], [], []
    for record, line in zip(self.records, self.line_numbers):
      value = record.get(name)
      if value is None:
        continue
      if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MetricsLogError(f"{self.path}:{line}: metric {name!r}: expected a number, got "
                              f"{value!r}")
      steps.append(record["step"])
      values.append(float(value) if math.isfinite(value) else math.nan)
      lines.append(line)
    return steps, values, lines

  def reset_steps(self, name: str = REF_RESETS) -> list[int]:
    """Steps at which the cumulative reference-reset count `name` increased.

    The count is taken as 0 before the first record, so a run whose first logged record already
    counts a reset shows it at that record. A reset between two logged steps is placed at the
    later one. NaN counts are skipped.

    Raises:
      MetricsLogError: a non-numeric count, or a count that decreases (naming path:line).
    """
    out, previous = [], 0.0
    for step, count, line in zip(*self._series(name)):
      if math.isnan(count):
        continue
      if count < previous:
        raise MetricsLogError(f"{self.path}:{line}: metric {name!r} is a cumulative count but "
                              f"fell from {previous:g} to {count:g} at step {step}")
      if count > previous:
        out.append(step)
      previous = count
    return out


def read_metrics_jsonl(path: str | os.PathLike[str]) -> MetricsLog:
  """Reads metrics.jsonl (module docstring for the resume rule).

  Raises:
    FileNotFoundError: no such file.
    MetricsLogError: a line that is not JSON, not an object, or lacks an integer "step" >= 0;
      the message names path:line.
  """
  path = os.fspath(path)
  records: list[dict[str, Any]] = []
  lines: list[int] = []
  for line_no, record in iter_json_lines(path, MetricsLogError):
    if not isinstance(record, dict):
      raise MetricsLogError(f"{path}:{line_no}: expected a JSON object, got "
                            f"{type(record).__name__}")
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
      raise MetricsLogError(f"{path}:{line_no}: field 'step': expected an int >= 0, got "
                            f"{step!r}")
    while records and records[-1]["step"] >= step:  # a resumed run re-logs these steps
      records.pop()
      lines.pop()
    records.append(record)
    lines.append(line_no)
  return MetricsLog(path=path, records=tuple(records), line_numbers=tuple(lines))
