import Foundation

/// What can be wrong with a model: its configuration, its tensors, or a request made of it. Each case names the
/// file and the key or tensor, and says what was expected.
public enum ModelError: Error, LocalizedError, Equatable {
    case invalidConfiguration(file: String, key: String, detail: String)
    case unsupportedModelType(file: String, modelType: String)
    case missingTensor(file: String, tensor: String)
    case unexpectedTensors(file: String, tensors: [String])
    case shapeMismatch(file: String, tensor: String, expected: [Int], found: [Int])
    case unsupportedTensorType(file: String, tensor: String, dtype: String, detail: String)
    case notAModel(path: String, detail: String)
    case tokenOutOfRange(model: String, token: Int, vocabularySize: Int)
    case contextFull(needed: Int, capacity: Int)
    /// Rows handed to a forward pass that do not fit it.
    case invalidRows(String)

    public static let supportedModelTypes = ModelConfiguration.ModelType.allCases.map(\.rawValue)

    public var errorDescription: String? {
        switch self {
        case let .invalidConfiguration(file, key, detail): return "\(file): '\(key)': \(detail)"
        case let .unsupportedModelType(file, modelType):
            return "\(file): model_type '\(modelType)' is not supported (supported: \(Self.supportedModelTypes.joined(separator: ", ")))"
        case let .missingTensor(file, tensor): return "\(file): tensor '\(tensor)' is missing"
        case let .unexpectedTensors(file, tensors):
            let shown = tensors.prefix(3).map { "'\($0)'" }.joined(separator: ", ")
            return "\(file): unexpected tensor\(tensors.count == 1 ? "" : "s") \(shown)\(tensors.count > 3 ? " and \(tensors.count - 3) more" : "") (not part of this architecture)"
        case let .shapeMismatch(file, tensor, expected, found):
            return "\(file): tensor '\(tensor)' has shape \(found), expected \(expected)"
        case let .unsupportedTensorType(file, tensor, dtype, detail):
            return "\(file): tensor '\(tensor)' of type \(dtype): \(detail)"
        case let .notAModel(path, detail): return "\(path): \(detail)"
        case let .tokenOutOfRange(model, token, vocabularySize):
            return "\(model): token id \(token) is outside the vocabulary (0..<\(vocabularySize))"
        case let .contextFull(needed, capacity):
            return "the context is full: \(needed) positions needed, \(capacity) available"
        case let .invalidRows(detail): return "forward pass: \(detail)"
        }
    }
}
