import Foundation
import Kernels

/// A GGUF file (versions 2 and 3), memory-mapped and validated: header, metadata, tensor infos, alignment, and that
/// every tensor's bytes lie inside the data area without overlapping another's.
///
/// GGUF lists a tensor's dimensions innermost first (ne[0] is the row length); `TensorView.shape` gives them
/// outermost first, like PyTorch, so a Linear weight is [out, in] from either format with the same bytes.
public final class GGUFFile: TensorSource, @unchecked Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensorNames: [String]
    public let alignment: Int
    /// The metadata section as stored (its entries, in file order), for writers that keep it verbatim.
    public let rawMetadata: UnsafeRawBufferPointer
    public let metadataCount: Int

    private let mapped: MappedFile
    /// Where the tensor data begins: everything before is header, metadata and tensor infos.
    private let dataStart: Int
    private let entries: [String: TensorView]

    /// ggml type ids of the types we compute with.
    static let types: [UInt32: DType] = [0: .f32, 1: .f16, 2: .q4_0, 3: .q4_1, 8: .q8_0, 30: .bf16]
    /// Names of the other ggml types, for messages.
    static let otherTypeNames: [UInt32: String] = [
        6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
        16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
        23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0",
        39: "MXFP4",
    ]
    static let supportedList = "F32, F16, BF16, Q8_0, Q4_0, Q4_1"
    static let magic: UInt32 = 0x4655_4747 // "GGUF" read little-endian

    public init(path: String) throws {
        self.path = path
        mapped = try MappedFile(path: path)
        var r = mapped.reader()
        guard try r.read(UInt32.self, "the magic") == Self.magic else {
            throw FormatError.malformed(file: path, detail: "not a GGUF file (bad magic)")
        }
        version = try r.read(UInt32.self, "the version")
        guard version == 2 || version == 3 else {
            throw FormatError.malformed(file: path, detail: "GGUF version \(version) is not supported (2 and 3 are)")
        }
        let tensorCount = try r.read(UInt64.self, "the tensor count")
        let kvCount = try r.read(UInt64.self, "the metadata count")
        // Each metadata entry and tensor info takes at least 8 bytes: a count beyond that is corrupt, not large.
        guard tensorCount <= UInt64(r.remaining / 8), kvCount <= UInt64(r.remaining / 8) else {
            throw FormatError.truncated(file: path, detail: "\(tensorCount) tensors and \(kvCount) metadata entries cannot fit in \(mapped.size) bytes")
        }

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        let metadataStart = r.offset
        for _ in 0..<Int(kvCount) {
            let key = try Self.readString(&r, path: path, "a metadata key")
            let type = try r.read(UInt32.self, "the type of '\(key)'")
            metadata[key] = try Self.readValue(&r, type: type, path: path, key: key, depth: 0)
            keys.append(key)
        }
        self.metadata = metadata
        metadataKeys = keys
        rawMetadata = UnsafeRawBufferPointer(start: mapped.base + metadataStart, count: r.offset - metadataStart)
        metadataCount = Int(kvCount)

        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard let a = value.intValue, a > 0, a <= 1 << 20, a & (a - 1) == 0 else {
                throw FormatError.malformed(file: path, detail: "general.alignment must be a power of two, not \(value)")
            }
            alignment = a
        }
        self.alignment = alignment

        var infos: [(name: String, dtype: DType, shape: [Int], offset: Int, bytes: Int)] = []
        var seen = Set<String>()
        for _ in 0..<Int(tensorCount) {
            let name = try Self.readString(&r, path: path, "a tensor name")
            guard seen.insert(name).inserted else {
                throw FormatError.malformed(file: path, detail: "tensor '\(name)' is listed twice")
            }
            let dimensionCount = try r.read(UInt32.self, "the dimension count of '\(name)'")
            guard (1...4).contains(dimensionCount) else {
                throw FormatError.shapeMismatch(file: path, tensor: name, detail: "\(dimensionCount) dimensions (1 to 4 allowed)")
            }
            var ne: [Int] = []
            for _ in 0..<dimensionCount {
                let d = try r.read(UInt64.self, "a dimension of '\(name)'")
                guard d <= UInt64(Int32.max) else {
                    throw FormatError.shapeMismatch(file: path, tensor: name, detail: "dimension \(d) is too large")
                }
                ne.append(Int(d))
            }
            let typeID = try r.read(UInt32.self, "the type of '\(name)'")
            guard let dtype = Self.types[typeID] else {
                let typeName = Self.otherTypeNames[typeID].map { "\($0) (ggml type \(typeID))" } ?? "ggml type \(typeID)"
                throw FormatError.unsupportedDType(file: path, tensor: name, dtype: typeName, supported: Self.supportedList)
            }
            let offset = try r.read(UInt64.self, "the offset of '\(name)'")
            guard let rowBytes = dtype.byteCount(elements: ne[0]) else {
                throw FormatError.shapeMismatch(file: path, tensor: name,
                    detail: "row length \(ne[0]) is not a multiple of \(dtype.blockElements) as \(dtype) requires")
            }
            guard let rows = checkedProduct(Array(ne.dropFirst())),
                  case let (bytes, false) = rowBytes.multipliedReportingOverflow(by: rows) else {
                throw FormatError.shapeMismatch(file: path, tensor: name, detail: "shape \(ne) overflows")
            }
            guard offset <= UInt64(Int.max / 2) else {
                throw FormatError.outOfBounds(file: path, tensor: name, detail: "offset \(offset) is past the end of the file")
            }
            guard Int(offset) % alignment == 0 else {
                throw FormatError.malformed(file: path, detail: "tensor '\(name)': offset \(offset) is not a multiple of the alignment \(alignment)")
            }
            infos.append((name, dtype, ne.reversed(), Int(offset), bytes))
        }

        let dataStart = (r.offset + alignment - 1) / alignment * alignment
        self.dataStart = dataStart
        let dataSize = max(0, mapped.size - dataStart)
        for t in infos where t.offset > dataSize || t.bytes > dataSize - t.offset {
            throw FormatError.outOfBounds(file: path, tensor: t.name,
                detail: "bytes [\(t.offset), \(t.offset + t.bytes)) end past the data area (\(dataSize) bytes)")
        }
        let ordered = infos.sorted { ($0.offset, $0.bytes) < ($1.offset, $1.bytes) }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where next.offset < previous.offset + previous.bytes {
            throw FormatError.overlapping(file: path, first: previous.name, second: next.name)
        }

        tensorNames = infos.map(\.name)
        var entries: [String: TensorView] = [:]
        for t in infos {
            entries[t.name] = TensorView(name: t.name, dtype: t.dtype, shape: t.shape, data: mapped.base + dataStart + t.offset,
                                         byteCount: t.bytes, file: path)
        }
        self.entries = entries
    }

    public func tensor(_ name: String) -> TensorView? { entries[name] }

    /// Gives back the resident pages of everything before the tensor data (the metadata, megabytes with a
    /// vocabulary), for when the configuration and tokenizer have been read from it. Reading the metadata afterwards
    /// still works: its pages come back from the file.
    public func releaseMetadataPages() { mapped.releasePages(before: dataStart) }

    // MARK: Reading values

    private static func readString(_ r: inout ByteReader, path: String, _ what: String) throws -> String {
        let length = try r.read(UInt64.self, "the length of \(what)")
        guard length <= UInt64(r.remaining) else {
            throw FormatError.truncated(file: path, detail: "\(what) of \(length) bytes at offset \(r.offset) runs past the end (\(r.file.size) bytes)")
        }
        let bytes = try r.bytes(Int(length), what)
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw FormatError.malformed(file: path, detail: "\(what) at offset \(r.offset - Int(length)) is not valid UTF-8")
        }
        return s
    }

    /// Bytes a value of a fixed-size type takes, or nil for strings and arrays.
    private static func fixedSize(_ type: UInt32) -> Int? {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 10, 11, 12: return 8
        default: return nil
        }
    }

    private static func readValue(_ r: inout ByteReader, type: UInt32, path: String, key: String, depth: Int) throws -> GGUFValue {
        let what = "the value of '\(key)'"
        switch type {
        case 0: return .uint(UInt64(try r.read(UInt8.self, what)))
        case 1: return .int(Int64(try r.read(Int8.self, what)))
        case 2: return .uint(UInt64(try r.read(UInt16.self, what)))
        case 3: return .int(Int64(try r.read(Int16.self, what)))
        case 4: return .uint(UInt64(try r.read(UInt32.self, what)))
        case 5: return .int(Int64(try r.read(Int32.self, what)))
        case 6: return .float(Double(Float(bitPattern: try r.read(UInt32.self, what))))
        case 7:
            let b = try r.read(UInt8.self, what)
            guard b <= 1 else { throw FormatError.malformed(file: path, detail: "'\(key)' holds \(b), not a boolean") }
            return .bool(b == 1)
        case 8: return .string(try readString(&r, path: path, what))
        case 9:
            guard depth < 4 else { throw FormatError.malformed(file: path, detail: "'\(key)' nests arrays too deeply") }
            let elementType = try r.read(UInt32.self, "the element type of '\(key)'")
            let count = try r.read(UInt64.self, "the length of '\(key)'")
            let minimum = fixedSize(elementType) ?? 8
            guard count <= UInt64(r.remaining / minimum) else {
                throw FormatError.truncated(file: path, detail: "'\(key)' declares \(count) elements, more than the file holds")
            }
            let n = Int(count)
            // Large arrays (a vocabulary: tens of thousands of strings and scores) stay in the mapped file and are
            // decoded as they are read (GGUFArray).
            if let size = fixedSize(elementType) {
                guard let kind = GGUFArray.ScalarKind(type: elementType) else {
                    throw FormatError.malformed(file: path, detail: "'\(key)' has unknown element type \(elementType)")
                }
                let start = r.offset
                _ = try r.bytes(n * size, "the elements of '\(key)'")
                if kind == .bool, let bad = (0..<n).first(where: { r.file.base.load(fromByteOffset: start + $0, as: UInt8.self) > 1 }) {
                    throw FormatError.malformed(file: path, detail: "'\(key)' element \(bad) is not a boolean")
                }
                return .array(GGUFArray(scalars: kind, file: r.file, start: start, count: n))
            }
            if elementType == 8 {
                let start = r.offset
                for _ in 0..<n { _ = try readString(&r, path: path, "an element of '\(key)'") }
                return .array(GGUFArray(strings: r.file, start: start, end: r.offset, count: n))
            }
            var values: [GGUFValue] = []
            for _ in 0..<n {
                values.append(try readValue(&r, type: elementType, path: path, key: key, depth: depth + 1))
            }
            return .array(GGUFArray(values: values))
        case 10: return .uint(try r.read(UInt64.self, what))
        case 11: return .int(try r.read(Int64.self, what))
        case 12: return .float(Double(bitPattern: try r.read(UInt64.self, what)))
        default:
            throw FormatError.malformed(file: path, detail: "'\(key)' has unknown value type \(type)")
        }
    }
}
