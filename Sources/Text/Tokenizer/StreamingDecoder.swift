/// Turns generated tokens into text as they come, never emitting half a UTF-8 character (a byte-fallback or
/// byte-level token may carry only part of one), and holding back text that could still become a stop string.
public struct StreamingDecoder {
    public let tokenizer: Tokenizer
    public let stopStrings: [String]
    /// Special tokens (chat markers) print nothing unless asked.
    public var showSpecialTokens = false
    private var pendingBytes: [UInt8] = []
    /// Decoded text not yet emitted because a stop string might start in it.
    private var heldText = ""
    /// The stop string found, once one is.
    public private(set) var stoppedBy: String?

    public init(tokenizer: Tokenizer, stopStrings: [String] = []) {
        self.tokenizer = tokenizer
        self.stopStrings = stopStrings.filter { !$0.isEmpty }
    }

    /// Adds a token; returns the text that is now final (possibly empty). After a stop string is found, returns
    /// the text before it and nothing more.
    public mutating func append(_ token: Int) -> String {
        guard stoppedBy == nil else { return "" }
        if showSpecialTokens || !tokenizer.isSpecial(token) { pendingBytes += tokenizer.bytes(of: token) }
        let complete = completeUTF8Prefix(pendingBytes)
        guard complete > 0 else { return "" }
        heldText += String(decoding: pendingBytes[0..<complete], as: UTF8.self)
        pendingBytes.removeFirst(complete)
        return release()
    }

    /// Everything still held (incomplete bytes become U+FFFD), at the end of generation.
    public mutating func finish() -> String {
        guard stoppedBy == nil else { return "" }
        heldText += String(decoding: pendingBytes, as: UTF8.self)
        pendingBytes.removeAll()
        let text = heldText
        heldText = ""
        return text
    }

    private mutating func release() -> String {
        for stop in stopStrings {
            if let range = heldText.range(of: stop) {
                stoppedBy = stop
                let text = String(heldText[..<range.lowerBound])
                heldText = ""
                return text
            }
        }
        // Keep the longest tail that is a proper prefix of a stop string.
        var keep = 0
        for stop in stopStrings {
            for length in stride(from: min(stop.count - 1, heldText.count), to: keep, by: -1)
            where heldText.hasSuffix(stop.prefix(length)) {
                keep = length
                break
            }
        }
        let cut = heldText.index(heldText.endIndex, offsetBy: -keep)
        let text = String(heldText[..<cut])
        heldText = String(heldText[cut...])
        return text
    }
}

/// Length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence.
func completeUTF8Prefix(_ bytes: [UInt8]) -> Int {
    let n = bytes.count
    // Look back at most 3 bytes for the lead byte of the last sequence.
    var i = n - 1
    while i >= 0 && i >= n - 4 {
        let b = bytes[i]
        if b & 0xC0 != 0x80 {
            let length = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
            return i + length <= n ? n : i
        }
        i -= 1
    }
    return n // only continuation bytes: invalid anyway, let them through as U+FFFD
}
