"""An adapter attached to a Hugging Face llama / mistral / qwen2 CausalLM: load one of our folders (PEFT LoRA or
MoE-LoRA) or make a new one, train it, save it with the same tensor names, shapes, dtypes and config keys.

    model = AutoModelForCausalLM.from_pretrained(path)
    adapter = load_adapter(model, "my-adapter")      # or new_adapter(model, AdapterConfig.new("moe-token", ...))
    logits = model(input_ids).logits                 # routed as `loraswitch` routes
    adapter.save("out")                              # loads in `loraswitch --adapter out`
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from .config import BLOCKS, PROJECTIONS, TOKEN_ROUTER, AdapterConfig, lora_scale, module_path
from .errors import OTHER_BASE_HINT, AdapterError
from .modules import LoRALinear, MoELoRALinear, TokenRouter
from .routing import Decision, RoutingState
from .safetensors_file import SafetensorsFile, read_safetensors, write_safetensors

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2")
ROUTER_CHILD = "loraswitch_router"   # the token router's name under decoder layer `router_layer`


@dataclass
class _Site:
    """One adapted projection, before its module exists."""
    layer: int
    module: str
    rank: int
    scale: float
    dtype: torch.dtype = torch.float32

    @property
    def path(self) -> str:
        return module_path(self.layer, self.module)


class Adapter:
    """The handle of an attached adapter: its config, its modules by HF path, the routers' decisions of the last
    forward (`decisions`, by router tensor name, for the loss), and the file layout it saves with."""

    def __init__(self, model: nn.Module, config: AdapterConfig, sites: list[_Site]):
        self.model, self.config, self.state = model, config, RoutingState()
        self.modules: dict[str, LoRALinear | MoELoRALinear] = {}
        self.token_router: TokenRouter | None = None
        self._hooks = []
        for site in sites:
            parent_path, child = site.path.rsplit(".", 1)
            parent = model.get_submodule(parent_path)
            base = getattr(parent, child)
            if config.moe:
                router = f"base_model.model.{site.path}.router.weight" if config.routing == "layer" else None
                wrapped = MoELoRALinear(base, config.num_experts, site.rank, site.scale, config.top_k, self.state,
                                        router, site.dtype)
            else:
                wrapped = LoRALinear(base, site.rank, site.scale, site.dtype)
            setattr(parent, child, wrapped)
            self.modules[site.path] = wrapped
        if config.routing == "token":
            layer = model.model.layers[config.router_layer]
            self.token_router = TokenRouter(config.num_experts, model.config.hidden_size, config.top_k, self.state,
                                            device=layer.input_layernorm.weight.device)
            layer.add_module(ROUTER_CHILD, self.token_router)
            self._hooks.append(layer.input_layernorm.register_forward_hook(self.token_router.hook))
        self._hooks.append(model.register_forward_pre_hook(
            lambda _m, _args, kwargs: self.state.clear(kwargs.get("attention_mask")), with_kwargs=True))
        # tensor name -> (module, attribute, expert index or None), in the order `loraswitch train` writes them
        self.bindings: dict[str, tuple[nn.Module, str, int | None]] = {}
        for path, m in self.modules.items():
            pre = f"base_model.model.{path}"
            if isinstance(m, LoRALinear):
                self.bindings[f"{pre}.lora_A.weight"] = (m, "lora_A", None)
                self.bindings[f"{pre}.lora_B.weight"] = (m, "lora_B", None)
                continue
            for e in range(config.num_experts):
                self.bindings[f"{pre}.lora_A.{e}.weight"] = (m, "lora_A", e)
                self.bindings[f"{pre}.lora_B.{e}.weight"] = (m, "lora_B", e)
            if m.router is not None:
                self.bindings[m.router_name] = (m, "router", None)
        if self.token_router is not None:
            self.bindings[TOKEN_ROUTER] = (self.token_router, "weight", None)
        self.names = list(self.bindings)          # header order when saving
        self.data_order = list(self.bindings)
        self.dtypes = {name: torch.float32 for name in self.bindings}
        self.metadata: dict[str, str] | None = {"format": "pt"}

    # MARK: use

    @property
    def decisions(self) -> dict[str, Decision]:
        """Every router's decision in the last forward pass, by the router's tensor name."""
        return self.state.decisions

    @property
    def attention_mask(self) -> torch.Tensor | None:
        """The [B, L] attention mask the last forward was called with (None without one): padding, for the loss."""
        return self.state.attention_mask

    @property
    def router_names(self) -> list[str]:
        return [n for n, (_, attr, _) in self.bindings.items() if attr in ("router", "weight")]

    def parameters(self) -> list[nn.Parameter]:
        out = [m.lora_A for m in self.modules.values()] + [m.lora_B for m in self.modules.values()]
        out += [m.router for m in self.modules.values() if getattr(m, "router", None) is not None]
        return out + ([self.token_router.weight] if self.token_router is not None else [])

    def tensor(self, name: str) -> torch.Tensor:
        """The current value of a file tensor (a view of the parameter; not detached)."""
        module, attr, expert = self.bindings[name]
        p = getattr(module, attr)
        return p if expert is None else p[expert]

    def parameter_name(self, name: str) -> tuple[str, int | None]:
        """The model parameter (its name in model.named_parameters()) that holds a file tensor, and the expert index
        into it (None: the whole parameter)."""
        module, attr, expert = self.bindings[name]
        if module is self.token_router:
            return f"model.layers.{self.config.router_layer}.{ROUTER_CHILD}.weight", None
        path = next(p for p, m in self.modules.items() if m is module)
        return f"{path}.{attr}", expert

    def tensors(self, state_dict: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Every file tensor, detached, on the CPU, in its file dtype, in header order; from `state_dict` when given
        (a full state dict of the model, e.g. gathered from FSDP shards; wrapper prefixes such as `module.` are
        ignored), else from the live parameters."""
        if state_dict is None:
            return {n: self.tensor(n).detach().to("cpu", self.dtypes[n]).contiguous() for n in self.names}
        out = {}
        for n in self.names:
            key, expert = self.parameter_name(n)
            found = [k for k in state_dict if k == key or k.endswith("." + key)]
            if len(found) != 1:
                raise AdapterError(None, f"state_dict key {key}", f"{len(found)} keys match, expected 1")
            t = state_dict[found[0]]
            out[n] = (t if expert is None else t[expert]).detach().to("cpu", self.dtypes[n]).contiguous()
        return out

    def save(self, folder: str | os.PathLike, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """adapter_config.json and adapter_model.safetensors into `folder` (made if needed). An adapter loaded and
        saved unchanged gives the same bytes as it was read from. `state_dict`: see tensors()."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_safetensors(folder / "adapter_model.safetensors", self.tensors(state_dict), self.metadata,
                          self.data_order)
        tmp = folder / f".adapter_config.json.partial-{os.getpid()}"
        tmp.write_text(self.config.to_json(), encoding="utf-8")
        os.replace(tmp, folder / "adapter_config.json")

    def remove(self) -> nn.Module:
        """Puts the base Linears back and removes the router and hooks; returns the model."""
        for h in self._hooks:
            h.remove()
        for path, m in self.modules.items():
            parent_path, child = path.rsplit(".", 1)
            setattr(self.model.get_submodule(parent_path), child, m.base)
        if self.token_router is not None:
            delattr(self.model.model.layers[self.config.router_layer], ROUTER_CHILD)
        self.modules, self.token_router, self._hooks = {}, None, []
        return self.model


# MARK: loading

def load_adapter(model: nn.Module, folder: str | os.PathLike, freeze_base: bool = True) -> Adapter:
    """Attaches the adapter in `folder` (a PEFT LoRA or our MoE-LoRA) to `model`, checking every tensor against the
    model's projections; with `freeze_base` every other parameter of the model stops requiring grad."""
    folder = str(folder)
    config_path = os.path.join(folder, "adapter_config.json")
    weights_path = os.path.join(folder, "adapter_model.safetensors")
    if not os.path.isfile(config_path):
        raise AdapterError(folder, "adapter_config.json", "is missing: an adapter folder needs it")
    if not os.path.isfile(weights_path):
        bin_ = os.path.isfile(os.path.join(folder, "adapter_model.bin"))
        raise AdapterError(folder, "adapter_model.safetensors", "is missing",
                           "adapter_model.bin (pickle) is not read; save with safetensors" if bin_ else None)
    config = AdapterConfig.read(config_path)
    _check_model(model, config, config_path)
    file = read_safetensors(weights_path)
    sites = _plan_from_file(model, config, file, weights_path)
    for site in sites:
        site.dtype = _site_dtype(file, site)
    adapter = Adapter(model, config, sites)
    with torch.no_grad():
        for name, t in file.tensors.items():
            adapter.tensor(name).copy_(t)
    adapter.names, adapter.data_order = list(file.tensors), list(file.data_order)
    adapter.dtypes = {name: t.dtype for name, t in file.tensors.items()}
    adapter.metadata = file.metadata
    _set_trainable(model, adapter, freeze_base)
    return adapter


def new_adapter(model: nn.Module, config: AdapterConfig, seed: int = 0, freeze_base: bool = True) -> Adapter:
    """A new adapter as PEFT and `loraswitch train` initialize one: A and routers ~ U(−1/√in, 1/√in), B = 0, so the
    model starts as the base (its values are not `loraswitch`'s for the same seed: another generator)."""
    _check_model(model, config, None)
    layers = list(config.layers_to_transform or range(model.config.num_hidden_layers))
    scale = lora_scale(config.lora_alpha, config.r, config.use_rslora)
    sites = [_Site(l, m, config.r, scale) for l in layers for m in PROJECTIONS
             if m in _target_names(config)]
    adapter = Adapter(model, config, sites)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in adapter.names:
            t = adapter.tensor(name)
            if ".lora_B." not in name:
                bound = 1 / t.shape[-1] ** 0.5
                t.copy_((torch.rand(t.shape, generator=gen, dtype=torch.float32) * 2 - 1) * bound)
    _set_trainable(model, adapter, freeze_base)
    return adapter


def _set_trainable(model: nn.Module, adapter: Adapter, freeze_base: bool) -> None:
    if freeze_base:
        for p in model.parameters():
            p.requires_grad_(False)
    for p in adapter.parameters():
        p.requires_grad_(True)


def _target_names(config: AdapterConfig) -> set[str]:
    return set(PROJECTIONS) if config.target_modules is None else {t.rsplit(".", 1)[-1] for t in config.target_modules}


def _check_model(model: nn.Module, config: AdapterConfig, file: str | None) -> None:
    """The model is a supported CausalLM without an adapter, and the config's layers and modules exist in it."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise AdapterError(file, "model", f"model_type {model_type!r} is not supported",
                           f"{', '.join(SUPPORTED_MODEL_TYPES)} are, as Hugging Face CausalLM models")
    if not hasattr(model, "model") or not hasattr(model.model, "layers"):
        raise AdapterError(file, "model", "has no model.layers", "pass the CausalLM (e.g. LlamaForCausalLM)")
    if any(isinstance(m, (LoRALinear, MoELoRALinear)) for m in model.modules()):
        raise AdapterError(file, "model", "already has an adapter attached", "call remove() on it first")
    n = model.config.num_hidden_layers
    for t in config.target_modules or ():
        if t.rsplit(".", 1)[-1] not in PROJECTIONS:
            raise AdapterError(file, "target_modules", f"module '{t}' does not exist in a {model_type} model",
                               OTHER_BASE_HINT)
    if config.layers_to_transform is not None and (
            not config.layers_to_transform or any(not 0 <= l < n for l in config.layers_to_transform)):
        raise AdapterError(file, "layers_to_transform",
                           f"must list layers of the model (0..<{n}), not {list(config.layers_to_transform)}")
    if not 0 <= config.router_layer < n:
        raise AdapterError(file, "router_layer", f"must be a layer of the model (0..<{n}), not {config.router_layer}")


@dataclass
class _Name:
    layer: int
    module: str
    part: str           # "lora_A", "lora_B" or "router"
    expert: int = 0


def _parse_name(name: str, file: str, model: nn.Module, config: AdapterConfig) -> _Name:
    def bad(detail: str) -> AdapterError:
        return AdapterError(file, f"tensor {name}", detail)
    prefix = "base_model.model.model.layers."
    if not name.startswith(prefix):
        raise bad("embedding and head adapters are not supported" if "embed" in name or "lm_head" in name
                  else "not a projection's lora_A, lora_B or router")
    parts = name[len(prefix):].split(".")
    if len(parts) < 5 or not parts[0].isdigit():
        raise bad("not a projection's lora_A, lora_B or router")
    layer, block, module, rest = int(parts[0]), parts[1], parts[2], parts[3:]
    n = model.config.num_hidden_layers
    if layer >= n:
        raise bad(f"layer {layer} does not exist; the model has {n} ({OTHER_BASE_HINT})")
    if module not in PROJECTIONS or block != BLOCKS[module]:
        raise bad(f"module {block}.{module} does not exist in a {model.config.model_type} model ({OTHER_BASE_HINT})")
    if config.layers_to_transform is not None and layer not in config.layers_to_transform:
        raise bad(f"layer {layer} is not in layers_to_transform {list(config.layers_to_transform)}")
    if config.routing == "token" and layer < config.router_layer:
        raise bad(f"layer {layer} is below router_layer {config.router_layer}: the router decides for adapted "
                  "layers at or above its own")
    if rest == ["router", "weight"]:
        if config.routing != "layer":
            raise bad("a per-module router in an adapter whose routing is not \"layer\"")
        return _Name(layer, module, "router")
    if len(rest) == 3 and rest[1] == "default":
        rest = [rest[0], rest[2]]
    if rest[-1] != "weight" or rest[0] not in ("lora_A", "lora_B"):
        raise bad("DoRA is not supported" if rest[0] == "lora_magnitude_vector"
                  else "not a projection's lora_A, lora_B or router")
    if not config.moe:
        if len(rest) != 2:
            raise bad(f"LoRA tensors are named {rest[0]}.weight")
        return _Name(layer, module, rest[0])
    if len(rest) != 3 or not rest[1].isdigit():
        raise bad(f"MoE-LoRA tensors are named {rest[0]}.{{expert}}.weight")
    if int(rest[1]) >= config.num_experts:
        raise bad(f"expert {rest[1]} is beyond num_experts ({config.num_experts})")
    return _Name(layer, module, rest[0], int(rest[1]))


def _plan_from_file(model: nn.Module, config: AdapterConfig, file: SafetensorsFile, path: str) -> list[_Site]:
    """Checks every tensor of the file against the model and the config; returns the adapted projections."""
    n, k_experts = model.config.num_hidden_layers, config.num_experts
    found: dict[tuple[int, str], dict] = {}
    for name, t in file.tensors.items():
        if name == TOKEN_ROUTER:
            if config.routing != "token":
                raise AdapterError(path, f"tensor {name}", "a token router in an adapter whose routing is not \"token\"")
            want = [k_experts, model.config.hidden_size]
            if list(t.shape) != want:
                raise AdapterError(path, f"tensor {name}", f"shape {list(t.shape)}, expected {want}",
                                   "num_experts × hidden size")
            continue
        key = _parse_name(name, path, model, config)
        base = model.get_submodule(module_path(key.layer, key.module))
        site = found.setdefault((key.layer, key.module), {"lora_A": {}, "lora_B": {}, "router": None})
        if key.part == "router":
            if list(t.shape) != [k_experts, base.in_features]:
                raise AdapterError(path, f"tensor {name}", f"shape {list(t.shape)}, expected "
                                   f"{[k_experts, base.in_features]}", "num_experts × the module's input size")
            site["router"] = name
        else:
            site[key.part][key.expert] = name
    sites = []
    for (layer, module), parts in sorted(found.items(), key=lambda kv: (kv[0][0], PROJECTIONS.index(kv[0][1]))):
        sites.append(_check_site(model, config, file, path, layer, module, parts))
    if not sites:
        raise AdapterError(path, "tensors", "the file holds no lora_A/lora_B pair")
    if config.routing == "token" and TOKEN_ROUTER not in file.tensors:
        raise AdapterError(path, f"tensor {TOKEN_ROUTER}", "is missing", "token routing needs its router")
    return sites


def _check_site(model, config: AdapterConfig, file: SafetensorsFile, path: str, layer: int, module: str,
                parts: dict) -> _Site:
    mpath = module_path(layer, module)
    pre = f"base_model.model.{mpath}"
    base = model.get_submodule(mpath)
    experts = range(config.num_experts) if config.moe else [0]
    for e in sorted(set(parts["lora_A"]) ^ set(parts["lora_B"])):
        have, need = ("lora_A", "lora_B") if e in parts["lora_A"] else ("lora_B", "lora_A")
        raise AdapterError(path, f"tensor {parts[have][e].replace(have, need)}", "is missing",
                           f"every {have} needs its {need}")
    for e in experts:
        if e not in parts["lora_A"]:
            raise AdapterError(path, f"tensor {pre}.lora_A.{e}.weight", "is missing",
                               f"num_experts is {config.num_experts}, and every adapted module needs every expert")
    if config.routing == "layer" and parts["router"] is None:
        raise AdapterError(path, f"tensor {pre}.router.weight", "is missing", "layer routing needs a router per "
                           "adapted module")
    ranks = set()
    for e in experts:
        a, b = file.tensors[parts["lora_A"][e]], file.tensors[parts["lora_B"][e]]
        rank = a.shape[0] if a.dim() == 2 else 0
        if a.dim() != 2 or rank < 1 or a.shape[1] != base.in_features:
            raise AdapterError(path, f"tensor {parts['lora_A'][e]}", f"shape {list(a.shape)}, expected "
                               f"[{rank or 'r'}, {base.in_features}]", OTHER_BASE_HINT)
        if list(b.shape) != [base.out_features, rank]:
            raise AdapterError(path, f"tensor {parts['lora_B'][e]}", f"shape {list(b.shape)}, expected "
                               f"{[base.out_features, rank]}",
                               "rank differs from lora_A's" if b.dim() == 2 and b.shape[0] == base.out_features
                               else OTHER_BASE_HINT)
        ranks.add(rank)
    if len(ranks) > 1:
        raise AdapterError(path, f"tensors {pre}.lora_A.*", f"experts have ranks {sorted(ranks)}",
                           "the experts of one module must share a rank")
    rank = ranks.pop()
    if not config.moe and rank != config.rank_for(mpath):
        raise AdapterError(path, f"tensor {parts['lora_A'][0]}", f"rank {rank}, expected {config.rank_for(mpath)}",
                           "r / rank_pattern in adapter_config.json")
    return _Site(layer, module, rank, lora_scale(config.alpha_for(mpath), rank, config.use_rslora))


def _site_dtype(file: SafetensorsFile, site: _Site) -> torch.dtype:
    """The dtype the site's tensors share in the file (float32 when they differ)."""
    pre = f"base_model.model.{site.path}."
    dtypes = {t.dtype for n, t in file.tensors.items() if n.startswith(pre)}
    return dtypes.pop() if len(dtypes) == 1 else torch.float32
