"""`loraswitch-torch`: the package's command line. `logits` writes the file `loraswitch logits` writes."""

from __future__ import annotations

import argparse
import sys

from .errors import AdapterError

USAGE_LOGITS = "loraswitch-torch logits --model PATH [--adapter DIR] --tokens 1,2,3 --out FILE [--threads N]"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loraswitch-torch")
    sub = p.add_subparsers(dest="command", required=True)
    lg = sub.add_parser("logits", usage=USAGE_LOGITS,
                        help="logits [T, vocab] float32 of every position, as a safetensors file (tensor `logits`)")
    lg.add_argument("--model", required=True, help="a Hugging Face llama, mistral or qwen2 folder")
    lg.add_argument("--adapter", help="a PEFT LoRA or MoE-LoRA folder")
    lg.add_argument("--tokens", required=True, help="token ids, comma-separated")
    lg.add_argument("--out", required=True, help="the safetensors file to write")
    lg.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    return p


def _tokens(text: str, parser: argparse.ArgumentParser) -> list[int]:
    try:
        tokens = [int(t) for t in text.split(",")]
    except ValueError:
        parser.error(f"--tokens {text!r}: expected comma-separated integers")
    if not tokens or any(t < 0 for t in tokens):
        parser.error(f"--tokens {text!r}: expected at least one non-negative id")
    return tokens


def logits_command(args, parser) -> None:
    import torch

    from .adapter import load_adapter
    from .hf import load_model, logits_of
    from .safetensors_file import write_safetensors

    tokens = _tokens(args.tokens, parser)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    vocab = model.config.vocab_size
    if max(tokens) >= vocab:
        raise AdapterError(None, "--tokens", f"id {max(tokens)} is outside the model's vocabulary of {vocab}")
    if args.adapter:
        load_adapter(model, args.adapter)
    logits = logits_of(model, tokens).cpu().contiguous()
    write_safetensors(args.out, {"logits": logits}, {"tokens": ",".join(map(str, tokens))})


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "logits":
            logits_command(args, parser)
    except (AdapterError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
