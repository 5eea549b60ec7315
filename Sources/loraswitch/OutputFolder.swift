import Foundation
import Training

/// The checks `train` makes of the paths it will write before it does any work, so that a path it cannot use fails
/// at once, in one line, with nothing written.
enum OutputFolder {
    /// What a checkpoint folder holds; a folder holding anything else is not replaced.
    static let checkpointFiles: Set<String> = ["adapter_config.json", "adapter_model.safetensors", Checkpoint.stateFile]

    /// What the arguments alone can tell.
    static func checkArguments(out: String, log: String?) throws {
        guard !out.isEmpty else { throw UsageError("--out needs a folder") }
        if let log {
            let folder = standardized(out), file = standardized(log)
            if file == folder || file.hasPrefix(folder + "/") {
                throw UsageError("--log \(log) is inside --out \(out), which every save replaces whole")
            }
        }
    }

    /// `out` can be made or replaced: its parent is a writable folder, and `out`, if it exists, is a folder holding
    /// at most a checkpoint (every save replaces the folder whole, and must not take anything else with it).
    static func checkWritable(_ out: String) throws {
        let path = standardized(out)
        try checkParent(of: path, option: "--out", given: out)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { return }
        guard isFolder.boolValue else { throw TrainCommandError("--out \(out) is a file, not a folder") }
        let others = try FileManager.default.contentsOfDirectory(atPath: path).filter { !checkpointFiles.contains($0) }.sorted()
        guard others.isEmpty else {
            let listed = others.prefix(3).joined(separator: ", ") + (others.count > 3 ? ", ..." : "")
            throw TrainCommandError("--out \(out) holds other files than a checkpoint (\(listed)); every save replaces the folder whole: give a new or empty one")
        }
    }

    /// A file `option` will write: its parent is a writable folder and it is not a folder itself.
    static func checkWritableFile(_ file: String, option: String) throws {
        let path = standardized(file)
        try checkParent(of: path, option: option, given: file)
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            throw TrainCommandError("\(option) \(file) is a folder, not a file")
        }
    }

    /// `folder` holds a training checkpoint (what --resume takes).
    static func checkCheckpoint(_ folder: String) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw TrainCommandError("--resume \(folder): no such folder")
        }
        guard FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent(Checkpoint.stateFile)) else {
            throw TrainCommandError("--resume \(folder): not a training checkpoint (it holds no \(Checkpoint.stateFile))")
        }
    }

    private static func checkParent(of path: String, option: String, given: String) throws {
        let parent = (path as NSString).deletingLastPathComponent
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isFolder) else {
            throw TrainCommandError("\(option) \(given): the folder \(parent) does not exist")
        }
        guard isFolder.boolValue else { throw TrainCommandError("\(option) \(given): \(parent) is a file, not a folder") }
        guard access(parent, W_OK) == 0 else { throw TrainCommandError("\(option) \(given): cannot write in \(parent)") }
    }

    private static func standardized(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }
}
