"""Tiny, locally built Hugging Face checkpoints and tokenizers for tests, benchmarks and the CPU
quickstart (no download).

`make_tiny_tokenizer` trains a byte-level BPE in-process (every string is encodable), with
ChatML special tokens and a chat template. `make_tiny_hf_checkpoint` builds a random
Qwen2/Llama/Mistral model with `transformers` itself (torch, CPU) and `save_pretrained`s it,
with the tokenizer next to it. Weights are re-drawn at O(1) scale (embeddings N(0, 1), kernels
N(0, 1/fan_in), biases N(0, 0.1²), norm scales 1 + N(0, 0.1²)) so logits are O(1) and parity
checks are meaningful (HF's default N(0, 0.02²) gives near-zero logits).
"""

from __future__ import annotations

import os
from typing import Any

IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def _corpus() -> list[str]:
  """A deterministic little corpus in the style of the ProRL domains."""
  lines = []
  words = ("the answer is", "let me think", "so the total is", "therefore", "we need to find",
           "first compute", "check the result", "Question:", "Solution:", "Final answer:")
  for i in range(200):
    a, b = (i * 7) % 97, (i * 13) % 89
    lines += [
        f"{words[i % len(words)]} {a} + {b} = {a + b}.",
        f"<think>\n{a} times {b} is {a * b}.\n</think>\nThe answer is \\boxed{{{a * b}}}.",
        f"def f{i}(x):\n    return x * {a} + {b}\n",
        f"<answer>{a - b}</answer> Write {i % 5 + 2} sentences in English.",
    ]
  return lines


def make_tiny_tokenizer(path: str | os.PathLike | None = None, *, vocab_size: int = 384) -> Any:
  """A small byte-level BPE tokenizer (`PreTrainedTokenizerFast`) with a ChatML chat template.

  Special tokens: pad '<|endoftext|>', '<|im_start|>', eos '<|im_end|>'. If `path` is given the
  tokenizer is `save_pretrained` there (AutoTokenizer loads it back).
  """
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=[PAD, IM_START, IM_END], show_progress=False,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(_corpus(), trainer)
  return chat_tokenizer(tok, path)


def chat_tokenizer(tok: Any, path: str | os.PathLike | None = None) -> Any:
  """A trained `tokenizers.Tokenizer` as a transformers fast tokenizer with this module's chat
  template, EOS `IM_END`, PAD `PAD` and left padding; saved to `path` when given."""
  from transformers import PreTrainedTokenizerFast
  fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD,
                                 padding_side="left")
  fast.chat_template = CHAT_TEMPLATE
  if path is not None:
    fast.save_pretrained(os.fspath(path))
  return fast


def make_tiny_hf_checkpoint(path: str | os.PathLike, *, architecture: str = "qwen2",
                            vocab_size: int | None = None, hidden_size: int = 64,
                            intermediate_size: int = 128, num_layers: int = 2,
                            num_heads: int = 4, num_kv_heads: int = 2,
                            head_dim: int | None = None, tie_word_embeddings: bool = False,
                            rope_theta: float = 10000.0,
                            rope_scaling: dict[str, Any] | None = None,
                            max_position_embeddings: int = 2048, seed: int = 0,
                            tokenizer: bool = True, dtype: str = "float32",
                            max_shard_size: int | str | None = None) -> str:
  """Writes a random HF checkpoint (config.json, safetensors, generation_config.json and, with
  `tokenizer`, the tiny tokenizer) to `path` and returns the path.

  Args:
    architecture: 'qwen2' (q/k/v bias), 'llama' or 'mistral' (no sliding window).
    vocab_size: default: the tokenizer's size (or 384 without a tokenizer); must be >= it.
    rope_scaling: e.g. {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0,
      'high_freq_factor': 4.0, 'original_max_position_embeddings': 64} (llama only).
    dtype: 'float32' or 'bfloat16', the saved tensor dtype.
    max_shard_size: e.g. '20KB' to get index-sharded safetensors.
  Raises:
    ValueError: unknown architecture, or vocab_size smaller than the tokenizer.
  """
  import torch
  import transformers
  path = os.fspath(path)
  os.makedirs(path, exist_ok=True)
  tok = make_tiny_tokenizer(path) if tokenizer else None
  if vocab_size is None:
    vocab_size = len(tok) if tok is not None else 384
  if tok is not None and vocab_size < len(tok):
    raise ValueError(f"vocab_size={vocab_size} < tokenizer size {len(tok)}")
  common = dict(
      vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
      num_hidden_layers=num_layers, num_attention_heads=num_heads,
      num_key_value_heads=num_kv_heads, max_position_embeddings=max_position_embeddings,
      tie_word_embeddings=tie_word_embeddings, rms_norm_eps=1e-6)
  if head_dim is not None:
    common["head_dim"] = head_dim
  rope = {"rope_type": "default", "rope_theta": rope_theta}
  if rope_scaling:
    rope.update(rope_scaling)
  common["rope_parameters"] = rope
  if tok is not None:
    common.update(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                  bos_token_id=None)
  if architecture == "qwen2":
    config, cls = transformers.Qwen2Config(**common), transformers.Qwen2ForCausalLM
  elif architecture == "llama":
    config, cls = transformers.LlamaConfig(**common), transformers.LlamaForCausalLM
  elif architecture == "mistral":
    config, cls = (transformers.MistralConfig(sliding_window=None, **common),
                   transformers.MistralForCausalLM)
  else:
    raise ValueError(f"architecture {architecture!r} is not one of qwen2, llama, mistral")
  torch.manual_seed(seed)
  model = cls(config).eval()
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
      if name.endswith("norm.weight"):
        p.copy_(1.0 + 0.1 * noise)
      elif name.endswith(".bias"):
        p.copy_(0.1 * noise)
      elif "embed_tokens" in name:
        p.copy_(noise)
      else:  # [out, in] kernels
        p.copy_(noise / p.shape[1] ** 0.5)
  if dtype == "bfloat16":
    model = model.to(torch.bfloat16)
  elif dtype != "float32":
    raise ValueError(f"dtype {dtype!r} is not float32 or bfloat16")
  kwargs = {"max_shard_size": max_shard_size} if max_shard_size is not None else {}
  model.save_pretrained(path, **kwargs)
  return path
