import Adapters
import Foundation
import Model

/// `--adapter DIR[:weight]` (repeatable), `--strategy`, `--show-routing`: the options of every command that runs a
/// model with adapters.
struct AdapterArguments {
    static let usage = """
      --adapter PATH[:W]    a PEFT LoRA or MoE-LoRA folder, or a llama.cpp GGUF LoRA; repeat for several LoRAs,
                            each update scaled by W (default 1)
      --strategy S          auto|reference|fused|merged|merged-inplace (default auto)
      --show-routing        print the experts chosen for each token (MoE-LoRA with token routing)
    """

    var specs: [AdapterSpec] = []
    var strategy: AdapterStrategy = .auto
    var showRouting = false

    init(_ arguments: inout Arguments) throws {
        specs = try Self.specs(&arguments)
        if let name = try arguments.choice("strategy", AdapterStrategy.allCases.map(\.rawValue)) {
            strategy = AdapterStrategy(rawValue: name)!
        }
        showRouting = arguments.flag("show-routing")
        if specs.isEmpty && (showRouting || strategy != .auto) {
            throw UsageError("--strategy and --show-routing go with --adapter")
        }
    }

    /// Every `--adapter PATH[:W]`, in order.
    static func specs(_ arguments: inout Arguments) throws -> [AdapterSpec] {
        var specs: [AdapterSpec] = []
        while let value = try arguments.option("adapter") {
            guard let spec = AdapterSpec(argument: value) else { throw UsageError("--adapter needs a path, not '\(value)'") }
            specs.append(spec)
        }
        return specs
    }

    /// Loads the adapters and attaches their runtime to `session` (nothing without --adapter). With --show-routing,
    /// `observer` gets each token's decision with its position in the sequence.
    func attach(to session: InferenceSession, routing observer: ((Int, [Int], [Float]) -> Void)? = nil) throws {
        guard !specs.isEmpty else { return }
        let adapter = try Adapter.load(specs, model: session.model)
        let runtime = try adapter.runtime(strategy, for: session)
        if showRouting, let observer {
            guard case .token = adapter.routing else {
                throw UsageError("--show-routing needs a MoE-LoRA adapter with token routing")
            }
            // The runtimes number the rows of the chunk in flight; the session's position is the chunk's first.
            unowned let observed = session
            let positioned: (Int, [Int], [Float]) -> Void = { row, experts, gates in observer(observed.position + row, experts, gates) }
            switch runtime {
            case .reference(let plain): (plain as? ReferenceAdapters)?.observer = positioned
            case .fused(let fused):
                (fused as? AdapterRuntime)?.observer = positioned
                (fused as? MergedAdapters)?.routingObserver = positioned
            }
        }
        session.adapters = runtime
    }
}
