#if canImport(Glibc)
import Glibc
#endif

/// The vocabulary's pieces by id, and token id by the exact bytes of a piece.
///
/// Swift `String`s compare and hash by canonical equivalence, so a `[String: Int]` vocabulary finds "é" when asked
/// for "e\u{301}" — a different token in SentencePiece vocabularies. Pieces are therefore looked up by their UTF-8
/// bytes. All pieces live in one buffer, in id order, and the index is an open-addressing table of token ids
/// (linear probing, at most half full): ~1 MiB for a 49k vocabulary, where `[String]` plus a dictionary keyed by
/// byte spans took ~2.5 MiB. Lookups take a span of any buffer (the text being encoded), so finding a piece
/// allocates nothing.
final class PieceTable: @unchecked Sendable {
    private let storage: UnsafeMutableRawBufferPointer
    /// Piece i is `storage[ends[i - 1]..<ends[i]]`.
    private let ends: [UInt32]
    /// Token id or -1 (empty), a power-of-two count at least twice the number of pieces.
    private let slots: [Int32]
    /// Bytes of all pieces together: below 4 GiB, so that token spellings can be packed with 32-bit offsets.
    let byteCount: Int

    /// `pieces[i]` is token i's text. A piece that appears twice keeps its first id. `file` and `key` name where the
    /// pieces come from, for the error when they are too large.
    init(_ pieces: [String], file: String, key: String) throws {
        let total = pieces.reduce(0) { $0 + $1.utf8.count }
        guard total <= Int(UInt32.max), pieces.count <= Int(Int32.max) else {
            throw TokenizerError.invalid(file: file, key: key,
                                         detail: "\(pieces.count) token texts of \(total) bytes (at most 4 GiB allowed)")
        }
        byteCount = total
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, total), alignment: 1)
        self.storage = storage
        var ends = [UInt32]()
        ends.reserveCapacity(pieces.count)
        var offset = 0
        for piece in pieces {
            var piece = piece
            piece.withUTF8 { UnsafeMutableRawBufferPointer(rebasing: storage[offset..<(offset + $0.count)]).copyMemory(from: UnsafeRawBufferPointer($0)) }
            offset += piece.utf8.count
            ends.append(UInt32(offset))
        }
        self.ends = ends

        var capacity = 16
        while capacity < 2 * pieces.count { capacity <<= 1 }
        var slots = [Int32](repeating: -1, count: capacity)
        for i in 0..<pieces.count {
            let bytes = Self.span(storage, ends, i)
            var s = Self.hash(bytes) & (capacity - 1)
            while slots[s] >= 0 && !Self.equal(Self.span(storage, ends, Int(slots[s])), bytes) { s = (s + 1) & (capacity - 1) }
            if slots[s] < 0 { slots[s] = Int32(i) }
        }
        self.slots = slots
    }

    deinit { storage.deallocate() }

    var count: Int { ends.count }

    /// The bytes of piece `id` (0 ≤ id < count).
    func bytes(_ id: Int) -> UnsafeRawBufferPointer { Self.span(storage, ends, id) }

    /// The text of piece `id` (0 ≤ id < count).
    func piece(_ id: Int) -> String { String(decoding: bytes(id), as: UTF8.self) }

    func id(_ bytes: UnsafeRawBufferPointer) -> Int32? {
        let mask = slots.count - 1
        var s = Self.hash(bytes) & mask
        while true {
            let candidate = slots[s]
            if candidate < 0 { return nil }
            if Self.equal(Self.span(storage, ends, Int(candidate)), bytes) { return candidate }
            s = (s + 1) & mask
        }
    }

    func id(_ text: String) -> Int32? {
        var text = text
        return text.withUTF8 { id(UnsafeRawBufferPointer($0)) }
    }

    func id(_ bytes: [UInt8]) -> Int32? { bytes.withUnsafeBytes { id($0) } }

    // MARK: Helpers

    @inline(__always)
    private static func span(_ storage: UnsafeMutableRawBufferPointer, _ ends: [UInt32], _ i: Int) -> UnsafeRawBufferPointer {
        let start = i == 0 ? 0 : Int(ends[i - 1])
        return UnsafeRawBufferPointer(start: storage.baseAddress! + start, count: Int(ends[i]) - start)
    }

    @inline(__always)
    private static func hash(_ bytes: UnsafeRawBufferPointer) -> Int {
        var hasher = Hasher()
        hasher.combine(bytes: bytes)
        return hasher.finalize()
    }

    @inline(__always)
    private static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
    }
}
