import Foundation
import Formats
import Kernels
import Model
import Adapters
import Engine

/// `loraswitch logits`: the logits of every position of a token sequence, as a safetensors file.
struct LogitsCommand: Command {
    static let name = "logits"
    static let summary = "write the logits of every position of a token sequence (safetensors)"
    static let usage = "--model PATH --tokens 1,2,3 --out FILE [--threads N] [adapter options]\n" + AdapterArguments.usage

    let model: String
    let tokens: [Int]
    let out: String
    let threads: Int
    let adapters: AdapterArguments

    init(_ arguments: inout Arguments) throws {
        model = try arguments.required("model")
        tokens = try parseTokenList(try arguments.required("tokens"), option: "tokens")
        out = try arguments.required("out")
        threads = try arguments.integer("threads", in: 1...256) ?? defaultThreadCount
        adapters = try AdapterArguments(&arguments)
    }

    func run() throws {
        let engine = try Engine(modelPath: self.model, threads: threads)
        let model = engine.model
        guard tokens.count <= model.configuration.maxPositionEmbeddings else {
            throw ModelError.contextFull(needed: tokens.count, capacity: model.configuration.maxPositionEmbeddings)
        }
        let session = try adapters.session(on: engine, capacity: tokens.count) { position, experts, gates in
            printError("position \(position): experts \(experts) gates \(gates.map { fmt(Double($0), 3) })")
        }
        let vocabulary = model.configuration.vocabSize
        let logits = FloatBuffer(count: tokens.count * vocabulary)
        try session.logits(for: tokens, into: logits.pointer)
        try SafetensorsWriter.write(
            [.init(name: "logits", dtype: .f32, shape: [tokens.count, vocabulary], bytes: UnsafeRawBufferPointer(logits.buffer))],
            metadata: ["tokens": tokens.map(String.init).joined(separator: ",")],
            to: out)
    }
}

/// Threads to use when --threads is not given: one per core.
let defaultThreadCount = ProcessInfo.processInfo.activeProcessorCount
