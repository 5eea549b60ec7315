import Foundation
import Text

/// A request the API refuses: its HTTP status and OpenAI's error object.
public struct APIError: Error, Equatable {
    public let status: Int
    public let message: String
    public let type: String
    public let param: String?
    public let code: String?

    public init(_ status: Int, _ message: String, type: String = "invalid_request_error", param: String? = nil,
                code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    static func invalid(_ message: String, param: String? = nil) -> APIError {
        APIError(400, message, param: param, code: "invalid_value")
    }

    var body: Data { errorBody(message, type: type, param: param, code: code) }
    var response: HTTPResponse { .json(status, body) }
}

/// A JSON request body read field by field, each checked for its type and range, with the field named in the error.
struct RequestBody {
    let object: TemplateObject

    init(_ data: Data) throws {
        guard let text = String(data: data, encoding: .utf8) else { throw APIError.invalid("the body is not valid UTF-8") }
        let value: TemplateValue
        do {
            value = try TemplateValue(json: text)
        } catch let error as TemplateJSONError {
            throw APIError.invalid("the body is not valid JSON: \(error.reason) at character \(error.offset + 1)")
        }
        guard case let .object(object) = value else {
            throw APIError.invalid("the body must be a JSON object, not \(value.jsonKind)")
        }
        self.object = object
    }

    /// The field, or nil when absent or null.
    func value(_ key: String) -> TemplateValue? {
        switch object[key] {
        case nil, .none?, .undefined?: return nil
        case let value?: return value
        }
    }

    func string(_ key: String) throws -> String? {
        guard let value = value(key) else { return nil }
        guard case let .string(s) = value else { throw wrongType(key, "a string", value) }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = value(key) else { return nil }
        guard case let .bool(b) = value else { throw wrongType(key, "a boolean", value) }
        return b
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let value = value(key) else { return nil }
        let n: Int
        switch value {
        case let .int(i): n = i
        case let .double(d) where d.rounded() == d && abs(d) < 1e15: n = Int(d)
        default: throw wrongType(key, "an integer", value)
        }
        guard range.contains(n) else {
            throw APIError.invalid("'\(key)' must be in \(range.lowerBound)...\(range.upperBound), not \(n)", param: key)
        }
        return n
    }

    func number(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let value = value(key) else { return nil }
        let x: Double
        switch value {
        case let .int(i): x = Double(i)
        case let .double(d): x = d
        default: throw wrongType(key, "a number", value)
        }
        guard range.contains(x) else {
            throw APIError.invalid("'\(key)' must be in \(range.lowerBound)...\(range.upperBound), not \(x)", param: key)
        }
        return x
    }

    func array(_ key: String) throws -> [TemplateValue]? {
        guard let value = value(key) else { return nil }
        guard case let .array(a) = value else { throw wrongType(key, "an array", value) }
        return a
    }

    func object(_ key: String) throws -> RequestBody? {
        guard let value = value(key) else { return nil }
        guard case let .object(o) = value else { throw wrongType(key, "an object", value) }
        return RequestBody(object: o)
    }

    init(object: TemplateObject) { self.object = object }

    private func wrongType(_ key: String, _ expected: String, _ value: TemplateValue) -> APIError {
        APIError(400, "'\(key)' must be \(expected), not \(value.jsonKind)", param: key, code: "invalid_type")
    }
}
