import Foundation
import Testing
import TestSupport
@testable import Formats
import Kernels

// Fixture paths, temporary folders, byte patching and a small independent GGUF header parser for the format tests.

/// Tests/Fixtures, found from this file's path (Tests/FormatsTests/Support.swift).
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")
let modelsFolder = fixtures.appendingPathComponent("models")

func fixture(_ relative: String) -> String { modelsFolder.appendingPathComponent(relative).path }

extension Array where Element == UInt8 {
    /// Writes `value` little-endian at `offset`.
    mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        for i in 0..<MemoryLayout<T>.size { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    /// Reads a little-endian `T` at `offset`.
    func get<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value |= T(truncatingIfNeeded: self[offset + i]) << (8 * i) }
        return value
    }
}

/// A safetensors file from a header written by hand: 8-byte length, the JSON, the data.
func rawSafetensors(_ header: String, data: [UInt8]) -> [UInt8] {
    let json = Array(header.utf8)
    var bytes = [UInt8](repeating: 0, count: 8)
    bytes.put(UInt64(json.count), at: 0)
    return bytes + json + data
}

/// Runs `body` expecting a `FormatError`; returns it (nil, with an issue recorded, if something else happened).
func formatError(_ sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> FormatError? {
    do {
        try body()
        Issue.record("expected a FormatError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as FormatError {
        return error
    } catch {
        Issue.record("expected a FormatError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

extension FormatError {
    /// The case name, for comparing kinds without the details.
    var kind: String {
        switch self {
        case .unreadable: return "unreadable"
        case .truncated: return "truncated"
        case .malformed: return "malformed"
        case .unsupportedDType: return "unsupportedDType"
        case .shapeMismatch: return "shapeMismatch"
        case .outOfBounds: return "outOfBounds"
        case .overlapping: return "overlapping"
        case .missingTensor: return "missingTensor"
        }
    }

    var message: String { errorDescription ?? "" }
}

// MARK: - An independent GGUF header parser (for finding the bytes to patch)

/// Where every field of a GGUF header lies, parsed here without the library so that the tests can patch bytes at
/// computed offsets.
struct GGUFLayout {
    struct KeyValue {
        let key: String
        let keyOffset: Int        // the key's UInt64 length
        let typeOffset: Int       // UInt32 value type
        let valueOffset: Int      // the value (for strings: its UInt64 length; for arrays: element type)
        let type: UInt32
        let stringValue: String?
        let arrayCount: Int?
    }

    struct TensorInfo {
        let name: String
        let infoOffset: Int       // the name's UInt64 length
        let dimensionCountOffset: Int
        let dimensionOffsets: [Int]
        let typeOffset: Int
        let offsetOffset: Int
        let dimensions: [Int]     // ggml order: ne[0] (row length) first
        let type: UInt32
        let offset: Int           // relative to the data area
    }

    var version: UInt32 = 0
    var tensorCountOffset = 8, keyValueCountOffset = 16
    var keyValues: [KeyValue] = []
    var tensors: [TensorInfo] = []
    /// End of the tensor infos.
    var infosEnd = 0
    var alignment = 32
    var dataStart = 0
    /// End of the last tensor's bytes (the file may be padded beyond).
    var dataEnd = 0

    /// ggml block sizes: (elements, bytes) for the types the fixtures use.
    static let typeSizes: [UInt32: (Int, Int)] = [0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 8: (32, 34), 30: (1, 2)]

    init(_ b: [UInt8]) {
        var o = 0
        func u32() -> UInt32 { defer { o += 4 }; return b.get(UInt32.self, at: o) }
        func u64() -> Int { defer { o += 8 }; return Int(b.get(UInt64.self, at: o)) }
        func string() -> String {
            let n = u64()
            defer { o += n }
            return String(decoding: b[o..<(o + n)], as: UTF8.self)
        }
        func skip(_ type: UInt32) {
            switch type {
            case 0, 1, 7: o += 1
            case 2, 3: o += 2
            case 4, 5, 6: o += 4
            case 10, 11, 12: o += 8
            case 8: _ = string()
            case 9:
                let element = u32()
                let n = u64()
                for _ in 0..<n { skip(element) }
            default: fatalError("unknown GGUF value type \(type) in a fixture")
            }
        }
        precondition(u32() == 0x4655_4747)
        version = u32()
        let tensorCount = u64(), kvCount = u64()
        for _ in 0..<kvCount {
            let keyOffset = o
            let key = string()
            let typeOffset = o
            let type = u32()
            let valueOffset = o
            var s: String?
            var count: Int?
            if type == 8 {
                s = string()
            } else if type == 9 {
                o = valueOffset + 4
                count = Int(b.get(UInt64.self, at: o))
                o = valueOffset
                skip(9)
            } else {
                skip(type)
            }
            keyValues.append(KeyValue(key: key, keyOffset: keyOffset, typeOffset: typeOffset, valueOffset: valueOffset,
                                      type: type, stringValue: s, arrayCount: count))
            if key == "general.alignment" { alignment = Int(b.get(UInt32.self, at: valueOffset)) }
        }
        for _ in 0..<tensorCount {
            let infoOffset = o
            let name = string()
            let dimensionCountOffset = o
            let n = Int(u32())
            var dimensionOffsets: [Int] = [], dimensions: [Int] = []
            for _ in 0..<n { dimensionOffsets.append(o); dimensions.append(u64()) }
            let typeOffset = o
            let type = u32()
            let offsetOffset = o
            let offset = u64()
            tensors.append(TensorInfo(name: name, infoOffset: infoOffset, dimensionCountOffset: dimensionCountOffset,
                                      dimensionOffsets: dimensionOffsets, typeOffset: typeOffset,
                                      offsetOffset: offsetOffset, dimensions: dimensions, type: type, offset: offset))
        }
        infosEnd = o
        dataStart = (o + alignment - 1) / alignment * alignment
        dataEnd = dataStart + tensors.map { $0.offset + Self.byteCount($0) }.max()!
    }

    static func byteCount(_ t: TensorInfo) -> Int {
        let (elements, bytes) = typeSizes[t.type]!
        return t.dimensions.reduce(1, *) / elements * bytes
    }

    func keyValue(_ key: String) -> KeyValue { keyValues.first { $0.key == key }! }
    func tensor(_ name: String) -> TensorInfo { tensors.first { $0.name == name }! }
}
