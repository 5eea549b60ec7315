"""Imports, paths, the training text, the test corpus and the small helpers every part of the text fixtures uses."""

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

ROOT = Path(__file__).resolve().parent.parent.parent
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


