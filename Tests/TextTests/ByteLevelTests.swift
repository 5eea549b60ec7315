import Testing
@testable import Text

@Suite("Byte-level alphabet")
struct ByteLevelTests {
    @Test func knownMappings() {
        // GPT-2: space → Ġ (U+0120), newline → Ċ (U+010A), '!' stays.
        #expect(ByteLevel.scalars[0x20] == "\u{0120}")
        #expect(ByteLevel.scalars[0x0A] == "\u{010A}")
        #expect(ByteLevel.scalars[0x21] == "!")
        #expect(ByteLevel.scalars[0x00] == "\u{0100}")
        #expect(ByteLevel.scalars[0xAD] == "\u{0143}")
    }

    @Test func roundTripsEveryByte() {
        let all = (0...255).map(UInt8.init)
        #expect(Set(ByteLevel.scalars.map(\.value)).count == 256)
        #expect(ByteLevel.decode(ByteLevel.encode(all)) == all)
        #expect(ByteLevel.decode("a\u{4E00}") == nil)
    }
}
