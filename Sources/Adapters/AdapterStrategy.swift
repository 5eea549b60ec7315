import Kernels
import Model

/// How adapters are executed (`--strategy`). All give the same logits (within float rounding).
public enum AdapterStrategy: String, CaseIterable, Sendable {
    /// Chosen by the cost model in `AutoStrategy`.
    case auto
    /// Per-expert steps after each projection, the way eager frameworks run adapters (baseline, tests).
    case reference
    /// The active experts' A and B inside each projection's own parallel pass.
    case fused
    /// The papers' switch: the token's experts merged into copies of the adapted weights, rebuilt from the pristine
    /// base on every change of selection (no drift).
    case merged
    /// As `merged`, updating the copies in place: subtract the previous selection, add the new one.
    case mergedInPlace = "merged-inplace"
}

extension Adapter {
    /// The adapter's runtime for `session` under `strategy` (`auto` resolved by the cost model with `machine`'s
    /// figures).
    public func runtime(_ strategy: AdapterStrategy, for session: InferenceSession,
                        machine: MachineFigures = .defaults) throws -> ForwardAdapters {
        let c = session.model.configuration
        switch strategy {
        case .reference:
            return AdapterRuntime(adapter: self, configuration: c, threads: session.pool.threadCount,
                                  chunk: session.chunkSize, unfused: true)
        case .fused:
            return AdapterRuntime(adapter: self, configuration: c, threads: session.pool.threadCount, chunk: session.chunkSize)
        case .merged, .mergedInPlace:
            return try MergedAdapters(adapter: self, session: session, inPlace: strategy == .mergedInPlace)
        case .auto:
            return try runtime(AutoStrategy(adapter: self, model: session.model, machine: machine).choice, for: session)
        }
    }
}
