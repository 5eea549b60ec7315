import Foundation

/// What can be wrong with an adapter: its files, its fit to the model, or how it is asked to run. Each case names
/// the file and the key or tensor, and says what was expected, with a hint where one helps.
public enum AdapterError: Error, LocalizedError, Equatable {
    case notAnAdapter(path: String, detail: String)
    case invalidConfiguration(file: String, key: String, detail: String)
    case unsupported(file: String, what: String, detail: String)
    case missingTensor(file: String, tensor: String, detail: String)
    case unexpectedTensor(file: String, tensor: String, detail: String)
    case shapeMismatch(file: String, tensor: String, expected: [Int], found: [Int], hint: String)
    case incompatible(detail: String)
    case strategy(detail: String)

    public var errorDescription: String? {
        switch self {
        case let .notAnAdapter(path, detail): return "\(path): \(detail)"
        case let .invalidConfiguration(file, key, detail): return "\(file): '\(key)': \(detail)"
        case let .unsupported(file, what, detail): return "\(file): \(what) is not supported (\(detail))"
        case let .missingTensor(file, tensor, detail): return "\(file): tensor '\(tensor)' is missing (\(detail))"
        case let .unexpectedTensor(file, tensor, detail): return "\(file): tensor '\(tensor)': \(detail)"
        case let .shapeMismatch(file, tensor, expected, found, hint):
            return "\(file): tensor '\(tensor)' has shape \(found), expected \(expected)\(hint.isEmpty ? "" : " (\(hint))")"
        case let .incompatible(detail): return detail
        case let .strategy(detail): return detail
        }
    }

    static let otherBaseHint = "is this adapter for another base model?"
}
