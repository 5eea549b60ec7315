/// An optional field of a `--json` report written as null when absent (synthesized encoding would leave the key
/// out), so that every report has the same keys.
@propertyWrapper
struct JSONNull<Value: Encodable>: Encodable {
    var wrappedValue: Value?

    init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}
