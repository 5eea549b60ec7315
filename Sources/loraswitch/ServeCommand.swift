import Adapters
import Engine
import Foundation
import Server

/// `loraswitch serve`: the OpenAI-compatible server. All setup is the engine's; this parses flags, registers the
/// adapters, starts the server and drains it on SIGTERM or SIGINT.
struct ServeCommand: Command {
    static let name = "serve"
    static let summary = "an OpenAI-compatible HTTP server: per-request adapters, batched, a chat page"
    static let usage = """
        [--model PATH] [--adapter NAME=PATH[:W]]... [--host 127.0.0.1] [--port 8080]
                          [--parallel N] [--queue Q] [--context N] [--api-key KEY] [--max-body BYTES]
                          [--timeout S] [--metrics] [--threads N]

          --model PATH          a GGUF file or Hugging Face folder (default: the default model)
          --adapter NAME=PATH   an adapter served as NAME (its `model` in requests); PATH:W scales a LoRA by W
          --host ADDRESS        IPv4 address to listen on (default 127.0.0.1: this machine only)
          --port N              port (default 8080; 0: any free one, printed)
          --parallel N          sequences decoded together, whatever their adapters (default 8)
          --queue Q             requests waiting beyond those; past it 503 with Retry-After (default 64)
          --context N           positions per sequence (default: the model's, at most 4096)
          --api-key KEY         require `Authorization: Bearer KEY` on /v1/* and /tokenize, /detokenize
          --max-body BYTES      larger request bodies get 413 (default 1048576)
          --timeout S           close a connection idle this many seconds (default 60)
          --metrics             serve Prometheus metrics at /metrics
          --threads N           compute threads (default: one per core)

        Endpoints: POST /v1/chat/completions, /v1/completions, /tokenize, /detokenize; GET /v1/models,
        /v1/adapters, /health, /metrics, and / (a chat page). One line per request on stderr.
        """

    let modelPath: String
    let adapters: [(name: String, spec: AdapterSpec)]
    let host: String
    let port: Int
    let parallel: Int
    let queue: Int
    let context: Int?
    let apiKey: String?
    let maxBody: Int
    let timeout: Int
    let metrics: Bool
    let threads: Int

    init(_ arguments: inout Arguments) throws {
        modelPath = try arguments.option("model") ?? DefaultModel.path()
        var adapters: [(String, AdapterSpec)] = []
        while let item = try arguments.option("adapter") {
            guard let equals = item.firstIndex(of: "="), equals != item.startIndex,
                  let spec = AdapterSpec(argument: String(item[item.index(after: equals)...])) else {
                throw UsageError("--adapter takes NAME=PATH or NAME=PATH:WEIGHT, not '\(item)'")
            }
            let name = String(item[..<equals])
            guard !adapters.contains(where: { $0.0 == name }) else { throw UsageError("--adapter: '\(name)' is named twice") }
            adapters.append((name, spec))
        }
        self.adapters = adapters
        host = try arguments.option("host") ?? "127.0.0.1"
        port = try arguments.integer("port", in: 0...65535) ?? 8080
        parallel = try arguments.integer("parallel", in: 1...256) ?? 8
        queue = try arguments.integer("queue", in: 0...100_000) ?? 64
        context = try arguments.integer("context", in: 2...1_048_576)
        apiKey = try arguments.option("api-key")
        maxBody = try arguments.integer("max-body", in: 64...1_073_741_824) ?? 1 << 20
        timeout = try arguments.integer("timeout", in: 0...86_400) ?? 60
        metrics = arguments.flag("metrics")
        threads = try arguments.integer("threads", in: 1...256) ?? defaultThreadCount
    }

    func run() throws {
        // SIGTERM and SIGINT drain instead of killing. They are blocked here, before any thread starts, so that
        // every thread (the pool's, the HTTP library's, the scheduler) inherits the mask and the main thread takes
        // them with sigwait once the server runs. (An ignored signal is discarded before anyone can read it, and a
        // signal left unblocked in one thread ends the process there.)
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

        // Listening starts first: while the model loads, /health answers 503 ("loading") and everything else 503.
        let ready = LoadingGate()
        let server = try HTTPServer(host: host, port: port, connections: parallel + queue + 16, timeout: timeout,
                                    maxBody: maxBody, handler: ready.handle)
        printError("loraswitch serve: listening on http://\(host):\(server.port); loading \(modelPath)")
        let engine = try Engine(modelPath: modelPath, threads: threads)
        for (name, spec) in adapters {
            try engine.register(name, specs: [spec])
            printError("loraswitch serve: adapter '\(name)' from \(spec.path)")
        }
        let context = min(self.context ?? engine.defaultContext, engine.model.configuration.maxPositionEmbeddings)
        let scheduler = try Scheduler(engine: engine, parallel: parallel, queue: queue, context: context)
        let modelName = ((modelPath as NSString).lastPathComponent as NSString).deletingPathExtension
        let api = try OpenAIAPI(engine: engine, scheduler: scheduler,
                                settings: .init(modelName: modelName, apiKey: apiKey, metrics: metrics, context: context))
        api.log = { printError($0) }
        ready.open(api)
        printError("loraswitch serve: ready on http://\(host):\(server.port) (model '\(modelName)', \(parallel) parallel, queue \(queue))")

        var received: Int32 = 0
        while sigwait(&stopSignals, &received) != 0 {}
        printError("loraswitch serve: \(received == SIGINT ? "SIGINT" : "SIGTERM"): draining (no new requests; running ones finish)")
        api.beginDraining()
        scheduler.drain()
        server.quiesce()
        if !server.waitIdle(timeout: 30) { printError("loraswitch serve: closing connections still open after 30 s") }
        server.stop()
        printError("loraswitch serve: stopped")
    }
}

/// Answers for the API once it is there, and 503 before (the model is loading).
private final class LoadingGate: @unchecked Sendable {
    private let lock = NSLock()
    private var api: OpenAIAPI?

    func open(_ api: OpenAIAPI) {
        lock.lock()
        self.api = api
        lock.unlock()
    }

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        lock.lock()
        let api = self.api
        lock.unlock()
        if let api { return api.handle(request) }
        let body = request.path == "/health" ? Data(#"{"status":"loading"}"#.utf8)
            : errorBody("the model is loading", type: "server_error", code: "loading")
        return .full(status: 503, headers: [("Content-Type", "application/json"), ("Retry-After", "1")], body: body)
    }
}
