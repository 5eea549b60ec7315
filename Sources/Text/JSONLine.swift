/// What is wrong with one line of a JSON Lines file; the loader adds the file and line number.
public struct LineProblem: Error {
    public let message: String
    public init(_ message: String) { self.message = message }
}

extension TemplateValue {
    /// A JSON value's kind, for messages.
    public var jsonKind: String {
        switch self {
        case .undefined, .none: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The JSON object one line holds; otherwise a `LineProblem` saying why (invalid UTF-8, invalid JSON with the
    /// character where it fails, or another kind of value — `format` says what a line should be).
    public static func jsonObject(line: ArraySlice<UInt8>, format: String) throws -> TemplateObject {
        guard let text = String(validating: line, as: UTF8.self) else { throw LineProblem("not valid UTF-8") }
        let value: TemplateValue
        do {
            value = try TemplateValue(json: text)
        } catch let error as TemplateJSONError {
            throw LineProblem("not valid JSON: \(error.reason) at character \(error.offset + 1)")
        }
        guard case let .object(object) = value else {
            throw LineProblem("a line must be a JSON object, not \(value.jsonKind) (\(format))")
        }
        return object
    }
}
