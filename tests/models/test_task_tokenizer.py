"""The locally trained task tokenizer: digits, markers, round trips, save/load, chat rendering."""

from __future__ import annotations

import pytest

from prorl_jax.models import load_tokenizer, render_prompt
from prorl_jax.models.task_tokenizer import MARKER_TOKENS, make_task_tokenizer

CORPUS = [f"How many legs do {n} cows have?\n<think> {n} cows 4 x {n} = {4 * n}</think>\n"
          f"<answer> {4 * n}</answer>" for n in range(1, 60)] * 3


@pytest.fixture(scope="module")
def tok():
  return make_task_tokenizer(CORPUS, vocab_size=320)


def test_special_and_marker_tokens(tok):
  assert tok.convert_ids_to_tokens([0, 1, 2]) == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
  assert tok.pad_token_id == 0 and tok.eos_token_id == 2
  for marker in MARKER_TOKENS:
    ids = tok(marker, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, marker
    # Not special: the reward path decodes with skip_special_tokens=True and must keep them.
    assert tok.decode(ids, skip_special_tokens=True) == marker


def test_digits_are_single_tokens(tok):
  pieces = tok.convert_ids_to_tokens(tok(" 1234 + 56", add_special_tokens=False)["input_ids"])
  digits = [p for p in pieces if any(c.isdigit() for c in p)]
  # Each digit is its own token (a leading space may be merged into the first digit).
  assert [p.replace("Ġ", "") for p in digits] == list("123456")


@pytest.mark.parametrize("text", [
    "<think> 12 cows 4 x 12 = 48</think>\n<answer> 48</answer>",
    "Unseen wörds, émojis 🙂 and \\boxed{-7}\ttabs",
    "  leading spaces and trailing  ",
])
def test_round_trip(tok, text):
  ids = tok(text, add_special_tokens=False)["input_ids"]
  assert tok.decode(ids) == text


def test_vocabulary_size_and_compression(tok):
  assert len(tok) <= 320
  # Trained merges: a corpus sentence takes far fewer tokens than its bytes.
  text = CORPUS[5].split("\n")[0]
  assert len(tok(text, add_special_tokens=False)["input_ids"]) < len(text.encode()) / 2


def test_save_load_and_chat_template(tok, tmp_path):
  tok.save_pretrained(tmp_path)
  loaded = load_tokenizer(tmp_path)
  text = "<think> 3 cows</think><answer> 12</answer> and 🙂"
  assert loaded(text)["input_ids"] == tok(text)["input_ids"]
  rendered = render_prompt(loaded, "How many legs?")
  assert rendered == "<|im_start|>user\nHow many legs?<|im_end|>\n<|im_start|>assistant\n"
  assert loaded.padding_side == "left"


def test_path_argument_writes_the_files(tmp_path):
  make_task_tokenizer(CORPUS, vocab_size=300, path=tmp_path / "tok")
  assert (tmp_path / "tok" / "tokenizer.json").is_file()


def test_bad_arguments():
  with pytest.raises(ValueError, match="vocab_size=100"):
    make_task_tokenizer(CORPUS, vocab_size=100)
  with pytest.raises(ValueError, match="empty corpus"):
    make_task_tokenizer(["", ""], vocab_size=300)
