"""examples/train.py distributed on 2 CPU processes (gloo): `torchrun --nproc_per_node=2` (DDP) and `accelerate
launch` with the FSDP config, two steps each, equal one process's two steps on the whole batch, the ranks' parameters
identical; the launcher configs parse."""

from __future__ import annotations

import shutil

import json

import yaml
from accelerate.commands.config.config_args import load_config_from_file

from common import *  # noqa: F401,F403

from loraswitch_torch.data import collate

# 8 examples: each step takes 4, rank r the r-th and (r+2)-th of them. Rank 1's examples are 3 tokens long, so with
# top-1 routing at most 6 of its tokens choose among the 4 experts, and its first step leaves some expert unchosen.
ROWS = [
    {"input_ids": [65, 117, 73, 11, 63, 116, 35], "labels": [65, 117, 73, 11, 63, 116, 35]},
    {"input_ids": [8, 70, 81], "labels": [-100, 70, 81]},
    {"input_ids": [77, 69, 3, 90, 14, 22], "labels": [77, 69, 3, 90, 14, 22]},
    {"input_ids": [40, 41, 42], "labels": [40, 41, 42]},
    {"input_ids": [12, 99, 100, 101, 5], "labels": [12, 99, 100, 101, 5]},
    {"input_ids": [33, 7, 61], "labels": [33, 7, 61]},
    {"input_ids": [19, 28, 37, 46, 55, 64, 73, 82], "labels": [-100, -100, 37, 46, 55, 64, 73, 82]},
    {"input_ids": [4, 44, 4], "labels": [4, 44, 4]},
]
ADAPTER = ADAPTERS / "moe-token-top1"


class DistributedDataParallel(TempDirTest):
    def train(self, launcher: list[str], batch: int, out: str) -> None:
        run([*launcher, str(EXAMPLES / "train.py"), "--model", str(MODELS / "llama-gqa"), "--data",
             str(self.data), "--out", str(self.tmp / out), "--init", str(ADAPTER), "--optimizer", "sgd", "--lr", "0.5",
             "--clip", "0", "--schedule", "constant", "--steps", "2", "--batch-size", str(batch), "--no-shuffle",
             "--aux-loss-coef", "0.01", "--z-loss-coef", "0.001", "--dump-rank-params", str(self.tmp / out / "ranks")],
            timeout=300)

    def test_two_processes_equal_one(self):
        self.data = write_jsonl(self.tmp / "data.jsonl", ROWS)
        # the premise: on rank 1's first batch some expert gets no token
        model = load_model(MODELS / "llama-gqa")
        adapter = load_adapter(model, ADAPTER)
        batch = collate([ROWS[1], ROWS[3]])
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        chosen = adapter.decisions["base_model.model.router.weight"].chosen[batch["attention_mask"].bool()]
        self.assertLess(int((chosen.sum(0) > 0).sum()), 4)

        torchrun = shutil.which("torchrun", path=str(Path(PYTHON).parent))
        self.train([torchrun, "--nproc_per_node=2", "--master_port=0", "--rdzv-backend=c10d",
                    "--rdzv-endpoint=127.0.0.1:0"], 2, "ddp")
        self.train([PYTHON], 4, "single")
        r0 = torch.load(self.tmp / "ddp" / "ranks" / "rank0.pt")
        r1 = torch.load(self.tmp / "ddp" / "ranks" / "rank1.pt")
        for k in r0:
            self.assertTrue(torch.equal(r0[k], r1[k]), f"ranks differ: {k}")
        self.assertSameAsOne(self.tmp / "ddp")

    def assertSameAsOne(self, out: Path):
        """The adapter `out` holds equals the one-process run's (values; and the two steps' update itself)."""
        r0 = read_safetensors(out / "adapter_model.safetensors").tensors
        one = torch.load(self.tmp / "single" / "ranks" / "rank0.pt")
        start = read_safetensors(ADAPTER / "adapter_model.safetensors").tensors
        self.assertEqual(set(r0), set(start))
        for k in r0:
            self.assertLessEqual(rel_error(r0[k], one[k]), 1e-6, k)
            # the two steps' update, measured against its own size (float32 rounding of the values: ~1e-5)
            self.assertLessEqual(rel_error(r0[k] - start[k], one[k] - start[k]), GRAD_TOL, k)
        moved = max(float((one[k] - start[k]).abs().max()) for k in one)
        self.assertGreater(moved, 1e-3)

    def test_fsdp_equals_one(self):
        """The shipped FSDP2 config, on 2 CPU processes (use_cpu, no mixed precision)."""
        self.data = write_jsonl(self.tmp / "data.jsonl", ROWS)
        config = yaml.safe_load((EXAMPLES / "accelerate_fsdp.yaml").read_text())
        config.update(use_cpu=True, num_processes=2, mixed_precision="no")
        (self.tmp / "fsdp.yaml").write_text(yaml.safe_dump(config))
        accelerate = shutil.which("accelerate", path=str(Path(PYTHON).parent))
        self.train([accelerate, "launch", "--config_file", str(self.tmp / "fsdp.yaml"), "--main_process_port", "0"],
                   2, "fsdp")
        self.train([PYTHON], 4, "single")
        self.assertSameAsOne(self.tmp / "fsdp")

    def test_launcher_configs_parse(self):
        for name, kind in (("accelerate_fsdp.yaml", "FSDP"), ("accelerate_deepspeed.yaml", "DEEPSPEED")):
            config = load_config_from_file(str(EXAMPLES / name))
            self.assertEqual(str(config.distributed_type).split(".")[-1], kind)
        ds = json.loads((EXAMPLES / "deepspeed_zero3.json").read_text())
        self.assertEqual(ds["zero_optimization"]["stage"], 3)
        self.assertEqual(yaml.safe_load((EXAMPLES / "accelerate_deepspeed.yaml").read_text())["deepspeed_config"]
                         ["deepspeed_config_file"], "python/examples/deepspeed_zero3.json")


if __name__ == "__main__":
    unittest.main()
