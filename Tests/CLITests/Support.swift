import Foundation
import Testing
import TestSupport

// Finding the built `loraswitch` executable, running it, and fixture helpers for the CLI tests.

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")
/// The package root (Tests/CLITests/Support.swift → ../..).
let packageRoot = fixtures.deletingLastPathComponent().deletingLastPathComponent()

func modelPath(_ name: String) -> String { fixtures.appendingPathComponent("models/\(name)").path }

/// An adapter fixture's path.
func adapterPath(_ name: String) -> String { fixtures.appendingPathComponent("adapters/\(name)").path }

/// Where `loraswitch` may be: $LORASWITCH_EXECUTABLE if set, else beside the running test binary — SwiftPM puts
/// every product of one build configuration in one folder (.build/x86_64-unknown-linux-gnu/debug/ on Linux; on
/// macOS the test binary sits inside an .xctest bundle in that folder). Never another configuration's folder: a
/// stale release build must not stand in for the code under test.
func executableCandidates() -> [URL] {
    if let explicit = ProcessInfo.processInfo.environment["LORASWITCH_EXECUTABLE"], !explicit.isEmpty {
        return [URL(fileURLWithPath: explicit)]
    }
    var binaries: [URL] = [URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()]
    if let main = Bundle.main.executableURL { binaries.append(main.resolvingSymlinksInPath()) }
    if let first = CommandLine.arguments.first, first.contains("/") {
        binaries.append(URL(fileURLWithPath: first).resolvingSymlinksInPath())
    }
    var candidates: [URL] = []
    for binary in binaries {
        var folder = binary.deletingLastPathComponent()
        // Inside a bundle (X.xctest/Contents/MacOS/X): the products folder is the bundle's parent.
        var probe = folder
        while probe.pathComponents.count > 1 {
            if probe.pathExtension == "xctest" { folder = probe.deletingLastPathComponent(); break }
            probe = probe.deletingLastPathComponent()
        }
        let candidate = folder.appendingPathComponent("loraswitch")
        if !candidates.contains(candidate) { candidates.append(candidate) }
    }
    return candidates
}

private let staleWarning: Void = {
    // A binary older than the sources it is built from is probably not the code under test (`swift test` alone
    // does not rebuild executables nothing depends on). Warn once; the CLI tests still run.
    guard let url = executableCandidates().first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }),
          let built = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date else { return }
    let sources = packageRoot.appendingPathComponent("Sources")
    let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: [.contentModificationDateKey])
    var newest: (Date, String)?
    while let file = files?.nextObject() as? URL {
        guard file.pathExtension == "swift",
              let date = try? file.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate else { continue }
        if newest == nil || date > newest!.0 { newest = (date, file.path) }
    }
    if let (date, path) = newest, date > built {
        Issue.record("\(url.path) is older than \(path): rebuild (`swift build --build-tests`) to test the current code",
                     severity: .warning)
    }
}()

/// The built executable; fails the test with the places it looked in when there is none.
func loraswitchExecutable(sourceLocation: SourceLocation = #_sourceLocation) throws -> URL {
    let candidates = executableCandidates()
    var isFolder: ObjCBool = false
    let found = candidates.first { url in
        FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) && !isFolder.boolValue
            && FileManager.default.isExecutableFile(atPath: url.path)
    }
    let url = try #require(found, """
        the loraswitch executable was not found beside the test binary; build it first \
        (`swift build --build-tests`, as scripts/test.sh does) or set LORASWITCH_EXECUTABLE. \
        Looked for: \(candidates.map(\.path).joined(separator: ", "))
        """, sourceLocation: sourceLocation)
    _ = staleWarning
    return url
}

/// The outcome of one run of the executable.
struct RunResult: CustomStringConvertible {
    let status: Int32
    let reason: Process.TerminationReason
    let stdout: String
    let stderr: String

    var exitedNormally: Bool { reason == .exit }
    /// Standard error as lines (without the final newline).
    var stderrLines: [Substring] {
        var text = Substring(stderr)
        if text.hasSuffix("\n") { text = text.dropLast() }
        return text.isEmpty ? [] : text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    var description: String {
        "status \(status) (\(reason == .exit ? "exit" : "signal")), stdout \(stdout.count) bytes, stderr: \(stderr)"
    }
}

/// Runs `loraswitch arguments…` with its output in files, killing it if it takes longer than `timeout` seconds.
/// `XDG_CACHE_HOME` is an empty folder of the run's own unless `environment` sets it, so that no test reads or
/// writes the user's cache (the default model, auto's machine figures).
func runLoraswitch(_ arguments: [String], timeout: TimeInterval = 120, input: String? = nil,
                   environment: [String: String]? = nil,
                   sourceLocation: SourceLocation = #_sourceLocation) throws -> RunResult {
    let executable = try loraswitchExecutable(sourceLocation: sourceLocation)
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("loraswitch-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let outURL = folder.appendingPathComponent("stdout"), errURL = folder.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.standardOutput = out
    process.standardError = err
    if let input {
        let inURL = folder.appendingPathComponent("stdin")
        try Data(input.utf8).write(to: inURL)
        process.standardInput = try FileHandle(forReadingFrom: inURL)
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    process.environment = ProcessInfo.processInfo.environment
        .merging(["XDG_CACHE_HOME": folder.appendingPathComponent("cache").path]) { _, new in new }
        .merging(environment ?? [:]) { _, new in new }
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    if process.isRunning {
        // SIGKILL, not terminate()'s SIGTERM: the child inherits the signal mask of the test runner's thread, which
        // blocks SIGTERM (libdispatch's worker threads do), so a SIGTERM would stay pending and the wait never end.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        Issue.record("loraswitch \(arguments.joined(separator: " ")) ran longer than \(timeout) s", sourceLocation: sourceLocation)
    }
    process.waitUntilExit()
    try out.close()
    try err.close()
    return RunResult(status: process.terminationStatus, reason: process.terminationReason,
                     stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
                     stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
}

/// Rewrites the JSON header of a safetensors file through `edit`, keeping the data area as it is.
func editSafetensorsHeader(_ path: String, _ edit: (inout [String: Any], _ dataSize: Int) throws -> Void) throws {
    let bytes = try readBytes(path)
    var length = 0
    for i in 0..<8 { length |= Int(bytes[i]) << (8 * i) }
    var header = try #require(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any])
    let data = Array(bytes[(8 + length)...])
    try edit(&header, data.count)
    var json = [UInt8](try JSONSerialization.data(withJSONObject: header))
    while json.count % 8 != 0 { json.append(0x20) }
    var out = (0..<8).map { UInt8(truncatingIfNeeded: json.count >> (8 * $0)) }
    out += json
    out += data
    try writeBytes(out, to: path)
}

/// The token ids of a fixture's reference run.
func fixtureTokens(_ name: String) throws -> String {
    let bytes = try readBytes(fixtures.appendingPathComponent("expected/\(name).safetensors").path)
    var length = 0
    for i in 0..<8 { length |= Int(bytes[i]) << (8 * i) }
    let header = try #require(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any])
    let metadata = try #require(header["__metadata__"] as? [String: String])
    return try #require(metadata["tokens"])
}
