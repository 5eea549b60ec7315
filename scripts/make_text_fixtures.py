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
Its parts live in scripts/textfix/.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from textfix.common import *  # noqa: E402,F401,F403  (sets the single-thread environment before tokenizers loads)
from textfix.bytelevel import make_gpt2, make_llama3, make_qwen2  # noqa: E402
from textfix.spm import make_spm  # noqa: E402
from textfix.smollm2 import make_smollm2  # noqa: E402
from textfix.chat import make_chat_cases  # noqa: E402
from textfix.readmes import write_chat_readme, write_tokenizer_readme  # noqa: E402

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
