import Foundation
import Testing
import TestSupport
@testable import Formats
import Kernels

// GGUFFile on every fixture, and on copies corrupted at offsets found by parsing the header here.

private let ggufFixtures = ["llama-f32.gguf", "llama-f16.gguf", "llama-q8_0.gguf", "llama-q4_0.gguf", "llama-q4_1.gguf",
                            "qwen2-f32.gguf"]
private let ggmlTypes: [UInt32: DType] = [0: .f32, 1: .f16, 2: .q4_0, 3: .q4_1, 8: .q8_0, 30: .bf16]

@Suite("GGUF fixtures")
struct GGUFFixtureTests {
    @Test(arguments: ggufFixtures)
    func matchesAnIndependentParse(name: String) throws {
        let path = fixture(name)
        let bytes = try readBytes(path)
        let layout = GGUFLayout(bytes)
        let file = try GGUFFile(path: path)
        #expect(file.version == 3 && layout.version == 3)
        #expect(file.alignment == 32)
        #expect(file.metadataKeys == layout.keyValues.map(\.key))
        #expect(file.tensorNames == layout.tensors.map(\.name))
        for t in layout.tensors {
            let view = try #require(file.tensor(t.name))
            #expect(view.dtype == ggmlTypes[t.type], "\(t.name)")
            #expect(view.shape == t.dimensions.reversed(), "\(t.name): shapes are row-major, [out, in]")
            #expect(view.byteCount == GGUFLayout.byteCount(t))
            let start = layout.dataStart + t.offset
            let same = bytes[start..<(start + view.byteCount)].withUnsafeBytes { memcmp($0.baseAddress!, view.data, view.byteCount) == 0 }
            #expect(same, "\(t.name): bytes at data start + offset")
            #expect(view.file == path)
        }
    }

    /// Releasing the metadata's pages loses nothing: the metadata reads the same afterwards (paged in again from
    /// the file), and so do the tensors. smollm2.gguf's vocabulary spans hundreds of pages.
    @Test func metadataReadsTheSameAfterItsPagesAreReleased() throws {
        let vocabulary = try GGUFFile(path: fixtures.appendingPathComponent("tokenizers/smollm2.gguf").path)
        let tokens = try #require(vocabulary.metadata["tokenizer.ggml.tokens"]?.arrayValue)
        let before = Array(tokens), raw = Array(vocabulary.rawMetadata)
        vocabulary.releaseMetadataPages()
        #expect(Array(tokens) == before)
        #expect(Array(vocabulary.rawMetadata) == raw)

        let model = try GGUFFile(path: fixture("llama-f32.gguf"))
        let view = try #require(model.tensor("token_embd.weight"))
        let weights = Array(UnsafeRawBufferPointer(start: view.data, count: view.byteCount))
        model.releaseMetadataPages()
        #expect(Array(UnsafeRawBufferPointer(start: view.data, count: view.byteCount)) == weights)
        #expect(model.metadata["general.architecture"] == .string("llama"))
    }

    @Test(arguments: ggufFixtures)
    func metadata(name: String) throws {
        let file = try GGUFFile(path: fixture(name))
        let qwen = name.hasPrefix("qwen2")
        let arch = qwen ? "qwen2" : "llama"
        let m = file.metadata
        #expect(m["general.architecture"] == .string(arch))
        #expect(m["general.name"] == .string(String(name.dropLast(5))))
        #expect(m["\(arch).context_length"]?.intValue == 128)
        #expect(m["\(arch).embedding_length"]?.intValue == (qwen ? 32 : 64))
        #expect(m["\(arch).feed_forward_length"]?.intValue == (qwen ? 64 : 128))
        #expect(m["\(arch).block_count"] == .uint(2))
        #expect(m["\(arch).attention.head_count"]?.intValue == 4)
        #expect(m["\(arch).attention.head_count_kv"]?.intValue == 2)
        #expect(m["\(arch).rope.freq_base"]?.doubleValue == (qwen ? 1_000_000 : 10000))
        #expect(m["\(arch).rope.dimension_count"]?.intValue == (qwen ? 8 : 16))
        let eps = try #require(m["\(arch).attention.layer_norm_rms_epsilon"]?.doubleValue)
        #expect(abs(eps - 1e-5) < 1e-12)
        #expect(m["tokenizer.ggml.model"]?.stringValue == "llama")
        let vocab = qwen ? 128 : 256
        let tokens = try #require(m["tokenizer.ggml.tokens"]?.arrayValue)
        #expect(tokens.count == vocab)
        #expect(Array(tokens.prefix(3)) == [.string("<unk>"), .string("<s>"), .string("</s>")])
        #expect(m["tokenizer.ggml.scores"]?.arrayValue?.count == vocab)
        #expect(m["tokenizer.ggml.scores"]?.arrayValue?.first == .float(0))
        #expect(m["tokenizer.ggml.token_type"]?.arrayValue?.count == vocab)
        #expect(m["tokenizer.ggml.bos_token_id"]?.intValue == 1)
        #expect(m["tokenizer.ggml.eos_token_id"]?.intValue == 2)
        #expect(m["tokenizer.ggml.unknown_token_id"]?.intValue == 0)
    }

    @Test(arguments: ggufFixtures)
    func tensorsAndShapes(name: String) throws {
        let file = try GGUFFile(path: fixture(name))
        let qwen = name.hasPrefix("qwen2")
        let (hidden, ffn, vocab, kv) = qwen ? (32, 64, 128, 16) : (64, 128, 256, 32)
        // llama: embedding, 2 × 9 per layer, final norm, head; qwen2: + 3 biases per layer, tied (no head).
        #expect(file.tensorNames.count == (qwen ? 26 : 21))
        #expect(file.tensor("token_embd.weight")?.shape == [vocab, hidden])
        #expect(file.tensor("blk.0.attn_q.weight")?.shape == [hidden, hidden])
        #expect(file.tensor("blk.1.attn_k.weight")?.shape == [kv, hidden])
        #expect(file.tensor("blk.0.attn_v.weight")?.shape == [kv, hidden])
        #expect(file.tensor("blk.0.attn_output.weight")?.shape == [hidden, hidden])
        #expect(file.tensor("blk.1.ffn_gate.weight")?.shape == [ffn, hidden])
        #expect(file.tensor("blk.1.ffn_up.weight")?.shape == [ffn, hidden])
        #expect(file.tensor("blk.1.ffn_down.weight")?.shape == [hidden, ffn])
        #expect(file.tensor("output_norm.weight")?.shape == [hidden])
        #expect(file.tensor("output_norm.weight")?.dtype == .f32, "norms are always F32")
        #expect((file.tensor("output.weight") == nil) == qwen)
        if qwen {
            #expect(file.tensor("blk.0.attn_q.bias")?.shape == [hidden])
            #expect(file.tensor("blk.0.attn_k.bias")?.shape == [kv])
        }
        let expectedType: DType = [.f32, .f16, .q8_0, .q4_0, .q4_1].first { name.contains("-\($0.rawValue).") } ?? .f32
        #expect(file.tensor("blk.0.ffn_down.weight")?.dtype == expectedType)
        #expect(file.tensor("token_embd.weight")?.dtype == expectedType)
    }

    /// The quantized files hold llama-f32.gguf's weights quantized by gguf-py: dequantized, each element is within
    /// the block's quantization error of the f32 value, and our quantizer (ggml's reference) makes the same blocks.
    @Test(arguments: [DType.f16, .q8_0, .q4_0, .q4_1])
    func quantizedFilesHoldTheF32Weights(dtype: DType) throws {
        let reference = try GGUFFile(path: fixture("llama-f32.gguf"))
        let file = try GGUFFile(path: fixture("llama-\(dtype.rawValue).gguf"))
        var differingBlocks = 0, blocks = 0
        for name in file.tensorNames {
            let q = try #require(file.tensor(name)), f = try #require(reference.tensor(name))
            #expect(q.shape == f.shape)
            guard q.dtype == dtype else { continue }
            let n = f.elementCount
            let values = (0..<n).map { f.data.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
            var back = [Float](repeating: 0, count: n)
            back.withUnsafeMutableBufferPointer { dequantize(q.data, dtype: dtype, count: n, into: $0.baseAddress!) }
            // Of the block's largest |value|, measured max: 4.8e-4 f16, 4.2e-3 q8_0 (half a step), 6.7e-2 q4_1 (half a
            // step), 0.125 q4_0 (a whole step, at the clamp: the most it can be).
            let bound: Float = switch dtype {
            case .f16: 2e-3
            case .q8_0: 1.6e-2
            default: 1.0 / 6
            }
            for b in 0..<(n / 32) {
                let block = values[(32 * b)..<(32 * b + 32)]
                let amax = block.map(abs).max()!
                for i in (32 * b)..<(32 * b + 32) where abs(back[i] - values[i]) > bound * amax {
                    Issue.record("\(name)[\(i)]: \(back[i]) vs \(values[i])")
                    return
                }
            }
            // Re-quantize with our quantizer and compare blocks.
            var ours = [UInt8](repeating: 0, count: q.byteCount)
            values.withUnsafeBufferPointer { src in
                ours.withUnsafeMutableBytes { quantize(src.baseAddress!, count: n, dtype: dtype, into: $0.baseAddress!) }
            }
            let theirs = Array(UnsafeRawBufferPointer(start: q.data, count: q.byteCount))
            let blockBytes = dtype.blockBytes * (dtype.isQuantized ? 1 : 32)
            for b in 0..<(q.byteCount / blockBytes) {
                blocks += 1
                if ours[(b * blockBytes)..<((b + 1) * blockBytes)] != theirs[(b * blockBytes)..<((b + 1) * blockBytes)] {
                    differingBlocks += 1
                }
            }
        }
        // Every block is the same (measured). Ties could round differently (numpy rounds half to even) if the fixtures
        // were regenerated with other values; none do in these files.
        #expect(blocks > 0)
        #expect(differingBlocks == 0, "\(differingBlocks) of \(blocks) blocks differ from gguf-py's")
    }
}

// MARK: - Corrupted copies

@Suite("GGUFFile rejects")
struct GGUFRejectTests {
    let folder: TemporaryFolder
    let original: [UInt8]
    let layout: GGUFLayout
    init() throws {
        folder = try TemporaryFolder()
        original = try readBytes(fixture("llama-q4_0.gguf"))
        layout = GGUFLayout(original)
    }

    /// Opens a patched copy; expects a FormatError of `kind` naming the file (and `tensor`), on one line.
    @discardableResult
    private func expectRejected(_ bytes: [UInt8], kind: String?, tensor: String? = nil, mentioning words: [String] = [],
                                sourceLocation: SourceLocation = #_sourceLocation) throws -> FormatError? {
        let path = try folder.write("bad-\(UUID().uuidString).gguf", bytes)
        guard let error = formatError(sourceLocation, { _ = try GGUFFile(path: path) }) else { return nil }
        if let kind { #expect(error.kind == kind, "\(error.message)", sourceLocation: sourceLocation) }
        #expect(error.message.contains(path), "the message must name the file: \(error.message)", sourceLocation: sourceLocation)
        if let tensor {
            #expect(error.message.contains("'\(tensor)'"), "the message must name the tensor: \(error.message)",
                    sourceLocation: sourceLocation)
        }
        for word in words {
            #expect(error.message.contains(word), "expected '\(word)' in: \(error.message)", sourceLocation: sourceLocation)
        }
        #expect(!error.message.contains("\n"), sourceLocation: sourceLocation)
        return error
    }

    private func patched(_ edit: (inout [UInt8]) -> Void) -> [UInt8] {
        var b = original
        edit(&b)
        return b
    }

    @Test func theUnpatchedCopyIsFine() throws {
        let path = try folder.write("ok.gguf", original)
        #expect(try GGUFFile(path: path).tensorNames.count == 21)
    }

    @Test func badMagic() throws {
        try expectRejected(patched { $0[0] = UInt8(ascii: "X") }, kind: "malformed", mentioning: ["magic"])
        try expectRejected(Array("GGML".utf8) + original[4...], kind: "malformed", mentioning: ["magic"])
    }

    @Test func versions() throws {
        try expectRejected(patched { $0.put(UInt32(1), at: 4) }, kind: "malformed", mentioning: ["version 1"])
        try expectRejected(patched { $0.put(UInt32(4), at: 4) }, kind: "malformed", mentioning: ["version 4"])
        try expectRejected(patched { $0.put(UInt32.max, at: 4) }, kind: "malformed")
        // Version 2 has version 3's layout (little-endian only).
        let path = try folder.write("v2.gguf", patched { $0.put(UInt32(2), at: 4) })
        #expect(try GGUFFile(path: path).version == 2)
    }

    @Test func emptyAndTiny() throws {
        try expectRejected([], kind: "truncated")
        try expectRejected(Array(original[0..<3]), kind: "truncated", mentioning: ["magic"])
        try expectRejected(Array(original[0..<6]), kind: "truncated", mentioning: ["version"])
    }

    /// Every prefix through the header (and the padding after it), then a spread over the data: each rejected with
    /// an error naming the file, never a crash.
    @Test func truncations() throws {
        let path = folder.file("truncated.gguf")
        var lengths = Array(0..<(layout.dataStart + 40))
        for i in 0..<40 { lengths.append(layout.dataStart + 40 + (layout.dataEnd - layout.dataStart - 41) * i / 39) }
        var accepted: [Int] = []
        for n in Set(lengths).sorted() where n < layout.dataEnd {
            try Data(original[0..<n]).write(to: URL(fileURLWithPath: path))
            do {
                _ = try GGUFFile(path: path)
                accepted.append(n)
            } catch let error as FormatError {
                if !error.message.contains(path) { Issue.record("\(n) bytes: \(error.message)") }
            }
        }
        #expect(accepted.isEmpty, "truncated files accepted at lengths \(accepted.prefix(10))")
    }

    @Test(arguments: ggufFixtures)
    func truncationsOfEveryFixture(name: String) throws {
        let bytes = try readBytes(fixture(name))
        let l = GGUFLayout(bytes)
        let path = folder.file("t-\(name)")
        for i in 0..<30 {
            let n = l.dataEnd - 1 - (l.dataEnd - 1) * i / 29
            try Data(bytes[0..<n]).write(to: URL(fileURLWithPath: path))
            let error = formatError { _ = try GGUFFile(path: path) }
            #expect(error?.message.contains(path) ?? false, "\(name) truncated to \(n)")
        }
    }

    @Test func tensorOffsetOutsideTheFile() throws {
        let last = layout.tensors.last!
        let beyond = (original.count + 64) / 32 * 32
        try expectRejected(patched { $0.put(UInt64(beyond), at: last.offsetOffset) }, kind: "outOfBounds", tensor: last.name)
        let first = layout.tensors.first!
        // Inside the file, but the tensor's bytes run past the end.
        let nearEnd = (original.count - layout.dataStart - 32) / 32 * 32
        try expectRejected(patched { $0.put(UInt64(nearEnd), at: first.offsetOffset) }, kind: "outOfBounds", tensor: first.name)
        // Offsets that would overflow an Int.
        for huge in [UInt64.max & ~31, UInt64(Int.max) & ~31, UInt64(1) << 62] {
            try expectRejected(patched { $0.put(huge, at: first.offsetOffset) }, kind: "outOfBounds", tensor: first.name)
        }
    }

    @Test func unsupportedTensorTypes() throws {
        let t = layout.tensor("blk.0.ffn_up.weight")
        try expectRejected(patched { $0.put(UInt32(12), at: t.typeOffset) }, kind: "unsupportedDType", tensor: t.name,
                           mentioning: ["Q4_K", "Q8_0"])
        try expectRejected(patched { $0.put(UInt32(14), at: t.typeOffset) }, kind: "unsupportedDType", mentioning: ["Q6_K"])
        try expectRejected(patched { $0.put(UInt32(99), at: t.typeOffset) }, kind: "unsupportedDType", mentioning: ["99"])
        try expectRejected(patched { $0.put(UInt32.max, at: t.typeOffset) }, kind: "unsupportedDType")
    }

    @Test func misalignedOffset() throws {
        let t = layout.tensors[3]
        #expect(t.offset > 0)
        try expectRejected(patched { $0.put(UInt64(t.offset + 1), at: t.offsetOffset) }, kind: "malformed", tensor: t.name,
                           mentioning: ["alignment"])
        try expectRejected(patched { $0.put(UInt64(t.offset + 16), at: t.offsetOffset) }, kind: "malformed", tensor: t.name,
                           mentioning: ["32"])
    }

    @Test func hugeLengths() throws {
        let name = layout.keyValue("general.name")
        // A key's length, a string value's length, an array's length, a tensor name's length.
        try expectRejected(patched { $0.put(UInt64(1) << 62, at: name.keyOffset) }, kind: "truncated")
        try expectRejected(patched { $0.put(UInt64.max, at: name.keyOffset) }, kind: "truncated")
        try expectRejected(patched { $0.put(UInt64(1) << 62, at: name.valueOffset) }, kind: "truncated")
        try expectRejected(patched { $0.put(UInt64(original.count), at: name.valueOffset) }, kind: "truncated")
        let tokens = layout.keyValue("tokenizer.ggml.tokens")
        try expectRejected(patched { $0.put(UInt64(1) << 60, at: tokens.valueOffset + 4) }, kind: "truncated",
                           mentioning: ["tokenizer.ggml.tokens"])
        try expectRejected(patched { $0.put(UInt64.max, at: tokens.valueOffset + 4) }, kind: "truncated")
        let scores = layout.keyValue("tokenizer.ggml.scores")
        try expectRejected(patched { $0.put(UInt64(1) << 61, at: scores.valueOffset + 4) }, kind: "truncated",
                           mentioning: ["tokenizer.ggml.scores"])
        let tensor = layout.tensors[0]
        try expectRejected(patched { $0.put(UInt64(1) << 62, at: tensor.infoOffset) }, kind: "truncated")
        // Tensor and metadata counts.
        try expectRejected(patched { $0.put(UInt64.max, at: layout.tensorCountOffset) }, kind: "truncated")
        try expectRejected(patched { $0.put(UInt64(1) << 40, at: layout.keyValueCountOffset) }, kind: "truncated")
        // A count that fits in the file but claims more infos than there are: the extra "infos" are read from the
        // padding and data (any rejection will do, as long as it is one).
        try expectRejected(patched { $0.put(UInt64(layout.tensors.count + 3), at: layout.tensorCountOffset) }, kind: nil)
    }

    @Test func rowLengthNotWholeBlocks() throws {
        let t = layout.tensor("blk.0.attn_q.weight")
        #expect(t.type == 2 && t.dimensions[0] == 64)
        try expectRejected(patched { $0.put(UInt64(48), at: t.dimensionOffsets[0]) }, kind: "shapeMismatch", tensor: t.name,
                           mentioning: ["48", "32"])
        try expectRejected(patched { $0.put(UInt64(65), at: t.dimensionOffsets[0]) }, kind: "shapeMismatch", tensor: t.name)
    }

    @Test func badDimensions() throws {
        let t = layout.tensor("blk.1.attn_v.weight")
        try expectRejected(patched { $0.put(UInt32(0), at: t.dimensionCountOffset) }, kind: "shapeMismatch", tensor: t.name)
        try expectRejected(patched { $0.put(UInt32(5), at: t.dimensionCountOffset) }, kind: "shapeMismatch", tensor: t.name)
        try expectRejected(patched { $0.put(UInt32.max, at: t.dimensionCountOffset) }, kind: "shapeMismatch", tensor: t.name)
        try expectRejected(patched { $0.put(UInt64(1) << 40, at: t.dimensionOffsets[1]) }, kind: "shapeMismatch", tensor: t.name)
        try expectRejected(patched { $0.put(UInt64.max, at: t.dimensionOffsets[1]) }, kind: "shapeMismatch", tensor: t.name)
        // Large but representable: the bytes then run past the end.
        try expectRejected(patched { $0.put(UInt64(1) << 20, at: t.dimensionOffsets[1]) }, kind: "outOfBounds", tensor: t.name)
    }

    @Test func overlappingTensors() throws {
        let a = layout.tensors[1], b = layout.tensors[2]
        try expectRejected(patched { $0.put(UInt64(a.offset), at: b.offsetOffset) }, kind: "overlapping",
                           mentioning: ["'\(a.name)'", "'\(b.name)'"])
    }

    @Test func duplicateTensorName() throws {
        let q = layout.tensor("blk.0.attn_q.weight"), k = layout.tensor("blk.0.attn_k.weight")
        let nameBytes = Array(q.name.utf8)
        try expectRejected(patched { b in
            for (i, c) in nameBytes.enumerated() { b[k.infoOffset + 8 + i] = c }
        }, kind: "malformed", tensor: q.name, mentioning: ["twice"])
    }

    @Test func badMetadataValues() throws {
        let fileType = layout.keyValue("general.file_type")
        try expectRejected(patched { $0.put(UInt32(13), at: fileType.typeOffset) }, kind: "malformed",
                           mentioning: ["general.file_type", "13"])
        // Read as a boolean, the value byte (2) is neither 0 nor 1.
        try expectRejected(patched { $0.put(UInt32(7), at: fileType.typeOffset) }, kind: "malformed",
                           mentioning: ["general.file_type", "boolean"])
        // An array of an unknown element type.
        let types = layout.keyValue("tokenizer.ggml.token_type")
        try expectRejected(patched { $0.put(UInt32(77), at: types.valueOffset) }, kind: "malformed")
        // Invalid UTF-8 in a key.
        let name = layout.keyValue("general.name")
        try expectRejected(patched { $0[name.keyOffset + 8] = 0xFF }, kind: "malformed", mentioning: ["UTF-8"])
    }

    @Test func alignmentKey() throws {
        // "llama.block_count" and "general.alignment" have the same length: rename the key in place.
        let blocks = layout.keyValue("llama.block_count")
        func renamed(value: UInt32) -> [UInt8] {
            patched { b in
                for (i, c) in Array("general.alignment".utf8).enumerated() { b[blocks.keyOffset + 8 + i] = c }
                b.put(value, at: blocks.valueOffset)
            }
        }
        try expectRejected(renamed(value: 3), kind: "malformed", mentioning: ["general.alignment"])
        try expectRejected(renamed(value: 0), kind: "malformed", mentioning: ["general.alignment"])
        try expectRejected(renamed(value: 1 << 30), kind: "malformed", mentioning: ["general.alignment"])
        // A valid alignment that the tensor offsets do not respect.
        try expectRejected(renamed(value: 1024), kind: "malformed", mentioning: ["alignment"])
        // A valid one they do respect parses, with the new alignment.
        let path = try folder.write("align16.gguf", renamed(value: 16))
        let file = try GGUFFile(path: path)
        #expect(file.alignment == 16)
    }
}
