import Foundation

/// A subcommand: parses its arguments (throwing `UsageError` for bad ones), then runs.
protocol Command {
    static var name: String { get }
    static var summary: String { get }
    /// Usage lines after `loraswitch NAME`.
    static var usage: String { get }
    init(_ arguments: inout Arguments) throws
    func run() throws
}

/// A mistake in how the command was called: printed with the usage, exit code 2.
struct UsageError: Error, LocalizedError {
    let message: String
    init(_ message: String) { self.message = message }
    var errorDescription: String? { message }
}

/// Command-line arguments, consumed by name: `--name value`, `--name=value`, flags, and positionals. Whatever a
/// command does not consume is an error (`finish`).
struct Arguments {
    private var items: [String]

    init(_ items: [String]) { self.items = items }

    /// The value of `--name`, removed from the list; nil when absent.
    mutating func option(_ name: String) throws -> String? {
        let flag = "--\(name)"
        for (i, item) in items.enumerated() {
            if item == flag {
                guard i + 1 < items.count, !items[i + 1].hasPrefix("--") else {
                    throw UsageError("\(flag) needs a value")
                }
                let value = items[i + 1]
                items.removeSubrange(i...(i + 1))
                return value
            }
            if item.hasPrefix(flag + "=") {
                items.remove(at: i)
                return String(item.dropFirst(flag.count + 1))
            }
        }
        return nil
    }

    mutating func required(_ name: String) throws -> String {
        guard let value = try option(name) else { throw UsageError("--\(name) is required") }
        return value
    }

    /// An integer option within `range`.
    mutating func integer(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = try option(name) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw UsageError("--\(name) must be an integer in \(range.lowerBound)...\(range.upperBound), not '\(text)'")
        }
        return value
    }

    /// A comma-separated list of integers, each within `range`.
    mutating func integerList(_ name: String, in range: ClosedRange<Int>) throws -> [Int]? {
        guard let text = try option(name) else { return nil }
        return try text.split(separator: ",", omittingEmptySubsequences: false).map { item in
            guard let value = Int(item), range.contains(value) else {
                throw UsageError("--\(name) takes integers in \(range.lowerBound)...\(range.upperBound) separated by commas, not '\(text)'")
            }
            return value
        }
    }

    /// One of `choices`.
    mutating func choice(_ name: String, _ choices: [String]) throws -> String? {
        guard let value = try option(name) else { return nil }
        guard choices.contains(value) else {
            throw UsageError("--\(name) must be one of \(choices.joined(separator: ", ")), not '\(value)'")
        }
        return value
    }

    mutating func flag(_ name: String) -> Bool {
        guard let i = items.firstIndex(of: "--\(name)") else { return false }
        items.remove(at: i)
        return true
    }

    /// The next positional argument.
    mutating func positional(_ what: String) throws -> String {
        guard let i = items.firstIndex(where: { !$0.hasPrefix("--") }) else { throw UsageError("missing \(what)") }
        return items.remove(at: i)
    }

    /// Throws if anything was not consumed.
    func finish() throws {
        if let first = items.first {
            throw UsageError(first.hasPrefix("--") ? "unknown option \(first)" : "unexpected argument '\(first)'")
        }
    }
}

/// Writes one line to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
