import Foundation
import Kernels

/// Writes GGUF files (version 3) atomically, with the metadata of an existing GGUF file kept byte for byte —
/// vocabulary, chat template and hyperparameters — and new tensors: what `fuse` needs to give back a GGUF model
/// that llama.cpp and this project load as they loaded the original.
public enum GGUFWriter {
    /// Writes `tensors` (shapes outermost first; bytes as ggml lays them out) after `metadataOf`'s metadata.
    public static func write(_ tensors: [TensorBytes], metadataOf source: GGUFFile, to path: String) throws {
        let typeIDs = Dictionary(uniqueKeysWithValues: GGUFFile.types.map { ($0.value, $0.key) })
        let alignment = source.alignment
        var header = Data()
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { header.append(contentsOf: $0) } }
        append(GGUFFile.magic)
        append(UInt32(3))
        append(UInt64(tensors.count))
        append(UInt64(source.metadataCount))
        header.append(contentsOf: source.rawMetadata)
        var offset = 0
        for t in tensors {
            guard let type = typeIDs[t.dtype] else {
                throw FormatError.unsupportedDType(file: path, tensor: t.name, dtype: t.dtype.rawValue, supported: GGUFFile.supportedList)
            }
            try t.checkSize(writing: path)
            guard (1...4).contains(t.shape.count) else {
                throw FormatError.shapeMismatch(file: path, tensor: t.name, detail: "\(t.shape.count) dimensions (GGUF holds 1 to 4)")
            }
            let name = Array(t.name.utf8)
            append(UInt64(name.count))
            header.append(contentsOf: name)
            append(UInt32(t.shape.count))
            for d in t.shape.reversed() { append(UInt64(d)) }
            append(type)
            append(UInt64(offset))
            offset += padded(t.bytes.count, alignment)
        }
        header.append(contentsOf: [UInt8](repeating: 0, count: padded(header.count, alignment) - header.count))

        try writeAtomically(to: path) { handle in
            try handle.write(contentsOf: header)
            for t in tensors {
                if t.bytes.count > 0 {
                    try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: t.bytes.baseAddress!),
                                                       count: t.bytes.count, deallocator: .none))
                }
                let padding = padded(t.bytes.count, alignment) - t.bytes.count
                if padding > 0 { try handle.write(contentsOf: Data(count: padding)) }
            }
        }
    }

    private static func padded(_ count: Int, _ alignment: Int) -> Int { (count + alignment - 1) / alignment * alignment }
}
