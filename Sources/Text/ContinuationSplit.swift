// How a context and a continuation are split for scoring and for training on a completion: lm-evaluation-harness's
// `_encode_pair` (the multiple-choice scorer and `train`'s prompt/completion examples both follow it).

/// lm-evaluation-harness: `n_spaces = len(context) - len(context.rstrip())`, and those characters move from the end
/// of the context to the start of the continuation. What moves is what Python's `str.rstrip()` removes: every code
/// point `str.isspace` accepts.
public func movingTrailingWhitespace(context: String, continuation: String) -> (context: String, continuation: String) {
    let scalars = Array(context.unicodeScalars)
    var end = scalars.count
    while end > 0, scalars[end - 1].isPythonWhitespace { end -= 1 }
    guard end < scalars.count else { return (context, continuation) }
    var kept = String.UnicodeScalarView(), moved = String.UnicodeScalarView()
    kept.append(contentsOf: scalars[..<end])
    moved.append(contentsOf: scalars[end...])
    return (String(kept), String(moved) + continuation)
}

/// How many leading elements `a` and `b` share: where the tokens of a context and of the context with its
/// continuation part (the continuation's tokens are the rest of the second).
public func commonPrefixLength<A: Collection, B: Collection>(_ a: A, _ b: B) -> Int
where A.Element == B.Element, A.Element: Equatable {
    var n = 0
    for (x, y) in zip(a, b) {
        guard x == y else { break }
        n += 1
    }
    return n
}
