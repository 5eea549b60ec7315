import Foundation

/// What is wrong with a task file, a text to score, or how an evaluation was asked for. Every description is one
/// line that starts with the file (and the 1-based line where one line is at fault), as compilers write it.
public enum EvaluationError: Error, LocalizedError, Equatable {
    /// The file cannot be read at all.
    case unreadable(file: String, reason: String)
    /// One line of a task file is not a usable example (malformed, or unscorable with this tokenizer and model).
    case invalidLine(file: String, line: Int, problem: String)
    /// The task file holds no example.
    case noExamples(file: String)
    /// `bigbench:NAME` names no task of the data folder.
    case unknownTask(name: String, folder: String, available: [String])
    /// No BIG-bench data folder was found; `searched` says where it was looked for.
    case noDataFolder(searched: String)
    /// Fewer examples to draw shots from than asked for.
    case notEnoughShots(file: String, shots: Int, available: Int)
    /// The text to score is too short, or not text.
    case unusableText(file: String, problem: String)
    /// The model gave a log-likelihood that is not a finite number.
    case nonFiniteScore(file: String, line: Int, choice: Int, value: Double)
    /// A parameter is out of its range (a caller's mistake, not a file's).
    case invalidParameter(name: String, problem: String)

    public var errorDescription: String? {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot read it: \(reason)"
        case let .invalidLine(file, line, problem):
            return "\(file):\(line): \(problem)"
        case let .noExamples(file):
            return "\(file): no examples (the file is empty or holds only blank lines)"
        case let .unknownTask(name, folder, available):
            let listed = available.isEmpty ? "it holds none" : "it holds " + available.joined(separator: ", ")
            return "bigbench:\(name): no such task in \(folder) (\(listed))"
        case let .noDataFolder(searched):
            return "bigbench: no data folder found (\(searched))"
        case let .notEnoughShots(file, shots, available):
            return "\(file): \(shots) shots asked for, but only \(available) examples to draw them from"
        case let .unusableText(file, problem):
            return "\(file): \(problem)"
        case let .nonFiniteScore(file, line, choice, value):
            return "\(file):\(line): choice \(choice + 1) has log-likelihood \(value); the model's logits are not finite numbers"
        case let .invalidParameter(name, problem):
            return "\(name): \(problem)"
        }
    }
}
