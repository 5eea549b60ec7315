import Foundation
import Testing
import TestSupport
@testable import Formats
import Kernels

// SafetensorsWriter → SafetensorsFile round trips, atomic writes, and every way a file can be rejected.

private struct Sample {
    let name: String
    let dtype: DType
    let shape: [Int]
    let bytes: [UInt8]
}

private func samples() -> [Sample] {
    func bytes(_ count: Int, seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) } }
    return [
        Sample(name: "f32.matrix", dtype: .f32, shape: [2, 3], bytes: [Float]([1, -2, 3.5, 0, .infinity, -0.25]).withUnsafeBytes { Array($0) }),
        Sample(name: "half", dtype: .f16, shape: [3], bytes: bytes(6, seed: 1)),          // 6 bytes: the next one starts unaligned
        Sample(name: "brain", dtype: .bf16, shape: [1, 2, 2], bytes: bytes(8, seed: 2)),
        Sample(name: "empty", dtype: .f32, shape: [0, 5], bytes: []),
        Sample(name: "scalar", dtype: .f32, shape: [], bytes: bytes(4, seed: 3)),
        Sample(name: "quote\"back\\slash\ttab\nnewline\u{01}ctl", dtype: .f16, shape: [2], bytes: bytes(4, seed: 4)),
        Sample(name: "unicode é ✓ 𝄞", dtype: .f32, shape: [1], bytes: bytes(4, seed: 5)),
    ]
}

private func write(_ samples: [Sample], metadata: [String: String] = [:], to path: String) throws {
    // Keep every array alive while the writer reads through the buffers.
    var buffers: [UnsafeMutableRawBufferPointer] = []
    defer { buffers.forEach { $0.deallocate() } }
    var tensors: [TensorBytes] = []
    for s in samples {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: s.bytes.count, alignment: 8)
        buffer.copyBytes(from: s.bytes)
        buffers.append(buffer)
        tensors.append(.init(name: s.name, dtype: s.dtype, shape: s.shape, bytes: UnsafeRawBufferPointer(buffer)))
    }
    try SafetensorsWriter.write(tensors, metadata: metadata, to: path)
}

private func bytes(of view: TensorView) -> [UInt8] {
    Array(UnsafeRawBufferPointer(start: view.data, count: view.byteCount))
}

@Suite("SafetensorsWriter")
struct SafetensorsWriterTests {
    @Test func roundTrip() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("out.safetensors")
        let metadata = ["tokens": "1,2,3", "quote\"key": "value with \\ and \n and é", "empty": ""]
        try write(samples(), metadata: metadata, to: path)
        let file = try SafetensorsFile(path: path)
        #expect(file.metadata == metadata)
        #expect(Set(file.tensorNames) == Set(samples().map(\.name)))
        for s in samples() {
            let view = try #require(file.tensor(s.name), "tensor \(s.name) not read back")
            #expect(view.dtype == s.dtype && view.shape == s.shape && view.name == s.name && view.file == path)
            #expect(view.byteCount == s.bytes.count)
            #expect(bytes(of: view) == s.bytes, "bytes of \(s.name)")
            #expect(view.elementCount == s.shape.reduce(1, *))
        }
        #expect(file.tensor("absent") == nil)
        // Only the file itself is left in the folder.
        #expect(try folder.contents() == ["out.safetensors"])
    }

    @Test func layout() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("a.safetensors")
        try write(Array(samples().prefix(2)), to: path)
        let raw = try readBytes(path)
        let headerLength = Int(raw.get(UInt64.self, at: 0))
        #expect(headerLength % 8 == 0, "the JSON header is padded to a multiple of 8")
        let header = try #require(try JSONSerialization.jsonObject(with: Data(raw[8..<(8 + headerLength)])) as? [String: Any])
        let first = try #require(header["f32.matrix"] as? [String: Any])
        #expect(first["dtype"] as? String == "F32")
        #expect(first["shape"] as? [Int] == [2, 3])
        #expect(first["data_offsets"] as? [Int] == [0, 24])
        let second = try #require(header["half"] as? [String: Any])
        #expect(second["dtype"] as? String == "F16")
        #expect(second["data_offsets"] as? [Int] == [24, 30])
        #expect(header["__metadata__"] == nil, "no metadata entry when there is no metadata")
        #expect(raw.count == 8 + headerLength + 30)
    }

    @Test func floatValuesSurvive() throws {
        let folder = try TemporaryFolder()
        let values: [Float] = (0..<12).map { Float($0) * 0.37 - 2 }
        let path = folder.file("v.safetensors")
        try values.withUnsafeBytes { raw in
            try SafetensorsWriter.write([.init(name: "v", dtype: .f32, shape: [3, 4], bytes: raw)], to: path)
        }
        let file = try SafetensorsFile(path: path) // views are valid while their file is alive
        let view = try #require(file.tensor("v"))
        let back = (0..<12).map { view.data.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        #expect(back == values)
        withExtendedLifetime(file) {}
    }

    @Test func overwritesAtomically() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("out.safetensors")
        try write(Array(samples().prefix(1)), to: path)
        try write(Array(samples().dropFirst().prefix(2)), to: path)
        #expect(try SafetensorsFile(path: path).tensorNames.sorted() == ["brain", "half"])
        #expect(try folder.contents() == ["out.safetensors"])
    }

    @Test func rejectsUnsupportedDTypeWithoutTouchingTheDestination() throws {
        let folder = try TemporaryFolder()
        let path = try folder.write("out.safetensors", [1, 2, 3])
        let block = [UInt8](repeating: 0, count: 34)
        let error = formatError {
            try block.withUnsafeBytes { raw in
                try SafetensorsWriter.write([.init(name: "q", dtype: .q8_0, shape: [32], bytes: raw)], to: path)
            }
        }
        #expect(error?.kind == "unsupportedDType")
        #expect(error?.message.contains("'q'") == true)
        #expect(try readBytes(path) == [1, 2, 3])
        #expect(try folder.contents() == ["out.safetensors"])
    }

    @Test func rejectsShapeMismatchWithoutTouchingTheDestination() throws {
        let folder = try TemporaryFolder()
        let path = try folder.write("out.safetensors", [9])
        let error = formatError {
            try [Float](repeating: 0, count: 5).withUnsafeBytes { raw in
                try SafetensorsWriter.write([.init(name: "w", dtype: .f32, shape: [2, 3], bytes: raw)], to: path)
            }
        }
        #expect(error?.kind == "shapeMismatch")
        #expect(error?.message.contains(path) == true && error?.message.contains("'w'") == true)
        #expect(try readBytes(path) == [9])
        #expect(try folder.contents() == ["out.safetensors"])
        let negative = formatError {
            try SafetensorsWriter.write([.init(name: "n", dtype: .f32, shape: [-1, 0], bytes: UnsafeRawBufferPointer(start: nil, count: 0))], to: path)
        }
        #expect(negative?.kind == "shapeMismatch")
    }

    @Test func failureInsideTheWriteLeavesNothingBehind() throws {
        struct Boom: Error {}
        let folder = try TemporaryFolder()
        let path = try folder.write("out.bin", [7, 7])
        let error = formatError {
            try writeAtomically(to: path) { handle in
                try handle.write(contentsOf: Data([1, 2, 3]))
                throw Boom()
            }
        }
        #expect(error?.kind == "unreadable" && error?.message.contains(path) == true)
        #expect(try readBytes(path) == [7, 7], "the destination must be untouched")
        #expect(try folder.contents() == ["out.bin"], "the temporary file must be removed")
        // And a FormatError thrown inside comes out as itself.
        let inner = formatError {
            try writeAtomically(to: path) { _ in throw FormatError.malformed(file: "x", detail: "inner") }
        }
        #expect(inner == .malformed(file: "x", detail: "inner"))
        #expect(try folder.contents() == ["out.bin"])
    }

    @Test func unwritableDestination() throws {
        let folder = try TemporaryFolder()
        let path = folder.url.appendingPathComponent("no-such-folder/out.safetensors").path
        let error = formatError { try write(Array(samples().prefix(1)), to: path) }
        #expect(error?.kind == "unreadable" && error?.message.contains(path) == true)
        #expect(try folder.contents().isEmpty)
    }

    @Test func jsonStringEscapes() throws {
        for s in ["plain", "q\"uote", "back\\slash", "\n\r\t", "\u{00}\u{1F}", "é✓𝄞", ""] {
            let literal = jsonString(s)
            let decoded = try JSONDecoder().decode(String.self, from: Data(literal.utf8))
            #expect(decoded == s, "\(literal)")
        }
    }
}

// MARK: - Rejections

@Suite("SafetensorsFile rejects")
struct SafetensorsRejectTests {
    let folder: TemporaryFolder
    init() throws { folder = try TemporaryFolder() }

    /// Writes `bytes`, opens it, and checks the error's kind and that its message names the file (and `tensor`).
    private func expectRejected(_ bytes: [UInt8], kind: String, tensor: String? = nil, mentioning words: [String] = [],
                                sourceLocation: SourceLocation = #_sourceLocation) throws {
        let path = try folder.write("bad-\(UUID().uuidString).safetensors", bytes)
        guard let error = formatError(sourceLocation, { _ = try SafetensorsFile(path: path) }) else { return }
        #expect(error.kind == kind, "\(error.message)", sourceLocation: sourceLocation)
        #expect(error.message.contains(path), "the message must name the file: \(error.message)", sourceLocation: sourceLocation)
        if let tensor {
            #expect(error.message.contains("'\(tensor)'"), "the message must name the tensor: \(error.message)",
                    sourceLocation: sourceLocation)
        }
        for word in words {
            #expect(error.message.contains(word), "expected '\(word)' in: \(error.message)", sourceLocation: sourceLocation)
        }
        #expect(!error.message.contains("\n"), "one line: \(error.message)", sourceLocation: sourceLocation)
    }

    private let eight = [UInt8](repeating: 0, count: 8)

    @Test func emptyFile() throws { try expectRejected([], kind: "truncated", mentioning: ["empty"]) }

    @Test func shorterThanTheLengthField() throws {
        for n in 1..<8 { try expectRejected([UInt8](repeating: 1, count: n), kind: "truncated", mentioning: ["header length"]) }
    }

    @Test func headerLengthPastTheEnd() throws {
        var bytes = rawSafetensors("{}", data: [])
        bytes.put(UInt64(3), at: 0)
        try expectRejected(bytes, kind: "truncated", mentioning: ["header length 3"])
        bytes.put(UInt64.max, at: 0)
        try expectRejected(bytes, kind: "truncated")
        bytes.put(UInt64(1) << 63, at: 0)
        try expectRejected(bytes, kind: "truncated")
    }

    @Test func headerNotJSON() throws {
        try expectRejected(rawSafetensors("{\"a\": ", data: []), kind: "malformed", mentioning: ["JSON"])
        try expectRejected(rawSafetensors("\u{FF}garbage", data: []), kind: "malformed", mentioning: ["JSON"])
        try expectRejected(rawSafetensors("", data: []), kind: "malformed", mentioning: ["JSON"])
    }

    @Test func headerNotAnObject() throws {
        try expectRejected(rawSafetensors("[1, 2]", data: []), kind: "malformed", mentioning: ["object"])
        try expectRejected(rawSafetensors("\"text\"", data: []), kind: "malformed")
        try expectRejected(rawSafetensors("{\"w\": 5}", data: []), kind: "malformed", mentioning: ["'w'"])
    }

    @Test func entryWithoutDType() throws {
        try expectRejected(rawSafetensors(#"{"w": {"shape": [1], "data_offsets": [0, 4]}}"#, data: [0, 0, 0, 0]),
                           kind: "malformed", mentioning: ["'w'", "dtype"])
        try expectRejected(rawSafetensors(#"{"w": {"note": "no dtype here"}}"#, data: []),
                           kind: "malformed", mentioning: ["'w'", "dtype"])
    }

    @Test func entryWithoutShapeOrOffsets() throws {
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "data_offsets": [0, 4]}}"#, data: [0, 0, 0, 0]),
                           kind: "malformed", mentioning: ["'w'", "shape"])
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [1]}}"#, data: [0, 0, 0, 0]),
                           kind: "malformed", mentioning: ["'w'", "data_offsets"])
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}"#, data: eight),
                           kind: "malformed", mentioning: ["w"])
    }

    @Test func unknownDTypeString() throws {
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}"#, data: [0, 0, 0, 0]),
                           kind: "unsupportedDType", tensor: "w", mentioning: ["F33", "F32, F16, BF16"])
    }

    @Test func knownButUnsupportedDType() throws {
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}"#, data: eight),
                           kind: "unsupportedDType", tensor: "w", mentioning: ["I64"])
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}}"#, data: eight),
                           kind: "unsupportedDType", tensor: "w", mentioning: ["F8_E4M3"])
    }

    @Test func negativeDimension() throws {
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}}"#, data: eight),
                           kind: "malformed", tensor: "w", mentioning: ["negative"])
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [-2, -1], "data_offsets": [0, 8]}}"#, data: eight),
                           kind: "malformed", tensor: "w")
    }

    @Test func shapeTimesDTypeIsNotTheSpan() throws {
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, data: eight),
                           kind: "shapeMismatch", tensor: "w", mentioning: ["12", "8"])
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 4]}}"#, data: eight),
                           kind: "shapeMismatch", tensor: "w")
        // Products that overflow are a mismatch too, not a trap.
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}"#, data: eight),
                           kind: "shapeMismatch", tensor: "w", mentioning: ["overflow"])
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F16", "shape": [4611686018427387904], "data_offsets": [0, 8]}}"#, data: eight),
                           kind: "shapeMismatch", tensor: "w")
    }

    @Test func spanPastTheDataArea() throws {
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}"#, data: eight),
                           kind: "outOfBounds", tensor: "w", mentioning: ["12"])
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}"#, data: eight),
                           kind: "outOfBounds", tensor: "w")
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [0], "data_offsets": [9, 9]}}"#, data: eight),
                           kind: "outOfBounds", tensor: "w")
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [9223372036854775800, 9223372036854775807]}}"#, data: eight),
                           kind: "shapeMismatch", tensor: "w")
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [9223372036854775799, 9223372036854775807]}}"#, data: eight),
                           kind: "outOfBounds", tensor: "w")
    }

    @Test func beginAfterEnd() throws {
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}}"#, data: eight),
                           kind: "malformed", tensor: "w", mentioning: ["data_offsets"])
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}"#, data: eight),
                           kind: "malformed", tensor: "w")
        try expectRejected(rawSafetensors(#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}"#, data: eight),
                           kind: "malformed", tensor: "w")
    }

    @Test func overlappingSpans() throws {
        let header = #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#
        try expectRejected(rawSafetensors(header, data: eight), kind: "overlapping", mentioning: ["'a'", "'b'"])
        let same = #"{"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#
        try expectRejected(rawSafetensors(same, data: eight), kind: "overlapping", mentioning: ["'a'", "'b'"])
    }

    @Test func metadataMustMapStringsToStrings() throws {
        try expectRejected(rawSafetensors(#"{"__metadata__": {"format": 1}}"#, data: []),
                           kind: "malformed", mentioning: ["__metadata__", "format"])
        try expectRejected(rawSafetensors(#"{"__metadata__": {"nested": {"a": "b"}}}"#, data: []),
                           kind: "malformed", mentioning: ["__metadata__"])
        try expectRejected(rawSafetensors(#"{"__metadata__": ["a"]}"#, data: []), kind: "malformed", mentioning: ["__metadata__"])
        try expectRejected(rawSafetensors(#"{"__metadata__": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, data: eight),
                           kind: "malformed", mentioning: ["__metadata__"])
    }

    @Test func acceptsWhatTheFormatAllows() throws {
        // Metadata only; an empty object; trailing spaces in the header; bytes after the last tensor; tensors not
        // in offset order.
        for (header, data) in [
            (#"{"__metadata__": {"a": "b"}}"#, [UInt8]()),
            ("{}", []),
            ("{}      ", []),
            (#"{"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}"#, eight),
            (#"{"b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, eight),
        ] {
            let path = try folder.write("ok-\(UUID().uuidString).safetensors", rawSafetensors(header, data: data))
            #expect(throws: Never.self) { _ = try SafetensorsFile(path: path) }
        }
    }

    @Test func missingFileAndFolder() throws {
        let missing = folder.file("nope.safetensors")
        let error = formatError { _ = try SafetensorsFile(path: missing) }
        #expect(error?.kind == "unreadable" && error?.message.contains(missing) == true)
        let directory = formatError { _ = try SafetensorsFile(path: folder.path) }
        #expect(directory?.kind == "unreadable" && directory?.message.contains(folder.path) == true)
    }

    /// Every prefix of a real file is rejected with an error naming the file, never a crash: each byte of the first
    /// 100, then a spread over the rest.
    @Test func truncationsOfAFixture() throws {
        let original = try readBytes(fixture("llama-gqa/model.safetensors"))
        var lengths = Array(0..<100)
        for i in 0..<60 { lengths.append(100 + (original.count - 101) * i / 59) }
        lengths.append(original.count - 1)
        let path = folder.file("truncated.safetensors")
        for n in Set(lengths).sorted() {
            try Data(original[0..<n]).write(to: URL(fileURLWithPath: path))
            do {
                _ = try SafetensorsFile(path: path)
                Issue.record("a file truncated to \(n) of \(original.count) bytes was accepted")
            } catch let error as FormatError {
                #expect(error.message.contains(path), "\(n) bytes: \(error.message)")
            }
        }
        // The whole file is fine.
        try Data(original).write(to: URL(fileURLWithPath: path))
        #expect(try SafetensorsFile(path: path).tensorNames.count == 21)
    }
}
