import Foundation

/// The three splits of a BIG-bench task.
public enum TaskSplit: String, CaseIterable, Sendable {
    case train, validation, test
}

/// What `--task` names: a JSONL task file, or `bigbench:NAME`, a task of the BIG-bench data folder.
public enum TaskReference: Equatable, Sendable, CustomStringConvertible {
    case file(String)
    case bigBench(String)

    public static let bigBenchPrefix = "bigbench:"

    public init(_ argument: String) {
        if argument.hasPrefix(Self.bigBenchPrefix) {
            self = .bigBench(String(argument.dropFirst(Self.bigBenchPrefix.count)))
        } else {
            self = .file(argument)
        }
    }

    public var description: String {
        switch self {
        case .file(let path): return path
        case .bigBench(let name): return Self.bigBenchPrefix + name
        }
    }
}

/// The BIG-bench task files (data/bigbench/ of the repository, written by scripts/bigbench_tasks.py): a folder per
/// task holding `train.jsonl`, `validation.jsonl` and `test.jsonl`.
public struct BigBenchData: Sendable {
    /// The folder holding the task folders (…/data/bigbench).
    public let folder: String

    /// The environment variable that names the data folder (the one holding `bigbench/`).
    public static let environmentVariable = "LORASWITCH_DATA"

    public init(folder: String) { self.folder = folder }

    /// Where the task files are:
    /// 1. `$LORASWITCH_DATA/bigbench` when the variable is set and not empty (it must exist: no search then);
    /// 2. else `data/bigbench` in the first of each start folder and its parents that has one, the start folders
    ///    tried in order (the CLI passes the current folder, then the executable's).
    public static func locate(environment: String?, searchingUpFrom starts: [String]) throws -> BigBenchData {
        if let environment, !environment.isEmpty {
            let folder = (environment as NSString).appendingPathComponent("bigbench")
            guard isFolder(folder) else {
                throw EvaluationError.noDataFolder(searched: "\(environmentVariable)=\(environment), but \(folder) is not a folder")
            }
            return BigBenchData(folder: folder)
        }
        for start in starts {
            var candidate = URL(fileURLWithPath: start).standardizedFileURL
            while true {
                let folder = candidate.appendingPathComponent("data/bigbench").path
                if isFolder(folder) { return BigBenchData(folder: folder) }
                let parent = candidate.deletingLastPathComponent()
                if parent.path == candidate.path { break }
                candidate = parent
            }
        }
        let places = starts.map { "\($0) and its parents" }.joined(separator: ", ")
        throw EvaluationError.noDataFolder(
            searched: "no data/bigbench in \(places); set \(environmentVariable) to the folder that holds bigbench/")
    }

    /// The task folders present (those holding at least one split file), sorted.
    public func taskNames() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { name in
            TaskSplit.allCases.contains { FileManager.default.fileExists(atPath: path(task: name, split: $0)) }
        }.sorted()
    }

    /// The file of `split` of task `name`; an error when there is no such task (a file of it that is missing is the
    /// loader's error, naming the file).
    public func file(task name: String, split: TaskSplit) throws -> String {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..",
              Self.isFolder((folder as NSString).appendingPathComponent(name)) else {
            throw EvaluationError.unknownTask(name: name, folder: folder, available: taskNames())
        }
        return path(task: name, split: split)
    }

    private func path(task name: String, split: TaskSplit) -> String {
        ((folder as NSString).appendingPathComponent(name) as NSString).appendingPathComponent(split.rawValue + ".jsonl")
    }

    private static func isFolder(_ path: String) -> Bool {
        var folder: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &folder) && folder.boolValue
    }
}
