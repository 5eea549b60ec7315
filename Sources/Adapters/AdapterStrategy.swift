import Kernels
import Model

/// How adapters are executed (`--strategy`). All give the same logits (within float rounding).
public enum AdapterStrategy: String, CaseIterable, Sendable {
    /// Chosen by the cost model in `AutoStrategy`.
    case auto
    /// The reference forward: every operation its own step, the adapters' share after each projection's base
    /// product, grouped by expert (baseline, tests; the forward training differentiates).
    case reference
    /// The active experts' A and B inside each projection's own parallel pass.
    case fused
    /// The papers' switch: the token's experts merged into copies of the adapted weights, rebuilt from the pristine
    /// base on every change of selection (no drift).
    case merged
    /// As `merged`, updating the copies in place: subtract the previous selection, add the new one.
    case mergedInPlace = "merged-inplace"
}

/// Receives a token router's decision for each row of a pass: the row's index in the pass, its experts and gates.
public typealias RoutingObserver = (_ row: Int, _ experts: [Int], _ gates: [Float]) -> Void

extension Adapter {
    /// The adapter's runtime for `session` under `strategy` (`auto` resolved by the cost model with `machine`'s
    /// figures); `observer` gets the token router's decisions (token routing only).
    public func runtime(_ strategy: AdapterStrategy, for session: InferenceSession,
                        machine: MachineFigures = .defaults, observer: RoutingObserver? = nil) throws -> SessionAdapters {
        switch strategy {
        case .reference:
            let plain = try ReferenceAdapters(adapter: self, model: session.model, threads: session.pool.threadCount,
                                              capacity: session.chunkSize)
            plain.observer = observer
            return .reference(plain)
        case .fused:
            let fused = try AdapterRuntime(adapter: self, session: session)
            fused.observer = observer
            return .fused(fused)
        case .merged, .mergedInPlace:
            let merged = try MergedAdapters(adapter: self, session: session, inPlace: strategy == .mergedInPlace)
            merged.routingObserver = observer
            return .fused(merged)
        case .auto:
            return try runtime(AutoStrategy(adapter: self, model: session.model, machine: machine).choice, for: session,
                               observer: observer)
        }
    }
}
