"""Paths, constants, the training examples, and the two inputs of the reference: a base model's weights and an
adapter folder, both read into plain tensors."""

from __future__ import annotations

from adapterfix.common import *  # noqa: F401,F403  (imports, paths, base loaders, module_path, ALL7)
from adapterfix.moe import adapted_layers

TRAINING = FIXTURES / "training"
TRAIN_ADAPTERS = TRAINING / "adapters"     # adapters made for these fixtures only
README_TRAIN = TRAINING / "README.md"

LENGTHS = (7, 12, 5)                       # tokens per example
MASKED = {1: [0, 1], 2: [2]}               # example -> positions whose label is -100
TRAIN_TIE_GAP = TIE_GAP                    # every routing decision of a case's examples: sorted top-(k+1)
                                           # probabilities differ pairwise by more than this
FD_STEP = 1e-5                             # central finite differences in float64
FD_POINTS = 8                              # coordinates checked per case


# ---------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------

def make_examples(vocab: int, seed: int) -> list[dict]:
    """Three examples (LENGTHS tokens, ids uniform in [0, vocab) from one seeded generator);
    labels = input_ids except the MASKED positions (-100). HF convention: the logits at position
    i are scored against labels[i + 1], so labels[0] never counts."""
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(LENGTHS):
        ids = [int(t) for t in rng.integers(0, vocab, size=n)]
        labels = [-100 if j in MASKED.get(i, []) else t for j, t in enumerate(ids)]
        out.append({"input_ids": ids, "labels": labels})
    return out


def labelled_count(examples: list[dict]) -> int:
    return sum(sum(1 for t in ex["labels"][1:] if t != -100) for ex in examples)


# ---------------------------------------------------------------------------------------------
# Base weights
# ---------------------------------------------------------------------------------------------

class Base:
    """A llama / qwen2 model as plain tensors (HF names and orientation, [out, in]), frozen."""

    def __init__(self, model: torch.nn.Module):
        c = model.config
        self.layers, self.hidden = c.num_hidden_layers, c.hidden_size
        self.heads, self.kv_heads = c.num_attention_heads, c.num_key_value_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.eps, self.vocab = c.rms_norm_eps, c.vocab_size
        self.theta = c.rope_parameters["rope_theta"]
        assert c.rope_parameters.get("rope_type", "default") == "default", "no rope scaling here"
        assert getattr(c, "sliding_window", None) is None or not getattr(c, "use_sliding_window", False)
        self.w = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if c.tie_word_embeddings or "lm_head.weight" not in self.w:
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]

    def cast(self, dtype: torch.dtype) -> "Base":
        other = copy.copy(self)
        other.w = {k: v.to(dtype) for k, v in self.w.items()}
        return other


# ---------------------------------------------------------------------------------------------
# Adapters (read from their folders, as an engine reads them)
# ---------------------------------------------------------------------------------------------

class Adapter:
    """A PEFT LoRA or one of our MoE-LoRA folders.

    `tensors`: every tensor of adapter_model.safetensors by its file name (float64 leaves that
    require grad); `sites`: {HF module path: (scale, [A names per expert], [B names per expert],
    router name or None)}; `routing`: None (static LoRA), "token" or "layer"."""

    def __init__(self, folder: Path, base: Base):
        self.folder = folder
        cfg = json.loads((folder / "adapter_config.json").read_text())
        self.cfg = cfg
        arrays = load_file(str(folder / "adapter_model.safetensors"))
        self.tensors = {k: torch.from_numpy(v).to(torch.float64) for k, v in sorted(arrays.items())}
        moe = cfg.get("peft_type") == "MOE_LORA"
        self.routing = cfg["routing"] if moe else None
        self.n = cfg["num_experts"] if moe else 1
        self.k = cfg["top_k"] if moe else 1
        self.router_layer = cfg.get("router_layer", 0)
        assert not cfg.get("rank_pattern") and not cfg.get("alpha_pattern"), "plain configs only"
        assert not cfg.get("use_dora") and cfg.get("bias", "none") == "none"

        class _Cfg:   # adapted_layers() reads num_hidden_layers
            num_hidden_layers = base.layers
        self.layers = adapted_layers(cfg, _Cfg)
        assert self.routing != "token" or min(self.layers) >= self.router_layer
        self.sites = {}
        for layer in self.layers:
            for m in ALL7:
                path = module_path(layer, m)
                pre = f"base_model.model.{path}"
                if moe:
                    a = [f"{pre}.lora_A.{e}.weight" for e in range(self.n)]
                    b = [f"{pre}.lora_B.{e}.weight" for e in range(self.n)]
                else:
                    a, b = [f"{pre}.lora_A.weight"], [f"{pre}.lora_B.weight"]
                if a[0] not in self.tensors:
                    continue
                r = self.tensors[a[0]].shape[0]
                alpha = cfg["lora_alpha"]
                scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
                router = f"{pre}.router.weight" if self.routing == "layer" else None
                self.sites[path] = (scale, a, b, router)
        used = {n for s in self.sites.values() for n in s[1] + s[2] + ([s[3]] if s[3] else [])}
        if self.routing == "token":
            used.add("base_model.model.router.weight")
        assert used == set(self.tensors), sorted(set(self.tensors) ^ used)

    def leaves(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Fresh leaf tensors of the given dtype (gradients are taken with respect to these)."""
        return {k: v.to(dtype).clone().requires_grad_(True) for k, v in self.tensors.items()}

    def router_names(self) -> list[str]:
        if self.routing == "token":
            return ["base_model.model.router.weight"]
        return [s[3] for s in self.sites.values() if s[3]]
