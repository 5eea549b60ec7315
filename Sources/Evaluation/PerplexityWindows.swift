/// One window of a sliding-window perplexity: the tokens the model sees together (positions from 0 again), and the
/// ones it scores.
public struct PerplexityWindow: Sendable, Equatable {
    /// Token indices run through the model in this window.
    public let tokens: Range<Int>
    /// Token indices scored here: each predicted from the tokens before it in the window.
    public let scored: Range<Int>
}

/// The windows of a sliding-window perplexity over `tokenCount` tokens, as the transformers perplexity guide slides
/// them: window k runs tokens [k·S, min(k·S + N, T)) for context N and stride S, and scores only the tokens the
/// windows before it did not — from the previous window's end to its own — until a window reaches the end. The
/// first window scores all its tokens but the first, which nothing predicts; every other token is scored exactly
/// once, with at least N − S tokens before it in its window (all of them where fewer precede it in the text).
///
/// 1 ≤ S < N: with S = N a window's first token would have nothing before it (the guide then silently leaves it
/// unscored). T ≥ 2.
public func perplexityWindows(tokenCount: Int, context: Int, stride: Int) throws -> [PerplexityWindow] {
    guard context >= 2 else {
        throw EvaluationError.invalidParameter(name: "context", problem: "\(context) tokens leave nothing to predict (at least 2)")
    }
    guard stride >= 1 && stride < context else {
        throw EvaluationError.invalidParameter(
            name: "stride",
            problem: "\(stride) must be at least 1 and below the context of \(context), so that every window's first scored token has one before it")
    }
    guard tokenCount >= 2 else {
        throw EvaluationError.invalidParameter(name: "tokens", problem: "\(tokenCount) tokens leave nothing to predict (at least 2)")
    }
    var windows: [PerplexityWindow] = []
    var previousEnd = 0
    var begin = 0
    while true {
        let end = min(begin + context, tokenCount)
        let firstScored = max(previousEnd, begin + 1)
        windows.append(PerplexityWindow(tokens: begin..<end, scored: firstScored..<end))
        if end == tokenCount { break }
        previousEnd = end
        begin += stride
    }
    return windows
}
