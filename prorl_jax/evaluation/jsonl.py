"""Line-numbered JSONL reading shared by the evaluation readers (samples, metrics, corpora).

Every error names `path:line`, so a bad row in a large file is found at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any


def iter_json_lines(path: str | os.PathLike[str], error: type[Exception] = ValueError
                    ) -> Iterator[tuple[int, Any]]:
  """Yields `(line_no, value)` for each non-blank line of a JSONL file (1-based line numbers).

  Raises:
    FileNotFoundError: no such file.
    error: a line that is not valid JSON; the message is "path:line: not valid JSON (...)".
  """
  path = os.fspath(path)
  with open(path, encoding="utf-8") as f:
    for line_no, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        yield line_no, json.loads(line)
      except json.JSONDecodeError as e:
        raise error(f"{path}:{line_no}: not valid JSON ({e.msg} at column {e.colno})") from None


def iter_string_field(path: str | os.PathLike[str], field: str,
                      error: type[Exception] = ValueError) -> Iterator[str]:
  """Yields the string `field` of each JSON object line of a JSONL file.

  Raises:
    FileNotFoundError: no such file.
    error: a line that is not JSON, or not an object with a string `field` (names path:line).
  """
  for line_no, obj in iter_json_lines(path, error):
    if not isinstance(obj, dict) or not isinstance(obj.get(field), str):
      raise error(f"{os.fspath(path)}:{line_no}: expected an object with a string field "
                  f"{field!r}")
    yield obj[field]
