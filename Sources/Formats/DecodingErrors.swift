// One-line descriptions of Codable decoding failures, shared by every reader of JSON files (safetensors headers,
// config.json, tokenizer.json): the key path where it went wrong, and what was wrong there.

/// The dotted key path of a decoding failure (the missing key included), or "(top level)".
public func decodingKeyPath(_ error: Error) -> String {
    guard let error = error as? DecodingError else { return "(top level)" }
    let path: [CodingKey]
    switch error {
    case let .keyNotFound(key, context): path = context.codingPath + [key]
    case let .typeMismatch(_, context), let .valueNotFound(_, context), let .dataCorrupted(context): path = context.codingPath
    @unknown default: path = []
    }
    return path.isEmpty ? "(top level)" : path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
}

/// What was wrong at `decodingKeyPath(error)`, without the path.
public func decodingProblem(_ error: Error) -> String {
    guard let error = error as? DecodingError else { return error.localizedDescription }
    switch error {
    case .keyNotFound: return "required key is missing"
    case let .typeMismatch(type, _): return "is not \(typeDescription(type))"
    case let .valueNotFound(type, _): return "is null, expected \(typeDescription(type))"
    case let .dataCorrupted(context): return context.codingPath.isEmpty ? "not valid JSON" : context.debugDescription
    @unknown default: return "\(error)"
    }
}

/// One line from a DecodingError: what was wrong, and where (the key path).
public func describeDecodingError(_ error: Error) -> String {
    func path(_ codingPath: [CodingKey]) -> String {
        codingPath.isEmpty ? "the top level" : "'" + codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            .joined(separator: ".") + "'"
    }
    guard let error = error as? DecodingError else { return error.localizedDescription }
    switch error {
    case let .dataCorrupted(context):
        if context.codingPath.isEmpty { return "not valid JSON" }
        return "\(path(context.codingPath)): \(context.debugDescription)"
    case let .keyNotFound(key, context):
        return "missing key '\(key.stringValue)' in \(path(context.codingPath))"
    case let .typeMismatch(type, context):
        return "\(path(context.codingPath)) is not \(typeDescription(type))"
    case let .valueNotFound(type, context):
        return "\(path(context.codingPath)) is null, expected \(typeDescription(type))"
    @unknown default:
        return "\(error)"
    }
}

private func typeDescription(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: return "a string"
    case is Int.Type, is Int64.Type, is UInt64.Type: return "an integer"
    case is Double.Type, is Float.Type: return "a number"
    case is Bool.Type: return "a boolean"
    default:
        let name = String(describing: type)
        return name.hasPrefix("Array") ? "a list" : name.hasPrefix("Dictionary") ? "an object" : "a \(name)"
    }
}
