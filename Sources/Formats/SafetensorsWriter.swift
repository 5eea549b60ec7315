#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Kernels

/// Writes safetensors files atomically: everything goes to a temporary file beside the destination, which is
/// renamed over it only once complete, so a failure never leaves a half-written file behind.
public struct SafetensorsWriter {
    static let names: [DType: String] = [.f32: "F32", .f16: "F16", .bf16: "BF16"]

    public static func write(_ tensors: [TensorBytes], metadata: [String: String] = [:], to path: String) throws {
        // Header: tensors from the widest element type to the narrowest (as the safetensors library writes them),
        // so that with the JSON padded to a multiple of 8 every tensor starts aligned to its element size.
        let tensors = tensors.enumerated().sorted { a, b in
            a.element.dtype.blockBytes != b.element.dtype.blockBytes
                ? a.element.dtype.blockBytes > b.element.dtype.blockBytes : a.offset < b.offset
        }.map(\.element)
        var entries: [String] = []
        var offset = 0
        for t in tensors {
            guard let dtypeName = names[t.dtype] else {
                throw FormatError.unsupportedDType(file: path, tensor: t.name, dtype: t.dtype.rawValue,
                                                   supported: SafetensorsFile.supportedList)
            }
            try t.checkSize(writing: path)
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append("\(jsonString(t.name)):{\"dtype\":\"\(dtypeName)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
        }
        if !metadata.isEmpty {
            let items = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            entries.insert("\"__metadata__\":{\(items.joined(separator: ","))}", at: 0)
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }

        try writeAtomically(to: path) { handle in
            var length = UInt64(header.count).littleEndian
            try handle.write(contentsOf: Data(bytes: &length, count: 8))
            try handle.write(contentsOf: Data(header))
            for t in tensors where t.bytes.count > 0 {
                try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: t.bytes.baseAddress!),
                                                   count: t.bytes.count, deallocator: .none))
            }
        }
    }
}

/// Where a file or folder for `path` is built before it is renamed into place: hidden, beside it (same file
/// system, so the rename is atomic), and unique to this process.
public func temporaryPath(beside path: String) -> String {
    let url = URL(fileURLWithPath: path)
    return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
}

/// Runs `body` on a temporary file beside `path`, then renames it over `path`; on any error the temporary file is
/// removed and nothing at `path` changes.
public func writeAtomically(to path: String, _ body: (FileHandle) throws -> Void) throws {
    let temporary = temporaryPath(beside: path)
    guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
        throw FormatError.unreadable(file: path, reason: "cannot create \(temporary)")
    }
    do {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
        do {
            try body(handle)
            try handle.synchronize()
            try handle.close()
        } catch {
            try? handle.close()
            throw error
        }
        guard rename(temporary, path) == 0 else {
            throw FormatError.unreadable(file: path, reason: "cannot rename the temporary file: \(String(cString: strerror(errno)))")
        }
    } catch let error as FormatError {
        unlink(temporary)
        throw error
    } catch {
        unlink(temporary)
        throw FormatError.unreadable(file: path, reason: error.localizedDescription)
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
public func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
