import Foundation

/// Everything that can be wrong with a file we read or write. Each case names the file and, where there is one,
/// the tensor or key; `errorDescription` is one line for the user.
public enum FormatError: Error, LocalizedError, Equatable {
    /// The file cannot be opened, mapped or written.
    case unreadable(file: String, reason: String)
    /// The file ends before something it declares.
    case truncated(file: String, detail: String)
    /// The bytes do not follow the format (bad magic, bad JSON, a value of the wrong kind…).
    case malformed(file: String, detail: String)
    /// A tensor's element type is not one we compute with.
    case unsupportedDType(file: String, tensor: String, dtype: String, supported: String)
    /// A tensor's declared shape and its bytes do not agree.
    case shapeMismatch(file: String, tensor: String, detail: String)
    /// A tensor's bytes lie outside the file's data area.
    case outOfBounds(file: String, tensor: String, detail: String)
    /// Two tensors claim the same bytes.
    case overlapping(file: String, first: String, second: String)
    /// A tensor that the index or the caller names is not there.
    case missingTensor(file: String, tensor: String)

    public var errorDescription: String? {
        switch self {
        case let .unreadable(file, reason): return "\(file): cannot read: \(reason)"
        case let .truncated(file, detail): return "\(file): truncated: \(detail)"
        case let .malformed(file, detail): return "\(file): \(detail)"
        case let .unsupportedDType(file, tensor, dtype, supported):
            return "\(file): tensor '\(tensor)' has unsupported type \(dtype) (supported: \(supported))"
        case let .shapeMismatch(file, tensor, detail): return "\(file): tensor '\(tensor)': \(detail)"
        case let .outOfBounds(file, tensor, detail): return "\(file): tensor '\(tensor)' lies outside the file: \(detail)"
        case let .overlapping(file, first, second):
            return "\(file): tensors '\(first)' and '\(second)' overlap in the data area"
        case let .missingTensor(file, tensor): return "\(file): tensor '\(tensor)' is missing"
        }
    }
}
