"""llama.cpp's greedy tokens for a prompt, to set beside `loraswitch generate --temperature 0 --show-tokens`.
With --chat the prompt goes through the model's own chat template (rendered with jinja2 as transformers does).
Development-time only: python scripts/peers/llamacpp_greedy.py MODEL.gguf --prompt TEXT [--chat] [--tokens 64]"""
import argparse, jinja2
from llama_cpp import Llama

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("--prompt", required=True); ap.add_argument("--chat", action="store_true")
ap.add_argument("--tokens", type=int, default=64)
a = ap.parse_args()
llm = Llama(model_path=a.model, n_ctx=1024, n_threads=2, verbose=False, logits_all=False)
text = a.prompt
if a.chat:
    template = llm.metadata["tokenizer.chat_template"]
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    bos = llm.detokenize([llm.token_bos()], special=True).decode() if llm.token_bos() >= 0 else ""
    eos = llm.detokenize([llm.token_eos()], special=True).decode()
    text = env.from_string(template).render(messages=[{"role": "user", "content": a.prompt}], add_generation_prompt=True,
                                            bos_token=bos, eos_token=eos)
prompt = llm.tokenize(text.encode(), add_bos=not a.chat, special=True)
print("prompt tokens:", ",".join(map(str, prompt)))
out = []
llm.reset(); llm.eval(prompt)
for _ in range(a.tokens):
    t = int(llm.sample(temp=0.0))
    if llm.token_eos() == t or t in (llm.token_eos(),): out.append(t); break
    out.append(t); llm.eval([t])
print("generated tokens:", ",".join(map(str, out)))
print(repr(llm.detokenize(out).decode(errors="replace")))
