"""n-gram novelty of responses against a reference corpus the user supplies.

    novelty(response) = (# word n-grams of the response NOT found in the corpus)
                        / (# word n-grams of the response)

counted with multiplicity over the response's n-grams, in [0, 1]; higher = more novel, the same
direction as the Creativity Index the ProRL paper reports (spec §9: 3.84 -> 4.70 over training).
`overlap` is 1 − novelty, the fraction found in the corpus.

This is an approximation in the spirit of the Creativity Index (Lu et al. 2024, "AI as Humanity's
Salieri"), not that index: there the reference is a pretraining-scale corpus (DOLMA) searched for
exact matches of every span length, and the index sums uniqueness over a range of n. Here the
reference is whatever corpus the caller gives (no DOLMA on this machine), n is one fixed length,
and matching is exact after a simple normalisation:

- lowercase, then words = maximal runs of Unicode word characters (regex `\\w+`), so punctuation
  and whitespace are dropped ("Don't stop!" -> ["don", "t", "stop"]);
- n-grams do not cross documents (a JSONL line, or a whole text file, is one document).

The corpus is stored as a sorted array of 64-bit hashes of its distinct n-grams (8 bytes each;
Python's `hash` of the word tuple, so an index is valid only in the process that built it). Two
different n-grams share a hash with probability ~|corpus| / 2^64 per lookup, which could count a
novel n-gram as found; it is negligible at any corpus size that fits in memory.

Responses shorter than n words have no n-grams and get None.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from prorl_jax.evaluation.jsonl import iter_string_field

DEFAULT_N = 5
WORD_RE = re.compile(r"\w+")
_COMPACT_EVERY = 1 << 22  # hashes buffered before de-duplicating


def words(text: str) -> list[str]:
  """Normalised words of `text`: lowercase, `\\w+` runs (module docstring)."""
  return WORD_RE.findall(text.lower())


def _check_n(n: int) -> int:
  if isinstance(n, bool) or not isinstance(n, int) or n < 1:
    raise ValueError(f"n={n!r}: the n-gram length must be an int >= 1")
  return n


def _hashes(tokens: Sequence[str], n: int) -> np.ndarray:
  """int64 [max(0, len(tokens) − n + 1)]: hashes of the n-grams of `tokens`."""
  return np.fromiter((hash(tuple(tokens[i:i + n])) for i in range(len(tokens) - n + 1)),
                     dtype=np.int64, count=max(0, len(tokens) - n + 1))


class CorpusError(ValueError):
  """A corpus file that cannot be read as documents; the message names path:line."""


class NgramIndex:
  """The distinct word n-grams of a reference corpus, as a sorted hash array.

  Build with `from_texts` or `from_files`; query with `novelty`, `overlap` or `found`.
  """

  def __init__(self, hashes: np.ndarray, n: int, num_documents: int):
    self.n = _check_n(n)
    self._hashes = hashes
    self.num_documents = num_documents

  def __len__(self) -> int:
    """The number of distinct n-grams (hashes) in the corpus."""
    return int(self._hashes.size)

  @classmethod
  def from_documents(cls, documents: Iterable[Iterable[str]], n: int = DEFAULT_N
                     ) -> NgramIndex:
    """Builds the index from documents given as iterables of text pieces (e.g. the lines of a
    file); n-grams span the pieces of a document but not documents."""
    n = _check_n(n)
    chunks: list[np.ndarray] = []
    buffered = num_documents = 0
    for pieces in documents:
      num_documents += 1
      tail: list[str] = []
      for piece in pieces:
        tokens = tail + words(piece)
        hashes = _hashes(tokens, n)
        if hashes.size:
          chunks.append(hashes)
          buffered += hashes.size
        tail = tokens[max(0, len(tokens) - (n - 1)):] if n > 1 else []
      if buffered >= _COMPACT_EVERY:
        chunks, buffered = [np.unique(np.concatenate(chunks))], 0
    merged = np.unique(np.concatenate(chunks)) if chunks else np.zeros(0, np.int64)
    return cls(merged, n, num_documents)

  @classmethod
  def from_texts(cls, texts: Iterable[str], n: int = DEFAULT_N) -> NgramIndex:
    """Builds the index from in-memory texts, one document each."""
    return cls.from_documents(([t] for t in texts), n)

  @classmethod
  def from_files(cls, paths: Iterable[str | os.PathLike[str]], n: int = DEFAULT_N,
                 jsonl_field: str = "text") -> NgramIndex:
    """Builds the index from files: `*.jsonl` holds one document per line in the string field
    `jsonl_field`; any other file is one plain-text document (UTF-8), read line by line.

    Raises:
      FileNotFoundError: a missing file.
      CorpusError: a JSONL line that is not JSON, not an object, or lacks the string field
        (naming path:line).
    """
    def documents() -> Iterator[Iterable[str]]:
      for path in paths:
        path = os.fspath(path)
        if path.endswith(".jsonl"):
          yield from ([t] for t in iter_string_field(path, jsonl_field, CorpusError))
        else:
          with open(path, encoding="utf-8") as f:
            yield f
    return cls.from_documents(documents(), n)

  def found(self, text: str) -> np.ndarray:
    """bool [M]: for each of the M word n-grams of `text` (in order), whether the corpus has it."""
    hashes = _hashes(words(text), self.n)
    if not self._hashes.size:
      return np.zeros(hashes.shape, dtype=bool)
    at = np.minimum(np.searchsorted(self._hashes, hashes), self._hashes.size - 1)
    return self._hashes[at] == hashes

  def overlap(self, text: str) -> float | None:
    """Fraction of `text`'s word n-grams found in the corpus; None if it has fewer than n words."""
    hits = self.found(text)
    return float(hits.mean()) if hits.size else None

  def novelty(self, text: str) -> float | None:
    """Fraction of `text`'s word n-grams NOT found in the corpus (1 − overlap); None if it has
    fewer than n words."""
    hits = self.found(text)
    return float(1.0 - hits.mean()) if hits.size else None


def mean_novelty(texts: Iterable[str], index: NgramIndex) -> dict[str, float | int | None]:
  """Novelty averaged over responses (each response weighs the same).

  Returns:
    {"novelty": mean over scored responses or None, "n": index.n, "num_scored": responses with
    at least n words, "num_too_short": the others}.
  """
  scores = [index.novelty(t) for t in texts]
  scored = [s for s in scores if s is not None]
  return {"novelty": float(np.mean(scored)) if scored else None, "n": index.n,
          "num_scored": len(scored), "num_too_short": len(scores) - len(scored)}
