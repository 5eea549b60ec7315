import Foundation
import Testing
@testable import Text

@Suite("Streaming decoding")
struct StreamingDecoderTests {
    private func tokenizer() throws -> Tokenizer {
        try Tokenizer.load(folder: tokenizerFixtures.appendingPathComponent("bytelevel-gpt2").path)
    }

    @Test func neverEmitsHalfACharacter() throws {
        let t = try tokenizer()
        for text in ["a😀b", "你好，世界", "café e\u{301} 👩‍👩‍👧", "🇫🇷!"] {
            let ids = t.encode(text, addSpecialTokens: false)
            var decoder = StreamingDecoder(tokenizer: t)
            var pieces: [String] = []
            for id in ids { pieces.append(decoder.append(id)) }
            pieces.append(decoder.finish())
            #expect(pieces.joined() == text)
            #expect(!pieces.joined().contains("\u{FFFD}"))
            // Each text has characters split across tokens, whose bytes are held back: at most one piece per scalar.
            #expect(ids.count > text.unicodeScalars.count && pieces.filter { !$0.isEmpty }.count <= text.unicodeScalars.count)
        }
    }

    @Test func stopStringsAcrossTokens() throws {
        let t = try tokenizer()
        let ids = t.encode("The answer is 42.\nUser: next", addSpecialTokens: false)
        var decoder = StreamingDecoder(tokenizer: t, stopStrings: ["\nUser:"])
        var out = ""
        for id in ids {
            out += decoder.append(id)
            if decoder.stoppedBy != nil { break }
        }
        #expect(decoder.stoppedBy == "\nUser:")
        #expect(out == "The answer is 42.")
        #expect(decoder.finish() == "")
    }

    @Test func heldBackTextIsReleasedWhenItIsNotAStop() throws {
        let t = try tokenizer()
        var decoder = StreamingDecoder(tokenizer: t, stopStrings: ["STOP"])
        var out = ""
        for id in t.encode("ST is not STOP-less", addSpecialTokens: false) { out += decoder.append(id) }
        // "STOP" appears inside, so the stream ends before it.
        #expect(out == "ST is not ")
        var plain = StreamingDecoder(tokenizer: t, stopStrings: ["STOP"])
        out = ""
        for id in t.encode("a ST b S", addSpecialTokens: false) { out += plain.append(id) }
        out += plain.finish()
        #expect(out == "a ST b S")
    }

    @Test func utf8Boundaries() {
        #expect(completeUTF8Prefix([0x61, 0xF0, 0x9F, 0x98]) == 1)
        #expect(completeUTF8Prefix([0x61, 0xF0, 0x9F, 0x98, 0x80]) == 5)
        #expect(completeUTF8Prefix([0xE4, 0xBD]) == 0)
        #expect(completeUTF8Prefix([]) == 0)
    }
}
