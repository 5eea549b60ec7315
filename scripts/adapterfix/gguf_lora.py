"""llama.cpp GGUF LoRA fixtures, with PEFT's logits and llama.cpp's."""

from __future__ import annotations

from adapterfix.common import *  # noqa: F401,F403  (imports, paths and helpers shared by every part)
from adapterfix.peft_lora import PEFT_SOURCE, check_reload, make_peft, reload_peft, save_peft

# ---------------------------------------------------------------------------------------------
# llama.cpp GGUF LoRA
# ---------------------------------------------------------------------------------------------

def write_gguf_lora(path: Path, lora: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float,
                    qtype: QT, model_cfg, permute_qk: bool = True) -> None:
    """A llama.cpp LoRA adapter as convert_lora_to_gguf.py writes it.

    `lora`: {HF module path: (A [r, in], B [out, r])} in HF orientation. Tensors
    `blk.{l}.{attn_q,...}.weight.lora_a` = A (numpy [r, in], GGUF ne [in, r]) and `.lora_b` = B
    (numpy [out, r], GGUF ne [r, out]); for llama the rows of B for attn_q / attn_k are permuted
    like the base weights (n_head for q, n_head_kv for k)."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type(gguf.GGUFType.ADAPTER)                      # general.type = "adapter"
    w.add_name(path.stem)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")            # adapter.type = "lora"
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))  # adapter.lora.alpha
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32 if qtype == QT.F32 else gguf.LlamaFileType.MOSTLY_F16))
    for layer in range(model_cfg.num_hidden_layers):
        for m in ALL7:
            path_hf = module_path(layer, m)
            if path_hf not in lora:
                continue
            a, b = lora[path_hf]
            if permute_qk and m == "q_proj":
                b = mf.permute(b, model_cfg.num_attention_heads)
            elif permute_qk and m == "k_proj":
                b = mf.permute(b, model_cfg.num_key_value_heads)
            name = f"blk.{layer}.{GGUF_MODULE[m]}.weight"
            for suffix, arr in (("lora_a", a), ("lora_b", b)):
                arr = np.ascontiguousarray(arr, dtype=np.float32)
                w.add_tensor(f"{name}.{suffix}", arr if qtype == QT.F32 else arr.astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llamacpp_logits(model_path: Path, tokens: list[int], lora_path: Path | None = None) -> np.ndarray | None:
    """llama.cpp logits [T, vocab], whole sequence in one eval, F32 KV cache, lora_scale 1.0."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    kw = {} if lora_path is None else {"lora_path": str(lora_path), "lora_scale": 1.0}
    llm = Llama(model_path=str(model_path), n_ctx=mf.LLAMACPP_N_CTX, n_threads=mf.LLAMACPP_THREADS,
                n_threads_batch=mf.LLAMACPP_THREADS, logits_all=True, verbose=False,
                type_k=int(QT.F32), type_v=int(QT.F32), **kw)
    llm.eval(tokens)
    logits = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    llm.close()
    return logits


def emulate_llamacpp(model: PeftModel, base_qtype: QT, lora_f16: bool) -> None:
    """Diagnostic only: round activations as llama.cpp's CPU backend does before its matmuls
    (Q8_0 blocks before Q8_0 base weights; F16 before F16 LoRA tensors)."""
    def base_hook(mod, args, out):
        xq, _ = mf._q8_blocks(args[0].detach().numpy())
        return torch.from_numpy(xq) @ mod.weight.T

    def f16_hook(mod, args, out):
        x = args[0].detach().numpy().astype(np.float16).astype(np.float32)
        return torch.from_numpy(x) @ mod.weight.T

    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear):
            continue
        if ".lora_A." in name or ".lora_B." in name:
            if lora_f16:
                mod.register_forward_hook(f16_hook)
        elif base_qtype == QT.Q8_0:
            mod.register_forward_hook(base_hook)


GGUF_DELTAS: list[tuple] = []   # (fixture, adapter file, base file, max|Δ|, max|Δ| emulated)


def make_gguf_lora_fixtures() -> None:
    base_rel = "models/llama-f32.gguf"
    f32 = load_gguf_base("llama-f32.gguf")
    base_logits = base_expected("llama-f32.gguf")
    pm = make_peft(f32, LoraConfig(r=4, lora_alpha=8, target_modules=ALL7, lora_dropout=0.0),
                   seed=301, b_std=B_STD["gguf-lora"])
    logits = mf.forward_logits(pm, TOKENS_256)
    desc = effect(logits, base_logits, "peft-lora-for-gguf")
    folder = save_peft(pm, "peft-lora-for-gguf", base_rel)
    check_reload(f32, folder, TOKENS_256, logits)
    lora = {}
    for name, mod in pm.named_modules():
        if isinstance(mod, LoraLayer):
            lora[name.removeprefix("base_model.model.")] = (
                mod.lora_A["default"].weight.detach().numpy().copy(),
                mod.lora_B["default"].weight.detach().numpy().copy())
    assert len(lora) == 14

    cpp_src = (f"llamacpp_logits: {mf.llamacpp_version()} with lora_path= and lora_scale 1.0, "
               f"n_ctx {mf.LLAMACPP_N_CTX}, {mf.LLAMACPP_THREADS} threads, F32 KV cache, logits_all")
    gguf_path = ADAPTERS / "gguf-lora.gguf"
    write_gguf_lora(gguf_path, lora, 8.0, QT.F32, f32.config)
    # the file reads back as written (names, shapes, types, data)
    reader = gguf.GGUFReader(str(gguf_path))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 8.0
    tq = {t.name: t for t in reader.tensors}
    assert list(tq["blk.0.attn_q.weight.lora_a"].shape) == [64, 4]    # ne = [in, r]
    assert list(tq["blk.0.attn_k.weight.lora_b"].shape) == [4, 32]    # ne = [r, out]
    assert list(tq["blk.1.ffn_down.weight.lora_a"].shape) == [128, 4]
    assert np.array_equal(np.asarray(tq["blk.1.attn_k.weight.lora_b"].data),
                          mf.permute(lora[module_path(1, "k_proj")][1], 2))

    cpp_base = llamacpp_logits(MODELS / "llama-f32.gguf", TOKENS_256)
    cpp = llamacpp_logits(MODELS / "llama-f32.gguf", TOKENS_256, gguf_path)
    tensors = {"logits": logits}
    if cpp is not None:
        # llama.cpp without the adapter is the base; with it, it must match our reference
        want_base = load_file(str(mf.EXPECTED / "llama-f32.gguf.safetensors"))["llamacpp_logits"]
        assert np.array_equal(cpp_base, want_base)
        delta = float(np.abs(cpp - logits).max())
        assert delta < 1e-3, ("gguf-lora llama.cpp", delta)
        tensors["llamacpp_logits"] = cpp
        # the q/k permutation of lora_b is needed: without it llama.cpp is far off
        with tempfile.TemporaryDirectory() as tmp:
            wrong = Path(tmp) / "unpermuted.gguf"
            write_gguf_lora(wrong, lora, 8.0, QT.F32, f32.config, permute_qk=False)
            bad = float(np.abs(llamacpp_logits(MODELS / "llama-f32.gguf", TOKENS_256, wrong) - logits).max())
        assert bad > 0.05, ("unpermuted lora_b should not match", bad)
        GGUF_DELTAS.append(("gguf-lora", "gguf-lora.gguf", "llama-f32.gguf", delta, None))
        desc += f"; llama.cpp max|Δ| {delta:.2e} (with q/k lora_b NOT permuted: {bad:.2f})"
    src = (f"{PEFT_SOURCE}; base = llama-f32.gguf loaded into an HF llama (q/k un-permuted), "
           f"LoRA in HF orientation; {cpp_src}")
    save_expected("gguf-lora", TOKENS_256, tensors, src, base_rel, "adapters/gguf-lora.gguf")
    record("gguf-lora", base_rel, "llama.cpp GGUF LoRA (F32 tensors), r 4, alpha 8, all seven "
           "projections; q/k lora_b rows permuted like the base", "yes (+ llamacpp_logits)", desc)

    # peft-lora-for-gguf: the same LoRA as a PEFT folder (HF orientation, unpermuted)
    save_expected("peft-lora-for-gguf", TOKENS_256, tensors,
                  f"same as gguf-lora: {src}", base_rel, "adapters/peft-lora-for-gguf")
    record("peft-lora-for-gguf", base_rel,
           "the gguf-lora LoRA as a PEFT folder (HF orientation): the engine must permute q/k "
           "lora_B rows itself for a GGUF llama base; expected = gguf-lora's", "yes (= gguf-lora)", desc)

    # gguf-lora-f16: same LoRA, F16 tensors; reference uses the f16-rounded A and B
    gguf16 = ADAPTERS / "gguf-lora-f16.gguf"
    write_gguf_lora(gguf16, lora, 8.0, QT.F16, f32.config)
    pm16 = copy.deepcopy(pm)
    with torch.no_grad():
        for name, p in pm16.named_parameters():
            if ".lora_A." in name or ".lora_B." in name:
                p.copy_(p.half().float())
    logits16 = mf.forward_logits(pm16, TOKENS_256)
    desc = effect(logits16, base_logits, "gguf-lora-f16")
    tensors = {"logits": logits16}
    cpp16 = llamacpp_logits(MODELS / "llama-f32.gguf", TOKENS_256, gguf16)
    if cpp16 is not None:
        delta = float(np.abs(cpp16 - logits16).max())
        assert delta < 1e-2, ("gguf-lora-f16 llama.cpp", delta)
        emulate_llamacpp(pm16, QT.F32, lora_f16=True)
        emu = float(np.abs(cpp16 - mf.forward_logits(pm16, TOKENS_256)).max())
        tensors["llamacpp_logits"] = cpp16
        GGUF_DELTAS.append(("gguf-lora-f16", "gguf-lora-f16.gguf", "llama-f32.gguf", delta, emu))
        desc += f"; llama.cpp max|Δ| {delta:.2e} (F16 rounding emulated: {emu:.2e})"
    src16 = (f"{PEFT_SOURCE}; base = llama-f32.gguf as for gguf-lora, LoRA A/B rounded to F16 "
             f"(the values the file stores), float32 math; {cpp_src}")
    save_expected("gguf-lora-f16", TOKENS_256, tensors, src16, base_rel, "adapters/gguf-lora-f16.gguf")
    record("gguf-lora-f16", base_rel, "the gguf-lora LoRA with F16 lora_a/lora_b tensors",
           "yes (+ llamacpp_logits)", desc)

    # gguf-lora-on-q8: the F32 GGUF LoRA on the Q8_0 base
    q8_rel = "models/llama-q8_0.gguf"
    q8 = load_gguf_base("llama-q8_0.gguf")
    pq8 = reload_peft(q8, folder)   # same LoRA (from the PEFT folder) on the dequantized Q8_0 base
    logits8 = mf.forward_logits(pq8, TOKENS_256)
    desc = effect(logits8, base_expected("llama-q8_0.gguf"), "gguf-lora-on-q8")
    tensors = {"logits": logits8}
    cpp8 = llamacpp_logits(MODELS / "llama-q8_0.gguf", TOKENS_256, gguf_path)
    if cpp8 is not None:
        delta = float(np.abs(cpp8 - logits8).max())
        assert delta < 0.25, ("gguf-lora-on-q8 llama.cpp", delta)
        emulate_llamacpp(pq8, QT.Q8_0, lora_f16=False)
        emu = float(np.abs(cpp8 - mf.forward_logits(pq8, TOKENS_256)).max())
        tensors["llamacpp_logits"] = cpp8
        GGUF_DELTAS.append(("gguf-lora-on-q8", "gguf-lora.gguf", "llama-q8_0.gguf", delta, emu))
        desc += f"; llama.cpp max|Δ| {delta:.2e} (Q8_0 activation rounding emulated: {emu:.2e})"
    src8 = (f"{PEFT_SOURCE}; base = llama-q8_0.gguf dequantized with gguf-py, q/k un-permuted, "
            f"LoRA in HF orientation (float32); {cpp_src}")
    save_expected("gguf-lora-on-q8", TOKENS_256, tensors, src8, q8_rel, "adapters/gguf-lora.gguf")
    record("gguf-lora-on-q8", q8_rel, "gguf-lora.gguf on the Q8_0 base (a LoRA on a quantized "
           "backbone: unmerged path)", "yes (+ llamacpp_logits)", desc)
