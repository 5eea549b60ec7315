import Foundation
import Formats
import Model

/// `loraswitch inspect`: what a model file holds — architecture, configuration, tensors, parameter count.
struct InspectCommand: Command {
    static let name = "inspect"
    static let summary = "show a model's architecture, configuration and tensors"
    static let usage = "PATH   (a Hugging Face model folder or a .gguf file)"

    let path: String

    init(_ arguments: inout Arguments) throws {
        path = try arguments.positional("the model PATH")
    }

    func run() throws {
        let model = try LanguageModel.load(path: path)
        let c = model.configuration
        var lines: [String] = []
        lines.append("model:         \(path)")
        lines.append("format:        \(model.format.rawValue)")
        lines.append("architecture:  \(c.modelType.rawValue)")
        lines.append("hidden:        \(c.hiddenSize)")
        lines.append("intermediate:  \(c.intermediateSize)")
        lines.append("layers:        \(c.numHiddenLayers)")
        lines.append("heads:         \(c.numAttentionHeads) (KV heads \(c.numKeyValueHeads), head size \(c.headDim))")
        lines.append("vocabulary:    \(c.vocabSize)")
        lines.append("context:       \(c.maxPositionEmbeddings)")
        lines.append("rope:          theta \(c.ropeTheta), \(describe(c.ropeScaling)), \(model.weights.rope.layout == .halves ? "halves (HF)" : "interleaved (GGUF llama)")")
        lines.append("rms norm eps:  \(c.rmsNormEps)")
        lines.append("tied head:     \(c.tieWordEmbeddings ? "yes" : "no")")
        lines.append("biases:        \(c.qkvBias ? "q, k, v" : "none")\(c.outputBias ? ", o" : "")")
        if let window = c.slidingWindow { lines.append("sliding window: \(window)") }
        if let gguf = model.weights.source as? GGUFFile {
            lines.append("")
            lines.append("metadata (GGUF v\(gguf.version)):")
            for key in gguf.metadataKeys {
                lines.append("  \(key) = \(summarize(gguf.metadata[key]!))")
            }
        }

        let source = model.weights.source
        let names = source.tensorNames
        let views = names.compactMap(source.tensor)
        let width = max(6, views.map(\.name.count).max() ?? 0)
        lines.append("")
        lines.append("tensors (\(views.count)):")
        lines.append("  " + "name".padding(toLength: width, withPad: " ", startingAt: 0) + "  dtype  " +
                     "shape".padding(toLength: 16, withPad: " ", startingAt: 0) + "       bytes")
        var bytes = 0, parameters = 0
        for t in views {
            let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            lines.append("  " + t.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " +
                         t.dtype.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0) + "  " +
                         shape.padding(toLength: 16, withPad: " ", startingAt: 0) + " " +
                         String(t.byteCount).leftPadded(to: 11))
            bytes += t.byteCount
            parameters += t.elementCount
        }
        lines.append("")
        lines.append("parameters:    \(parameters) (\(String(format: "%.1f", Double(parameters) / 1e6)) M)")
        lines.append("tensor bytes:  \(bytes) (\(String(format: "%.1f", Double(bytes) / 1_048_576)) MiB)")
        print(lines.joined(separator: "\n"))
    }

    private func describe(_ scaling: ModelConfiguration.RopeScaling?) -> String {
        switch scaling {
        case nil: return "no scaling"
        case .linear(let factor)?: return "linear scaling ×\(factor)"
        case let .llama3(factor, low, high, original)?:
            return "llama3 scaling (factor \(factor), low \(low), high \(high), original context \(original))"
        }
    }

    private func summarize(_ value: GGUFValue) -> String {
        switch value {
        case .uint(let v): return "\(v)"
        case .int(let v): return "\(v)"
        case .float(let v): return "\(v)"
        case .bool(let v): return "\(v)"
        case .string(let s): return s.count > 60 ? "\"\(s.prefix(60).replacingOccurrences(of: "\n", with: "\\n"))…\" (\(s.count) characters)" : "\"\(s.replacingOccurrences(of: "\n", with: "\\n"))\""
        case .array(let items):
            let head = items.prefix(4).map(summarize).joined(separator: ", ")
            return "[\(head)\(items.count > 4 ? ", …" : "")] (\(items.count) items)"
        }
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
