"""GGUF files of the tiny llama model (F32, F16, Q8_0, Q4_0, Q4_1), their dequantized references and llama.cpp's logits."""

from __future__ import annotations

from modelfix.common import *  # noqa: F401,F403  (imports, paths and helpers shared by every part)

# ---------------------------------------------------------------------------------------------
# GGUF
# ---------------------------------------------------------------------------------------------

GGUF_LLAMA = dict(BASE, vocab_size=256, hidden_size=64, intermediate_size=128,
                  num_attention_heads=4, num_key_value_heads=2)
GGUF_LLAMA_SEED = 12

GGUF_TYPES = {  # file suffix: (tensor type of every 2-D weight, general.file_type)
    "f32": (QT.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (QT.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (QT.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (QT.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
    "q4_1": (QT.Q4_1, gguf.LlamaFileType.MOSTLY_Q4_1),
}

# Hugging Face parameter name -> GGUF tensor name ("{i}" = layer index), as convert_hf_to_gguf.py
HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "model.layers.{i}.input_layernorm.weight": "blk.{i}.attn_norm.weight",
    "model.layers.{i}.self_attn.q_proj.weight": "blk.{i}.attn_q.weight",
    "model.layers.{i}.self_attn.k_proj.weight": "blk.{i}.attn_k.weight",
    "model.layers.{i}.self_attn.v_proj.weight": "blk.{i}.attn_v.weight",
    "model.layers.{i}.self_attn.q_proj.bias": "blk.{i}.attn_q.bias",
    "model.layers.{i}.self_attn.k_proj.bias": "blk.{i}.attn_k.bias",
    "model.layers.{i}.self_attn.v_proj.bias": "blk.{i}.attn_v.bias",
    "model.layers.{i}.self_attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "blk.{i}.ffn_norm.weight",
    "model.layers.{i}.mlp.gate_proj.weight": "blk.{i}.ffn_gate.weight",
    "model.layers.{i}.mlp.up_proj.weight": "blk.{i}.ffn_up.weight",
    "model.layers.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
}


def gguf_name(hf_name: str) -> str:
    parts = hf_name.split(".")
    if len(parts) > 2 and parts[1] == "layers":
        i = parts[2]
        key = ".".join(parts[:2] + ["{i}"] + parts[3:])
        return HF_TO_GGUF[key].format(i=i)
    return HF_TO_GGUF[hf_name]


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: HF's rotate-half rope layout -> GGML's adjacent-pair
    (NORM) rope layout. Within each head, output rows [0..d/2) and [d/2..d) are interleaved."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of permute (GGUF layout -> HF layout)."""
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def add_fake_spm_vocab(w: gguf.GGUFWriter, vocab_size: int) -> None:
    """A SentencePiece-style ('llama') vocabulary llama.cpp accepts: <unk>, <s>, </s>, then
    placeholder pieces t3..t{V-1}. Only token ids are ever fed, so the pieces don't matter."""
    toks = ["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(3, vocab_size)]
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(toks)
    w.add_token_scores([0.0] * vocab_size)
    w.add_token_types([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
                      + [gguf.TokenType.NORMAL] * (vocab_size - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)


def write_gguf(path: Path, arch: str, cfg: dict, tensors: list[tuple[str, np.ndarray, QT]],
               file_type: int) -> None:
    """GGUF v3 with llama.cpp's hyperparameter keys (<arch>.*) and the given tensors."""
    n_head = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(path.stem)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_dimension_count(head_dim)
    w.add_file_type(int(file_type))
    add_fake_spm_vocab(w, cfg["vocab_size"])
    for name, arr, qtype in tensors:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if qtype == QT.F32:
            w.add_tensor(name, arr)
        elif qtype == QT.F16:
            w.add_tensor(name, arr.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_gguf_dequantized(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a GGUF file as float32, numpy shape [rows, cols] (= HF [out, in])."""
    reader = gguf.GGUFReader(str(path))
    return {t.name: np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
            for t in reader.tensors}


def hf_tensors_for_gguf(model: torch.nn.Module, permute_qk: bool) -> list[tuple[str, np.ndarray]]:
    """(gguf name, float32 array) for every weight the model saves (tied heads left out)."""
    cfg = model.config
    state = model.state_dict()
    out = []
    for hf_name in state:
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        arr = state[hf_name].float().numpy()
        if permute_qk and hf_name.endswith("q_proj.weight"):
            arr = permute(arr, cfg.num_attention_heads)
        elif permute_qk and hf_name.endswith("k_proj.weight"):
            arr = permute(arr, cfg.num_key_value_heads)
        out.append((gguf_name(hf_name), arr))
    # llama.cpp's converter order: embeddings, blocks in order, output norm, output
    order = lambda n: (0,) if n.startswith("token_embd") else \
        (1, int(n.split(".")[1])) if n.startswith("blk.") else (2, n != "output_norm.weight")
    return sorted(out, key=lambda t: order(t[0]))


def load_gguf_into_hf(model: torch.nn.Module, weights: dict[str, np.ndarray], permuted_qk: bool) -> None:
    """Put dequantized GGUF weights (un-permuted) into an HF model, in place."""
    cfg = model.config
    new_state = {}
    for hf_name in model.state_dict():
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        arr = weights[gguf_name(hf_name)]
        if permuted_qk and hf_name.endswith("q_proj.weight"):
            arr = unpermute(arr, cfg.num_attention_heads)
        elif permuted_qk and hf_name.endswith("k_proj.weight"):
            arr = unpermute(arr, cfg.num_key_value_heads)
        new_state[hf_name] = torch.from_numpy(np.array(arr, dtype=np.float32))
    missing, unexpected = model.load_state_dict(new_state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)


# llama.cpp's CPU backend does not multiply in float32: before a matmul with F16 weights it
# rounds the activations to F16, before Q8_0 / Q4_0 weights it quantizes them to Q8_0 blocks,
# and before Q4_1 weights to Q8_1 blocks (Q8_0 plus the block sum s = d*sum(q) stored as F16,
# which enters the dot product as min4 * s). The functions below reproduce that rounding in
# the transformers model, as a diagnostic only: if llama.cpp then agrees to ~1e-6, the file is
# read identically by both and all of llama.cpp's deviation is activation rounding.

def _q8_blocks(x: np.ndarray):
    """ggml's quantize_row_q8_0/q8_1 on the last axis (blocks of 32): (dequantized x, s error)."""
    xb = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(xb).max(axis=1, keepdims=True)
    d = amax / np.float32(127)
    iscale = np.divide(np.float32(127), amax, out=np.zeros_like(amax), where=amax > 0)
    q = np.rint(xb * iscale)                       # round half to even, as the AVX path
    d16 = d.astype(np.float16).astype(np.float32)  # block scale stored as F16
    qsum = q.sum(axis=1, keepdims=True)
    s_err = (d * qsum).astype(np.float16).astype(np.float32) - d16 * qsum  # Q8_1's F16 sum
    return (q * d16).reshape(x.shape), s_err.reshape(*x.shape[:-1], -1)


def emulate_llamacpp_rounding(model: torch.nn.Module, path: Path, qtype: QT) -> None:
    """Register forward hooks on every nn.Linear of `model` (loaded with the weights of the
    GGUF at `path`) that round its input the way llama.cpp does for weights of `qtype`."""
    if qtype == QT.F32:
        return
    mins = {}
    if qtype == QT.Q4_1:  # per-block minimum of the Q4_1 weights, HF row order
        raw = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
        cfg = model.config
        for hf_name, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear):
                data = np.asarray(raw[gguf_name(hf_name + ".weight")].data)
                blocks = data.reshape(data.shape[0], -1, 20)  # f16 d, f16 m, 16 bytes of nibbles
                m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
                if hf_name.endswith("q_proj"):
                    m = unpermute(m, cfg.num_attention_heads)
                elif hf_name.endswith("k_proj"):
                    m = unpermute(m, cfg.num_key_value_heads)
                mins[mod] = torch.from_numpy(np.ascontiguousarray(m))

    def hook(mod, args, out):
        x = args[0].detach().numpy()
        if qtype == QT.F16:
            return torch.from_numpy(x.astype(np.float16).astype(np.float32)) @ mod.weight.T
        xq, s_err = _q8_blocks(x)
        y = torch.from_numpy(xq) @ mod.weight.T
        if qtype == QT.Q4_1:
            y = y + torch.from_numpy(s_err) @ mins[mod].T
        return y

    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear):
            assert mod.bias is None
            mod.register_forward_hook(hook)


def llamacpp_logits(path: Path, tokens: list[int], kv_f32: bool = True) -> np.ndarray | None:
    """Logits [T, vocab] from llama.cpp for the whole sequence in one batch, or None."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    kv = {"type_k": int(QT.F32), "type_v": int(QT.F32)} if kv_f32 else {}
    llm = Llama(model_path=str(path), n_ctx=LLAMACPP_N_CTX, n_threads=LLAMACPP_THREADS,
                n_threads_batch=LLAMACPP_THREADS, logits_all=True, verbose=False, **kv)
    llm.eval(tokens)
    logits = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    llm.close()
    return logits


def llamacpp_version() -> str:
    try:
        import llama_cpp
        return f"llama-cpp-python {llama_cpp.__version__}"
    except ImportError:
        return "llama-cpp-python not installed"
