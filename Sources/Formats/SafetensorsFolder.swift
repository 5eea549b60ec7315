import Foundation

/// The weights of a Hugging Face model folder: `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json` (`{"weight_map": {"tensor name": "shard file", ...}}`). Every shard is validated
/// on open; a tensor is served from the shard the index names, and the index must agree with the shards.
public final class SafetensorsFolder: TensorSource, @unchecked Sendable {
    public let folder: String
    public let files: [SafetensorsFile]
    public let tensorNames: [String]
    private let owner: [String: SafetensorsFile]

    public static let singleFile = "model.safetensors"
    public static let indexFile = "model.safetensors.index.json"

    private struct Index: Decodable {
        let weight_map: [String: String]
    }

    public init(folder: String) throws {
        self.folder = folder
        let fm = FileManager.default
        let indexPath = (folder as NSString).appendingPathComponent(Self.indexFile)
        let singlePath = (folder as NSString).appendingPathComponent(Self.singleFile)
        if fm.fileExists(atPath: indexPath) {
            guard let data = fm.contents(atPath: indexPath) else {
                throw FormatError.unreadable(file: indexPath, reason: "cannot read the file")
            }
            let index: Index
            do {
                index = try JSONDecoder().decode(Index.self, from: data)
            } catch {
                throw FormatError.malformed(file: indexPath, detail: "invalid index: \(describeDecodingError(error))")
            }
            var shards: [String: SafetensorsFile] = [:]
            for shard in Set(index.weight_map.values).sorted() {
                guard !shard.contains("/"), !shard.hasPrefix(".") else {
                    throw FormatError.malformed(file: indexPath, detail: "shard name '\(shard)' is not a file in the folder")
                }
                shards[shard] = try SafetensorsFile(path: (folder as NSString).appendingPathComponent(shard))
            }
            var owner: [String: SafetensorsFile] = [:]
            for (name, shard) in index.weight_map {
                let file = shards[shard]!
                guard file.tensor(name) != nil else { throw FormatError.missingTensor(file: file.path, tensor: name) }
                owner[name] = file
            }
            for file in shards.values {
                for name in file.tensorNames where owner[name] !== file {
                    throw FormatError.malformed(file: indexPath, detail: "tensor '\(name)' in \((file.path as NSString).lastPathComponent) is not listed in the index")
                }
            }
            files = shards.keys.sorted().map { shards[$0]! }
            self.owner = owner
            tensorNames = files.flatMap(\.tensorNames)
        } else if fm.fileExists(atPath: singlePath) {
            let file = try SafetensorsFile(path: singlePath)
            files = [file]
            owner = Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, file) })
            tensorNames = file.tensorNames
        } else {
            throw FormatError.unreadable(file: folder, reason: "no \(Self.singleFile) or \(Self.indexFile) in the folder")
        }
    }

    public func tensor(_ name: String) -> TensorView? { owner[name]?.tensor(name) }
}
