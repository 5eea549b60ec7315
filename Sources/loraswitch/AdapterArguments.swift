import Adapters
import Engine
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

    /// The name the --adapter options are registered under.
    static let name = "adapter"

    /// Registers the --adapter options with `engine` for batched generation (which runs adapters fused) and returns
    /// their name; nil without --adapter.
    func register(with engine: Engine) throws -> String? {
        guard !specs.isEmpty else { return nil }
        try engine.register(Self.name, specs: specs, strategy: .fused)
        return Self.name
    }

    /// Registers the --adapter options with `engine` and opens a session of `capacity` positions with them (the bare
    /// model without --adapter); with --show-routing, `routing` gets each token's experts with its position.
    func session(on engine: Engine, capacity: Int?, routing: ((Int, [Int], [Float]) -> Void)? = nil) throws -> InferenceSession {
        guard !specs.isEmpty else { return try engine.session(capacity: capacity) }
        try engine.register(Self.name, specs: specs, strategy: strategy)
        do {
            return try engine.session(adapter: Self.name, capacity: capacity, routing: showRouting ? routing : nil)
        } catch EngineError.routingWithoutRouter {
            throw UsageError("--show-routing needs a MoE-LoRA adapter with token routing")
        }
    }
}
