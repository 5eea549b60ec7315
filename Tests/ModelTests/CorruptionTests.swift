import Foundation
import Testing
import TestSupport
import Formats
import Kernels
@testable import Model

// Seeded random corruptions of real fixtures: loading either fails with an error or gives a model that runs. Nothing
// may crash (a crash takes the whole test process down, so any trap shows up as a failed run).

/// SplitMix64, so every run corrupts the same bytes.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Header bytes of a fixture: everything before the tensor data.
private func headerLength(_ bytes: [UInt8], gguf: Bool) -> Int {
    if gguf {
        // Up to the first tensor's data: the tensor infos end well before 8 KiB in every fixture.
        return min(bytes.count, 8192)
    }
    var n = 0
    for i in 0..<8 { n |= Int(bytes[i]) << (8 * i) }
    return 8 + n
}

@Suite("Corrupted files")
struct CorruptionTests {
    /// Corrupts `fixture` (`relative` in its folder, or the GGUF file) `iterations` times; returns how many loaded
    /// and ran, and how many were refused with an error naming the file.
    private func fuzz(_ fixture: String, file relative: String?, iterations: Int, seed: UInt64) throws -> (loaded: Int, rejected: Int) {
        let folder = try TemporaryFolder()
        let isGGUF = relative == nil
        let target: String, modelPathToLoad: String
        if let relative {
            let copy = try folder.copy(modelPath(fixture), as: "model")
            target = copy + "/" + relative
            modelPathToLoad = copy
        } else {
            target = folder.file("model.gguf")
            try FileManager.default.copyItem(atPath: modelPath(fixture), toPath: target)
            modelPathToLoad = target
        }
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: target)))
        let header = relative == "config.json" ? original.count : headerLength(original, gguf: isGGUF)
        var g = SeededGenerator(state: seed)
        var loaded = 0, rejected = 0
        for _ in 0..<iterations {
            var bytes = original
            // 1–4 edits: a random byte, a digit in JSON, or a whole little-endian word of a random size.
            for _ in 0..<Int.random(in: 1...4, using: &g) {
                let at = Int.random(in: 0..<header, using: &g)
                switch Int.random(in: 0..<4, using: &g) {
                case 0: bytes[at] = UInt8.random(in: 0...255, using: &g)
                case 1: bytes[at] = UInt8(ascii: "0") + UInt8.random(in: 0...9, using: &g)
                case 2:
                    let width = [1, 2, 4, 8].randomElement(using: &g)!
                    let value = [0, 1, 31, 32, 255, UInt64(Int32.max), UInt64.max, g.next()].randomElement(using: &g)!
                    for i in 0..<width where at + i < header { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
                default:
                    bytes[at] ^= 1 << UInt8.random(in: 0...7, using: &g)
                }
            }
            try Data(bytes).write(to: URL(fileURLWithPath: target))
            do {
                let model = try LanguageModel.load(path: modelPathToLoad)
                loaded += 1
                let v = model.configuration.vocabSize
                let session = InferenceSession(model: model, pool: ThreadPool(threads: 1), capacity: 4)
                let out = FloatBuffer(count: 3 * v)
                try session.logits(for: [0, 1 % v, 2 % v], into: out.pointer)
            } catch let error as FormatError {
                rejected += 1
                #expect(error.errorDescription?.contains(folder.path) == true, "\(error)")
            } catch let error as ModelError {
                rejected += 1
                #expect(error.errorDescription?.contains(folder.path) == true, "\(error)")
            }
        }
        return (loaded, rejected)
    }

    // The counts are what these seeds give (measured): a change means the readers now accept or refuse other bytes.

    @Test func ggufHeaders() throws {
        #expect(try fuzz("llama-q4_0.gguf", file: nil, iterations: 400, seed: 1) == (97, 303))
        #expect(try fuzz("qwen2-f32.gguf", file: nil, iterations: 200, seed: 2) == (68, 132))
    }

    @Test func safetensorsHeaders() throws {
        #expect(try fuzz("llama-gqa", file: "model.safetensors", iterations: 400, seed: 3) == (0, 400))
    }

    @Test func configFiles() throws {
        #expect(try fuzz("qwen2", file: "config.json", iterations: 300, seed: 4) == (28, 272))
    }
}
