/// An optional field written as null when absent (synthesized encoding would leave the key out): every `--json`
/// report has the same keys, and the server's responses have the nulls OpenAI's have.
@propertyWrapper
public struct JSONNull<Value: Encodable>: Encodable {
    public var wrappedValue: Value?

    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}
