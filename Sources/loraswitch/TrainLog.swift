import Formats
import Foundation

/// `train --log FILE`: one JSON object a line, written as each happens (a run that dies leaves every record before
/// it). A new run starts the file afresh; a resumed one adds to it, so one file can hold a whole run. Numbers are written as Swift prints a Double, the shortest text that reads back as the same value, so two
/// runs' losses compare bit for bit as text; a value that is not finite is null.
final class TrainLog {
    private let handle: FileHandle

    init(path: String, append: Bool) throws {
        let exists = append && FileManager.default.fileExists(atPath: path)
        guard exists || FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw TrainCommandError("--log \(path): cannot create the file")
        }
        if exists { handle.seekToEndOfFile() }
        self.handle = handle
    }

    func write(_ record: JSONRecord) {
        handle.write(Data((record.text + "}\n").utf8))
    }
}

/// One JSON object, its keys in the order added.
struct JSONRecord {
    fileprivate var text = "{"
    private var empty = true

    init(type: String) { add("type", type) }

    mutating func add(_ key: String, _ value: Int) { addRaw(key, String(value)) }
    mutating func add(_ key: String, _ value: Double?) { addRaw(key, Self.number(value)) }
    mutating func add(_ key: String, _ value: String?) { addRaw(key, value.map(jsonString) ?? "null") }
    mutating func add(_ key: String, _ value: Bool) { addRaw(key, value ? "true" : "false") }
    mutating func add(_ key: String, _ values: [Int]) { addRaw(key, "[" + values.map(String.init).joined(separator: ",") + "]") }
    mutating func add(_ key: String, _ values: [(String, [Double])]) {
        addRaw(key, "{" + values.map { jsonString($0.0) + ":[" + $0.1.map { Self.number($0) }.joined(separator: ",") + "]" }
            .joined(separator: ",") + "}")
    }

    private mutating func addRaw(_ key: String, _ json: String) {
        if !empty { text += "," }
        empty = false
        text += jsonString(key) + ":" + json
    }

    static func number(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "null" }
        return "\(value)"
    }
}
