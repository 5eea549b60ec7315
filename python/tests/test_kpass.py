"""The serving reference (docs/scale-out.md): k gated shrink/expand passes equal the dense masked sum and the
package's module, and its tensor-parallel shardings give the unsharded result."""

from __future__ import annotations

from common import *  # noqa: F401,F403

from loraswitch_torch import expert_mixture, gated_k_pass, route
from loraswitch_torch.kpass import column_parallel_shards, row_parallel_partials
from loraswitch_torch.modules import MoELoRALinear
from loraswitch_torch.routing import RoutingState

TOL = 1e-5


class GatedKPass(unittest.TestCase):
    def setUp(self):
        g = torch.Generator().manual_seed(7)
        self.t, self.i, self.o, self.n, self.r = 23, 48, 40, 6, 4
        self.x = torch.randn(self.t, self.i, generator=g)
        self.a = torch.randn(self.n, self.r, self.i, generator=g) / self.i ** 0.5
        self.b = torch.randn(self.n, self.o, self.r, generator=g)
        self.router = torch.randn(self.n, self.i, generator=g)

    def test_equals_dense_masked_sum(self):
        for k in (1, 2, 3):
            d = route(self.x, self.router, k)
            got = gated_k_pass(self.x, self.a, self.b, d.experts, d.gates.gather(-1, d.experts), 1.5)
            want = expert_mixture(self.x, self.a, self.b, d.gates * 1.5)
            self.assertLessEqual(float((got - want).abs().max()), TOL)
            # and not the dense mixture of every expert (the routing matters)
            self.assertGreater(float((got - expert_mixture(self.x, self.a, self.b, torch.full_like(d.gates, 1.5 / self.n)))
                                     .abs().max()), 0.1)

    def test_equals_module(self):
        """A layer-routed MoELoRALinear's delta over its base."""
        base = torch.nn.Linear(self.i, self.o)
        m = MoELoRALinear(base, self.n, self.r, 2.0, 2, RoutingState(), router_name="r")
        with torch.no_grad():
            m.lora_A.copy_(self.a), m.lora_B.copy_(self.b), m.router.copy_(self.router)
            delta = m(self.x) - base(self.x)
        d = route(self.x, self.router, 2)
        got = gated_k_pass(self.x, self.a, self.b, d.experts, d.gates.gather(-1, d.experts), 2.0)
        self.assertLessEqual(float((got - delta).abs().max()), TOL)

    def test_token_routed_model(self):
        """Every adapted projection of a token-routed fixture: its delta is the k-pass with the one decision."""
        model = load_model(MODELS / "llama-gqa")
        adapter = load_adapter(model, ADAPTERS / "moe-token-top2")
        seen = {}
        for path, m in adapter.modules.items():
            m.register_forward_hook(lambda mod, args, out, path=path: seen.__setitem__(path, (args[0][0], out[0])))
        with torch.no_grad():
            model(input_ids=torch.tensor([TOKENS]))
            d = adapter.state.token
            ids, gates = d.experts[0], d.gates[0].gather(-1, d.experts[0])
            self.assertEqual(len(seen), 14)
            for path, (x, y) in seen.items():
                m = adapter.modules[path]
                want = y - m.base(x)
                got = gated_k_pass(x, m.lora_A, m.lora_B, ids, gates, m.scale)
                self.assertLessEqual(float((got - want).abs().max()), TOL, path)

    def test_tensor_parallel(self):
        d = route(self.x, self.router, 2)
        args = (d.experts, d.gates.gather(-1, d.experts), 1.5)
        full = gated_k_pass(self.x, self.a, self.b, *args)
        for tp in (2, 4):
            cols = column_parallel_shards(self.x, self.a, self.b, *args, tp=tp)
            self.assertEqual([c.shape[1] for c in cols], [self.o // tp] * tp)
            self.assertLessEqual(float((torch.cat(cols, dim=1) - full).abs().max()), TOL)    # all-gather
            rows = row_parallel_partials(self.x, self.a, self.b, *args, tp=tp)
            self.assertLessEqual(float((torch.stack(rows).sum(0) - full).abs().max()), TOL)  # all-reduce
            self.assertGreater(float((rows[0] - full).abs().max()), 0.1)                     # a partial alone is not it


if __name__ == "__main__":
    unittest.main()
