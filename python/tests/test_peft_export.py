"""A static LoRA exported as a PEFT folder: PEFT loads it with the package's logits, and so does `loraswitch`."""

from __future__ import annotations

import json
import warnings

from common import *  # noqa: F401,F403

from loraswitch_torch import export_peft


class PEFTExport(TempDirTest):
    def test_export(self):
        import peft
        for name, base in (("lora-rslora-patterns", "llama-gqa"), ("lora-all-linear-qwen2", "qwen2"),
                           ("lora-basic", "llama-gqa")):
            with self.subTest(name):
                model = load_model(MODELS / base)
                adapter = load_adapter(model, ADAPTERS / name)
                with torch.no_grad():   # a trained LoRA: move every factor so the export is not the fixture's file
                    for m in adapter.modules.values():
                        m.lora_B.mul_(1.5)
                want = logits_of(model, TOKENS)
                out = self.tmp / name
                export_peft(adapter, out, base_model_name_or_path=str(MODELS / base))
                with warnings.catch_warnings():   # peft calls a transformers method deprecated in 5.x
                    warnings.simplefilter("ignore", FutureWarning)
                    pm = peft.PeftModel.from_pretrained(load_model(MODELS / base), str(out))
                got = logits_of(pm, TOKENS)
                self.assertLessEqual(float((got - want).abs().max()), LOGIT_TOL)
                swift = swift_logits(MODELS / base, out, TOKENS, self.tmp / f"{name}.safetensors")
                self.assertLessEqual(float((swift - want).abs().max()), LOGIT_TOL)
                self.assertGreater(float((want - logits_of(load_model(MODELS / base), TOKENS)).abs().max()), 0.1)
                config = json.loads((out / "adapter_config.json").read_text())
                self.assertEqual(config["peft_type"], "LORA")

    def test_moe_has_no_static_form(self):
        adapter = load_adapter(load_model(MODELS / "llama-gqa"), ADAPTERS / "moe-layer-top1")
        with self.assertRaises(AdapterError) as ctx:
            export_peft(adapter, self.tmp / "x")
        self.assertIn("MoE-LoRA", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
