#!/usr/bin/env python3
"""Load on an OpenAI-compatible server: C concurrent streaming clients, R requests each, the same prompt length and
max_tokens; prints aggregate generated tokens/s and time to first token (median, p99). Standard library only, so it
runs against `loraswitch serve` and llama.cpp's `llama-server` alike (issue 13's bar, same machine, same minutes).

    python3 scripts/peers/serve_bench.py --url http://127.0.0.1:8080 --clients 8 --requests 4 \\
        --prompt-tokens 64 --max-tokens 64 [--models a,b,c] [--llama-lora 0,1,2] [--label ours]

--models: the `model` each client names, round robin (ours: the base or an adapter; default: the server's first
model). --llama-lora: llama-server's per-request LoRA (`"lora": [{"id": i, "scale": 1}]`), client c gets entry
c mod n. Every request is greedy; the prompt is random words (seeded per client); generation stops at max_tokens
or end of sequence; tokens are counted from the usage chunk when the server sends
one, else from the number of content chunks.
"""
import argparse
import http.client
import json
import random
import statistics
import threading
import time
import urllib.parse

WORDS = ("the of and to in is was for on that with as by at from his her an are be this which or had not but "
         "were all they one have been their has more who said will would there when what so up out into if about "
         "time can only new some could these two may first then do any like my now over such our man me even most "
         "made after also did many before must through back years where much your way well down should because").split()


def one_request(host, port, path, body):
    """(ttft seconds, total seconds, generated tokens) of one streamed request."""
    start = time.perf_counter()
    c = http.client.HTTPConnection(host, port, timeout=600)
    c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:300]!r}")
    ttft, chunks, usage = None, 0, None
    buffer = b""
    while True:
        data = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not data:
            break
        buffer += data
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            if not event.startswith(b"data: "):
                continue
            payload = event[6:]
            if payload == b"[DONE]":
                continue
            chunk = json.loads(payload)
            if chunk.get("usage"):
                usage = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices", []):
                text = choice.get("text") or (choice.get("delta") or {}).get("content") or ""
                if text:
                    chunks += 1
                    if ttft is None:
                        ttft = time.perf_counter() - start
    c.close()
    return ttft or (time.perf_counter() - start), time.perf_counter() - start, usage if usage is not None else chunks


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=4, help="requests per client, one after another")
    p.add_argument("--prompt-tokens", type=int, default=64, help="prompt length in words (about a token each)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--models", default="", help="comma-separated `model` per client, round robin")
    p.add_argument("--llama-lora", default="", help="comma-separated llama-server LoRA ids per client, round robin")
    p.add_argument("--label", default="")
    p.add_argument("--seed", type=int, default=1000,
                   help="client c's prompts come from seed + c: another seed gives prompts no server has cached")
    p.add_argument("--json", default="", help="also write the figures to this file")
    a = p.parse_args()
    u = urllib.parse.urlparse(a.url)
    models = [m for m in a.models.split(",") if m]
    loras = [int(i) for i in a.llama_lora.split(",") if i]
    results, errors, lock = [], [], threading.Lock()

    def client(c):
        rng = random.Random(a.seed + c)
        for r in range(a.requests):
            prompt = " ".join(rng.choice(WORDS) for _ in range(a.prompt_tokens))
            body = {"prompt": prompt, "max_tokens": a.max_tokens, "temperature": 0, "stream": True,
                    "stream_options": {"include_usage": True}}
            if models:
                body["model"] = models[c % len(models)]
            if loras:
                body["lora"] = [{"id": loras[c % len(loras)], "scale": 1.0}]
            try:
                out = one_request(u.hostname, u.port, "/v1/completions", body)
                with lock:
                    results.append(out)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(a.clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, e.g. {errors[0]}")
    tokens = sum(r[2] for r in results)
    ttfts = sorted(r[0] for r in results)
    p99 = ttfts[min(len(ttfts) - 1, int(round(0.99 * (len(ttfts) - 1))))]
    figures = {"label": a.label, "clients": a.clients, "requests": len(results), "generated_tokens": tokens,
               "wall_seconds": wall, "tokens_per_second": tokens / wall, "ttft_median_ms": 1000 * statistics.median(ttfts),
               "ttft_p99_ms": 1000 * p99}
    print(f"{a.label or a.url}: {len(results)} requests, {tokens} tokens in {wall:.1f} s = {tokens / wall:.1f} tokens/s; "
          f"time to first token median {figures['ttft_median_ms']:.0f} ms, p99 {figures['ttft_p99_ms']:.0f} ms")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
