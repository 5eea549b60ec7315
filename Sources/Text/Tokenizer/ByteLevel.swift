/// GPT-2's byte-level alphabet: every byte maps to a printable Unicode scalar, so that a byte-level BPE vocabulary
/// can be written as text. Printable Latin-1 bytes map to themselves; the other 68 bytes map to U+0100 and up in
/// byte order (as `bytes_to_unicode` in GPT-2's encoder.py and HF tokenizers' ByteLevel).
public enum ByteLevel {
    /// Scalar for each byte.
    public static let scalars: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// Byte for each scalar of the alphabet (nil for scalars outside it).
    public static let bytes: [UInt32: UInt8] = {
        var inverse: [UInt32: UInt8] = [:]
        for (b, s) in scalars.enumerated() { inverse[s.value] = UInt8(b) }
        return inverse
    }()

    /// The alphabet's spelling of `bytes`.
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var text = String.UnicodeScalarView()
        for b in bytes { text.append(scalars[Int(b)]) }
        return String(text)
    }

    /// The bytes a token's text spells, or nil when it holds a scalar outside the alphabet.
    public static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.unicodeScalars.count)
        for s in text.unicodeScalars {
            guard let b = bytes[s.value] else { return nil }
            out.append(b)
        }
        return out
    }
}
