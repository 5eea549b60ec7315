import Adapters
import Foundation
import Model

/// `--adapter DIR[:weight]` (repeatable), `--strategy`, `--show-routing`: the options of every command that runs a
/// model with adapters.
struct AdapterArguments {
    static let usage = loadUsage + "\n" + routingUsage
    /// The options that choose the adapters and how they run (what `eval` and `perplexity` take).
    static let loadUsage = """
      --adapter PATH[:W]    a PEFT LoRA or MoE-LoRA folder, or a llama.cpp GGUF LoRA; repeat for several LoRAs,
                            each update scaled by W (default 1)
      --strategy S          auto|reference|fused|merged|merged-inplace (default auto; for token routing on float
                            weights auto weighs the machine's bandwidth and sgemm rate, probed once and kept in
                            $XDG_CACHE_HOME/loraswitch/machine.json)
    """
    static let routingUsage = "  --show-routing        print the experts chosen for each token (MoE-LoRA with token routing)"

    var specs: [AdapterSpec] = []
    var strategy: AdapterStrategy = .auto
    var showRouting = false

    /// `routing`: whether the command takes --show-routing (without it the flag stays unconsumed: an unknown option).
    init(_ arguments: inout Arguments, routing: Bool = true) throws {
        specs = try Self.specs(&arguments)
        if let name = try arguments.choice("strategy", AdapterStrategy.allCases.map(\.rawValue)) {
            strategy = AdapterStrategy(rawValue: name)!
        }
        showRouting = routing && arguments.flag("show-routing")
        if specs.isEmpty && (showRouting || strategy != .auto) {
            throw UsageError(routing ? "--strategy and --show-routing go with --adapter" : "--strategy goes with --adapter")
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
    /// `observer` gets each token's decision with its position in the sequence. Under `auto`, when the choice depends
    /// on the machine, its figures come from the cache (`MachineCache`, probed on first use); `report` gets auto's
    /// choice and what it rested on.
    func attach(to session: InferenceSession, routing observer: ((Int, [Int], [Float]) -> Void)? = nil,
                report: ((String) -> Void)? = nil) throws {
        guard !specs.isEmpty else { return }
        let adapter = try Adapter.load(specs, model: session.model)
        var resolved = strategy
        if strategy == .auto {
            var auto = AutoStrategy(adapter: adapter, model: session.model)
            if auto.usesMachine {
                let (figures, problem) = MachineCache().figures(pool: session.pool)
                if let problem { report?(problem) }
                auto = AutoStrategy(adapter: adapter, model: session.model, machine: figures)
            }
            report?(auto.summary)
            resolved = auto.choice
        }
        let runtime = try adapter.runtime(resolved, for: session)
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
