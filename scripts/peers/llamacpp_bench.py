"""llama.cpp (through llama-cpp-python) on the shapes of `loraswitch bench`, for side-by-side figures:
prefill tokens/s for a prompt of N tokens and decode ms/token, on random weights written to GGUF in any of the
dtypes `loraswitch bench --dtype` takes, or on a real GGUF file (--model).

Development-time only (needs the peer venv of ../shared/tools/setup-peers.sh):
    python scripts/peers/llamacpp_bench.py --config smollm2-135m --dtype q4_0 [--prompt 128] [--tokens 64]
"""
import argparse, os, statistics, time
import numpy as np
import gguf

CONFIGS = {  # the same shapes as loraswitch's BenchmarkShape
    "tiny": dict(d=256, ff=704, L=4, H=4, KV=2, V=4096, tie=False, theta=10000.0),
    "smollm2-135m": dict(d=576, ff=1536, L=30, H=9, KV=3, V=49152, tie=True, theta=100000.0),
    "tinyllama-1.1b": dict(d=2048, ff=5632, L=22, H=32, KV=4, V=32000, tie=False, theta=10000.0),
}
TYPES = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
         "q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0,
         "q4_1": gguf.GGMLQuantizationType.Q4_1}
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7}


def write(path, c, dtype):
    w = gguf.GGUFWriter(path, "llama")
    hd = c["d"] // c["H"]
    w.add_context_length(2048); w.add_embedding_length(c["d"]); w.add_block_count(c["L"])
    w.add_feed_forward_length(c["ff"]); w.add_head_count(c["H"]); w.add_head_count_kv(c["KV"])
    w.add_rope_freq_base(c["theta"]); w.add_layer_norm_rms_eps(1e-5); w.add_rope_dimension_count(hd)
    w.add_file_type(FILE_TYPES[dtype])
    w.add_tokenizer_model("llama"); w.add_tokenizer_pre("default")
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    toks += [f"t{i}" for i in range(c["V"] - len(toks))]
    w.add_token_list(toks); w.add_token_scores([0.0] * len(toks))
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (c["V"] - 259)); w.add_bos_token_id(1); w.add_eos_token_id(2)
    rng = np.random.default_rng(0)

    def t(name, *shape):
        x = rng.standard_normal(shape, dtype=np.float32) * 0.02
        if dtype == "f32":
            w.add_tensor(name, x)
        elif dtype == "f16":
            w.add_tensor(name, x.astype(np.float16))
        else:
            q = gguf.quants.quantize(x, TYPES[dtype])
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=TYPES[dtype])

    t("token_embd.weight", c["V"], c["d"])
    for i in range(c["L"]):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(c["d"], np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(c["d"], np.float32))
        t(f"blk.{i}.attn_q.weight", c["d"], c["d"]); t(f"blk.{i}.attn_k.weight", c["KV"] * hd, c["d"])
        t(f"blk.{i}.attn_v.weight", c["KV"] * hd, c["d"]); t(f"blk.{i}.attn_output.weight", c["d"], c["d"])
        t(f"blk.{i}.ffn_gate.weight", c["ff"], c["d"]); t(f"blk.{i}.ffn_up.weight", c["ff"], c["d"])
        t(f"blk.{i}.ffn_down.weight", c["d"], c["ff"])
    w.add_tensor("output_norm.weight", np.ones(c["d"], np.float32))
    if not c["tie"]:
        t("output.weight", c["V"], c["d"])
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="smollm2-135m", choices=CONFIGS)
    ap.add_argument("--dtype", default="f32", choices=TYPES)
    ap.add_argument("--model", help="a real GGUF file instead of random weights")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    path = a.model
    if path is None:
        path = os.path.expanduser(f"~/.cache/loraswitch-peers/bench-{a.config}-{a.dtype}.gguf")
        if not os.path.exists(path):
            write(path + ".tmp", CONFIGS[a.config], a.dtype)
            os.rename(path + ".tmp", path)
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=a.prompt + a.tokens + 16, n_threads=a.threads, n_threads_batch=a.threads,
                n_batch=a.prompt, n_ubatch=a.prompt, verbose=False)
    vocab = llm.n_vocab()
    prompt = [int(x) for x in np.random.default_rng(7).integers(3, vocab, a.prompt)]
    prefill, decode = [], []
    for _ in range(a.reps):
        llm.reset()
        t = time.perf_counter(); llm.eval(prompt); prefill.append(a.prompt / (time.perf_counter() - t))
        t = time.perf_counter()
        for i in range(a.tokens):
            llm.eval([3 + (i * 7919) % (vocab - 3)])
        decode.append((time.perf_counter() - t) * 1000 / a.tokens)
    name = os.path.basename(path) if a.model else f"{a.config} {a.dtype}"
    print(f"llama.cpp {name} threads={a.threads}: prefill {max(prefill):.1f} tokens/s ({a.prompt}-token prompt), "
          f"decode {statistics.median(decode):.2f} ms/token (runs {['%.2f' % x for x in decode]})")


if __name__ == "__main__":
    main()
