import Foundation

/// What is wrong with a training data file or with how it is to be cut into batches. Every description is one line
/// that starts with the file (and the 1-based line where one line is at fault), as compilers write it.
public enum TrainingDataError: Error, LocalizedError, Equatable {
    /// The file cannot be read at all.
    case unreadable(file: String, reason: String)
    /// One line is not a usable example.
    case invalidLine(file: String, line: Int, problem: String)
    /// The file holds no example (empty, or blank lines only).
    case noExamples(file: String)
    /// A loading or batching parameter is out of its range (a caller's mistake, not the file's).
    case invalidParameter(name: String, problem: String)

    public var errorDescription: String? {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot read the training data: \(reason)"
        case let .invalidLine(file, line, problem):
            return "\(file):\(line): \(problem)"
        case let .noExamples(file):
            return "\(file): no training examples (the file is empty or holds only blank lines)"
        case let .invalidParameter(name, problem):
            return "\(name): \(problem)"
        }
    }
}
