import Foundation

/// What can stop a training run before or while it runs: the adapter asked for, its initial weights, the options.
/// Each case is one line naming what is wrong.
public enum TrainingError: Error, LocalizedError, Equatable {
    case invalidShape(String)
    case invalidInit(String)
    case invalidOptions(String)
    /// A checkpoint that cannot be continued (missing, corrupt, or of another run).
    case invalidCheckpoint(String)

    public var errorDescription: String? {
        switch self {
        case let .invalidShape(detail): return "adapter to train: \(detail)"
        case let .invalidInit(detail): return "initial adapter: \(detail)"
        case let .invalidCheckpoint(detail): return "checkpoint: \(detail)"
        case let .invalidOptions(detail): return detail
        }
    }
}
