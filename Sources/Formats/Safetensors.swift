import Foundation
import Kernels

/// A safetensors file, memory-mapped and validated before any tensor is handed out.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`), then the data
/// area; offsets are relative to the data area. Checked here: N lies inside the file, the JSON is an object of
/// well-formed entries, each dtype is one we compute with, shape product × dtype size equals the span, every span
/// lies inside the data area, spans do not overlap, and no size overflows.
public final class SafetensorsFile: TensorSource, @unchecked Sendable {
    public let path: String
    public let metadata: [String: String]
    public let tensorNames: [String]
    private let mapped: MappedFile
    private let entries: [String: TensorView]

    /// The safetensors names of the dtypes we read, and their byte sizes.
    static let dtypes: [String: DType] = ["F32": .f32, "F16": .f16, "BF16": .bf16]
    static let supportedList = "F32, F16, BF16"

    /// Sanity limit on the JSON header (real headers are well under 10 MB).
    static let maxHeaderBytes = 100 << 20

    public init(path: String) throws {
        self.path = path
        mapped = try MappedFile(path: path)
        var reader = mapped.reader()
        let headerLength = try reader.read(UInt64.self, "the header length")
        guard headerLength <= UInt64(reader.remaining) else {
            throw FormatError.truncated(file: path, detail: "header length \(headerLength) runs past the end of the file (\(mapped.size) bytes)")
        }
        guard headerLength <= UInt64(Self.maxHeaderBytes) else {
            throw FormatError.malformed(file: path, detail: "header length \(headerLength) is implausibly large")
        }
        let header = try reader.bytes(Int(headerLength), "the JSON header")
        let dataStart = reader.offset
        let dataSize = mapped.size - dataStart

        let entriesJSON: [String: HeaderEntry]
        do {
            entriesJSON = try JSONDecoder().decode([String: HeaderEntry].self, from: Data(header))
        } catch {
            throw FormatError.malformed(file: path, detail: "invalid JSON header: \(describeDecodingError(error))")
        }

        var metadata: [String: String] = [:]
        var parsed: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        for (name, entry) in entriesJSON {
            let (dtypeName, shape, offsets): (String, [Int], [Int])
            switch entry {
            case .metadata(let values):
                guard name == "__metadata__" else {
                    throw FormatError.malformed(file: path, detail: "header entry '\(name)' is not a tensor (no dtype)")
                }
                metadata = values
                continue
            case let .tensor(d, s, o):
                guard name != "__metadata__" else {
                    throw FormatError.malformed(file: path, detail: "__metadata__ must map strings to strings")
                }
                (dtypeName, shape, offsets) = (d, s, o)
            }
            guard let dtype = Self.dtypes[dtypeName] else {
                throw FormatError.unsupportedDType(file: path, tensor: name, dtype: dtypeName, supported: Self.supportedList)
            }
            guard shape.allSatisfy({ $0 >= 0 }) else {
                throw FormatError.malformed(file: path, detail: "tensor '\(name)' has a negative dimension in shape \(shape)")
            }
            guard offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw FormatError.malformed(file: path, detail: "tensor '\(name)' has invalid data_offsets \(offsets) (want [begin, end], 0 <= begin <= end)")
            }
            guard let elements = checkedProduct(shape), let bytes = dtype.byteCount(elements: elements) else {
                throw FormatError.shapeMismatch(file: path, tensor: name, detail: "shape \(shape) overflows")
            }
            guard bytes == offsets[1] - offsets[0] else {
                throw FormatError.shapeMismatch(file: path, tensor: name,
                    detail: "shape \(shape) of \(dtypeName) needs \(bytes) bytes but data_offsets span \(offsets[1] - offsets[0])")
            }
            guard offsets[1] <= dataSize else {
                throw FormatError.outOfBounds(file: path, tensor: name,
                    detail: "data_offsets [\(offsets[0]), \(offsets[1])] end past the data area (\(dataSize) bytes)")
            }
            parsed.append((name, dtype, shape, offsets[0], offsets[1]))
        }

        parsed.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        for (previous, next) in zip(parsed, parsed.dropFirst()) where next.begin < previous.end {
            throw FormatError.overlapping(file: path, first: previous.name, second: next.name)
        }

        self.metadata = metadata
        tensorNames = parsed.map(\.name)
        var entries: [String: TensorView] = [:]
        for t in parsed {
            entries[t.name] = TensorView(name: t.name, dtype: t.dtype, shape: t.shape, data: mapped.base + dataStart + t.begin,
                                         byteCount: t.end - t.begin, file: path)
        }
        self.entries = entries
    }

    public func tensor(_ name: String) -> TensorView? { entries[name] }
}

/// One entry of the JSON header: a tensor, or the string map stored under `__metadata__`.
private enum HeaderEntry: Decodable {
    case tensor(dtype: String, shape: [Int], offsets: [Int])
    case metadata([String: String])

    private enum Keys: String, CodingKey { case dtype, shape, data_offsets }

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        if container.contains(.dtype) {
            self = .tensor(dtype: try container.decode(String.self, forKey: .dtype),
                           shape: try container.decode([Int].self, forKey: .shape),
                           offsets: try container.decode([Int].self, forKey: .data_offsets))
        } else if decoder.codingPath.last?.stringValue == "__metadata__" {
            self = .metadata(try decoder.singleValueContainer().decode([String: String].self))
        } else {
            // A tensor entry without its dtype: say so, rather than that its other fields are not strings.
            throw DecodingError.keyNotFound(Keys.dtype, .init(codingPath: decoder.codingPath, debugDescription: "no dtype"))
        }
    }
}

