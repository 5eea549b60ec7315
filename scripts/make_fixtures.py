#!/usr/bin/env python3
"""Regenerate the reference fixtures under Tests/Fixtures/.

Run from the repository root (development machines only; the Swift package does not
need Python at build or test time):

    ~/.cache/loraswitch-peers/bin/python scripts/make_fixtures.py

Needs: torch, transformers (5.x), safetensors, gguf (gguf-py), numpy, and optionally
llama-cpp-python (without it the `llamacpp_logits` cross-check tensors are left out).

What it writes (and deletes first: only these paths, nothing else under Tests/Fixtures):

    Tests/Fixtures/models/<name>/           Hugging Face model folders (config.json + safetensors)
    Tests/Fixtures/models/<name>.gguf       GGUF v3 files
    Tests/Fixtures/expected/<name>.safetensors        for models/<name>/
    Tests/Fixtures/expected/<name>.gguf.safetensors   for models/<name>.gguf
        (named after the model path: `llama-f16` is both an HF folder and a GGUF file)
        tensor  logits           F32 [T, vocab]  reference logits, every position, one causal pass
        tensor  llamacpp_logits  F32 [T, vocab]  (GGUF fixtures only) the same from llama.cpp
        __metadata__ {"tokens": "id,id,...", "source": "how the logits were made"}
    Tests/Fixtures/README.md

Every model has random weights drawn from fixed seeds, so re-running the script gives
byte-identical files (same library versions assumed: the torch RNG and the llama.cpp
build are part of the recipe). Its parts live in scripts/modelfix/.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Everything below is also what scripts/adapterfix reads through `import make_fixtures as mf`.
from modelfix.common import *  # noqa: E402,F401,F403  (one torch thread, quiet transformers)
from modelfix.gguf_models import *  # noqa: E402,F401,F403
from modelfix.gguf_models import _q8_blocks  # noqa: E402,F401  (scripts/adapterfix quantizes with it)
from modelfix.readme import write_readme  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def report(name: str, paths: list[Path], extra: str = "") -> None:
    files = file_list(paths)
    size = sum(f.stat().st_size for f in files)
    rel = ", ".join(str(f.relative_to(FIXTURES)) for f in files)
    print(f"{name:20s} {size:9d} B  {rel}{'  ' + extra if extra else ''}", flush=True)


def make_hf_fixtures() -> dict[str, tuple]:
    """Fixtures 1-11. Returns {name: (model, classic config, logits)} for fixtures 1-8."""
    results = {}
    source = (f"transformers {transformers.__version__} AutoModelForCausalLM, float32, "
              f"attn_implementation=eager, one forward pass over all tokens")
    models = {}
    for name, (seed, overrides, _) in HF_FIXTURES.items():
        classic = dict(BASE, **overrides)
        if name == "llama-rope-llama3":
            regimes = check_llama3_regimes(classic["rope_scaling"], classic["rope_theta"],
                                           classic["hidden_size"] // classic["num_attention_heads"])
        model = new_model(classic, seed)
        logits = forward_logits(model, TOKENS_128)
        extra = ""

        if classic["rope_scaling"] is not None:
            # The scaling must change the logits noticeably (same weights, other rope): against
            # no scaling, and for llama3 also against plain linear scaling by the same factor
            # (which would be right only if the kept/smoothed regimes were missing).
            variants = {"unscaled": None}
            if name == "llama-rope-llama3":
                variants["linear x8"] = {"rope_type": "linear", "factor": 8.0}
            for label, rope in variants.items():
                other = forward_logits(new_model(dict(classic, rope_scaling=rope), seed), TOKENS_128)
                diff = float(np.abs(other - logits).max())
                assert diff > 1e-2, (name, label, diff)
                extra += f"vs {label}: {diff:.2f}; "

        if name == "mistral":
            # The sliding window must really be applied by eager attention: without the window
            # the logits differ, and they differ first at position 6 (the first one whose
            # causal past, 7 tokens, exceeds the window of 6).
            nowin = copy.deepcopy(model)
            nowin.config.sliding_window = None
            ref = forward_logits(nowin, TOKENS_128)
            assert np.abs(ref - logits).max() > 1e-3, "sliding window not applied"
            assert np.array_equal(ref[:6], logits[:6]), "window affects positions < 6"
            assert np.abs(ref[6] - logits[6]).max() > 1e-4, "window of 6 should hide token 0 at position 6"
            extra = f"vs no window: {float(np.abs(ref - logits).max()):.2f} (rows 0-5 equal)"

        folder = save_hf(model, name, classic)
        if name in ("llama-headdim", "qwen2"):  # tied: no lm_head.weight in the file
            with safe_open(str(folder / "model.safetensors"), "np") as f:
                assert "lm_head.weight" not in f.keys()
        expected = save_expected(name, TOKENS_128, logits, source)
        models[name] = (model, classic, logits)
        if name == "llama-rope-llama3":
            extra += f"rope regimes: {regimes}"
        results[name] = [folder, expected, extra.rstrip("; ")]

    # Dtype / layout variants of llama-gqa.
    gqa, gqa_classic, gqa_logits = models["llama-gqa"]
    for name, dtype in (("llama-f16", torch.float16), ("llama-bf16", torch.bfloat16)):
        folder = save_hf(gqa, name, gqa_classic, dtype=dtype)
        logits = forward_logits(load_model(folder), TOKENS_128)  # f32 math on rounded weights
        src = (f"llama-gqa weights rounded to {str(dtype).split('.')[-1]}; {source} "
               f"(weights upcast to float32)")
        results[name] = [folder, save_expected(name, TOKENS_128, logits, src), ""]
    folder = save_hf(gqa, "llama-sharded", gqa_classic, max_shard_size="40KB")
    shards = sorted(folder.glob("*.safetensors"))
    assert len(shards) >= 2 and (folder / "model.safetensors.index.json").exists(), shards
    results["llama-sharded"] = [folder, save_expected("llama-sharded", TOKENS_128, gqa_logits,
                                                      "same as llama-gqa: " + source), ""]

    # Every folder must reload in transformers (from the rewritten classic config.json) and
    # reproduce its expected logits.
    for name, (folder, expected, extra) in results.items():
        want = load_file(str(expected))["logits"]
        got = forward_logits(load_model(folder), TOKENS_128)
        err = float(np.abs(got - want).max())
        assert err <= RELOAD_TOL, (name, err)
        if name in models:  # the reloaded config means the same rope as the one we built
            cfg = AutoConfig.from_pretrained(folder)
            assert cfg.rope_parameters == models[name][0].config.rope_parameters, name
        report(name, [folder, expected], extra)
    return models


def make_gguf_fixtures(hf_models: dict) -> list[tuple]:
    """Fixtures 12-13. Returns (name, llama.cpp max|dlogit|, same with llama.cpp's activation
    rounding emulated, same with llama.cpp's default F16 KV cache) per file (None: no llama.cpp)."""
    deltas = []

    # --- 12: llama, vocab 256, in five tensor types ---------------------------------------
    cfg = GGUF_LLAMA
    model = new_model(cfg, GGUF_LLAMA_SEED)
    tensors = hf_tensors_for_gguf(model, permute_qk=True)
    for suffix, (qtype, ftype) in GGUF_TYPES.items():
        name = f"llama-{suffix}"
        path = MODELS / f"{name}.gguf"
        typed = [(n, a, QT.F32 if a.ndim == 1 else qtype) for n, a in tensors]  # norms F32
        write_gguf(path, "llama", cfg, typed, ftype)
        # Reference: the exact math on what the file stores.
        ref_model = copy.deepcopy(model)
        load_gguf_into_hf(ref_model, read_gguf_dequantized(path), permuted_qk=True)
        logits = forward_logits(ref_model, TOKENS_256)
        if qtype == QT.F32:
            assert np.array_equal(logits, forward_logits(model, TOKENS_256))
        cpp = llamacpp_logits(path, TOKENS_256)
        delta = None if cpp is None else float(np.abs(cpp - logits).max())
        cpp16 = llamacpp_logits(path, TOKENS_256, kv_f32=False)
        delta16 = None if cpp16 is None else float(np.abs(cpp16 - logits).max())
        emulated = None
        if cpp is not None:
            assert delta < 0.25, f"llama.cpp disagrees with the reference on {name}: {delta}"
            emulate_llamacpp_rounding(ref_model, path, qtype)
            emulated = float(np.abs(cpp - forward_logits(ref_model, TOKENS_256)).max())
        src = (f"transformers {transformers.__version__} LlamaForCausalLM float32 eager on the "
               f"{qtype.name} weights of {name}.gguf dequantized with gguf-py and q/k un-permuted; "
               f"llamacpp_logits: {llamacpp_version()}, n_ctx {LLAMACPP_N_CTX}, "
               f"{LLAMACPP_THREADS} threads, F32 KV cache, logits_all")
        expected = save_expected(path.name, TOKENS_256, logits, src, cpp)
        deltas.append((name, delta, emulated, delta16))
        report(name, [path, expected], f"llama.cpp max|dlogit| {fmt(delta)} (rounding emulated: "
               f"{fmt(emulated)}; F16 KV cache: {fmt(delta16)})")

    # --- 13: the qwen2 HF fixture as llama.cpp's converter writes it -----------------------
    qmodel, qclassic, qlogits = hf_models["qwen2"]
    name = "qwen2-f32"
    path = MODELS / f"{name}.gguf"
    tensors = hf_tensors_for_gguf(qmodel, permute_qk=False)  # qwen2 uses NEOX rope: no permute
    assert not any(n == "output.weight" for n, _ in tensors)  # tied: llama.cpp reuses token_embd
    write_gguf(path, "qwen2", qclassic, [(n, a, QT.F32) for n, a in tensors], gguf.LlamaFileType.ALL_F32)
    stored = read_gguf_dequantized(path)
    for n, a in tensors:
        assert np.array_equal(stored[n], a), n
    cpp = llamacpp_logits(path, TOKENS_128)
    delta = None if cpp is None else float(np.abs(cpp - qlogits).max())
    cpp16 = llamacpp_logits(path, TOKENS_128, kv_f32=False)
    delta16 = None if cpp16 is None else float(np.abs(cpp16 - qlogits).max())
    src = (f"same as the qwen2 HF fixture (transformers {transformers.__version__} float32 eager); "
           f"llamacpp_logits: {llamacpp_version()}, n_ctx {LLAMACPP_N_CTX}, {LLAMACPP_THREADS} "
           f"threads, F32 KV cache, logits_all")
    if cpp is not None:
        assert delta < 0.25, f"llama.cpp disagrees with the reference on {name}: {delta}"
    expected = save_expected(path.name, TOKENS_128, qlogits, src, cpp)
    deltas.append((name, delta, delta, delta16))  # F32: nothing to emulate
    report(name, [path, expected], f"llama.cpp max|dlogit| {fmt(delta)} (F16 KV cache: {fmt(delta16)})")
    return deltas


def main() -> None:
    for p in (MODELS, EXPECTED):
        if p.exists():
            shutil.rmtree(p)
        p.mkdir(parents=True)
    if README.exists():
        README.unlink()

    hf_models = make_hf_fixtures()
    deltas = make_gguf_fixtures(hf_models)
    write_readme(deltas)
    for f in file_list([MODELS, EXPECTED, README]):
        f.chmod(0o644)  # safetensors writes some files 0600

    files = file_list([MODELS, EXPECTED, README])
    total = sum(f.stat().st_size for f in files)
    print(f"{'total':20s} {total:9d} B  in {len(files)} files")
    if any(d[1] is None for d in deltas):
        print("WARNING: llama_cpp not importable: llamacpp_logits left out", file=sys.stderr)


if __name__ == "__main__":
    main()
