/// Token id by the exact bytes of a piece.
///
/// Swift `String`s compare and hash by canonical equivalence, so a `[String: Int]` vocabulary finds "é" when asked
/// for "e\u{301}" — a different token in SentencePiece vocabularies. Pieces are therefore looked up by their UTF-8
/// bytes. The keys point into one buffer the table owns; lookups take a span of any buffer (the text being
/// encoded), so finding a piece allocates nothing.
final class PieceTable: @unchecked Sendable {
    private let storage: UnsafeMutableRawBufferPointer
    private var ids: [ByteSpan: Int32] = [:]

    /// Bytes of all pieces together: below 4 GiB, so that token spellings can be packed with 32-bit offsets.
    let byteCount: Int

    /// `pieces[i]` is token i's text. A piece that appears twice keeps its first id. `file` and `key` name where the
    /// pieces come from, for the error when they are too large.
    init(_ pieces: [String], file: String, key: String) throws {
        let total = pieces.reduce(0) { $0 + $1.utf8.count }
        guard total <= Int(UInt32.max) else {
            throw TokenizerError.invalid(file: file, key: key, detail: "the token texts take \(total) bytes (at most 4 GiB allowed)")
        }
        byteCount = total
        storage = .allocate(byteCount: max(1, total), alignment: 1)
        ids.reserveCapacity(pieces.count)
        var offset = 0
        for (i, piece) in pieces.enumerated() {
            let n = piece.utf8.count
            let span = UnsafeRawBufferPointer(rebasing: storage[offset..<(offset + n)])
            _ = piece.utf8.withContiguousStorageIfAvailable { src in
                UnsafeMutableRawBufferPointer(rebasing: storage[offset..<(offset + n)]).copyMemory(from: UnsafeRawBufferPointer(src))
            } ?? {
                for (k, b) in piece.utf8.enumerated() { storage[offset + k] = b }
            }()
            offset += n
            let key = ByteSpan(span)
            if ids[key] == nil { ids[key] = Int32(i) }
        }
    }

    deinit { storage.deallocate() }

    func id(_ bytes: UnsafeRawBufferPointer) -> Int32? { ids[ByteSpan(bytes)] }

    func id(_ text: String) -> Int32? {
        var text = text
        return text.withUTF8 { id(UnsafeRawBufferPointer($0)) }
    }

    func id(_ bytes: [UInt8]) -> Int32? { bytes.withUnsafeBytes { id($0) } }
}

/// Bytes compared and hashed by content (the memory belongs to someone else).
struct ByteSpan: Hashable, @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    static func == (a: ByteSpan, b: ByteSpan) -> Bool {
        a.bytes.count == b.bytes.count && (a.bytes.count == 0 || memcmp(a.bytes.baseAddress!, b.bytes.baseAddress!, a.bytes.count) == 0)
    }

    func hash(into hasher: inout Hasher) { hasher.combine(bytes: bytes) }
}

#if canImport(Glibc)
import Glibc
#endif
