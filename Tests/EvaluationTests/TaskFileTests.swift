import Foundation
import Testing
import TestSupport
@testable import Evaluation

// Task files: what a line must hold, errors that name the file and line before anything is scored, and where
// `bigbench:NAME` finds its files.

@Suite struct TaskFileTests {
    let folder: TemporaryFolder
    init() throws { folder = try TemporaryFolder() }

    private func load(_ text: String) throws -> TaskFile {
        try TaskFile.load(path: try folder.write("task.jsonl", text))
    }

    @Test func readsExamplesWithTheirLines() throws {
        let text = "\u{FEFF}" + #"{"context": "Q: ", "choices": ["a", "b"], "gold": 1}"# + "\r\n\n  \t\n" +
            #"{"gold": 0, "choices": ["日本"], "context": ""}"# + "\n"
        let file = try load(text)
        #expect(file.examples == [
            MultipleChoiceExample(context: "Q: ", choices: ["a", "b"], gold: 1, line: 1),
            MultipleChoiceExample(context: "", choices: ["日本"], gold: 0, line: 4),
        ])
    }

    @Test(arguments: [
        (#"{"context": "c", "choices": ["a"], "gold": 0"#, "not valid JSON"),
        (#"["c", ["a"], 0]"#, "a line must be a JSON object, not an array"),
        (#"{"choices": ["a"], "gold": 0}"#, "no \"context\""),
        (#"{"context": "c", "gold": 0}"#, "no \"choices\""),
        (#"{"context": "c", "choices": ["a"]}"#, "no \"gold\""),
        (#"{"context": "c", "choices": ["a"], "gold": 0, "label": 1}"#, "unexpected key \"label\""),
        (#"{"context": 3, "choices": ["a"], "gold": 0}"#, "\"context\" must be a string, not a number"),
        (#"{"context": "c", "choices": "a", "gold": 0}"#, "\"choices\" must be an array of strings, not a string"),
        (#"{"context": "c", "choices": [], "gold": 0}"#, "\"choices\" is empty"),
        (#"{"context": "c", "choices": ["a", 2], "gold": 0}"#, "\"choices\"[1] must be a string, not a number"),
        (#"{"context": "c", "choices": ["a", ""], "gold": 0}"#, "\"choices\"[1] is empty"),
        (#"{"context": "c", "choices": ["a", "b"], "gold": 2}"#, "\"gold\" is 2, outside the 2 choices (0...1)"),
        (#"{"context": "c", "choices": ["a", "b"], "gold": -1}"#, "\"gold\" is -1, outside the 2 choices"),
        (#"{"context": "c", "choices": ["a", "b"], "gold": 1.0}"#, "\"gold\" must be an integer, not 1.0"),
        (#"{"context": "c", "choices": ["a", "b"], "gold": "1"}"#, "\"gold\" must be an integer, not a string"),
    ])
    func aBadLineIsAnErrorWithItsNumber(line: String, message: String) throws {
        let good = #"{"context": "c", "choices": ["a", "b"], "gold": 0}"#
        let path = folder.file("task.jsonl")
        let text = good + "\n\n" + good + "\n" + line + "\n" + good + "\n"
        let error = errorMessage { _ = try load(text) }
        #expect(error?.hasPrefix(path + ":4: ") == true, "\(error ?? "no error")")
        #expect(error?.contains(message) == true, "\(error ?? "no error")")
    }

    @Test func invalidUTF8AndEmptyFiles() throws {
        let path = try folder.write("bytes.jsonl", Array(#"{"context": "a"#.utf8) + [0xFF] + Array(#"", "choices": ["b"], "gold": 0}"#.utf8))
        #expect(errorMessage { _ = try TaskFile.load(path: path) } == "\(path):1: not valid UTF-8")
        let empty = try folder.write("empty.jsonl", "\n \n")
        #expect(errorMessage { _ = try TaskFile.load(path: empty) } == "\(empty): no examples (the file is empty or holds only blank lines)")
        let missing = folder.file("missing.jsonl")
        #expect(errorMessage { _ = try TaskFile.load(path: missing) } == "\(missing): cannot read it: no such file")
    }

    // MARK: - bigbench:NAME

    @Test func taskReferences() {
        #expect(TaskReference("bigbench:hyperbaton") == .bigBench("hyperbaton"))
        #expect(TaskReference("tasks/my.jsonl") == .file("tasks/my.jsonl"))
        #expect(TaskReference("bigbench:hyperbaton").description == "bigbench:hyperbaton")
    }

    /// data/bigbench/{alpha,beta} under `root`, alpha with all three splits.
    private func makeData(under root: String) throws {
        for (task, splits) in [("alpha", TaskSplit.allCases), ("beta", [TaskSplit.test])] {
            let dir = root + "/data/bigbench/" + task
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for split in splits {
                try Data(#"{"context": "\#(split.rawValue) ", "choices": ["a", "b"], "gold": 0}"#.utf8 + [0x0A])
                    .write(to: URL(fileURLWithPath: dir + "/" + split.rawValue + ".jsonl"))
            }
        }
        try FileManager.default.createDirectory(atPath: root + "/data/bigbench/empty", withIntermediateDirectories: true)
    }

    @Test func theDataFolderIsFoundWalkingUp() throws {
        try makeData(under: folder.path)
        let nested = folder.path + "/a/b/c"
        try FileManager.default.createDirectory(atPath: nested, withIntermediateDirectories: true)
        let data = try BigBenchData.locate(environment: nil, searchingUpFrom: [nested])
        #expect(data.folder == folder.url.standardizedFileURL.path + "/data/bigbench")
        #expect(data.taskNames() == ["alpha", "beta"])
        let file = try TaskFile.load(path: try data.file(task: "alpha", split: .validation))
        #expect(file.examples.first?.context == "validation ")
        // The first start folder that leads to one wins; a later one is not looked at.
        let other = try TemporaryFolder()
        try makeData(under: other.path)
        #expect(try BigBenchData.locate(environment: nil, searchingUpFrom: [nested, other.path]).folder == data.folder)
        #expect(try BigBenchData.locate(environment: "", searchingUpFrom: ["/", other.path]).folder
            == other.url.standardizedFileURL.path + "/data/bigbench")
    }

    @Test func theEnvironmentVariableWinsAndMustHoldBigBench() throws {
        try makeData(under: folder.path)
        let data = try BigBenchData.locate(environment: folder.path + "/data", searchingUpFrom: ["/"])
        #expect(data.folder == folder.path + "/data/bigbench")
        let error = errorMessage { _ = try BigBenchData.locate(environment: folder.path, searchingUpFrom: [packageRoot]) }
        #expect(error == "bigbench: no data folder found (LORASWITCH_DATA=\(folder.path), but \(folder.path)/bigbench is not a folder)")
        let none = errorMessage { _ = try BigBenchData.locate(environment: nil, searchingUpFrom: ["/"]) }
        #expect(none?.contains("set LORASWITCH_DATA to the folder that holds bigbench/") == true, "\(none ?? "")")
    }

    @Test func anUnknownTaskListsTheKnownOnes() throws {
        try makeData(under: folder.path)
        let data = try BigBenchData.locate(environment: folder.path + "/data", searchingUpFrom: [])
        for name in ["gamma", "", "..", "alpha/../beta"] {
            #expect(errorMessage { _ = try data.file(task: name, split: .test) }
                == "bigbench:\(name): no such task in \(data.folder) (it holds alpha, beta)")
        }
        // A task folder without the split's file: the loader names the missing file.
        let path = try data.file(task: "beta", split: .train)
        #expect(errorMessage { _ = try TaskFile.load(path: path) } == "\(path): cannot read it: no such file")
    }

    /// The repository's own task files load whole: every line is a valid example.
    @Test func theRepositoryTasksLoad() throws {
        let data = try BigBenchData.locate(environment: nil, searchingUpFrom: [packageRoot])
        #expect(data.taskNames().contains("hyperbaton"))
        for split in TaskSplit.allCases {
            let file = try TaskFile.load(path: try data.file(task: "hyperbaton", split: split))
            #expect(file.examples.count == [TaskSplit.train: 1500, .validation: 300, .test: 500][split])
        }
    }
}
