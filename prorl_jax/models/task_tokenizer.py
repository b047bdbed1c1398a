"""A small tokenizer trained locally on a task corpus (the CPU quickstart's; no download).

`make_task_tokenizer(corpus, vocab_size=...)` trains a byte-level BPE (every string stays
encodable, unseen text falls back to bytes) on the given texts and wraps it as a
`transformers.PreTrainedTokenizerFast` with the ChatML chat template of `models/tiny.py`, so
the whole stack (chat rendering, `load_tokenizer`, the sampler's EOS handling, HF export) treats
it like any checkpoint's tokenizer. Choices that keep a tiny policy's sequences short and its
arithmetic learnable:

- digits are split one per token (each digit, with the space before it if any, is its own
  pre-token: `DIGIT_PATTERN`), so numbers are read and written digit by digit rather than as
  arbitrary BPE chunks;
- the reasoning/answer markers (`<think>`, `</think>`, `<answer>`, `</answer>` by default) are
  single tokens that are NOT special: decoding with `skip_special_tokens=True` (what the reward
  path does) keeps them, so the verifiers still see `<answer>...</answer>`;
- special tokens: pad `<|endoftext|>`, `<|im_start|>`, eos `<|im_end|>` (ids 0, 1, 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from prorl_jax.models.tiny import IM_END, IM_START, PAD, chat_tokenizer

MARKER_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
DIGIT_PATTERN = r" ?[0-9]"  # one digit, with the space before it if any


def make_task_tokenizer(corpus: Iterable[str], *, vocab_size: int = 512,
                        marker_tokens: Sequence[str] = MARKER_TOKENS, min_frequency: int = 2,
                        path: str | os.PathLike | None = None) -> Any:
  """Trains a byte-level BPE on `corpus` and returns it as a `PreTrainedTokenizerFast`.

  Args:
    corpus: training texts (e.g. rendered prompts and worked answers of the tasks).
    vocab_size: the target vocabulary size, special and marker tokens included (the result can
      be slightly smaller when the corpus has fewer merges to learn). At least 256 + the special
      and marker tokens (the byte alphabet).
    marker_tokens: strings kept as single, non-special tokens (module docstring).
    min_frequency: a merge is learnt only for pairs seen at least this often.
    path: if given, the tokenizer is `save_pretrained` there (`models.load_tokenizer` loads it).
  Returns:
    The tokenizer: left padding, chat template = ChatML (`models.tiny.CHAT_TEMPLATE`).
  Raises:
    ValueError: vocab_size too small for the byte alphabet and the fixed tokens, or an empty
      corpus.
  """
  from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
  specials = [PAD, IM_START, IM_END]
  alphabet = pre_tokenizers.ByteLevel.alphabet()
  floor = len(alphabet) + len(specials) + len(marker_tokens)
  if vocab_size < floor:
    raise ValueError(f"vocab_size={vocab_size} is below the byte alphabet + special and marker "
                     f"tokens ({floor})")
  texts = [t for t in corpus if t]
  if not texts:
    raise ValueError("make_task_tokenizer: empty corpus")
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Split(Regex(DIGIT_PATTERN), behavior="isolated"),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size - len(marker_tokens), special_tokens=specials,
      min_frequency=min_frequency, show_progress=False, initial_alphabet=alphabet)
  tok.train_from_iterator(texts, trainer)
  # Added after training (the trainer rebuilds the vocabulary); matched before the BPE runs,
  # so a marker is never split.
  tok.add_tokens([AddedToken(m, special=False, normalized=False) for m in marker_tokens])
  return chat_tokenizer(tok, path)
