import Foundation
import Model
import Testing
import TestSupport
@testable import Evaluation

// Sliding-window bookkeeping: every token but the first scored exactly once, each with the context the convention
// promises; bad windows refused; the scorer independent of how the rows are split into calls.

@Suite struct PerplexityTests {
    @Test func everyTokenIsScoredExactlyOnce() throws {
        for tokens in [2, 3, 7, 16, 17, 50, 101] {
            for context in [2, 3, 4, 8, 16, 200] {
                for stride in 1..<context {
                    let windows = try perplexityWindows(tokenCount: tokens, context: context, stride: stride)
                    let scored = windows.flatMap { Array($0.scored) }
                    #expect(scored == Array(1..<tokens), "T \(tokens) N \(context) S \(stride)")
                    for (k, w) in windows.enumerated() {
                        #expect(w.tokens.lowerBound == k * stride && w.tokens.count <= context)
                        #expect(w.tokens.contains(w.scored.lowerBound) && w.scored.upperBound == w.tokens.upperBound)
                        // Each scored token sees N − S tokens before it at least, or every token before it.
                        let before = w.scored.lowerBound - w.tokens.lowerBound
                        #expect(before >= min(context - stride, w.scored.lowerBound) && before >= 1)
                    }
                    #expect(windows.last?.tokens.upperBound == tokens)
                }
            }
        }
    }

    @Test func theGuidesExample() throws {
        // 10 tokens, context 4, stride 2: windows [0,4) [2,6) [4,8) [6,10), scoring 1-3, 4-5, 6-7, 8-9.
        let windows = try perplexityWindows(tokenCount: 10, context: 4, stride: 2)
        #expect(windows.map(\.tokens) == [0..<4, 2..<6, 4..<8, 6..<10])
        #expect(windows.map(\.scored) == [1..<4, 4..<6, 6..<8, 8..<10])
        // A text shorter than the context: one window.
        #expect(try perplexityWindows(tokenCount: 5, context: 512, stride: 256) == [PerplexityWindow(tokens: 0..<5, scored: 1..<5)])
    }

    @Test func badWindowsAreRefused() {
        #expect(errorMessage { _ = try perplexityWindows(tokenCount: 10, context: 4, stride: 4) }?.hasPrefix("stride: 4 must be at least 1 and below the context of 4") == true)
        #expect(errorMessage { _ = try perplexityWindows(tokenCount: 10, context: 4, stride: 0) }?.hasPrefix("stride: 0 must") == true)
        #expect(errorMessage { _ = try perplexityWindows(tokenCount: 10, context: 1, stride: 1) } == "context: 1 tokens leave nothing to predict (at least 2)")
        #expect(errorMessage { _ = try perplexityWindows(tokenCount: 1, context: 4, stride: 2) } == "tokens: 1 tokens leave nothing to predict (at least 2)")
    }

    @Test func theScorerDoesNotDependOnRowsPerCall() throws {
        let folder = try TemporaryFolder()
        let model = try LanguageModel.load(path: try fixtureModel(tokenizer: "bytelevel-gpt2", in: folder))
        let text = try PerplexityScorer.readText(path: evalFixtures + "/text.txt")
        let tokens = PerplexityScorer.tokens(of: text, tokenizer: try model.loadTokenizer())
        var results: [PerplexityResult] = []
        for rows in [1, 5, 64] {
            var calls: [(Int, Int)] = []
            results.append(try PerplexityScorer(session: session(model, capacity: 12), rowsPerCall: rows)
                .score(tokens: tokens, bytes: text.utf8.count, context: 12, stride: 5) { calls.append(($0, $1)) })
            #expect(calls.map(\.0) == Array(1...calls.count) && calls.allSatisfy { $0.1 == calls.count })
        }
        // One row a call decodes token by token (matrix-vector products), more rows a call run as one product: the
        // same sums up to float rounding.
        for r in results.dropFirst() {
            #expect(abs(r.negativeLogLikelihood - results[0].negativeLogLikelihood) < 1e-5)
            #expect(r.scoredTokens == tokens.count - 1 && r.windows == results[0].windows)
        }
        // The whole text in one window against a window per few tokens: close, not equal (less context).
        let whole = try PerplexityScorer(session: session(model, capacity: 128))
            .score(tokens: tokens, bytes: text.utf8.count, context: 128, stride: 64)
        #expect(whole.windows == 1 && whole.scoredTokens == tokens.count - 1)
        #expect(whole.negativeLogLikelihood != results[0].negativeLogLikelihood)
        // A session too small for the window is the caller's mistake.
        #expect(errorMessage { _ = try PerplexityScorer(session: session(model, capacity: 8)).score(tokens: tokens, bytes: 1, context: 12, stride: 5) }
            == "session capacity: 8 positions, and a window needs 12")
    }

    @Test func unusableTexts() throws {
        let folder = try TemporaryFolder()
        let empty = try folder.write("empty.txt", "")
        #expect(errorMessage { _ = try PerplexityScorer.readText(path: empty) } == "\(empty): the file is empty")
        let bytes = try folder.write("bytes.txt", [0x61, 0xC3])
        #expect(errorMessage { _ = try PerplexityScorer.readText(path: bytes) } == "\(bytes): not valid UTF-8")
    }
}
