"""The Jinja feature inventory and the two fixture READMEs."""

from __future__ import annotations

from textfix.common import *  # noqa: F401,F403  (imports, paths, corpus and helpers shared by every part)
from textfix.bytelevel import IGNORE_MERGES_WORD, LLAMA3_SPECIALS

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
