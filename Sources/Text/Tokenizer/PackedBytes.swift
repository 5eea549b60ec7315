/// Byte strings by number, packed into one array: string i is `bytes[ends[i - 1]..<ends[i]]`. A vocabulary's
/// 50,000 token spellings take one allocation (their bytes plus 4 per token) rather than 50,000 small arrays
/// (~50 bytes each with their headers and malloc's rounding).
struct PackedBytes: Sendable {
    private var bytes: [UInt8] = []
    private var ends: [UInt32] = []

    init(reservingCount count: Int, bytes byteCount: Int) {
        ends.reserveCapacity(count)
        bytes.reserveCapacity(byteCount)
    }

    var count: Int { ends.count }

    /// Appends string number `count`. The total must stay below 4 GiB: `PieceTable` checks that for a vocabulary's
    /// pieces, and a token's bytes are never more than its piece's.
    mutating func append<S: Sequence>(_ string: S) where S.Element == UInt8 {
        bytes.append(contentsOf: string)
        ends.append(UInt32(bytes.count))
    }

    subscript(index: Int) -> ArraySlice<UInt8> {
        bytes[(index == 0 ? 0 : Int(ends[index - 1]))..<Int(ends[index])]
    }
}
