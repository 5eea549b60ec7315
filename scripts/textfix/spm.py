"""SentencePiece-style BPE with byte fallback (Llama 2 / Mistral / TinyLlama set-up): tokenizer.json and vocab-only GGUF, checked against llama.cpp."""

from __future__ import annotations

from textfix.common import *  # noqa: F401,F403  (imports, paths, corpus and helpers shared by every part)
from textfix.chat import LLAMA2_TEMPLATE

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
