"""Byte-level BPE vocabularies (GPT-2, Llama 3, Qwen2 set-ups) and their expected ids."""

from __future__ import annotations

from textfix.common import *  # noqa: F401,F403  (imports, paths, corpus and helpers shared by every part)
from textfix.chat import LLAMA3_TEMPLATE, QWEN2_TEMPLATE

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
