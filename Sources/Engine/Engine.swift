import Adapters
import Foundation
import Kernels
import Model
import Text

/// The composition root (as mlx-swift-lm's `ModelContainer`): a model loaded once with its tokenizer and one thread
/// pool; adapters registered by name; sessions (one sequence, any strategy) and batches (`BatchGenerator`: many
/// sequences, each with its own adapters) opened on them. Commands and servers hold no setup logic of their own.
///
/// Safe to call from several threads: the registry is guarded, every session has its own state, and the pool takes
/// one job at a time.
public final class Engine: @unchecked Sendable {
    public let model: LanguageModel
    public let pool: ThreadPool
    /// Where `auto`'s machine figures are kept.
    public let machineCache: MachineCache
    /// Gets a line for each choice made while setting up (auto's strategy and its reasons, a cache that could not be
    /// written); the library never prints.
    public let report: ((String) -> Void)?

    private let lock = NSLock()
    private var loadedTokenizer: Tokenizer?
    private var registry: [String: RegisteredAdapter] = [:]
    private var order: [String] = []
    private var machine: MachineFigures?

    /// Loads the model at `path` (a Hugging Face folder or a GGUF file) with a pool of `threads` threads.
    public convenience init(modelPath path: String, threads: Int, machineCache: MachineCache = MachineCache(),
                            report: ((String) -> Void)? = nil) throws {
        try self.init(model: LanguageModel.load(path: path), pool: ThreadPool(threads: threads), machineCache: machineCache,
                      report: report)
    }

    public init(model: LanguageModel, pool: ThreadPool, machineCache: MachineCache = MachineCache(),
                report: ((String) -> Void)? = nil) {
        self.model = model
        self.pool = pool
        self.machineCache = machineCache
        self.report = report
    }

    /// Positions a sequence holds by default: the model's context, at most 4096.
    public var defaultContext: Int { min(model.configuration.maxPositionEmbeddings, 4096) }

    /// The model's tokenizer, loaded once and checked to fit the model's vocabulary (then the file's metadata pages
    /// are released).
    public func tokenizer() throws -> Tokenizer {
        lock.lock()
        defer { lock.unlock() }
        if let loadedTokenizer { return loadedTokenizer }
        let tokenizer = try model.loadTokenizer()
        guard tokenizer.vocabularySize <= model.configuration.vocabSize else {
            throw EngineError.tokenizerTooLarge(model: model.path, tokens: tokenizer.vocabularySize,
                                                vocabulary: model.configuration.vocabSize)
        }
        model.releaseMetadataPages()
        loadedTokenizer = tokenizer
        return tokenizer
    }

    /// The tokenizer when the model has one: none for a Hugging Face folder without tokenizer.json (pre-tokenized
    /// training data needs none).
    public func tokenizerIfPresent() throws -> Tokenizer? {
        if model.format == .huggingFace,
           !FileManager.default.fileExists(atPath: (model.path as NSString).appendingPathComponent("tokenizer.json")) {
            return nil
        }
        return try tokenizer()
    }

    // MARK: - Adapters

    /// Loads `specs` (one MoE-LoRA, or LoRAs applied together, each scaled by its weight) for this model and keeps
    /// them as `name`, to run under `strategy` (`auto`: chosen per session by the cost model).
    @discardableResult
    public func register(_ name: String, specs: [AdapterSpec], strategy: AdapterStrategy = .auto) throws -> RegisteredAdapter {
        try register(name, adapter: Adapter.load(specs, model: model), specs: specs, strategy: strategy)
    }

    /// Keeps an adapter already made for this model (checked to fit it) as `name`.
    @discardableResult
    public func register(_ name: String, adapter: Adapter, specs: [AdapterSpec] = [], strategy: AdapterStrategy = .auto) throws
        -> RegisteredAdapter {
        try adapter.check(fits: model)
        lock.lock()
        defer { lock.unlock() }
        guard registry[name] == nil else { throw EngineError.duplicateAdapter(name) }
        let registered = RegisteredAdapter(name: name, specs: specs, adapter: adapter, strategy: strategy)
        registry[name] = registered
        order.append(name)
        return registered
    }

    /// The adapters registered, in the order they were.
    public var adapters: [RegisteredAdapter] {
        lock.lock()
        defer { lock.unlock() }
        return order.map { registry[$0]! }
    }

    /// The adapter registered as `name`.
    public func adapter(_ name: String) throws -> RegisteredAdapter {
        lock.lock()
        defer { lock.unlock() }
        guard let adapter = registry[name] else { throw EngineError.unknownAdapter(name, known: order) }
        return adapter
    }

    /// The strategy `adapter` runs under: its own, or for `auto` the cost model's choice with this machine's figures
    /// (probed once and cached when the choice depends on them).
    public func strategy(for adapter: RegisteredAdapter) -> AdapterStrategy {
        guard adapter.strategy == .auto else { return adapter.strategy }
        var auto = AutoStrategy(adapter: adapter.adapter, model: model)
        if auto.usesMachine {
            auto = AutoStrategy(adapter: adapter.adapter, model: model, machine: machineFigures())
        }
        report?(auto.summary)
        return auto.choice
    }

    private func machineFigures() -> MachineFigures {
        lock.lock()
        defer { lock.unlock() }
        if let machine { return machine }
        let (figures, problem) = machineCache.figures(pool: pool)
        if let problem { report?(problem) }
        machine = figures
        return figures
    }

    // MARK: - Sessions

    /// A session of one sequence of up to `capacity` positions (default `defaultContext`), running `adapter` (a
    /// registered name; nil: the bare model). `routing` gets each token's experts with its position in the sequence
    /// (token-routed MoE-LoRA only).
    public func session(adapter name: String? = nil, capacity: Int? = nil, chunkSize: Int = 128,
                        routing: ((_ position: Int, _ experts: [Int], _ gates: [Float]) -> Void)? = nil) throws -> InferenceSession {
        let session = InferenceSession(model: model, pool: pool, capacity: capacity ?? defaultContext, chunkSize: chunkSize)
        guard let name else {
            if routing != nil { throw EngineError.routingWithoutRouter(nil) }
            return session
        }
        let registered = try adapter(name)
        var observer: RoutingObserver?
        if let routing {
            guard case .token = registered.adapter.routing else { throw EngineError.routingWithoutRouter(name) }
            // The runtimes number the rows of the pass in flight; the session's position is the pass's first.
            unowned let observed = session
            observer = { row, experts, gates in routing(observed.position + row, experts, gates) }
        }
        session.adapters = try registered.adapter.runtime(strategy(for: registered), for: session, observer: observer)
        return session
    }

    /// Text generation over a new session (see `session`).
    public func generator(adapter name: String? = nil, capacity: Int? = nil,
                          routing: ((_ position: Int, _ experts: [Int], _ gates: [Float]) -> Void)? = nil) throws -> TextGenerator {
        TextGenerator(session: try session(adapter: name, capacity: capacity, routing: routing), tokenizer: try tokenizer())
    }
}

/// An adapter kept by an `Engine` under a name.
public struct RegisteredAdapter: @unchecked Sendable {
    public let name: String
    public let specs: [AdapterSpec]
    public let adapter: Adapter
    /// As asked (`auto` is resolved per session).
    public let strategy: AdapterStrategy
}

/// What an `Engine` refuses, in one line.
public enum EngineError: Error, LocalizedError, Equatable {
    case tokenizerTooLarge(model: String, tokens: Int, vocabulary: Int)
    case duplicateAdapter(String)
    case unknownAdapter(String, known: [String])
    case routingWithoutRouter(String?)

    public var errorDescription: String? {
        switch self {
        case let .tokenizerTooLarge(model, tokens, vocabulary):
            return "\(model): the tokenizer has \(tokens) tokens but the model only \(vocabulary)"
        case let .duplicateAdapter(name): return "an adapter named '\(name)' is already registered"
        case let .unknownAdapter(name, known):
            return "no adapter named '\(name)' (registered: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
        case let .routingWithoutRouter(name):
            return "showing the routing needs a MoE-LoRA adapter with token routing\(name.map { ", and '\($0)' has none" } ?? "")"
        }
    }
}
