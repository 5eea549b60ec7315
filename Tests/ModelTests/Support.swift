import Foundation
import Testing
import TestSupport
import Formats
import Kernels
@testable import Model

// Fixture discovery, expected logits, temporary folders and a logits helper for the model tests.

/// Tests/Fixtures, found from this file's path (Tests/ModelTests/Support.swift).
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

/// Every model fixture: HF folders (by folder name) and GGUF files (by file name), sorted. An unreadable folder is an
/// error (which fails the tests taking these names as arguments), not an empty list.
func modelFixtureNames() throws -> [String] {
    let folder = fixtures.appendingPathComponent("models").path
    let names = try FileManager.default.contentsOfDirectory(atPath: folder)
    return names.filter { name in
        name.hasSuffix(".gguf") || FileManager.default.fileExists(atPath: "\(folder)/\(name)/config.json")
    }.sorted()
}

func modelPath(_ name: String) -> String { fixtures.appendingPathComponent("models/\(name)").path }

/// The reference outputs of a fixture: its token sequence, `logits` [T, V] and, for GGUF files, `llamacpp_logits`.
struct Expected {
    let tokens: [Int]
    let vocabulary: Int
    let logits: [Float]
    let llamacpp: [Float]?

    init(_ name: String) throws {
        let file = try SafetensorsFile(path: fixtures.appendingPathComponent("expected/\(name).safetensors").path)
        let tokenList = try #require(file.metadata["tokens"], "\(name): no tokens in the expected file's metadata")
        tokens = try tokenList.split(separator: ",").map { try #require(Int($0)) }
        func floats(_ tensor: String) throws -> [Float]? {
            guard let view = file.tensor(tensor) else { return nil }
            try #require(view.dtype == .f32 && view.shape.count == 2)
            return (0..<view.elementCount).map { view.data.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        }
        let view = try #require(file.tensor("logits"), "\(name): no logits")
        #expect(view.shape[0] == tokens.count)
        vocabulary = view.shape[1]
        logits = try #require(try floats("logits"))
        llamacpp = try floats("llamacpp_logits")
    }

    func row(_ i: Int) -> ArraySlice<Float> { logits[(i * vocabulary)..<((i + 1) * vocabulary)] }
}

/// max |Δlogit| against transformers' `logits` (float32 math on the stored weights, dequantized for the GGUF quants),
/// any thread count: measured max 5.5e-6 (qwen2 and qwen2-f32.gguf, threads 1–3; ≤ 2.9e-6 on the f16/bf16 fixtures).
let transformersTolerance: Float = 2e-5

func maxAbsDifference<A: Collection, B: Collection>(_ a: A, _ b: B) -> Float where A.Element == Float, B.Element == Float {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// Logits of every position of `tokens` from a fresh session.
func allLogits(_ model: LanguageModel, _ tokens: [Int], threads: Int = 2, chunkSize: Int = 128,
               capacity: Int? = nil) throws -> [Float] {
    let session = InferenceSession(model: model, pool: ThreadPool(threads: threads), capacity: capacity, chunkSize: chunkSize)
    let out = FloatBuffer(count: tokens.count * model.configuration.vocabSize)
    try session.logits(for: tokens, into: out.pointer)
    #expect(session.position == tokens.count)
    return out.toArray()
}

/// A tensor held in memory, to be written with SafetensorsWriter.
struct OwnedTensor {
    var name: String
    var dtype: DType
    var shape: [Int]
    var bytes: [UInt8]
}

/// Every tensor of a safetensors file, in file order.
func readTensors(_ path: String) throws -> [OwnedTensor] {
    let file = try SafetensorsFile(path: path)
    return try file.tensorNames.map { name in
        let t = try #require(file.tensor(name))
        return OwnedTensor(name: name, dtype: t.dtype, shape: t.shape,
                           bytes: Array(UnsafeRawBufferPointer(start: t.data, count: t.byteCount)))
    }
}

func writeTensors(_ tensors: [OwnedTensor], to path: String) throws {
    var buffers: [UnsafeMutableRawBufferPointer] = []
    defer { buffers.forEach { $0.deallocate() } }
    let entries = tensors.map { t -> TensorBytes in
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: t.bytes.count, alignment: 16)
        buffer.copyBytes(from: t.bytes)
        buffers.append(buffer)
        return .init(name: t.name, dtype: t.dtype, shape: t.shape, bytes: UnsafeRawBufferPointer(buffer))
    }
    try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: path)
}

/// A copy of an HF fixture folder whose model.safetensors was rewritten after `edit`.
func editedCopy(of fixture: String, in folder: TemporaryFolder, _ edit: (inout [OwnedTensor]) throws -> Void) throws -> String {
    let copy = try folder.copy(modelPath(fixture), as: "\(fixture)-\(UUID().uuidString)")
    let weights = (copy as NSString).appendingPathComponent("model.safetensors")
    var tensors = try readTensors(weights)
    try edit(&tensors)
    try writeTensors(tensors, to: weights)
    return copy
}

/// Runs `body` expecting a `ModelError`; returns it (nil, with an issue recorded, if something else happened).
func modelError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> ModelError? {
    do {
        try body()
        Issue.record("expected a ModelError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as ModelError {
        return error
    } catch {
        Issue.record("expected a ModelError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
