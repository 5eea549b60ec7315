"""The default model's vocabulary (SmolLM2) as a vocab-only GGUF, checked against llama.cpp."""

from __future__ import annotations

from textfix.common import *  # noqa: F401,F403  (imports, paths, corpus and helpers shared by every part)
from textfix.spm import disagreements, llamacpp_detokenize, llamacpp_tokenize, load_llamacpp, write_gguf

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
