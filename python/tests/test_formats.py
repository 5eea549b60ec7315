"""Adapter folders: read and written again byte for byte (ours, PEFT's, `loraswitch train`'s), and bad input refused
with an error that names the file and the key or tensor."""

from __future__ import annotations

import json
import shutil

from common import *  # noqa: F401,F403

from loraswitch_torch import AdapterConfig, AdapterError, new_adapter
from loraswitch_torch.safetensors_file import read_safetensors, write_safetensors

GOOD = sorted(HF_FIXTURES) + ["lora-second"]
BASES = {**HF_FIXTURES, "lora-second": "llama-gqa"}


class RoundTrip(TempDirTest):
    def assertSameFolder(self, a: Path, b: Path):
        for f in ("adapter_config.json", "adapter_model.safetensors"):
            self.assertEqual((a / f).read_bytes(), (b / f).read_bytes(), f"{a.name}/{f}")

    def test_fixtures_saved_unchanged_are_byte_identical(self):
        for name in GOOD:
            with self.subTest(name):
                model = load_model(MODELS / BASES[name])
                load_adapter(model, ADAPTERS / name).save(self.tmp / name)
                self.assertSameFolder(ADAPTERS / name, self.tmp / name)

    def test_swift_trained_folder_is_byte_identical(self):
        """`loraswitch train` orders its tensors by layer and module (not by name) and writes its own JSON style:
        both are kept."""
        data = write_jsonl(self.tmp / "d.jsonl", [{"input_ids": [1, 5, 9, 13, 2], "labels": [1, 5, 9, 13, 2]}])
        for kind in ("moe-layer", "moe-token", "lora"):
            with self.subTest(kind):
                out = self.tmp / f"swift-{kind}"
                moe = ["--experts", "3"] if kind != "lora" else []
                swift_train(MODELS / "llama-gqa", data, out, "--type", kind, *moe, "--rank", "2", "--steps", "1",
                            "--lr", "0.01")
                model = load_model(MODELS / "llama-gqa")
                load_adapter(model, out).save(self.tmp / f"again-{kind}")
                self.assertSameFolder(out, self.tmp / f"again-{kind}")

    def test_new_adapter_has_swifts_names_and_order(self):
        """A new adapter's tensors: the names, shapes, dtype and order `loraswitch train` writes."""
        data = write_jsonl(self.tmp / "d.jsonl", [{"input_ids": [1, 5, 9, 13, 2], "labels": [1, 5, 9, 13, 2]}])
        for kind in ("moe-layer", "moe-token", "lora"):
            with self.subTest(kind):
                out = self.tmp / f"swift-{kind}"
                moe = ["--experts", "3"] if kind != "lora" else []
                swift_train(MODELS / "llama-gqa", data, out, "--type", kind, *moe, "--rank", "2", "--steps", "1",
                            "--targets", "q,v,down", "--layers", "1")
                config = AdapterConfig.new(kind, rank=2, experts=3, targets=("q_proj", "v_proj", "down_proj"),
                                           layers=[1], router_layer=0, base_model_name_or_path="llama-gqa")
                adapter = new_adapter(load_model(MODELS / "llama-gqa"), config)
                adapter.save(self.tmp / f"new-{kind}")
                theirs = read_safetensors(out / "adapter_model.safetensors")
                mine = read_safetensors(self.tmp / f"new-{kind}" / "adapter_model.safetensors")
                self.assertEqual(list(theirs.tensors), list(mine.tensors))
                self.assertEqual({k: (t.shape, t.dtype) for k, t in theirs.tensors.items()},
                                 {k: (t.shape, t.dtype) for k, t in mine.tensors.items()})
                self.assertEqual(theirs.metadata, mine.metadata)
                their_cfg = json.loads((out / "adapter_config.json").read_text())
                my_cfg = json.loads((self.tmp / f"new-{kind}" / "adapter_config.json").read_text())
                self.assertEqual(their_cfg, my_cfg)

    def test_safetensors_dtypes_and_orders(self):
        t = {"b": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a": torch.ones(3, dtype=torch.bfloat16),
             "c": torch.full((1, 2), 0.5, dtype=torch.float16)}
        write_safetensors(self.tmp / "x.safetensors", t, {"k": "v"}, data_order=["c", "a", "b"])
        back = read_safetensors(self.tmp / "x.safetensors")
        self.assertEqual(list(back.tensors), ["b", "a", "c"])
        self.assertEqual(back.data_order, ["c", "a", "b"])
        self.assertEqual(back.metadata, {"k": "v"})
        for k in t:
            self.assertEqual(back.tensors[k].dtype, t[k].dtype)
            self.assertTrue(torch.equal(back.tensors[k], t[k]))
        write_safetensors(self.tmp / "y.safetensors", back.tensors, back.metadata, back.data_order)
        self.assertEqual((self.tmp / "x.safetensors").read_bytes(), (self.tmp / "y.safetensors").read_bytes())


class BadInput(TempDirTest):
    def attach(self, folder: Path, base: str = "llama-gqa"):
        return load_adapter(load_model(MODELS / base), folder)

    def assertRefused(self, folder: Path, *needles: str, base: str = "llama-gqa"):
        with self.assertRaises(AdapterError) as ctx:
            self.attach(folder, base)
        for needle in needles:
            self.assertIn(needle, str(ctx.exception))
        return str(ctx.exception)

    def copy(self, name: str) -> Path:
        dst = self.tmp / name
        shutil.copytree(ADAPTERS / name, dst)
        return dst

    def test_bad_fixtures(self):
        self.assertRefused(ADAPTERS / "moe-bad-missing-b", "adapter_model.safetensors",
                           "base_model.model.model.layers.1.mlp.down_proj.lora_B.2.weight", "missing")
        self.assertRefused(ADAPTERS / "moe-bad-topk", "adapter_config.json", "top_k", "between 1 and num_experts")
        self.assertRefused(ADAPTERS / "moe-bad-router-shape", "base_model.model.router.weight", "[5, 32]", "[4, 32]")
        self.assertRefused(ADAPTERS / "moe-bad-num-experts", "expert 3 is beyond num_experts (3)")
        self.assertRefused(ADAPTERS / "moe-bad-module", "target_modules", "qkv_proj")
        self.assertRefused(ADAPTERS / "lora-dora", "use_dora", "DoRA")
        self.assertRefused(ADAPTERS / "lora-bias", "bias", "lora_only", base="llama-bias")

    def test_invalid_json(self):
        folder = self.copy("moe-token-top2")
        (folder / "adapter_config.json").write_text('{"peft_type": "MOE_LORA", "r": 4,,}')
        self.assertRefused(folder, "adapter_config.json", "invalid at line 1")

    def test_unknown_peft_type(self):
        folder = self.copy("lora-basic")
        cfg = json.loads((folder / "adapter_config.json").read_text())
        (folder / "adapter_config.json").write_text(json.dumps({**cfg, "peft_type": "IA3"}))
        self.assertRefused(folder, "adapter_config.json", "peft_type", "'IA3' is not supported")

    def test_wrong_types_and_missing_keys(self):
        folder = self.copy("moe-token-top2")
        cfg = json.loads((folder / "adapter_config.json").read_text())
        (folder / "adapter_config.json").write_text(json.dumps({**cfg, "num_experts": "4"}))
        self.assertRefused(folder, "num_experts", "not of type int")
        del cfg["r"]
        (folder / "adapter_config.json").write_text(json.dumps(cfg))
        self.assertRefused(folder, "adapter_config.json", "r: is missing")

    def test_wrong_shape_and_missing_tensor(self):
        folder = self.copy("lora-basic")
        f = read_safetensors(folder / "adapter_model.safetensors")
        name = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"
        f.tensors[name] = torch.zeros(31, 4)
        write_safetensors(folder / "adapter_model.safetensors", f.tensors, f.metadata)
        self.assertRefused(folder, name, "[31, 4]", "[32, 4]", "another base model")
        del f.tensors[name]
        write_safetensors(folder / "adapter_model.safetensors", f.tensors, f.metadata)
        self.assertRefused(folder, name, "is missing")

    def test_wrong_base(self):
        """An adapter of llama-gqa (hidden 32) on llama-rope-llama3 (hidden 64) is refused with the hint."""
        self.assertRefused(ADAPTERS / "lora-basic", "another base model", base="llama-rope-llama3")
        self.assertRefused(ADAPTERS / "moe-token-top2", "router.weight", "hidden size", base="llama-rope-llama3")

    def test_truncated_safetensors(self):
        folder = self.copy("moe-token-top1")
        blob = (folder / "adapter_model.safetensors").read_bytes()
        (folder / "adapter_model.safetensors").write_bytes(blob[:-100])
        self.assertRefused(folder, "adapter_model.safetensors", "data_offsets")
        (folder / "adapter_model.safetensors").write_bytes((10 ** 9).to_bytes(8, "little") + blob[8:100])
        self.assertRefused(folder, "header", "runs past the end")

    def test_missing_files(self):
        (self.tmp / "empty").mkdir()
        self.assertRefused(self.tmp / "empty", "adapter_config.json", "missing")
        folder = self.copy("lora-basic")
        (folder / "adapter_model.safetensors").unlink()
        self.assertRefused(folder, "adapter_model.safetensors", "missing")

    def test_second_adapter_on_the_same_model(self):
        model = load_model(MODELS / "llama-gqa")
        first = load_adapter(model, ADAPTERS / "lora-basic")
        with self.assertRaises(AdapterError):
            load_adapter(model, ADAPTERS / "moe-token-top2")
        first.remove()
        load_adapter(model, ADAPTERS / "moe-token-top2")   # once removed, another fits


if __name__ == "__main__":
    unittest.main()
