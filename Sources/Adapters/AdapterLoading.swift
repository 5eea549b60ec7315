import Foundation
import Formats
import Kernels
import Model

/// An adapter to load and, for LoRAs, the weight of its update (`DIR[:weight]` on the command line).
public struct AdapterSpec: Sendable, Equatable {
    public var path: String
    public var weight: Float

    public init(path: String, weight: Float = 1) {
        self.path = path
        self.weight = weight
    }

    /// "DIR" or "DIR:0.5" (the last colon followed by a number).
    public init?(argument: String) {
        if let colon = argument.lastIndex(of: ":"), let w = Float(argument[argument.index(after: colon)...]), w.isFinite {
            path = String(argument[..<colon])
            weight = w
        } else {
            path = argument
            weight = 1
        }
        guard !path.isEmpty else { return nil }
    }
}

extension Adapter {
    /// Loads adapters for `model`: one MoE-LoRA, or one or more LoRAs (PEFT folders or llama.cpp GGUF LoRA files)
    /// applied together, each update scaled by its weight.
    public static func load(_ specs: [AdapterSpec], model: LanguageModel) throws -> Adapter {
        guard !specs.isEmpty else { throw AdapterError.incompatible(detail: "no adapter given") }
        var loaded: [(AdapterParts, AdapterSpec)] = []
        for spec in specs {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: spec.path, isDirectory: &isFolder) else {
                throw AdapterError.notAnAdapter(path: spec.path, detail: "no such file or folder")
            }
            var parts = isFolder.boolValue ? try loadPEFT(folder: spec.path, model: model)
                                           : try loadGGUF(path: spec.path, model: model)
            try orient(&parts, model: model, ggufOriented: !isFolder.boolValue)
            loaded.append((parts, spec))
        }
        if loaded.count == 1, case .fixed = loaded[0].0.routing {
            let (parts, spec) = loaded[0]
            return Adapter(routing: .fixed(gates: [spec.weight]), parts: parts)
        }
        if loaded.count == 1 {
            let (parts, spec) = loaded[0]
            guard spec.weight == 1 else {
                throw AdapterError.incompatible(detail: "\(spec.path): a MoE-LoRA adapter takes no weight (its router sets the gates)")
            }
            return Adapter(routing: parts.routing, parts: parts)
        }
        for (parts, spec) in loaded {
            guard case .fixed = parts.routing else {
                throw AdapterError.incompatible(detail: "\(spec.path): a MoE-LoRA adapter runs alone, not together with other adapters")
            }
        }
        // Several LoRAs: each one is an expert, always active, gated by its weight.
        var combined = AdapterParts(name: loaded.map(\.1.path).joined(separator: " + "), routing: .fixed(gates: loaded.map(\.1.weight)),
                                    numExperts: loaded.count, layers: model.configuration.numHiddenLayers,
                                    storage: loaded.flatMap(\.0.storage))
        for (e, (parts, _)) in loaded.enumerated() {
            for l in parts.pairs.indices {
                for t in parts.pairs[l].indices {
                    if let pair = parts.pairs[l][t][0] { combined.set(pair, layer: l, tensor: t, expert: e) }
                }
            }
        }
        return Adapter(routing: combined.routing, parts: combined)
    }

    convenience init(routing: Routing, parts: AdapterParts) {
        let projections = parts.pairs.enumerated().map { l, layer in
            layer.enumerated().map { t, experts -> AdaptedProjection? in
                experts.contains(where: { $0 != nil }) ? AdaptedProjection(experts: experts, router: parts.routers[l][t]) : nil
            }
        }
        self.init(routing: routing, numExperts: parts.numExperts, projections: projections, tokenRouter: parts.tokenRouter,
                  routerLayer: parts.routerLayer, name: parts.name, storage: parts.storage)
    }

    /// llama.cpp stores a llama model's q and k rows permuted so that rotary pairs are adjacent (see `Rope`), and
    /// its LoRA files permute lora_B's rows the same way. An adapter in one orientation meeting a model in the other
    /// gets its q/k lora_B rows reordered (a copy of B only).
    private static func orient(_ parts: inout AdapterParts, model: LanguageModel, ggufOriented: Bool) throws {
        let interleaved = model.weights.rope.layout == .interleaved
        guard interleaved != ggufOriented else { return }
        let c = model.configuration
        for l in parts.pairs.indices {
            for (tensor, heads) in [(LayerTensor.q, c.numAttentionHeads), (.k, c.numKeyValueHeads)] {
                let t = tensor.projectionIndex!
                for e in parts.pairs[l][t].indices {
                    guard let pair = parts.pairs[l][t][e] else { continue }
                    let storage = ByteStorage(count: pair.b.byteCount)
                    reorderRotaryRows(pair.b.data, into: storage.pointer, rowBytes: pair.b.rowBytes, heads: heads,
                                      headDim: c.headDim, toInterleaved: interleaved)
                    let b = WeightMatrix(data: storage.pointer, dtype: pair.b.dtype, rows: pair.b.rows, cols: pair.b.cols)!
                    parts.pairs[l][t][e] = LowRankPair(a: pair.a, b: b, scale: pair.scale)
                    parts.storage.append(storage)
                }
            }
        }
    }
}

/// Copies the rows of a q or k projection's output side [heads · headDim, …] (rows of `rowBytes` bytes) from one
/// rotary layout to the other (`Rope.Layout`): interleaved row h·hd + 2j + side holds halves row
/// h·hd + side·hd/2 + j. `toInterleaved`: from halves (Hugging Face's order) to interleaved (llama.cpp's), else back.
public func reorderRotaryRows(_ source: UnsafeRawPointer, into destination: UnsafeMutableRawPointer, rowBytes: Int,
                              heads: Int, headDim hd: Int, toInterleaved: Bool) {
    let half = hd / 2
    for h in 0..<heads {
        for j in 0..<half {
            for side in 0..<2 {
                let interleavedRow = h * hd + 2 * j + side, halvesRow = h * hd + side * half + j
                let (to, from) = toInterleaved ? (interleavedRow, halvesRow) : (halvesRow, interleavedRow)
                (destination + to * rowBytes).copyMemory(from: source + from * rowBytes, byteCount: rowBytes)
            }
        }
    }
}
