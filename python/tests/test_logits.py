"""Logits of the package equal the Swift engine's (`loraswitch logits`) on the committed adapter fixtures, and the
package's `loraswitch-torch logits` writes the file `loraswitch logits` writes."""

from __future__ import annotations

import shutil

from common import *  # noqa: F401,F403

from loraswitch_torch.safetensors_file import read_safetensors


class LogitsAgainstSwift(TempDirTest):
    def test_fixtures(self):
        """Both routings, top-1 and top-2, router_layer 1, and the LoRA variants (rsLoRA with rank/alpha patterns,
        all-linear on qwen2): within LOGIT_TOL of `loraswitch logits` and of the fixtures' expected logits."""
        for name, base in HF_FIXTURES.items():
            with self.subTest(name):
                want = swift_logits(MODELS / base, ADAPTERS / name, TOKENS, self.tmp / f"{name}.safetensors")
                got = package_logits(MODELS / base, ADAPTERS / name, TOKENS)
                expected = read_safetensors(ADAPTERS / "expected" / f"{name}.safetensors").tensors["logits"]
                self.assertEqual(got.shape, want.shape)
                self.assertLessEqual(float((got - want).abs().max()), LOGIT_TOL)
                self.assertLessEqual(float((got - expected).abs().max()), LOGIT_TOL)
                # the adapter matters: the base model's logits are far from these
                base_logits = package_logits(MODELS / base, None, TOKENS)
                self.assertGreater(float((base_logits - want).abs().max()), 0.1)

    def test_cli_writes_the_same_file(self):
        """Same header (tensor name, dtype, shape, metadata, layout) and values within LOGIT_TOL."""
        tokens = TOKENS[:7]
        swift = self.tmp / "swift.safetensors"
        mine = self.tmp / "torch.safetensors"
        swift_logits(MODELS / "llama-gqa", ADAPTERS / "moe-token-top2", tokens, swift)
        cli = shutil.which("loraswitch-torch", path=str(Path(PYTHON).parent))
        self.assertIsNotNone(cli, "the console script loraswitch-torch is installed with the package")
        run([cli, "logits", "--model", str(MODELS / "llama-gqa"), "--adapter", str(ADAPTERS / "moe-token-top2"),
             "--tokens", ",".join(map(str, tokens)), "--out", str(mine)])
        a, b = swift.read_bytes(), mine.read_bytes()
        n = int.from_bytes(a[:8], "little")
        self.assertEqual(a[:8 + n], b[:8 + n], "identical headers")
        self.assertEqual(len(a), len(b))
        fa, fb = read_safetensors(swift), read_safetensors(mine)
        self.assertEqual(fa.metadata, {"tokens": ",".join(map(str, tokens))})
        self.assertLessEqual(float((fa.tensors["logits"] - fb.tensors["logits"]).abs().max()), LOGIT_TOL)

    def test_cli_errors(self):
        """A bad adapter: exit 1 and one line naming the file and tensor; bad usage: exit 2."""
        cli = shutil.which("loraswitch-torch", path=str(Path(PYTHON).parent))
        done = subprocess.run([cli, "logits", "--model", str(MODELS / "llama-gqa"), "--adapter",
                               str(ADAPTERS / "moe-bad-missing-b"), "--tokens", "1,2", "--out", str(self.tmp / "x")],
                              capture_output=True, text=True)
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertIn("model.layers.1.mlp.down_proj.lora_B.2.weight", done.stderr)
        self.assertIn("adapter_model.safetensors", done.stderr)
        done = subprocess.run([cli, "logits", "--model", str(MODELS / "llama-gqa"), "--tokens", "1,x",
                               "--out", str(self.tmp / "x")], capture_output=True, text=True)
        self.assertEqual(done.returncode, 2, done.stderr)


if __name__ == "__main__":
    unittest.main()
