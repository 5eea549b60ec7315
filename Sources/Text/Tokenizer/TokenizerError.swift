import Foundation

/// What can be wrong with a tokenizer's files or a request made of it. Each case names the file and, where there is
/// one, the key; `errorDescription` is one line.
public enum TokenizerError: Error, LocalizedError, Equatable {
    case unreadable(file: String, reason: String)
    /// A key holds something other than what the format defines.
    case invalid(file: String, key: String, detail: String)
    /// A valid file asks for something this implementation does not do (another model type, an unknown
    /// pre-tokenizer pattern…).
    case unsupported(file: String, what: String, supported: String)
    case tokenOutOfRange(token: Int, vocabularySize: Int)

    public var errorDescription: String? {
        switch self {
        case let .unreadable(file, reason): return "\(file): cannot read: \(reason)"
        case let .invalid(file, key, detail): return "\(file): '\(key)': \(detail)"
        case let .unsupported(file, what, supported): return "\(file): \(what) is not supported (supported: \(supported))"
        case let .tokenOutOfRange(token, vocabularySize):
            return "token id \(token) is outside the vocabulary (0..<\(vocabularySize))"
        }
    }
}
