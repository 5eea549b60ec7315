#!/usr/bin/env python3
"""Regenerate the text fixtures: tokenizer conformance and chat-template rendering.

Run from the repository root (development machines only; the Swift package does not need
Python at build or test time):

    ~/.cache/loraswitch-peers/bin/python scripts/make_text_fixtures.py

Needs: tokenizers, transformers (5.x), jinja2, gguf (gguf-py), llama-cpp-python, and the
default model file (SmolLM2-135M-Instruct.Q4_1.gguf in $XDG_CACHE_HOME/loraswitch, else
~/.cache/loraswitch; `scripts/fetch-default-model.sh` puts it there). Nothing is downloaded.

What it writes (it deletes and rewrites these two folders, nothing else):

    Tests/Fixtures/tokenizers/
        corpus.json                      the test strings (a JSON list)
        <name>/tokenizer.json            Hugging Face `tokenizers` files (+ tokenizer_config.json)
        <name>.gguf                      vocab-only GGUF files (no tensors)
        <name>.expected.json             expected ids / decoded text per corpus string
        README.md
    Tests/Fixtures/chat/
        cases.json                       chat templates and their expected renderings
        README.md                        the Jinja features each template uses

Everything is deterministic: the tokenizers are trained single-threaded on a fixed text
written below, and all JSON is written with sorted/fixed key order and ASCII escapes, so
re-running gives byte-identical files (same library versions assumed: tokenizers,
transformers/jinja2 and the llama.cpp build inside llama-cpp-python are part of the recipe).
"""

from __future__ import annotations

import os

# The BPE trainer and the pre-tokenizers run on rayon threads; one thread keeps every
# step (and in particular the order in which equal-count merges are found) reproducible.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import ctypes
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import gguf
import jinja2
import jinja2.nodes as jn
import llama_cpp
import tokenizers
import transformers
from llama_cpp import Llama
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

transformers.utils.logging.set_verbosity_error()

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "Fixtures"
TOK_DIR = FIXTURES / "tokenizers"
CHAT_DIR = FIXTURES / "chat"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
DEFAULT_MODEL = CACHE / "loraswitch" / "SmolLM2-135M-Instruct.Q4_1.gguf"

LLAMACPP_PYTHON_VERSION = llama_cpp.__version__

# ---------------------------------------------------------------------------------------
# Pre-tokenizer regular expressions (as in the models' tokenizer.json files)
# ---------------------------------------------------------------------------------------

# Llama 3 (meta-llama/Meta-Llama-3-8B tokenizer.json, = tiktoken's cl100k_base pattern)
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2 (Qwen/Qwen2-7B-Instruct tokenizer.json): the same, but single digits
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# GPT-2: what `ByteLevel(use_regex=True)` applies internally (documented here for the README)
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

# ---------------------------------------------------------------------------------------
# Training text for the small vocabularies (English, code, numbers, a little CJK and emoji)
# ---------------------------------------------------------------------------------------

TRAINING_TEXT = r'''
The cat sat on the mat. The dog sat on the log. A bird sang in the tree and the sun was warm.
Language models read text as a sequence of tokens. A tokenizer splits the text into pieces,
maps every piece to a number, and the model predicts the next number. Good tokenizers keep
common words whole and break rare words into smaller parts, so that any text can be written.
DON'T PANIC! IT'S FINE, I'M HERE. WE'RE OK, YOU'LL SEE: THEY'VE GONE AND I'D STAY. IT'S ME.
DON'T WORRY, IT'S LATE BUT I'M AWAKE; SHE'S HERE, HE'LL COME, THEY'RE READY, WE'VE WON.
It is a truth universally acknowledged that a program in possession of a good test suite
must be in want of more tests. We don't know what we haven't tested, and it's the bug you
didn't expect that you'll spend the night on. They're here; we've seen them; I'm sure.
On Monday the team met at 9:30 to plan the week. On Tuesday they wrote the parser, on
Wednesday the interpreter, and on Thursday they fixed the bugs found on Wednesday.
The weather today is sunny with a high of 24 degrees and a low of 13. Tomorrow, rain.
In 1969 people walked on the moon; in 2007 the first smartphone of its kind was sold; in
2024 small models ran on laptops. The year has 365 days, 52 weeks and 12 months.
Prices: $3.50 for coffee, $12.99 for lunch, 1,250 dollars for rent, and 0.5% interest.
Call 555-0199 or write to info@example.com before 2025-01-31.
Hello world! Hello, world. Hello again, my friend. How are you? I am fine, thank you.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.
Once upon a time there was a small village by the sea. The people there were fishermen
and they went out every morning before the sun came up. In the evening they sold their
fish in the market, and the children played on the beach until it was dark.
Python is a programming language. Swift is a programming language too. JSON is a format.
def greet(name):
    """Say hello."""
    if not name:
        return "Hello, world!"
    return f"Hello, {name}!"

class Counter:
    def __init__(self, start=0):
        self.value = start

    def increment(self, step=1):
        self.value += step
        return self.value

for i in range(10):
	print(i, i * i)
import json, os, sys
data = {"name": "test", "values": [1, 2, 3], "nested": {"ok": True}}
print(json.dumps(data, indent=2))
struct Point: Equatable {
    var x: Double
    var y: Double

    func distance(to other: Point) -> Double {
        let dx = x - other.x, dy = y - other.y
        return (dx * dx + dy * dy).squareRoot()
    }
}
let points = [Point(x: 0, y: 0), Point(x: 3, y: 4)]
print(points[0].distance(to: points[1]))
func tokenize(_ text: String) throws -> [Int] {
    guard !text.isEmpty else { return [] }
    return text.unicodeScalars.map { Int($0.value) }
}
{
  "model": "llama",
  "vocab_size": 32000,
  "hidden_size": 4096,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "architectures": ["LlamaForCausalLM"]
}
if (x > 0 && y < 10) { return x + y; } else { return -1; }
SELECT name, age FROM users WHERE age >= 18 ORDER BY name;
git commit -m "fix: handle empty input" && git push origin main
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 256 1000 1024 4096 65536 3.14 2.718 -1 -273.15
Dates: 2023-10-05, 12/25/2022, 1 January 2000, 31.12.1999, 10:45:00.
我们今天去公园散步。天气很好，阳光明媚。中文文本也需要分词。
こんにちは、世界。東京は大きな都市です。ひらがなとカタカナ。
안녕하세요. 반갑습니다.
Emoji: 😀 😂 👍 🎉 ❤️ 🚀 ✨ 🙏 and more 😀😀.
Café, naïve, résumé, façade, jalapeño, über, São Paulo, Zürich, crème brûlée.
Привет, как дела? Ελληνικά γράμματα.
The end. The end! THE END? the end...
A library is a quiet place where people come to read, to study and to think. The books on the
shelves are sorted by subject, and every book has a number on its spine. If you cannot find the
book you want, you can ask the librarian, who will look it up in the catalogue and show you where
it is. Many libraries also lend music, films and games, and some of them have rooms where children
can listen to stories every Saturday morning.
The history of computing is short but full of change. The first computers filled whole rooms and
were programmed with switches and cables. Then came punched cards, then terminals, then personal
computers on every desk, and now phones in every pocket that are faster than the machines that
sent people to the moon. Each generation of programmers thought that the problems of the previous
one had been solved, and each found new problems of its own.
Testing is how we know that a program does what we think it does. A unit test checks one small
function with a few inputs; an integration test checks that the parts work together; a fixture is
a file with known inputs and expected outputs that the tests can read. When a test fails, the
first question is whether the code is wrong or the expectation is wrong, and the second question
is why nobody noticed before.
The model reads the prompt, computes the probabilities of the next token, picks one, appends it,
and repeats until it reaches the end of the answer or the maximum number of tokens. The speed of
this loop depends on how fast the weights can be read from memory, because every token needs every
weight once. Smaller weights, such as four-bit or eight-bit numbers, make the loop faster.
Recipe: mix 200 grams of flour, 2 eggs, 300 millilitres of milk and a pinch of salt. Let the batter
rest for 30 minutes. Heat a pan, add a little butter, pour in a ladle of batter and cook each side
for about one minute. Serve with lemon and sugar, or with cheese and ham.
The train leaves the station at 7:45 and arrives at 10:15, stopping at three towns on the way. If
the train is late, passengers can ask for a refund at the ticket office or on the website.
import numpy as np

def softmax(x, axis=-1):
    """Numerically stable softmax."""
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)

def rms_norm(x, weight, eps=1e-5):
    variance = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(variance + eps) * weight

class Tokenizer:
    def __init__(self, vocab, merges):
        self.vocab = dict(vocab)
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}

    def encode(self, text):
        ids = []
        for word in text.split():
            ids.extend(self.vocab.get(piece, 0) for piece in self.bpe(word))
        return ids

    def decode(self, ids):
        inverse = {v: k for k, v in self.vocab.items()}
        return "".join(inverse[i] for i in ids)

if __name__ == "__main__":
    tok = Tokenizer({"a": 1, "b": 2}, [("a", "b")])
    print(tok.encode("a b ab"))
enum Token: Hashable {
    case word(String)
    case number(Int)
    case punctuation(Character)
}

final class Vocabulary {
    private var tokenToID: [String: Int] = [:]
    private var idToToken: [String] = []

    init(tokens: [String]) {
        for (index, token) in tokens.enumerated() {
            tokenToID[token] = index
            idToToken.append(token)
        }
    }

    func id(for token: String) -> Int? {
        return tokenToID[token]
    }

    var count: Int { idToToken.count }
}

extension Array where Element == Int {
    func joined(separator: String = ",") -> String {
        map(String.init).joined(separator: separator)
    }
}
{"messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hi!"}]}
{"id": 42, "tags": ["red", "green", "blue"], "score": 0.75, "active": false, "parent": null}
<html><body><h1>Title</h1><p>Some <b>bold</b> text &amp; a <a href="https://example.com">link</a>.</p></body></html>
for f in *.txt; do wc -l "$f"; done | sort -n | tail -3
#include <stdio.h>
int main(void) { printf("%d\n", 1 + 2); return 0; }
北京是中国的首都。我喜欢学习语言和编程。
日本語の文章を書きます。今日はいい天気ですね。
Das ist ein kleiner Test. Wir schreiben Text auf Deutsch, Französisch und Spanisch.
C'est la vie. ¿Dónde está la biblioteca? Ça va très bien, merci.
'''

# ---------------------------------------------------------------------------------------
# Test corpus (shared by all tokenizers)
# ---------------------------------------------------------------------------------------

LONG_PARAGRAPH = (
    "Tokenization is the first step of every language model pipeline, and it is also the step "
    "where small mistakes are the hardest to notice. A tokenizer that splits \"don't\" differently, "
    "drops a trailing space, or merges two newlines into one token instead of two will still produce "
    "fluent text, yet the model sees a sequence it was never trained on and its answers get quietly "
    "worse. That is why this paragraph exists: it is long (about one thousand characters), it mixes "
    "upper and lower case, numbers such as 42, 3.5 and 1,024, punctuation of many kinds (commas, "
    "semicolons; colons: dashes - and parentheses), and a few words that are rare enough to be split "
    "into several pieces, like antidisestablishmentarianism, pneumonoultramicroscopic and "
    "floccinaucinihilipilification. Byte-level vocabularies can represent every one of them; "
    "SentencePiece vocabularies with byte fallback can too, one byte at a time when nothing better "
    "exists. The expected ids below were produced by the reference implementations, and the Swift "
    "code must reproduce them exactly, token for token, without exception."
)

CORPUS: list[str] = [
    # --- plain English
    "Hello world",
    "Hello, world! How are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "LoRASwitch runs Llama-family language models on the CPU.",
    "hello",
    "HELLO WORLD",
    "a",
    "Once upon a time there was a small village by the sea.",
    "antidisestablishmentarianism, or antidisestablishmentarianism?",  # see IGNORE_MERGES_WORD
    # --- code
    'def greet(name):\n    """Say hello."""\n    if not name:\n        return "Hello, world!"\n'
    '    return f"Hello, {name}!"\n',
    "for i in range(10):\n\tif i % 2 == 0:\n\t\tprint(i)\n",
    "struct Point {\n    var x: Double\n    var y: Double\n}\n\nlet p = Point(x: 1, y: 2)",
    '{\n  "name": "test",\n  "values": [1, 2, 3],\n  "nested": {"ok": true, "pi": 3.14}\n}',
    "x=1;y=2;z=x+y",
    "ls -la | grep '.swift' > out.txt && echo $?",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "    indented = True  # comment",
    # --- numbers and dates
    "1",
    "12",
    "123",
    "1234",
    "12345678",
    "3.14159",
    "-42",
    "1,000,000",
    "2024-03-15",
    "03/15/2024 at 12:30:45",
    "Version 1.2.3 released in 1999 cost $9.99 (about \u20ac8,50).",
    "0xFF 0b1010 1e-5 6.022e23",
    # --- whitespace
    " ",
    "  ",
    "   ",
    "        ",
    " leading space",
    "trailing space ",
    "  both  sides  ",
    "two  spaces   three    four",
    "\n",
    "\n\n",
    "line one\nline two",
    "paragraph one\n\nparagraph two",
    "windows\r\nline endings\r\n",
    "a\rb",
    "mixed \n \n  spaces\t\n",
    "\t",
    "\ttab\tseparated\tvalues",
    "\n\n\n   \n",
    "ends with newline\n",
    "nbsp\u00a0here and\u2028line separator",
    # --- CJK
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002",  # 你好，世界！今天天气很好。
    "\u3053\u3093\u306b\u3061\u306f\u3001\u4e16\u754c\u3002\u30ab\u30bf\u30ab\u30ca\u3082\u3072\u3089\u304c\u306a\u3082\u3002",
    "\uc548\ub155\ud558\uc138\uc694, \uc138\uacc4! \ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4.",
    "English \u4e2d\u6587 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4 mixed",
    # --- emoji
    "\U0001F642",                                           # 🙂
    "\U0001F44D\U0001F3FD",                                 # 👍🏽 (skin tone)
    "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",  # family ZWJ sequence
    "\U0001F1EB\U0001F1F7\U0001F1EF\U0001F1F5",             # 🇫🇷🇯🇵 flags
    "I love it \u2764\ufe0f\U0001F525 so much!!! \U0001F389\U0001F389",
    # --- accents, combining characters, other scripts
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 fa\u00e7ade",
    "e\u0301",
    "Cafe\u0301 vs Caf\u00e9",
    "\u00c5ngstr\u00f6m \u00d8 \u00e6 \u00df \u0142\u00f3d\u017a",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u039a\u03cc\u03c3\u03bc\u03b5! \u03b1\u03b2\u03b3\u03b4\u03b5",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u2211 x\u00b2 \u2264 \u221e \u2192 \u03bb",
    "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff11\uff12\uff13",  # fullwidth
    "zero\u200bwidth and \ufeffBOM",
    "nul\u0000byte",
    # --- apostrophes and contractions
    "don't",
    "I'M",
    "she'll",
    "it's",
    "We're here, they've gone, I'd go, you'll see, he's OK.",
    "DON'T SHOUT, IT'S LOUD",
    "rock 'n' roll, 'quoted'",
    "the dog's bone",
    # --- punctuation runs
    "!!!???...",
    "...---***///",
    "Wait... what?!?! (really) [yes] {no} <maybe>",
    "\"double\" 'single' `back` \u201ccurly\u201d \u2018quotes\u2019 \u2014 dash \u2013 en",
    # --- empty
    "",
    # --- special tokens of the different vocabularies, embedded in text
    "<|im_start|>user\nHi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
    " <|im_end|> ",
    "<s>[INST] hi [/INST]",
    "</s>",
    "Hello</s><s>world",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "<|endoftext|><|endoftext|>",
    "use <tool> here<tool>x",
    "<unk> and <|im_start|> without newline",
    # --- a long paragraph
    LONG_PARAGRAPH,
]

# ---------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------


def dumps_ascii(value) -> str:
    """Compact JSON with ASCII escapes (any code point, lone or astral, survives exactly)."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def write_expected(path: Path, obj: dict) -> None:
    """Top-level keys in the given order; every list element on its own line (diff-friendly)."""
    lines = ["{"]
    items = list(obj.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if isinstance(value, list):
            lines.append(f"  {dumps_ascii(key)}: [")
            for j, element in enumerate(value):
                lines.append("    " + dumps_ascii(element) + ("," if j < len(value) - 1 else ""))
            lines.append("  ]" + comma)
        else:
            lines.append(f"  {dumps_ascii(key)}: {dumps_ascii(value)}{comma}")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def write_json(path: Path, obj, ensure_ascii: bool = True) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=ensure_ascii, indent=2) + "\n", encoding="utf-8")


def training_lines() -> list[str]:
    return [line for line in TRAINING_TEXT.split("\n") if line.strip()]


def expected_from_tokenizers(tok: Tokenizer, add_special_tokens: bool) -> tuple[list, list]:
    ids = [tok.encode(text, add_special_tokens=add_special_tokens).ids for text in CORPUS]
    decoded = [tok.decode(x, skip_special_tokens=False) for x in ids]
    return ids, decoded


def with_model_changes(tok: Tokenizer, overrides: dict | None = None, extra_vocab: list[str] = ()) -> Tokenizer:
    """A copy of `tok` with BPE model fields overridden and `extra_vocab` appended to the model
    vocabulary (with no merge that makes them). Call before adding any added tokens."""
    data = json.loads(tok.to_str())
    assert not data["added_tokens"] or not extra_vocab
    data["model"].update(overrides or {})
    for token in extra_vocab:
        assert token not in data["model"]["vocab"]
        data["model"]["vocab"][token] = len(data["model"]["vocab"])
    return Tokenizer.from_str(json.dumps(data))


def save_tokenizer_json(tok: Tokenizer, folder: Path) -> Tokenizer:
    """Write tokenizer.json as the library serializes it (UTF-8, indented) and reload it."""
    folder.mkdir(parents=True)
    data = json.loads(tok.to_str())
    write_json(folder / "tokenizer.json", data, ensure_ascii=False)
    return Tokenizer.from_file(str(folder / "tokenizer.json"))


def tokenizer_config(bos, eos, unk=None, pad=None, chat_template=None, **extra) -> dict:
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 8192,
        "bos_token": bos,
        "eos_token": eos,
        "unk_token": unk,
        "pad_token": pad,
        "clean_up_tokenization_spaces": False,
    }
    cfg.update(extra)
    if chat_template is not None:
        cfg["chat_template"] = chat_template
    return cfg


# ---------------------------------------------------------------------------------------
# 1a–1c. Byte-level BPE vocabularies (GPT-2, Llama 3, Qwen2 set-ups)
# ---------------------------------------------------------------------------------------

BYTELEVEL_VOCAB_SIZE = 1024


def train_bytelevel(pre_tokenizer, normalizer=None) -> Tokenizer:
    """A byte-level BPE trained on TRAINING_TEXT with the given pre-tokenizer."""
    tok = Tokenizer(models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BYTELEVEL_VOCAB_SIZE,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 byte symbols
        special_tokens=[],
    )
    tok.train_from_iterator([TRAINING_TEXT], trainer=trainer)
    return tok


def make_gpt2(summary: dict) -> None:
    name = "bytelevel-gpt2"
    tok = train_bytelevel(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)  # offsets only; ids unchanged
    tok.add_special_tokens(["<|endoftext|>"])
    tok.add_tokens([tokenizers.AddedToken("<tool>", special=False, normalized=False)])
    tok = save_tokenizer_json(tok, TOK_DIR / name)
    write_json(
        TOK_DIR / name / "tokenizer_config.json",
        tokenizer_config("<|endoftext|>", "<|endoftext|>", unk="<|endoftext|>"),
    )
    ids, decoded = expected_from_tokenizers(tok, add_special_tokens=True)
    write_expected(TOK_DIR / f"{name}.expected.json", {
        "texts": CORPUS,
        "add_special_tokens": True,
        "source": f"tokenizers {tokenizers.__version__}: Tokenizer.from_file('{name}/tokenizer.json')"
                  ".encode(text).ids; decoded = decode(ids, skip_special_tokens=False)",
        "ids": ids,
        "decoded": decoded,
    })
    summary[name] = {"vocab": tok.get_vocab_size(), "ids": ids}


LLAMA3_SPECIALS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|reserved_special_token_2|>", "<|eot_id|>",
]


IGNORE_MERGES_WORD = "\u0120antidisestablishmentarianism"  # "Ġ" = byte-level space


def make_llama3(summary: dict) -> None:
    name = "bytelevel-llama3"
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok = train_bytelevel(pre)
    # Llama 3's tokenizer.json has "ignore_merges": true: a pre-token that is itself in the
    # vocabulary becomes that one token without running the merges (llama.cpp does the same for
    # its llama-bpe pre-tokenizer). A trained vocabulary has no token that its own merges cannot
    # reach, so add one (tiktoken-derived vocabularies have many): IGNORE_MERGES_WORD, with no
    # merge. The corpus has the word with and without the leading space.
    tok = with_model_changes(tok, {"ignore_merges": True}, [IGNORE_MERGES_WORD])
    tok.add_special_tokens(LLAMA3_SPECIALS)  # appended after the BPE vocabulary, like 128000+
    bos = "<|begin_of_text|>"
    bos_id = tok.token_to_id(bos)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(
            single=f"{bos}:0 $A:0",
            pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
            special_tokens=[(bos, bos_id)],
        ),
    ])
    plain = with_model_changes(tok, {"ignore_merges": False})  # for the README: what it changes
    plain_ids = [plain.encode(t).ids for t in CORPUS]
    tok = save_tokenizer_json(tok, TOK_DIR / name)
    write_json(
        TOK_DIR / name / "tokenizer_config.json",
        tokenizer_config(bos, "<|eot_id|>", chat_template=LLAMA3_TEMPLATE),
    )
    ids, decoded = expected_from_tokenizers(tok, add_special_tokens=True)
    assert all(x[0] == bos_id for x in ids)
    ignore_merges_changes = [t for t, a, b in zip(CORPUS, plain_ids, ids) if a != b]
    write_expected(TOK_DIR / f"{name}.expected.json", {
        "texts": CORPUS,
        "add_special_tokens": True,
        "source": f"tokenizers {tokenizers.__version__}: Tokenizer.from_file('{name}/tokenizer.json')"
                  ".encode(text, add_special_tokens=True).ids (TemplateProcessing prepends "
                  f"<|begin_of_text|> = {bos_id}); decoded = decode(ids, skip_special_tokens=False)",
        "ids": ids,
        "decoded": decoded,
    })
    summary[name] = {"vocab": tok.get_vocab_size(), "ids": ids, "ignore_merges_changes": ignore_merges_changes}


def make_qwen2(summary: dict) -> None:
    name = "bytelevel-qwen2"
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok = train_bytelevel(pre, normalizer=normalizers.NFC())
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok = save_tokenizer_json(tok, TOK_DIR / name)
    write_json(
        TOK_DIR / name / "tokenizer_config.json",
        tokenizer_config(None, "<|im_end|>", pad="<|endoftext|>", chat_template=QWEN2_TEMPLATE),
    )
    ids, decoded = expected_from_tokenizers(tok, add_special_tokens=True)
    write_expected(TOK_DIR / f"{name}.expected.json", {
        "texts": CORPUS,
        "add_special_tokens": True,
        "source": f"tokenizers {tokenizers.__version__}: Tokenizer.from_file('{name}/tokenizer.json')"
                  ".encode(text).ids (no BOS); decoded = decode(ids, skip_special_tokens=False)",
        "ids": ids,
        "decoded": decoded,
    })
    summary[name] = {"vocab": tok.get_vocab_size(), "ids": ids}


# ---------------------------------------------------------------------------------------
# 1d–1e. SentencePiece-style BPE with byte fallback (Llama 2 / Mistral / TinyLlama set-up)
# ---------------------------------------------------------------------------------------

SPM_TRAINER_VOCAB = 1000   # specials + characters + merges; the 256 byte tokens come on top
SPIECE = "\u2581"          # ▁


def train_spm_pieces() -> tuple[list[str], list[tuple[str, str]]]:
    """Train a BPE the way SentencePiece sees text (words prefixed with ▁, split on spaces),
    then lay the pieces out as Llama 2 does: <unk> <s> </s>, <0x00>..<0xFF>, the merged pieces
    in merge order, then the single characters."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPIECE, prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=SPM_TRAINER_VOCAB,
        min_frequency=1,
        show_progress=False,
        special_tokens=["<unk>", "<s>", "</s>"],
    )
    # One sentence per line (as SentencePiece trains): no "\n" piece, newlines fall back to <0x0A>.
    tok.train_from_iterator(training_lines(), trainer=trainer)
    trained = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    by_id = sorted(trained["vocab"].items(), key=lambda kv: kv[1])
    merged = [a + b for a, b in merges]
    specials = ["<unk>", "<s>", "</s>"]
    chars = [t for t, _ in by_id if t not in specials and t not in set(merged)]
    assert all(len(c) == 1 for c in chars), chars
    pieces = specials + [f"<0x{b:02X}>" for b in range(256)] + merged + chars
    assert len(set(pieces)) == len(pieces), "duplicate piece"
    return pieces, merges


def spm_tokenizer_json(pieces: list[str], merges: list[tuple[str, str]]) -> dict:
    """tokenizer.json as transformers' LlamaConverter writes it for Llama 2 (legacy merges as
    "a b" strings, which is what older Llama/Mistral/TinyLlama files contain)."""
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, t in enumerate(pieces[:3])
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPIECE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPIECE},
        ]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPIECE}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(pieces)},
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def spm_scores_and_types(pieces: list[str]) -> tuple[list[float], list[int]]:
    """SentencePiece scores as a BPE .model file has them: a piece's score is minus its rank,
    so the piece made by merge k scores -k (earlier merges win in llama.cpp's SPM tokenizer,
    which repeatedly merges the adjacent pair whose concatenation is the highest-scoring
    piece). Specials and bytes score 0 (they are never the result of a merge)."""
    scores, types = [], []
    for i, piece in enumerate(pieces):
        if i == 0:
            scores.append(0.0); types.append(gguf.TokenType.UNKNOWN)
        elif i < 3:
            scores.append(0.0); types.append(gguf.TokenType.CONTROL)
        elif i < 259:
            scores.append(0.0); types.append(gguf.TokenType.BYTE)
        else:
            scores.append(float(-(i - 259))); types.append(gguf.TokenType.NORMAL)
    return scores, [int(t) for t in types]


def add_tiny_llama_hparams(w: gguf.GGUFWriter, n_vocab: int) -> None:
    """llama.cpp reads the llama hyper-parameters even with vocab_only; give it tiny ones."""
    w.add_context_length(2048)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_rope_dimension_count(16)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)


def write_gguf(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def load_llamacpp(path: Path) -> Llama:
    return Llama(model_path=str(path), vocab_only=True, verbose=False)


def llamacpp_tokenize(llm: Llama, text: str) -> list[int]:
    # add_bos=True means "add the special tokens the file asks for" (tokenizer.ggml.add_bos_token)
    return llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)


def llamacpp_detokenize(llm: Llama, ids: list[int]) -> str:
    """llama.cpp's own llama_detokenize(remove_special=false, unparse_special=true), not the
    per-piece concatenation of Llama.detokenize."""
    vocab = llm._model.vocab
    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    size = 64 + 64 * len(ids)
    buf = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, size, False, True)
    assert 0 <= n <= size, n
    return buf.raw[:n].decode("utf-8")


def describe_ids(ids: list[int], pieces: list[str]) -> str:
    return " ".join(pieces[i] for i in ids)


def disagreements(a: list[list[int]], b: list[list[int]], pieces: list[str]) -> list[dict]:
    out = []
    for text, x, y in zip(CORPUS, a, b):
        if x != y:
            out.append({"text": text, "tokenizers": describe_ids(x, pieces), "llamacpp": describe_ids(y, pieces)})
    return out


def write_spm_gguf(path: Path, pieces: list[str], scores: list[float], types: list[int]) -> None:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("spm-llama2 test vocabulary")
    add_tiny_llama_hparams(w, len(pieces))
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.add_chat_template(LLAMA2_TEMPLATE)
    write_gguf(w)


def make_spm(summary: dict) -> None:
    name = "spm-llama2"
    pieces, merges = train_spm_pieces()
    folder = TOK_DIR / name
    folder.mkdir(parents=True)
    write_json(folder / "tokenizer.json", spm_tokenizer_json(pieces, merges), ensure_ascii=False)
    write_json(folder / "tokenizer_config.json", tokenizer_config(
        "<s>", "</s>", unk="<unk>", chat_template=LLAMA2_TEMPLATE,
        add_bos_token=True, add_eos_token=False, legacy=True))
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tok.get_vocab_size() == len(pieces)
    ids, decoded = expected_from_tokenizers(tok, add_special_tokens=True)
    assert all(x[0] == 1 for x in ids)
    # CJK / emoji absent from the training text must fall back to byte tokens
    for probe in ("\ud55c\uad6d\uc5b4", "\U0001F468\u200d\U0001F469", "\u0928\u092e\u0938\u094d\u0924\u0947"):
        probe_ids = tok.encode(probe).ids
        assert any(3 <= i < 259 for i in probe_ids), (probe, probe_ids)

    # --- the same vocabulary as a vocab-only GGUF, tokenized by llama.cpp
    scores, types = spm_scores_and_types(pieces)
    gguf_path = TOK_DIR / f"{name}.gguf"
    write_spm_gguf(gguf_path, pieces, scores, types)
    llm = load_llamacpp(gguf_path)
    assert llm.n_vocab() == len(pieces)
    cpp_ids = [llamacpp_tokenize(llm, t) for t in CORPUS]
    cpp_decoded = [llamacpp_detokenize(llm, x) for x in cpp_ids]
    diffs = disagreements(ids, cpp_ids, pieces)

    # How much do the scores matter? gguf-py's LlamaHfVocab (convert_hf_to_gguf.py for a
    # tokenizer.json-only Llama) writes -1000 for every score; measure what that would do.
    with tempfile.TemporaryDirectory() as tmp:
        uniform_path = Path(tmp) / "uniform.gguf"
        write_spm_gguf(uniform_path, pieces, [-1000.0] * len(pieces), types)
        uniform = load_llamacpp(uniform_path)
        uniform_diffs = sum(llamacpp_tokenize(uniform, t) != x for t, x in zip(CORPUS, ids))
        del uniform

    write_expected(TOK_DIR / f"{name}.expected.json", {
        "texts": CORPUS,
        "add_special_tokens": True,
        "source": f"ids/decoded: tokenizers {tokenizers.__version__} on {name}/tokenizer.json "
                  "(encode(text, add_special_tokens=True), decode(ids, skip_special_tokens=False)); "
                  f"llamacpp_ids/llamacpp_decoded: llama-cpp-python {LLAMACPP_PYTHON_VERSION} on {name}.gguf "
                  "(tokenize(text, add_bos=True, special=True); llama_detokenize(remove_special=false, "
                  "unparse_special=true))",
        "ids": ids,
        "decoded": decoded,
        "llamacpp_ids": cpp_ids,
        "llamacpp_decoded": cpp_decoded,
    })
    summary[name] = {"vocab": len(pieces), "merges": len(merges), "ids": ids, "llamacpp_ids": cpp_ids,
                     "diffs": diffs, "decoded": decoded, "llamacpp_decoded": cpp_decoded,
                     "uniform_score_diffs": uniform_diffs,
                     "byte_tokens": sum(1 for x in ids for i in x if 3 <= i < 259)}


# ---------------------------------------------------------------------------------------
# 1f. The default model's vocabulary (SmolLM2, GPT-2-style BPE, pre = smollm) as a vocab-only GGUF
# ---------------------------------------------------------------------------------------


def field_value(field):
    """A GGUFReader field's value as Python data (strings, numbers, lists)."""
    return field.contents()


def make_smollm2(summary: dict) -> None:
    name = "smollm2"
    if not DEFAULT_MODEL.exists():
        sys.exit(f"error: {DEFAULT_MODEL} is missing (run scripts/fetch-default-model.sh)")
    src = gguf.GGUFReader(str(DEFAULT_MODEL))
    gguf_path = TOK_DIR / f"{name}.gguf"
    w = gguf.GGUFWriter(str(gguf_path), src.fields["general.architecture"].contents())
    # Copy every llama.* hyper-parameter and every tokenizer.* key, in the source file's order.
    for key, field in src.fields.items():
        if not (key.startswith("llama.") or key.startswith("tokenizer.")):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, field_value(field), vtype, sub_type=sub)
    write_gguf(w)

    tokens = src.fields["tokenizer.ggml.tokens"].contents()
    types = src.fields["tokenizer.ggml.token_type"].contents()
    merges = src.fields["tokenizer.ggml.merges"].contents()
    assert src.fields["tokenizer.ggml.pre"].contents() == "smollm"

    # Equivalent tokenizer.json (NOT written; only used to cross-check llama.cpp).
    pairs = []
    for m in merges:
        a, b = m.split(" ")
        pairs.append((a, b))
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=pairs))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    control = [t for t, ty in zip(tokens, types) if ty == int(gguf.TokenType.CONTROL)]
    tok.add_special_tokens([tokenizers.AddedToken(t, special=True, normalized=False) for t in control])
    ids, decoded = expected_from_tokenizers(tok, add_special_tokens=True)

    llm = load_llamacpp(gguf_path)
    assert llm.n_vocab() == len(tokens)
    cpp_ids = [llamacpp_tokenize(llm, t) for t in CORPUS]
    cpp_decoded = [llamacpp_detokenize(llm, x) for x in cpp_ids]
    diffs = disagreements(ids, cpp_ids, tokens)

    write_expected(TOK_DIR / f"{name}.expected.json", {
        "texts": CORPUS,
        "add_special_tokens": True,
        "source": f"llamacpp_ids/llamacpp_decoded: llama-cpp-python {LLAMACPP_PYTHON_VERSION} on {name}.gguf "
                  "(tokenize(text, add_bos=True, special=True) -- the file says add_bos_token=false, so no BOS; "
                  "llama_detokenize(remove_special=false, unparse_special=true)); ids/decoded: tokenizers "
                  f"{tokenizers.__version__} on a tokenizer.json rebuilt from the GGUF (BPE vocab+merges, "
                  "pre_tokenizer Sequence[Digits(individual_digits=true), ByteLevel(add_prefix_space=false, "
                  "use_regex=true)], decoder ByteLevel, the 17 control tokens as special added tokens)",
        "llamacpp_ids": cpp_ids,
        "llamacpp_decoded": cpp_decoded,
        "ids": ids,
        "decoded": decoded,
    })
    summary[name] = {"vocab": len(tokens), "merges": len(merges), "ids": ids, "llamacpp_ids": cpp_ids,
                     "diffs": diffs, "decoded": decoded, "llamacpp_decoded": cpp_decoded,
                     "chat_template": src.fields["tokenizer.chat_template"].contents(),
                     "bos": tokens[src.fields["tokenizer.ggml.bos_token_id"].contents()],
                     "eos": tokens[src.fields["tokenizer.ggml.eos_token_id"].contents()]}


# ---------------------------------------------------------------------------------------
# 2. Chat templates
# ---------------------------------------------------------------------------------------

def _llama_cpp_template(name: str) -> str:
    """A template constant from llama-cpp-python's llama_chat_format.py (installed package)."""
    import llama_cpp.llama_chat_format as fmt
    return getattr(fmt, name)


# meta-llama/Meta-Llama-3-8B-Instruct's template, as llama-cpp-python carries it
LLAMA3_TEMPLATE = _llama_cpp_template("LLAMA3_INSTRUCT_CHAT_TEMPLATE")


# Qwen/Qwen2-7B-Instruct tokenizer_config.json "chat_template" (transcribed; the JSON "\n"
# escapes are real newlines here, inside the Jinja string literals).
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# meta-llama/Llama-2-7b-chat-hf tokenizer_config.json "chat_template" (transcribed). Raw
# string: the file's JSON holds "\\n", so the template text has backslash-n INSIDE Jinja string
# literals, which Jinja's string-literal parser turns into newlines.
LLAMA2_TEMPLATE = (
    r"{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    r"{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    r"{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    r"{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    r"{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    r"{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    r"{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}"
    r"{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    r"{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    r"{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

# TinyLlama/TinyLlama-1.1B-Chat-v1.0 (identical to HuggingFaceH4/zephyr-7b-beta) "chat_template"
# (transcribed). Newlines between the tags: relies on trim_blocks (transformers' Jinja
# environment sets trim_blocks=True, lstrip_blocks=True); the newline after each `}}` stays.
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n"
    "{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n"
    "{{ '<|assistant|>' }}\n"
    "{% endif %}\n"
    "{% endfor %}"
)

# Qwen/Qwen2.5-7B-Instruct "chat_template" (transcribed from memory of the published file;
# formatting/whitespace control as there). Tool calling: tools | tojson, message.tool_calls.
QWEN25_TEMPLATE = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

# Not a model's template: a synthetic one that exercises the remaining constructs seen in
# newer templates (namespace, for-if filtering, inline if, `~`, `in`/`not in`, list literals,
# negative indexing, tests `is string`/`is defined`/`is none`, filters length/replace/join/
# default/upper/lower, string methods upper/title/startswith/endswith/split/lstrip/rstrip/
# replace, loop.index/length/revindex0, loop controls break/continue, comments, macros).
FEATURES_TEMPLATE = """{#- synthetic: not from any model -#}
{%- macro header(role, n) -%}
[{{ role | upper }}#{{ n }}]
{%- endmacro -%}
{%- set ns = namespace(system='', turns=0, last_user=-1) -%}
{%- if messages and messages[0].role == 'system' -%}
    {%- set ns.system = messages[0].content | trim -%}
    {%- set rest = messages[1:] -%}
{%- else -%}
    {%- set rest = messages -%}
{%- endif -%}
{%- set scoped = 'outer' -%}
{%- for m in rest -%}
    {%- set scoped = 'inner' -%}
    {%- if m.role == 'user' %}{% set ns.last_user = loop.index0 %}{% endif -%}
{%- endfor -%}
{{- bos_token -}}
{%- if ns.system %}SYSTEM({{ ns.system | length }}): {{ ns.system.upper() }}
{% endif -%}
{%- for m in rest -%}
    {%- if m.role not in ['user', 'assistant'] -%}
        {{- raise_exception('Unknown role: ' ~ m.role) -}}
    {%- endif -%}
    {%- if m.content is none or m.content == '' -%}{% continue %}{%- endif -%}
    {%- set ns.turns = ns.turns + 1 -%}
    {{- header(m.role, loop.index) ~ ' ' ~ loop.index ~ '/' ~ loop.length ~ ' left=' ~ loop.revindex0 -}}
    {{- ' ' ~ m.role.title() ~ ('*' if loop.index0 == ns.last_user else '') ~ ': ' -}}
    {%- if m.content is string -%}
        {{- m.content.strip() | replace('\\n', ' / ') -}}
        {%- if m.content.lstrip().startswith('#') %} (heading){% endif -%}
        {%- if m.content.rstrip().endswith('?') %} (question){% endif -%}
        {{- ' words=' ~ (m.content.split() | length) -}}
    {%- else -%}
        {%- for part in m.content if part.type == 'text' -%}
            {{- part.text -}}{% if not loop.last %} | {% endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- '\\n' -}}
    {%- if m.content is string and 'STOP' in m.content -%}{% break %}{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- 'Assistant' ~ (': ' if ns.turns > 0 else '') -}}
{%- endif -%}
{{- ' [' ~ (rest | map(attribute='role') | join(',')) ~ ']' if rest | length > 1 else '' -}}
{{- ' last=' ~ rest[-1].role if rest else '' -}}
{{- ' date=' ~ (date_string | default('none')) -}}
{{- ' scoped=' ~ scoped -}}
"""

# (name, template, bos, eos, source)
def chat_templates(smollm: dict) -> dict:
    t = {}
    t["smollm2"] = {
        "source": "tokenizer.chat_template of the default model file SmolLM2-135M-Instruct.Q4_1.gguf "
                  "(= HuggingFaceTB/SmolLM2-135M-Instruct); bos/eos = its tokens 1 and 2",
        "template": smollm["chat_template"], "bos_token": smollm["bos"], "eos_token": smollm["eos"]}
    t["chatml"] = {
        "source": f"llama-cpp-python {LLAMACPP_PYTHON_VERSION} llama_chat_format.CHATML_CHAT_TEMPLATE "
                  "(teknium/OpenHermes-2.5-Mistral-7B tokenizer_config.json)",
        "template": _llama_cpp_template("CHATML_CHAT_TEMPLATE"),
        "bos_token": _llama_cpp_template("CHATML_BOS_TOKEN"), "eos_token": _llama_cpp_template("CHATML_EOS_TOKEN")}
    t["qwen2"] = {
        "source": "Qwen/Qwen2-7B-Instruct tokenizer_config.json, transcribed (no hub access)",
        "template": QWEN2_TEMPLATE, "bos_token": None, "eos_token": "<|im_end|>"}
    t["qwen2.5"] = {
        "source": "Qwen/Qwen2.5-7B-Instruct tokenizer_config.json, transcribed from memory (no hub access): "
                  "may differ from the published file in small details",
        "template": QWEN25_TEMPLATE, "bos_token": None, "eos_token": "<|im_end|>"}
    t["llama2"] = {
        "source": "meta-llama/Llama-2-7b-chat-hf tokenizer_config.json, transcribed (no hub access)",
        "template": LLAMA2_TEMPLATE, "bos_token": "<s>", "eos_token": "</s>"}
    t["llama3"] = {
        "source": f"llama-cpp-python {LLAMACPP_PYTHON_VERSION} llama_chat_format.LLAMA3_INSTRUCT_CHAT_TEMPLATE "
                  "(meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json)",
        "template": LLAMA3_TEMPLATE,
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    t["mistral-v0.1"] = {
        "source": f"llama-cpp-python {LLAMACPP_PYTHON_VERSION} llama_chat_format.MISTRAL_INSTRUCT_CHAT_TEMPLATE "
                  "(mistralai/Mistral-7B-Instruct-v0.1 tokenizer_config.json)",
        "template": _llama_cpp_template("MISTRAL_INSTRUCT_CHAT_TEMPLATE"),
        "bos_token": _llama_cpp_template("MISTRAL_INSTRUCT_BOS_TOKEN"),
        "eos_token": _llama_cpp_template("MISTRAL_INSTRUCT_EOS_TOKEN")}
    t["mixtral"] = {
        "source": f"llama-cpp-python {LLAMACPP_PYTHON_VERSION} llama_chat_format.MIXTRAL_INSTRUCT_CHAT_TEMPLATE "
                  "(mistralai/Mixtral-8x7B-Instruct-v0.1 tokenizer_config.json)",
        "template": _llama_cpp_template("MIXTRAL_INSTRUCT_CHAT_TEMPLATE"), "bos_token": "<s>", "eos_token": "</s>"}
    t["zephyr"] = {
        "source": "TinyLlama/TinyLlama-1.1B-Chat-v1.0 and HuggingFaceH4/zephyr-7b-beta tokenizer_config.json, "
                  "transcribed (no hub access)",
        "template": ZEPHYR_TEMPLATE, "bos_token": "<s>", "eos_token": "</s>"}
    t["features"] = {
        "source": "synthetic (written for these fixtures, not from any model): exercises the constructs of "
                  "newer templates that the real templates above do not use",
        "template": FEATURES_TEMPLATE, "bos_token": "<s>", "eos_token": "</s>"}
    return t


SYS = {"role": "system", "content": "You are a pirate. Answer in one sentence."}
U1 = {"role": "user", "content": "Where is the treasure?"}
A1 = {"role": "assistant", "content": "Buried under the old palm tree, matey."}
U2 = {"role": "user", "content": "And how deep?"}
UNICODE_USER = {"role": "user", "content": "  Leading spaces,\n\ttab, blank line:\n\nCaf\u00e9 \u4f60\u597d \U0001F642 \u00bfqu\u00e9?  \n"}
# Python's str.strip() (Jinja's |trim, .strip()) also strips U+3000 and U+00A0: so must ours.
UNICODE_ASSISTANT = {"role": "assistant", "content": "\n\u3000 Sure \u2014 \u00ab\u00e7a va\u00bb \U0001F44D\U0001F3FD \u00a0\n"}

CONVERSATIONS = {
    "single_user": [U1],
    "system_user": [SYS, U1],
    "multi_turn": [U1, A1, U2],
    "system_multi_turn": [SYS, U1, A1, U2],
    "ends_with_assistant": [U1, A1],
    "whitespace_unicode": [UNICODE_USER, UNICODE_ASSISTANT, {"role": "user", "content": "# Title\nline2 ?"}],
    "non_alternating": [U1, {"role": "user", "content": "Hello again?"}],
}

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city (\u00b0C or \u00b0F).",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}]
TOOL_CONVERSATION = [
    {"role": "user", "content": "What's the weather in Paris? R\u00e9ponds en fran\u00e7ais."},
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
    {"role": "tool", "content": "{\"temperature\": 18, \"sky\": \"cloudy\"}"},
    {"role": "tool", "content": "{\"wind_kmh\": 12}"},
]
MULTIMODAL_USER = {"role": "user", "content": [
    {"type": "image"}, {"type": "text", "text": "What is in the picture?"}, {"type": "text", "text": "Be brief."}]}

# (conversation, add_generation_prompt) pairs rendered for every template ...
COMMON_CASES = [
    ("single_user", True),
    ("system_user", True),
    ("multi_turn", True),
    ("ends_with_assistant", False),
    ("whitespace_unicode", True),
]
# ... and per template extras (errors from raise_exception, tools). (transformers refuses an
# empty conversation before rendering, so there is no empty case.)
EXTRA_CASES = {
    "smollm2": [("system_multi_turn", False)],
    "chatml": [("system_multi_turn", True)],
    "qwen2": [("system_multi_turn", False)],
    "qwen2.5": [("system_multi_turn", True), ("tools", True), ("tools_system", False)],
    "llama2": [("system_multi_turn", False), ("non_alternating", False)],
    "llama3": [("system_multi_turn", True), ("single_user", False)],
    "mistral-v0.1": [("non_alternating", False), ("multi_turn", False)],
    "mixtral": [("non_alternating", True), ("system_multi_turn", False)],
    "zephyr": [("system_multi_turn", True), ("single_user", False)],
    "features": [("system_multi_turn", True), ("multimodal", True), ("stop", False), ("bad_role", True),
                 ("date", True)],
}


def case_inputs(conv: str) -> tuple[list[dict], dict]:
    """Messages and extra keyword arguments (tools, other template variables) for a case."""
    if conv == "tools":
        return TOOL_CONVERSATION, {"tools": TOOLS}
    if conv == "tools_system":
        return [SYS] + TOOL_CONVERSATION, {"tools": TOOLS}
    if conv == "multimodal":
        return [MULTIMODAL_USER, A1, {"role": "assistant", "content": ""}, U2], {}
    if conv == "stop":
        return [U1, {"role": "assistant", "content": "Please STOP here."}, U2], {}
    if conv == "bad_role":
        return [U1, {"role": "tool", "content": "42"}], {}
    if conv == "date":
        return [SYS, U1], {"date_string": "26 Jul 2024"}
    return CONVERSATIONS[conv], {}


def render_with_transformers(spec: dict, messages: list[dict], add_generation_prompt: bool, extra: dict):
    """transformers' own rendering: a PreTrainedTokenizerFast with the template and bos/eos set."""
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(TOK_DIR / "bytelevel-gpt2" / "tokenizer.json"),
        bos_token=spec["bos_token"], eos_token=spec["eos_token"],
    )
    tok.chat_template = spec["template"]
    kwargs = dict(extra)
    tools = kwargs.pop("tools", None)
    return tok.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs)


def make_chat_cases(smollm: dict) -> dict:
    templates = chat_templates(smollm)
    cases = []
    for name, spec in templates.items():
        for conv, agp in COMMON_CASES + EXTRA_CASES.get(name, []):
            messages, extra = case_inputs(conv)
            case = {"template": name, "conversation": conv, "messages": messages}
            if "tools" in extra:
                case["tools"] = extra["tools"]
            others = {k: v for k, v in extra.items() if k != "tools"}
            if others:
                case["extra_context"] = others
            case["add_generation_prompt"] = agp
            try:
                case["expected"] = render_with_transformers(spec, messages, agp, extra)
            except jinja2.exceptions.TemplateError as e:
                # Only raise_exception(...) errors are fixtures; anything else is a bug here.
                assert type(e) is jinja2.exceptions.TemplateError, (name, conv, repr(e))
                case["error"] = str(e)
            cases.append(case)
    obj = {
        "source": f"transformers {transformers.__version__} (jinja2 {jinja2.__version__}): "
                  "PreTrainedTokenizerFast(bos_token, eos_token) with tokenizer.chat_template = template, "
                  "apply_chat_template(messages, tools=tools, tokenize=False, "
                  "add_generation_prompt=add_generation_prompt, **other keys)",
        "templates": templates,
        "cases": cases,
    }
    write_json(CHAT_DIR / "cases.json", obj, ensure_ascii=True)
    return obj


# ---------------------------------------------------------------------------------------
# Jinja feature inventory (read off each template's syntax tree, for the chat README)
# ---------------------------------------------------------------------------------------

_BINOPS = {jn.Add: "`+` (string concatenation / addition)", jn.Sub: "`-` (subtraction)", jn.Mul: "`*`", jn.Div: "`/`",
           jn.FloorDiv: "`//`", jn.Mod: "`%` (modulo)", jn.Pow: "`**`", jn.Concat: "`~` (to-string concatenation)"}
_CMP = {"eq": "`==`", "ne": "`!=`", "lt": "`<`", "lteq": "`<=`", "gt": "`>`", "gteq": "`>=`",
        "in": "`in`", "notin": "`not in`"}


def jinja_features(source: str) -> list[str]:
    env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols"])
    tree = env.parse(source)
    found: set[str] = set()

    def visit(node):
        k = type(node)
        if k is jn.For:
            found.add("`{% for x in xs %}`")
            if node.test is not None:
                found.add("`{% for x in xs if cond %}` (filtered loop)")
            if node.else_:
                found.add("`{% for %}…{% else %}`")
        elif k is jn.If:
            found.add("`{% if %}`")
            if node.elif_:
                found.add("`{% elif %}`")
            if node.else_:
                found.add("`{% else %}`")
        elif k is jn.Assign:
            if isinstance(node.target, jn.NSRef):
                found.add("`{% set ns.attr = … %}` (namespace attribute assignment)")
            else:
                found.add("`{% set x = … %}`")
        elif k is jn.Macro:
            found.add("`{% macro %}` + call")
        elif k in (jn.Break, jn.Continue):
            found.add("`{% break %}` / `{% continue %}` (loopcontrols)")
        elif k is jn.Filter and node.name:
            found.add(f"filter `|{node.name}`" + (" with arguments" if node.args or node.kwargs else ""))
        elif k is jn.Test:
            found.add(f"test `is {node.name}`")
        elif k is jn.Call:
            if isinstance(node.node, jn.Getattr):
                found.add(f"method `.{node.node.attr}()`")
            elif isinstance(node.node, jn.Name):
                if node.node.name not in ("caller",):
                    found.add(f"call `{node.node.name}(…)`" + (" with keyword arguments" if node.kwargs else ""))
        elif k is jn.Getattr:
            if isinstance(node.node, jn.Name) and node.node.name == "loop":
                found.add(f"`loop.{node.attr}`")
            else:
                found.add("attribute access `x.key` (on dicts: same as `x['key']`)")
        elif k is jn.Getitem:
            if isinstance(node.arg, jn.Slice):
                found.add("slicing `xs[a:b]`")
            elif isinstance(node.arg, jn.Const) and isinstance(node.arg.value, str):
                found.add("subscript `x['key']`")
            elif isinstance(node.arg, jn.Neg) or (isinstance(node.arg, jn.Const) and isinstance(node.arg.value, int)
                                                   and node.arg.value < 0):
                found.add("negative index `xs[-1]`")
            else:
                found.add("integer index `xs[0]`, `xs[i + 1]`")
        elif k in _BINOPS:
            found.add(_BINOPS[k])
        elif k is jn.Compare:
            for op in node.ops:
                found.add(f"comparison {_CMP[op.op]}")
        elif k is jn.And:
            found.add("`and`")
        elif k is jn.Or:
            found.add("`or`")
        elif k is jn.Not:
            found.add("`not`")
        elif k is jn.CondExpr:
            found.add("inline `a if cond else b`")
        elif k is jn.List:
            found.add("list literal `[…]`")
        elif k is jn.Dict:
            found.add("dict literal `{…}`")
        elif k is jn.Const and isinstance(node.value, bool):
            found.add("`true`/`false` literals")
        elif k is jn.Const and node.value is None:
            found.add("`none` literal")
        for child in node.iter_child_nodes():
            if k is jn.Call and child is node.node and isinstance(child, jn.Getattr):
                visit(child.node)  # the method itself is listed above; visit its receiver
                continue
            visit(child)

    visit(tree)
    # Things only the source text shows
    for kind, value in ((t, v) for _, t, v in env.lex(source)):
        if kind == "string" and "\\" in value:
            found.add("backslash escapes inside string literals (`'\\n'` written as backslash-n)")
        if kind == "string" and "\n" in value:
            found.add("raw newlines inside string literals")
        if kind == "string" and value.startswith('"'):
            found.add("double-quoted string literals")
    if any(s in source for s in ("{%-", "-%}", "{{-", "-}}")):
        found.add("whitespace control `{%-` `-%}` `{{-` `-}}`")
    if source.endswith("\n"):
        found.add("keep_trailing_newline=False: one newline at the very end of the template is dropped")
    if "{#" in source:
        found.add("comments `{# … #}`")
    tokens = [(t, v) for _, t, v in env.lex(source)]
    for (t0, v0), (t1, v1) in zip(tokens, tokens[1:]):
        if t0 == "block_end" and t1 == "data" and v1.startswith("\n"):
            found.add("trim_blocks: the newline right after a `%}` is dropped")
        if t0 == "data" and t1 == "block_begin" and re.search(r"\n[ \t]+$", v0):
            found.add("lstrip_blocks: spaces/tabs before a `{%` at the start of a line are dropped")
    return sorted(found)


# ---------------------------------------------------------------------------------------
# READMEs
# ---------------------------------------------------------------------------------------

REGEN = (
    "Generated by `scripts/make_text_fixtures.py` — do not edit by hand. Regenerate (from the\n"
    "repository root, with the default model file present) with\n\n"
    "    ~/.cache/loraswitch-peers/bin/python scripts/make_text_fixtures.py\n"
)


def _diff_lines(diffs: list[dict]) -> list[str]:
    if not diffs:
        return ["none: llama.cpp and `tokenizers` give identical ids for every corpus string."]
    out = []
    for d in diffs:
        out.append(f"* text {dumps_ascii(d['text'])}: tokenizers `{d['tokenizers']}`, llama.cpp `{d['llamacpp']}`")
    return out


def write_tokenizer_readme(summary: dict) -> None:
    spm, smol = summary["spm-llama2"], summary["smollm2"]
    decode_diffs = {
        name: sum(a != b for a, b in zip(summary[name]["decoded"], summary[name]["llamacpp_decoded"]))
        for name in ("spm-llama2", "smollm2")
    }
    lines = [
        "# Tokenizer conformance fixtures",
        "",
        REGEN,
        f"Made with tokenizers {tokenizers.__version__}, transformers {transformers.__version__}, "
        f"llama-cpp-python {LLAMACPP_PYTHON_VERSION}, gguf-py.",
        "",
        f"`corpus.json` holds the {len(CORPUS)} test strings (English, code with indentation and tabs, numbers",
        "and dates, runs of spaces/newlines/tabs/`\\r\\n`, CJK, emoji with skin tones/ZWJ/flags, combining",
        "characters, Cyrillic/Greek/Arabic/Hindi, contractions in both cases, punctuation runs, the empty",
        "string, NUL, NBSP/U+2028/zero-width/BOM, the special tokens of every vocabulary embedded in text, and",
        "a ~1,000-character paragraph). Every `<name>.expected.json` repeats them under `texts`.",
        "",
        "## Fixtures",
        "",
        "| fixture | vocabulary | reference | expected keys |",
        "|---|---|---|---|",
        f"| `bytelevel-gpt2/tokenizer.json` | byte-level BPE, {summary['bytelevel-gpt2']['vocab']} tokens, GPT-2 set-up | "
        "`tokenizers` | `ids`, `decoded` |",
        f"| `bytelevel-llama3/tokenizer.json` | byte-level BPE, {summary['bytelevel-llama3']['vocab']} tokens, Llama 3 "
        "set-up, BOS by post-processor | `tokenizers` | `ids`, `decoded` |",
        f"| `bytelevel-qwen2/tokenizer.json` | byte-level BPE, {summary['bytelevel-qwen2']['vocab']} tokens, Qwen2 "
        "set-up (NFC) | `tokenizers` | `ids`, `decoded` |",
        f"| `spm-llama2/tokenizer.json` | SentencePiece-style BPE with byte fallback, {spm['vocab']} tokens "
        f"({spm['merges']} merges), Llama 2 layout | `tokenizers` | `ids`, `decoded` |",
        "| `spm-llama2.gguf` | the same vocabulary as a vocab-only GGUF (`tokenizer.ggml.model = llama`, "
        "scores, token types) | llama.cpp | `llamacpp_ids`, `llamacpp_decoded` (in `spm-llama2.expected.json`) |",
        f"| `smollm2.gguf` | the default model's vocabulary (SmolLM2-135M-Instruct, `gpt2`/`smollm`, {smol['vocab']} "
        f"tokens, {smol['merges']} merges), all `tokenizer.*` and `llama.*` keys of the model file, no tensors "
        "| llama.cpp (and `tokenizers` on an equivalent tokenizer.json, not committed) | `llamacpp_ids`, "
        "`llamacpp_decoded`, `ids`, `decoded` |",
        "",
        "The small vocabularies are trained by the script (`tokenizers` BpeTrainer, single-threaded, on a",
        "~8 KB English/code/CJK/emoji text written in the script; ties between equal-count merges are broken",
        "deterministically by the trainer). `tokenizer_config.json` next to each tokenizer.json gives",
        "bos/eos/unk/pad and, for the Llama 3, Qwen2 and Llama 2 set-ups, that family's chat template.",
        "",
        "## Expected files",
        "",
        "`<name>.expected.json`: `texts` (the corpus), `add_special_tokens` (always `true`: it is the",
        "`add_special_tokens` of `tokenizers`' `encode` and the `add_special` of `llama_tokenize`; whether",
        "that adds a BOS is up to the vocabulary), `source`, and per text:",
        "",
        "* `ids`: `Tokenizer.from_file(tokenizer.json).encode(text, add_special_tokens=True).ids`,",
        "* `decoded`: `decode(ids, skip_special_tokens=False)`,",
        "* `llamacpp_ids` (GGUF only): llama-cpp-python `Llama(model_path, vocab_only=True).tokenize(",
        "  text.encode(), add_bos=True, special=True)` — special tokens in the text are parsed,",
        "* `llamacpp_decoded` (GGUF only): llama.cpp's `llama_detokenize(ids, remove_special=false,",
        "  unparse_special=true)` (the C function, not llama-cpp-python's `Llama.detokenize`, which",
        "  concatenates pieces and strips a space after BOS on its own).",
        "",
        "All JSON strings are ASCII with `\\uXXXX` escapes (astral characters as surrogate pairs).",
        "",
        "## Set-ups",
        "",
        "**bytelevel-gpt2** — no normalizer; pre-tokenizer `ByteLevel(add_prefix_space=false, use_regex=true)`,",
        "whose built-in regex is GPT-2's",
        f"`{GPT2_PATTERN}`;",
        "decoder `ByteLevel`; post-processor `ByteLevel(trim_offsets=false)` (offsets only). Added tokens:",
        "`<|endoftext|>` (special) and `<tool>` (not special, `normalized: false`): both are cut out of the",
        "text before pre-tokenization. No BOS. Merges in the `[[\"a\", \"b\"], …]` format.",
        "",
        "**bytelevel-llama3** — no normalizer; pre-tokenizer `Sequence[Split(Regex, behavior Isolated),",
        "ByteLevel(add_prefix_space=false, use_regex=false)]` with Llama 3's pattern",
        f"`{LLAMA3_PATTERN}`;",
        "decoder `ByteLevel`; post-processor `Sequence[ByteLevel, TemplateProcessing(<|begin_of_text|> $A)]`, so",
        f"every encoding starts with `<|begin_of_text|>` = {summary['bytelevel-llama3']['ids'][0][0]}. Specials",
        f"{', '.join('`' + t + '`' for t in LLAMA3_SPECIALS)} follow the BPE vocabulary (as 128000+ do).",
        "`(?i:'s|…)`: the contractions are case-insensitive (\"I'M\" → `I`, `'M`).",
        "The model has `\"ignore_merges\": true` as Llama 3's: a pre-token that is in the vocabulary as a",
        "whole becomes that token without running the merges (llama.cpp does the same for `llama-bpe`).",
        f"To make that observable the vocabulary has one token no merge can make, `{IGNORE_MERGES_WORD}` =",
        f"{summary['bytelevel-llama3']['vocab'] - len(LLAMA3_SPECIALS) - 1} (\" antidisestablishmentarianism\"); "
        f"with `ignore_merges: false` {len(summary['bytelevel-llama3']['ignore_merges_changes'])} corpus strings",
        "would tokenize differently (the word with a leading space becomes one token; without it, many).",
        "",
        "**bytelevel-qwen2** — normalizer `NFC`; pre-tokenizer as Llama 3 but with Qwen2's pattern",
        f"`{QWEN2_PATTERN}`",
        "(`\\p{N}`: one digit per pre-token instead of up to three); decoder `ByteLevel`; specials",
        "`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`; no BOS. Because of NFC, `decoded` is the NFC form of",
        "the text (`e\\u0301` decodes to `\\u00e9`).",
        "",
        "**spm-llama2** — as `transformers`' LlamaConverter writes Llama 2 / Mistral / TinyLlama files: ids",
        "0, 1, 2 = `<unk>`, `<s>`, `</s>` (added tokens, special, `normalized: false`), 3…258 = `<0x00>`…`<0xFF>`,",
        "then the merged pieces in merge order, then the single characters; model `BPE` with",
        "`byte_fallback: true`, `fuse_unk: true`, `unk_token: <unk>`, merges as legacy `\"a b\"` strings;",
        "normalizer `Sequence[Prepend(\"▁\"), Replace(\" \", \"▁\")]`; pre-tokenizer `null`; decoder",
        "`Sequence[Replace(\"▁\", \" \"), ByteFallback, Fuse, Strip(\" \", start 1, stop 0)]`; post-processor",
        "`TemplateProcessing(<s> $A)`. Characters missing from the vocabulary (most CJK, emoji, Hindi, the",
        f"combining acute accent, NUL, `\\n`, `\\r`) become byte tokens: {spm['byte_tokens']} byte tokens over the corpus.",
        "",
        "**spm-llama2.gguf** — the same pieces with `tokenizer.ggml.scores`: 0 for ids 0…258, `-(id - 259)`",
        "for the rest, i.e. the piece made by merge k scores −k, as in a SentencePiece BPE `.model`;",
        "`token_type` unknown (2) / control (3) / byte (6) / normal (1); `bos 1`, `eos 2`, `unk 0`,",
        "`add_bos_token true`, `add_eos_token false`, `add_space_prefix true`, Llama 2's chat template, and",
        "tiny `llama.*` hyper-parameters (llama.cpp reads them even with `vocab_only`). llama.cpp's SPM",
        "tokenizer repeatedly merges the adjacent pair whose concatenation is the highest-scoring piece in",
        "the vocabulary (ties: leftmost), which with these scores reproduces BPE merge ranks.",
        f"Scores matter: with every score equal (-1000, as gguf-py's `LlamaHfVocab` writes them for a",
        f"tokenizer.json-only Llama) llama.cpp would disagree with `tokenizers` on {spm['uniform_score_diffs']} of the",
        f"{len(CORPUS)} strings.",
        "",
        "**smollm2.gguf** — every `tokenizer.*` key of the default model file (`model gpt2`, `pre smollm`,",
        "tokens, token_type, merges, bos 1 / eos 2 / unk 0 / pad 2, `add_bos_token false`,",
        "`add_space_prefix false`, chat template) and its `llama.*` hyper-parameters; no tensors. llama.cpp's",
        "`smollm` pre-tokenizer is two regexes applied in turn: `\\p{N}` (every digit alone), then GPT-2's",
        "pattern; `tokenizers`' equivalent is `Sequence[Digits(individual_digits=true), ByteLevel(use_regex=true)]`.",
        "The 17 tokens of type control (3) (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, `<repo_name>`, …)",
        "are matched as special tokens in the text. No BOS (`add_bos_token false`).",
        "",
        "## llama.cpp vs `tokenizers`",
        "",
        "Our Swift code follows llama.cpp for GGUF vocabularies and `tokenizers` for tokenizer.json.",
        "",
        f"**spm-llama2** ({len(spm['diffs'])} of {len(CORPUS)} strings differ in ids, "
        f"{decode_diffs['spm-llama2']} in decoded text):",
        "",
        *_diff_lines(spm["diffs"]),
        "",
        f"**smollm2** ({len(smol['diffs'])} of {len(CORPUS)} strings differ in ids, "
        f"{decode_diffs['smollm2']} in decoded text):",
        "",
        *_diff_lines(smol["diffs"]),
        "",
        "Behaviours both references share (and a re-implementation easily gets wrong):",
        "",
        "* Special tokens are cut out of the text first; the SPM space prefix (`Prepend(\"▁\")`) is then",
        "  applied to *every* text segment that follows a special token, not only to the start:",
        "  `<unk> and` → `<unk>`, `▁`, `▁and`; `Hello</s><s>world` → `<s>`, `▁Hello`, `</s>`, `<s>`, `▁world`.",
        "* A text that starts with the BOS text gets a second BOS (`<s>[INST] hi [/INST]` → `1, 1, …`;",
        "  likewise `<|begin_of_text|>…` with the Llama 3 set-up). llama.cpp logs a warning but does it.",
        "* Special tokens of *other* vocabularies are plain text (`<|im_start|>` is `<`, `|`, `im`, … for",
        "  the Llama 2 vocabulary); a non-special added token (`<tool>`) is cut out like a special one.",
        "* The empty string is `[]`, or just the BOS where the vocabulary adds one (`[<|begin_of_text|>]`,",
        "  `[<s>]`): no `▁` is prepended to an empty text.",
        "* SPM decoding keeps the space after a leading `<s>`: `[<s>, ▁Hello]` decodes to `<s> Hello` (the",
        "  `Strip` decoder, and llama.cpp's leading-space removal, only look at the very first character).",
        "",
    ]
    (TOK_DIR / "README.md").write_text("\n".join(lines), encoding="utf-8")


def write_chat_readme(chat: dict) -> None:
    per_template = {name: jinja_features(t["template"]) for name, t in chat["templates"].items()}
    real = sorted(set().union(*(f for n, f in per_template.items() if n != "features")))
    extra = sorted(set(per_template["features"]) - set(real))
    counts = {}
    for c in chat["cases"]:
        counts.setdefault(c["template"], [0, 0])[0 if "expected" in c else 1] += 1
    lines = [
        "# Chat-template fixtures",
        "",
        REGEN,
        "`cases.json`:",
        "",
        "```",
        '{"source": "...",',
        ' "templates": {"<name>": {"source": "...", "template": "<jinja>", "bos_token": "..." | null, "eos_token": "..."}},',
        ' "cases": [{"template": "<name>", "conversation": "<label>", "messages": [{"role": ..., "content": ...}, ...],',
        '            "tools": [...]?, "extra_context": {...}?, "add_generation_prompt": true|false,',
        '            "expected": "<rendered>"  |  "error": "<message of the raised exception>"}]}',
        "```",
        "",
        f"Expected strings come from transformers {transformers.__version__} (jinja2 {jinja2.__version__}): a",
        "`PreTrainedTokenizerFast` with the template's `bos_token`/`eos_token`, `tokenizer.chat_template =",
        "template`, `apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=…,",
        "**extra_context)`. Errors are the messages of `raise_exception(...)` (`jinja2.TemplateError`); no",
        "case fails for any other reason.",
        "",
        "What the renderer must reproduce (transformers' environment):",
        "",
        "* `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)` with the `loopcontrols`",
        "  extension, default `keep_trailing_newline=False` (one final `\\n` of the template is dropped), no",
        "  autoescape, undefined values render as empty strings and are falsy (`Undefined`, not strict).",
        "* Variables: `messages`, `add_generation_prompt`, `tools` (the list when given, else None),",
        "  `documents` (None), the special tokens (`bos_token`, `eos_token`, also `unk_token`/`pad_token` when",
        "  the tokenizer has them; a template whose `bos_token` is null here gets it undefined), and",
        "  `extra_context` keys (e.g. `date_string`).",
        "* Globals: `raise_exception(msg)` (raises with exactly `msg`), `namespace(...)`, `strftime_now(fmt)`,",
        "  `dict(...)`. Filter `tojson` is `json.dumps(x, ensure_ascii=False)` (separators `\", \"` and",
        "  `\": \"`, keys in insertion order — keep the order of the JSON objects in `cases.json`; non-ASCII",
        "  unescaped), with optional `indent`, `separators`, `sort_keys`.",
        "* Python string semantics: `.strip()` / `|trim` remove Python whitespace (`str.isspace`, incl. U+00A0",
        "  and U+3000); `.split()` splits on whitespace runs; `.title()`, `.upper()` as Python.",
        "* Scoping: `{% set %}` inside a `{% for %}` body is local to that iteration (does not leak out);",
        "  `{% if %}` creates no scope; `namespace` attributes set in a loop are visible after it.",
        "* Jinja string literals accept both quote styles and backslash escapes (`'\\n'` in the template",
        "  *source* is a newline); a raw newline character inside a literal is kept as is.",
        "* Filters bind tighter than `+`: Llama 3's `'…\\n\\n'+ message['content'] | trim + '<|eot_id|>'` trims",
        "  only the content.",
        "* A missing dict key (`message.tool_calls` on a message without it) is undefined: falsy, renders",
        "  as the empty string, `is defined` false. Qwen2.5 re-binds the loop variable inside the loop",
        "  (`{% set tool_call = tool_call.function %}`).",
        "* Comparisons between different types are simply unequal (`system_message != false` where",
        "  `system_message` is a string is true); `loop.index0 % 2 == 0` is integer arithmetic.",
        "",
        "## Templates",
        "",
        "| name | cases (rendered + raising) | source |",
        "|---|---|---|",
    ]
    for name, t in chat["templates"].items():
        ok, err = counts.get(name, [0, 0])
        lines.append(f"| `{name}` | {ok} + {err} | {t['source']} |")
    lines += [
        "",
        "## Jinja features used (the interpreter's spec)",
        "",
        "Read off each template's syntax tree by the script. Union over the real templates (everything",
        "except `features`) — **required**:",
        "",
        *[f"* {f}" for f in real],
        "",
        "Only in the synthetic `features` template (constructs of newer templates — Llama 3.1, Mistral",
        "v0.3 tools, Qwen3, DeepSeek — that the real ones above do not use) — **stretch**:",
        "",
        *[f"* {f}" for f in extra],
        "",
        "Per template:",
        "",
    ]
    for name, feats in per_template.items():
        lines.append(f"* `{name}`: " + "; ".join(feats))
    lines += [
        "",
        "Conversations: `single_user`, `system_user`, `multi_turn` (user/assistant/user), `system_multi_turn`,",
        "`ends_with_assistant` (rendered without generation prompt), `whitespace_unicode` (leading/trailing",
        "spaces, tabs, blank lines, NBSP/U+3000 at the edges, CJK and emoji — shows which templates strip),",
        "`non_alternating` (user, user: Llama 2 / Mistral raise); for `qwen2.5` `tools`/`tools_system`",
        "(tool schema via `tojson`, an assistant `tool_calls` message with empty content, two consecutive",
        "`tool` messages); for `features` `multimodal` (content as a list of parts), `stop` (`break`),",
        "`bad_role` (`raise_exception` with `~`), `date` (an extra context variable).",
        "System messages make the Mistral/Mixtral templates raise (roles must alternate).",
        "",
    ]
    (CHAT_DIR / "README.md").write_text("\n".join(lines), encoding="utf-8")


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def reset_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def main() -> None:
    reset_dir(TOK_DIR)
    reset_dir(CHAT_DIR)
    corpus_lines = ["["] + [
        "  " + dumps_ascii(t) + ("," if i < len(CORPUS) - 1 else "") for i, t in enumerate(CORPUS)] + ["]"]
    (TOK_DIR / "corpus.json").write_text("\n".join(corpus_lines) + "\n", encoding="ascii")

    summary: dict = {}
    make_gpt2(summary)
    make_llama3(summary)
    make_qwen2(summary)
    make_spm(summary)
    make_smollm2(summary)
    chat = make_chat_cases(summary["smollm2"])
    write_tokenizer_readme(summary)
    write_chat_readme(chat)

    for name, s in summary.items():
        n = sum(len(x) for x in s["ids"])
        print(f"{name}: vocab {s['vocab']}, {n} ids over {len(CORPUS)} texts"
              + (f", {len(s['diffs'])} llama.cpp disagreements" if "diffs" in s else ""))
    print(f"chat: {len(chat['templates'])} templates, {len(chat['cases'])} cases "
          f"({sum('error' in c for c in chat['cases'])} raising)")


if __name__ == "__main__":
    main()
