"""Adapters move both ways with nothing lost: one trained by `loraswitch train` gives the same logits in the package,
one trained by the package the same logits in `loraswitch`; and the text formats are labelled as `loraswitch train`
labels them (its one-SGD-step gradient equals the package's on text, prompt/completion and chat data)."""

from __future__ import annotations

import json
import random

from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from common import *  # noqa: F401,F403

from loraswitch_torch import AdapterConfig, new_adapter, training_loss
from loraswitch_torch.data import collate, read_jsonl

TOKENIZER = FIXTURES / "tokenizers" / "bytelevel-gpt2"
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def pre_tokenized(seed: int, count: int = 12) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        ids = [rng.randrange(128) for _ in range(rng.randrange(6, 14))]
        rows.append({"input_ids": ids, "labels": [-100] * 2 + ids[2:]})
    return rows


class Roundtrip(TempDirTest):
    def test_swift_trained_loads_in_the_package(self):
        data = write_jsonl(self.tmp / "d.jsonl", pre_tokenized(1))
        for kind, extra in (("moe-token", ["--router-layer", "1", "--experts", "4"]),
                            ("moe-layer", ["--experts", "4", "--top-k", "1"]), ("lora", ["--rslora"])):
            with self.subTest(kind):
                out = self.tmp / kind
                swift_train(MODELS / "llama-gqa", data, out, "--type", kind, *extra, "--rank", "4", "--steps", "6",
                            "--lr", "0.02", "--batch-size", "2")
                want = swift_logits(MODELS / "llama-gqa", out, TOKENS, self.tmp / f"{kind}.safetensors")
                got = package_logits(MODELS / "llama-gqa", out, TOKENS)
                self.assertLessEqual(float((got - want).abs().max()), LOGIT_TOL)
                base = package_logits(MODELS / "llama-gqa", None, TOKENS)
                self.assertGreater(float((got - base).abs().max()), 1e-3, "the trained adapter changes the logits")

    def test_package_trained_loads_in_loraswitch(self):
        examples = pre_tokenized(2)
        for kind in ("moe-token", "moe-layer", "lora"):
            with self.subTest(kind):
                model = load_model(MODELS / "llama-gqa")
                config = AdapterConfig.new(kind, rank=4, experts=4, top_k=2, layers=[1], router_layer=1,
                                           rslora=kind == "lora", base_model_name_or_path="llama-gqa")
                adapter = new_adapter(model, config, seed=5)
                optimizer = torch.optim.AdamW(adapter.parameters(), lr=0.02)
                for step in range(6):
                    batch = collate(examples[2 * step:2 * step + 2])
                    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                    training_loss(out.logits, batch["labels"], adapter.decisions,
                                  attention_mask=batch["attention_mask"]).loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                adapter.save(self.tmp / kind)
                model.eval()
                got = logits_of(model, TOKENS)
                want = swift_logits(MODELS / "llama-gqa", self.tmp / kind, TOKENS, self.tmp / f"{kind}.safetensors")
                self.assertLessEqual(float((got - want).abs().max()), LOGIT_TOL)
                base = package_logits(MODELS / "llama-gqa", None, TOKENS)
                self.assertGreater(float((got - base).abs().max()), 1e-3)


class TextFormats(TempDirTest):
    def write_model(self) -> Path:
        """A random 2-layer llama with the gpt2 fixture tokenizer and a ChatML template."""
        folder = self.tmp / "model"
        vocab = (len(json.loads((TOKENIZER / "tokenizer.json").read_text())["model"]["vocab"]) + 2 + 31) // 32 * 32
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                             tie_word_embeddings=False)
        LlamaForCausalLM(config).save_pretrained(folder)
        (folder / "tokenizer.json").write_bytes((TOKENIZER / "tokenizer.json").read_bytes())
        (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML,
                                                                  "eos_token": "<|endoftext|>"}))
        return folder

    def test_labels_match_loraswitch(self):
        model_dir = self.write_model()
        rows = [{"text": "The quick brown fox jumps over the lazy dog."},
                {"prompt": "Question: what is two plus two?  ", "completion": "Four."},
                {"prompt": "Say hi", "completion": " hello there"},
                {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"},
                              {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
                              {"role": "assistant", "content": "Goodbye, friend."}]}]
        data = write_jsonl(self.tmp / "text.jsonl", rows)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        examples = read_jsonl(data, tokenizer, vocab_size=None)
        self.assertEqual([sum(l != -100 for l in e["labels"]) > 0 for e in examples], [True] * 4)
        self.assertEqual(examples[1]["labels"][:3], [-100] * 3)   # the prompt is not labelled
        # loraswitch's gradient of one SGD step on these examples, against the package's on its own labels
        init = self.tmp / "init"
        swift_train(model_dir, data, init, "--type", "moe-token", "--experts", "3", "--rank", "2", "--steps", "1",
                    "--lr", "0")
        lr = 1e4
        out = self.tmp / "step"
        swift_train(model_dir, data, out, "--init", str(init), "--optimizer", "sgd", "--lr", str(lr), "--clip", "0",
                    "--schedule", "constant", "--steps", "1", "--batch-size", "4")
        model = load_model(model_dir)
        adapter = load_adapter(model, init)
        with torch.no_grad():   # B = 0 leaves A without gradient: give the experts some B first, in both
            for m in adapter.modules.values():
                m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=torch.Generator().manual_seed(3)) * 0.05)
        adapter.save(init)
        swift_train(model_dir, data, out, "--init", str(init), "--optimizer", "sgd", "--lr", str(lr), "--clip", "0",
                    "--schedule", "constant", "--steps", "1", "--batch-size", "4")
        batch = collate(examples)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        training_loss(logits, batch["labels"], adapter.decisions, attention_mask=batch["attention_mask"]).loss.backward()
        before = read_safetensors(init / "adapter_model.safetensors").tensors
        after = read_safetensors(out / "adapter_model.safetensors").tensors
        for name in adapter.names:
            module, attr, expert = adapter.bindings[name]
            g = getattr(module, attr).grad
            g = g if expert is None else g[expert]
            self.assertLessEqual(rel_error(g, (before[name].double() - after[name].double()) / lr), GRAD_TOL, name)


if __name__ == "__main__":
    unittest.main()
