"""The package's gradient equals `loraswitch train`'s (one plain SGD step) and the float64 reference of the training
fixtures; every expert's parameters get a gradient every step, even an expert no token chose."""

from __future__ import annotations

import json

from common import *  # noqa: F401,F403

from loraswitch_torch import AdapterConfig, new_adapter, training_loss
from loraswitch_torch.data import collate

TRAINING = FIXTURES / "training"
# training fixture -> (base model, adapter) on HF bases (lora-rslora-q4's base is a GGUF file: not for this package)
CASES = ["lora", "moe-token-top1", "moe-token-top2", "moe-token-router1", "moe-layer-top2", "moe-token-qwen2"]
LR = 1e4   # SGD step: the adapter moves by -LR·grad, large against the float32 rounding of the stored values


def case(name: str):
    f = read_safetensors(TRAINING / f"{name}.safetensors")
    m = f.metadata
    return (FIXTURES / m["base"], FIXTURES / m["adapter"], json.loads(m["examples"]), float(m["aux_coef"]),
            float(m["z_coef"]), f.tensors)


def package_gradients(base: Path, adapter_dir: Path, examples: list[dict], aux: float, z: float,
                      checkpointing: bool = False):
    """The loss parts and d loss / d every file tensor, by file name, through a padded batch of all the examples."""
    model = load_model(base)
    adapter = load_adapter(model, adapter_dir)
    if checkpointing:   # recomputes each decoder layer in the backward pass (transformers does it in train mode)
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.train()
    batch = collate(examples)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    parts = training_loss(out.logits, batch["labels"], adapter.decisions, aux_coef=aux, z_coef=z,
                          attention_mask=batch["attention_mask"])
    parts.loss.backward()
    grads = {}
    for name in adapter.names:
        module, attr, expert = adapter.bindings[name]
        g = getattr(module, attr).grad
        grads[name] = g if expert is None else g[expert]
    return parts, grads, adapter


class Gradients(TempDirTest):
    def test_against_the_training_fixtures(self):
        """Loss, its parts and every gradient against the float64 reference (scripts/make_training_fixtures.py)."""
        for name in CASES:
            with self.subTest(name):
                base, adapter_dir, examples, aux, z, want = case(name)
                parts, grads, _ = package_gradients(base, adapter_dir, examples, aux, z)
                for key, value in (("ce", parts.ce), ("aux", parts.aux), ("z", parts.z),
                                   ("loss", float(parts.loss.detach()))):
                    self.assertAlmostEqual(value, float(want[key]), delta=1e-5 * max(1.0, abs(float(want[key]))))
                self.assertEqual(set(grads), {k[5:] for k in want if k.startswith("grad.")})
                worst = max(rel_error(grads[k], want[f"grad.{k}"]) for k in grads)
                self.assertLessEqual(worst, GRAD_TOL, name)

    def test_gradient_checkpointing(self):
        """Recomputing the decoder layers in the backward pass (the token decision crosses layers) changes nothing."""
        for name in ("moe-token-router1", "moe-layer-top2"):
            with self.subTest(name):
                base, adapter_dir, examples, aux, z, _ = case(name)
                _, plain, _ = package_gradients(base, adapter_dir, examples, aux, z)
                _, again, _ = package_gradients(base, adapter_dir, examples, aux, z, checkpointing=True)
                for k in plain:
                    self.assertLessEqual(rel_error(again[k], plain[k]), 1e-6, k)

    def test_against_loraswitch_train(self):
        """`loraswitch train --init A --optimizer sgd --lr LR --clip 0 --schedule constant --steps 1` with every
        example in one batch moves each tensor by -LR·grad: the package's gradient within GRAD_TOL (relative)."""
        for name in CASES:
            with self.subTest(name):
                base, adapter_dir, examples, aux, z, _ = case(name)
                data = write_jsonl(self.tmp / f"{name}.jsonl", examples)
                out = self.tmp / f"{name}-step"
                swift_train(base, data, out, "--init", str(adapter_dir), "--optimizer", "sgd", "--lr", str(LR),
                            "--clip", "0", "--schedule", "constant", "--warmup", "0", "--steps", "1",
                            "--batch-size", str(len(examples)), "--aux-loss-coef", str(aux), "--z-loss-coef", str(z))
                before = read_safetensors(adapter_dir / "adapter_model.safetensors").tensors
                after = read_safetensors(out / "adapter_model.safetensors").tensors
                _, grads, _ = package_gradients(base, adapter_dir, examples, aux, z)
                self.assertEqual(set(after), set(grads))
                for k, g in grads.items():
                    swift = (before[k].double() - after[k].double()) / LR
                    self.assertLessEqual(rel_error(g, swift), GRAD_TOL, f"{name}: {k}")

    def test_every_expert_gets_a_gradient(self):
        """A step where some experts got no token: every parameter still has a gradient (DDP needs no
        find_unused_parameters); the unchosen experts' are exactly zero, the chosen ones' are not."""
        for kind in ("moe-token", "moe-layer"):
            with self.subTest(kind):
                model = load_model(MODELS / "llama-gqa")
                config = AdapterConfig.new(kind, rank=2, experts=8, top_k=1, layers=[0, 1])
                adapter = new_adapter(model, config, seed=3)
                with torch.no_grad():
                    for m in adapter.modules.values():
                        m.lora_B.normal_(0, 0.1)   # B = 0 would make every A's gradient 0
                batch = collate([{"input_ids": [5, 17], "labels": [5, 17]}])
                out = model(input_ids=batch["input_ids"], use_cache=False)
                training_loss(out.logits, batch["labels"], adapter.decisions).loss.backward()
                for p in adapter.parameters():
                    self.assertIsNotNone(p.grad)
                for router, decision in adapter.decisions.items():
                    used = set(decision.experts.flatten().tolist())
                    self.assertLess(len(used), 8)   # 2 tokens, top-1: at most 2 of 8 experts
                    module = adapter.modules.get(router.removeprefix("base_model.model.").removesuffix(".router.weight"))
                    fed = [module] if module is not None else list(adapter.modules.values())
                    size = [sum(float(m.lora_A.grad[e].abs().max() + m.lora_B.grad[e].abs().max()) for m in fed)
                            for e in range(8)]
                    self.assertGreater(max(size[e] for e in used), 0)   # the first token's expert learns
                    self.assertEqual([size[e] for e in range(8) if e not in used], [0.0] * (8 - len(used)))


if __name__ == "__main__":
    unittest.main()


class HuggingFaceTrainer(TempDirTest):
    def test_trainer_step_equals_the_loss(self):
        """A transformers Trainer with compute_loss_func=TrainerLoss: one SGD step on one batch moves the adapter by
        -lr × the gradient of training_loss (the step's loss when a step is one micro-batch on one process)."""
        from transformers import Trainer, TrainingArguments

        from loraswitch_torch import TrainerLoss
        from loraswitch_torch.data import collate as collate_rows
        base, adapter_dir, examples, aux, z, _ = case("moe-token-top2")
        _, want, _ = package_gradients(base, adapter_dir, examples, aux, z)
        model = load_model(base)
        adapter = load_adapter(model, adapter_dir)
        start = {k: v.clone() for k, v in adapter.tensors().items()}
        lr = 1e3
        args = TrainingArguments(output_dir=str(self.tmp), per_device_train_batch_size=len(examples), max_steps=1,
                                 learning_rate=lr, optim="sgd", lr_scheduler_type="constant", max_grad_norm=0.0,
                                 weight_decay=0.0, report_to=[], use_cpu=True, save_strategy="no",
                                 logging_strategy="no", remove_unused_columns=False, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=collate_rows,
                          compute_loss_func=TrainerLoss(adapter, aux_coef=aux, z_coef=z))
        from transformers.trainer_callback import PrinterCallback
        trainer.remove_callback(PrinterCallback)   # it prints the run's metrics
        trainer.train()
        after = adapter.tensors()
        for k, g in want.items():
            self.assertLessEqual(rel_error((start[k].double() - after[k].double()) / lr, g), GRAD_TOL, k)
