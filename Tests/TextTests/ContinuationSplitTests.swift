import Testing
import Text

// lm-evaluation-harness's context/continuation split, shared by `train`'s prompt/completion examples and `eval`.

@Suite struct ContinuationSplitTests {
    @Test func pythonRstripDecidesWhatMoves() {
        #expect(movingTrailingWhitespace(context: "a \t\n", continuation: "b") == ("a", " \t\nb"))
        #expect(movingTrailingWhitespace(context: "a", continuation: " b") == ("a", " b"))
        #expect(movingTrailingWhitespace(context: "  ", continuation: "b") == ("", "  b"))
        #expect(movingTrailingWhitespace(context: "a\u{A0}\u{3000}\u{1F}", continuation: "b") == ("a", "\u{A0}\u{3000}\u{1F}b"))
        #expect(movingTrailingWhitespace(context: "a\u{85}\u{2028}\u{2029}\u{1C}", continuation: "b") == ("a", "\u{85}\u{2028}\u{2029}\u{1C}b"))
        // Not whitespace for Python: the zero-width space and the byte order mark stay.
        #expect(movingTrailingWhitespace(context: "a\u{200B}", continuation: "b") == ("a\u{200B}", "b"))
        #expect(movingTrailingWhitespace(context: "a\u{FEFF}", continuation: "b") == ("a\u{FEFF}", "b"))
        // A combining mark after a space is not whitespace: nothing moves, and the space stays with it.
        #expect(movingTrailingWhitespace(context: "a \u{301}", continuation: "b") == ("a \u{301}", "b"))
        #expect(movingTrailingWhitespace(context: "", continuation: "b") == ("", "b"))
    }

    @Test func commonPrefix() {
        #expect(commonPrefixLength([1, 2, 3], [1, 2, 4, 5]) == 2)
        #expect(commonPrefixLength([1, 2], [1, 2, 3]) == 2)
        #expect(commonPrefixLength([Int](), [1]) == 0)
        #expect(commonPrefixLength([7], [8]) == 0)
        #expect(commonPrefixLength([1, 2, 3], [1, 2, 3][...]) == 3)
    }
}
