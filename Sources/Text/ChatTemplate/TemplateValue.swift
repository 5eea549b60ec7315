import Foundation

/// A value handed to a template from outside: the JSON-like data transformers passes to `render` (messages,
/// tools, documents, special tokens, flags). Objects keep their keys in insertion order, because templates
/// iterate them (`for k, v in tool.parameters.properties.items()`) and `tojson` prints them in that order, as
/// Python's dicts do.
public enum TemplateValue: Sendable, Equatable {
    /// Jinja2's `Undefined`: what a missing variable is. Renders as nothing, is falsy, `is defined` is false.
    case undefined
    /// Python's `None`.
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([TemplateValue])
    case object(TemplateObject)
}

/// A string-keyed mapping that remembers insertion order (a Python dict built from JSON). Setting an existing key
/// replaces its value in place, as Python does.
public struct TemplateObject: Sendable, Equatable {
    public private(set) var keys: [String] = []
    public private(set) var values: [TemplateValue] = []

    public init() {}

    public init(_ pairs: [(String, TemplateValue)]) {
        for (key, value) in pairs { self[key] = value }
    }

    public var count: Int { keys.count }
    public var entries: [(key: String, value: TemplateValue)] { Array(zip(keys, values)).map { (key: $0.0, value: $0.1) } }

    public subscript(key: String) -> TemplateValue? {
        get { keys.firstIndex(of: key).map { values[$0] } }
        set {
            if let i = keys.firstIndex(of: key) {
                if let newValue { values[i] = newValue } else { keys.remove(at: i); values.remove(at: i) }
            } else if let newValue {
                keys.append(key)
                values.append(newValue)
            }
        }
    }

    /// Python's dict equality: the same keys with equal values, whatever the order.
    public static func == (a: TemplateObject, b: TemplateObject) -> Bool {
        guard a.count == b.count else { return false }
        for (k, v) in zip(a.keys, a.values) where b[k] != v { return false }
        return true
    }
}

// MARK: - Literals, so callers and tests can write `["role": "user", "content": "Hi"]`.

extension TemplateObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, TemplateValue)...) { self.init(elements) }
}

extension TemplateValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: TemplateValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, TemplateValue)...) { self = .object(TemplateObject(elements)) }
    /// `nil` is Python's `None` (what JSON `null` becomes), not `Undefined`.
    public init(nilLiteral: ()) { self = .none }
}
