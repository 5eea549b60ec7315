"""Training examples from the JSONL formats of `loraswitch train`, labelled as it labels them (Sources/Training/
TrainingData.swift, ExampleEncoder.swift), and batches padded for PyTorch.

- {"text": T}: BOS? + tokens(T) + EOS? (as the tokenizer adds special tokens), every position labelled.
- {"prompt": P, "completion": C}: the prompt's trailing whitespace moves to the completion; the whole is tokenized
  with special tokens, the prompt alone with the BOS only; the labels are the tokens after their longest common
  prefix (the completion and the EOS).
- {"messages": [...]}: the chat template's rendering, tokenized without added special tokens; assistant turns
  labelled (each turn: rendered through it, minus the common prefix with the rendering before it plus the
  generation prompt).
- {"input_ids": [...], "labels": [...]}: as given (-100 = no loss); needs no tokenizer.

Labels follow Hugging Face's causal-LM convention (the logits at t are scored against labels[t + 1]).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .errors import AdapterError

IGNORED = -100
FORMATS = '"text"; "prompt" and "completion"; "messages"; or "input_ids" and "labels"'


def read_jsonl(path: str | os.PathLike, tokenizer=None, vocab_size: int | None = None,
               max_seq_len: int = 2048) -> list[dict]:
    """Every example of the file as {"input_ids", "labels"}, cut to max_seq_len tokens. A bad line raises an
    AdapterError naming the file and line."""
    path = str(path)
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except OSError as e:
        raise AdapterError(path, "file", f"cannot be read ({e.strerror})") from None
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ex = _example(line, tokenizer, vocab_size)
        except ValueError as e:
            raise AdapterError(path, f"line {number}", str(e)) from None
        ex = {k: v[:max_seq_len] for k, v in ex.items()}
        if not any(t != IGNORED for t in ex["labels"][1:]):
            raise AdapterError(path, f"line {number}", "no token to learn: every label is -100, or only the first "
                               f"position has one (within the first {max_seq_len} tokens)")
        examples.append(ex)
    if not examples:
        raise AdapterError(path, "file", "holds no example")
    return examples


def _example(line: str, tokenizer, vocab_size: int | None) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON at column {e.colno}: {e.msg}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"not a JSON object ({FORMATS})")
    keys = set(obj)
    unknown = keys - {"text", "prompt", "completion", "messages", "input_ids", "labels"}
    if unknown:
        raise ValueError(f"unexpected key \"{sorted(unknown)[0]}\" ({FORMATS})")
    if keys == {"input_ids", "labels"}:
        return _pre_tokenized(obj, vocab_size)
    if keys not in ({"text"}, {"prompt", "completion"}, {"messages"}):
        raise ValueError(f"keys {sorted(keys)} are no format ({FORMATS})")
    if tokenizer is None:
        raise ValueError("text needs the model's tokenizer, and there is none")
    if keys == {"text"}:
        ids = tokenizer(_string(obj, "text"), add_special_tokens=True)["input_ids"]
        return {"input_ids": ids, "labels": list(ids)}
    if keys == {"prompt", "completion"}:
        return prompt_completion(tokenizer, _string(obj, "prompt", empty=True), _string(obj, "completion"))
    return conversation(tokenizer, obj["messages"])


def _string(obj: dict, key: str, empty: bool = False) -> str:
    value = obj[key]
    if not isinstance(value, str) or (not empty and not value):
        raise ValueError(f"\"{key}\" must be a {'' if empty else 'non-empty '}string")
    return value


def _pre_tokenized(obj: dict, vocab_size: int | None) -> dict:
    ids, labels = obj["input_ids"], obj["labels"]
    for key, values in (("input_ids", ids), ("labels", labels)):
        if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ValueError(f"\"{key}\" must be a list of integers")
    if len(ids) != len(labels):
        raise ValueError(f"\"input_ids\" has {len(ids)} tokens, \"labels\" {len(labels)}")
    for key, values in (("input_ids", ids), ("labels", [l for l in labels if l != IGNORED])):
        bad = [v for v in values if v < 0 or (vocab_size is not None and v >= vocab_size)]
        if bad:
            raise ValueError(f"\"{key}\" holds {bad[0]}, outside the vocabulary (0..<{vocab_size})")
    return {"input_ids": list(ids), "labels": list(labels)}


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _bos(tokenizer) -> list[int]:
    """The BOS that encoding with special tokens starts with, if any."""
    specials = tokenizer("", add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    return [bos] if specials and bos is not None and specials[0] == bos else []


def prompt_completion(tokenizer, prompt: str, completion: str) -> dict:
    context = prompt.rstrip()
    continuation = prompt[len(context):] + completion
    whole = tokenizer(context + continuation, add_special_tokens=True)["input_ids"]
    start = _common_prefix(whole, _bos(tokenizer) + tokenizer(context, add_special_tokens=False)["input_ids"])
    return {"input_ids": whole, "labels": [IGNORED] * start + whole[start:]}


def conversation(tokenizer, messages) -> dict:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ValueError("\"messages\" must be a list of objects")
    if tokenizer.chat_template is None:
        raise ValueError("a messages example needs the model's chat template, and its tokenizer has none")

    def render(count: int, generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(messages[:count], tokenize=False, add_generation_prompt=generation_prompt)

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    full = render(len(messages), False)
    tokens = encode(full)
    labels = [IGNORED] * len(tokens)
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        before, through = render(i, True), render(i + 1, False)
        if not through.startswith(before) or not full.startswith(through):
            raise ValueError(f"the chat template renders the conversation around message {i + 1} (assistant) "
                             "differently once more messages follow, so its tokens cannot be told apart")
        turn = encode(through)
        if tokens[:len(turn)] != turn:
            raise ValueError(f"the tokens through message {i + 1} (assistant) do not begin the conversation's tokens")
        for j in range(_common_prefix(turn, encode(before)), len(turn)):
            labels[j] = tokens[j]
    return {"input_ids": tokens, "labels": labels}


def collate(examples: list[dict], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids, labels (-100 on padding) and attention_mask, [B, L] each."""
    length = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORED, dtype=torch.long)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
