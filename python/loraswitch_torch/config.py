"""adapter_config.json: PEFT's LORA and our MOE_LORA (DESIGN.md, "Formats"), typed and validated, with the text it was
read from kept so that saving an unchanged adapter writes the same bytes."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AdapterError

# The projections of a llama / mistral / qwen2 decoder layer, in the order `loraswitch` writes them, and their block.
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
BLOCKS = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
          "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
TOKEN_ROUTER = "base_model.model.router.weight"
KINDS = ("lora", "moe-layer", "moe-token")   # as `loraswitch train --type` names them


def module_path(layer: int, module: str) -> str:
    """Hugging Face's path of a projection inside a CausalLM, e.g. model.layers.0.self_attn.q_proj."""
    return f"model.layers.{layer}.{BLOCKS[module]}.{module}"


def lora_scale(alpha: float, rank: int, rslora: bool) -> float:
    """The one scale rule: alpha / r, or alpha / sqrt(r) with rsLoRA (PEFT's use_rslora)."""
    return alpha / math.sqrt(rank) if rslora else alpha / rank


@dataclass(frozen=True)
class AdapterConfig:
    peft_type: str                              # "LORA" or "MOE_LORA"
    r: int
    lora_alpha: float
    target_modules: tuple[str, ...] | None      # None: "all-linear"
    use_rslora: bool = False
    layers_to_transform: tuple[int, ...] | None = None
    routing: str | None = None                  # MOE_LORA: "token" or "layer"
    num_experts: int = 1
    top_k: int = 1
    router_layer: int = 0                       # token routing: the layer whose normalized input the router reads
    rank_pattern: dict = field(default_factory=dict)
    alpha_pattern: dict = field(default_factory=dict)
    router_aux_loss_coef: float | None = None
    base_model_name_or_path: str | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)   # the JSON object, key order kept
    text: str | None = field(default=None, compare=False, repr=False)    # the file's text when read from one

    @property
    def moe(self) -> bool:
        return self.peft_type == "MOE_LORA"

    @property
    def kind(self) -> str:
        return "lora" if not self.moe else f"moe-{self.routing}"

    def rank_for(self, path: str) -> int:
        return _pattern(self.rank_pattern, path, self.r)

    def alpha_for(self, path: str) -> float:
        return float(_pattern(self.alpha_pattern, path, self.lora_alpha))

    def to_json(self) -> str:
        """The file's text: the text read when there was one (same bytes), else sorted, indented JSON."""
        return self.text if self.text is not None else json.dumps(self.raw, indent=2, sort_keys=True) + "\n"

    # MARK: reading

    @classmethod
    def read(cls, path: str | os.PathLike) -> "AdapterConfig":
        path = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise AdapterError(path, "file", f"cannot be read ({e.strerror})") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise AdapterError(path, "JSON", f"invalid at line {e.lineno} column {e.colno}: {e.msg}") from None
        return cls.parse(raw, path, text)

    @classmethod
    def parse(cls, raw, file: str | None = None, text: str | None = None) -> "AdapterConfig":
        if not isinstance(raw, dict):
            raise AdapterError(file, "adapter_config.json", "must be a JSON object")
        g = _Getter(raw, file)
        peft_type = g.get("peft_type", str, "LORA")
        if peft_type not in ("LORA", "MOE_LORA"):
            raise AdapterError(file, "peft_type", f"'{peft_type}' is not supported", "LORA and MOE_LORA are")
        if g.get("use_dora", bool, False):
            raise AdapterError(file, "use_dora", "DoRA is not supported", "plain LoRA is")
        if g.get("bias", str, "none") != "none":
            raise AdapterError(file, "bias", f"'{raw['bias']}' is not supported", "only bias \"none\" is")
        if g.get("fan_in_fan_out", bool, False):
            raise AdapterError(file, "fan_in_fan_out", "is not supported", "Linear layers only")
        if g.get("modules_to_save", list, None):
            raise AdapterError(file, "modules_to_save", "is not supported", "only low-rank updates are")
        r = g.get("r", int)
        if r < 1:
            raise AdapterError(file, "r", f"{r} is not a rank (at least 1)")
        alpha = float(g.get("lora_alpha", (int, float), r))
        targets = raw.get("target_modules")
        if isinstance(targets, str):
            if targets != "all-linear":
                raise AdapterError(file, "target_modules", f"a regular expression ('{targets}') is not supported",
                                   "list the modules or use all-linear")
            targets = None
        elif targets is None or (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
            targets = tuple(targets) if targets is not None else None
        else:
            raise AdapterError(file, "target_modules", "must be a list of module names or \"all-linear\"")
        layers = raw.get("layers_to_transform")
        if isinstance(layers, int) and not isinstance(layers, bool):
            layers = (layers,)   # PEFT writes one layer as a number
        elif layers is not None:
            layers = tuple(g.int_list("layers_to_transform"))
        fields = dict(peft_type=peft_type, r=r, lora_alpha=alpha, target_modules=targets,
                      use_rslora=g.get("use_rslora", bool, False), layers_to_transform=layers,
                      rank_pattern=g.get("rank_pattern", dict, None) or {},
                      alpha_pattern=g.get("alpha_pattern", dict, None) or {},
                      router_aux_loss_coef=g.get("router_aux_loss_coef", (int, float), None),
                      base_model_name_or_path=g.get("base_model_name_or_path", str, None))
        if peft_type == "MOE_LORA":
            n = g.get("num_experts", int)
            if not 1 <= n <= 256:
                raise AdapterError(file, "num_experts", f"{n} must be between 1 and 256")
            k = g.get("top_k", int)
            if not 1 <= k <= n:
                raise AdapterError(file, "top_k", f"{k} must be between 1 and num_experts ({n})")
            routing = g.get("routing", str)
            if routing not in ("token", "layer"):
                raise AdapterError(file, "routing", f"'{routing}' must be \"token\" or \"layer\"")
            fields.update(num_experts=n, top_k=k, routing=routing)
        if "router_layer" in raw:
            if fields.get("routing") != "token":
                raise AdapterError(file, "router_layer", "applies to token routing only")
            fields["router_layer"] = g.get("router_layer", int)
            below = [l for l in layers or () if l < fields["router_layer"]]
            if below:
                raise AdapterError(file, "layers_to_transform", f"layer {below[0]} is below router_layer "
                                   f"{fields['router_layer']}: the router decides for adapted layers at or above its own")
        return cls(**fields, raw=dict(raw), text=text)

    # MARK: new adapters

    @classmethod
    def new(cls, kind: str, *, rank: int = 16, alpha: float | None = None, experts: int = 8, top_k: int = 2,
            targets: tuple[str, ...] = PROJECTIONS, layers: list[int], router_layer: int = 0, rslora: bool = False,
            aux_loss_coef: float = 0.01, base_model_name_or_path: str = "") -> "AdapterConfig":
        """The config of a new adapter, with the keys `loraswitch train` writes (`kind`: lora, moe-layer, moe-token;
        alpha defaults to 2 × rank, as there)."""
        if kind not in KINDS:
            raise AdapterError(None, "kind", f"'{kind}' is not one of {', '.join(KINDS)}")
        unknown = [t for t in targets if t not in PROJECTIONS]
        if unknown or not targets:
            raise AdapterError(None, "targets", f"{unknown or 'none'}: must name projections of {', '.join(PROJECTIONS)}")
        alpha = 2 * rank if alpha is None else alpha
        raw = {"base_model_name_or_path": base_model_name_or_path, "bias": "none", "fan_in_fan_out": False,
               "inference_mode": True, "init_lora_weights": True, "layers_to_transform": sorted(layers),
               "lora_alpha": alpha, "lora_dropout": 0.0, "peft_type": "LORA", "r": rank,
               "target_modules": [t for t in PROJECTIONS if t in targets], "task_type": "CAUSAL_LM",
               "use_rslora": rslora}
        if kind != "lora":
            raw.update(peft_type="MOE_LORA", routing=kind[4:], num_experts=experts, top_k=top_k,
                       router_aux_loss_coef=aux_loss_coef)
            if kind == "moe-token":
                raw["router_layer"] = router_layer
        return cls.parse(raw)


def _pattern(patterns: dict, path: str, default):
    """PEFT's rank_pattern / alpha_pattern: the first key that is the module's path or ends it after a dot."""
    for key, value in patterns.items():
        if path == key or path.endswith("." + key):
            return value
    return default


class _Getter:
    """Typed access to the config's keys; a wrong type is an AdapterError naming the key."""

    def __init__(self, raw: dict, file: str | None):
        self.raw, self.file = raw, file

    def get(self, key: str, kind, default=...):
        if key not in self.raw or self.raw[key] is None:
            if default is ...:
                raise AdapterError(self.file, key, "is missing")
            return default
        value = self.raw[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise AdapterError(self.file, key, f"{json.dumps(value)} is not of type {names}")
        return value

    def int_list(self, key: str) -> list[int]:
        value = self.raw[key]
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise AdapterError(self.file, key, f"{json.dumps(value)} is not a list of integers")
        return value
