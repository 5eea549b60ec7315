import Foundation
import Testing
import TestSupport
@testable import Formats
import Kernels

// Sharded Hugging Face folders: the index and the shards must agree.

@Suite("SafetensorsFolder")
struct SafetensorsFolderTests {
    let folder: TemporaryFolder
    init() throws { folder = try TemporaryFolder() }

    private func readIndex(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// A copy of the sharded fixture whose index's weight_map has been edited by `edit`.
    private func shardedCopy(_ edit: (inout [String: String]) -> Void) throws -> (folder: String, index: String) {
        let copy = try folder.copy(fixture("llama-sharded"), as: "sharded-\(UUID().uuidString)")
        let indexPath = (copy as NSString).appendingPathComponent("model.safetensors.index.json")
        var index = try readIndex(indexPath)
        var map = try #require(index["weight_map"] as? [String: String])
        edit(&map)
        index["weight_map"] = map
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: indexPath))
        return (copy, indexPath)
    }

    private func rejection(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) -> FormatError? {
        formatError(sourceLocation) { _ = try SafetensorsFolder(folder: path) }
    }

    @Test func shardedFixtureServesEveryTensorFromItsShard() throws {
        let sharded = try SafetensorsFolder(folder: fixture("llama-sharded"))
        let single = try SafetensorsFolder(folder: fixture("llama-gqa"))
        #expect(sharded.files.count == 3)
        #expect(single.files.count == 1)
        #expect(Set(sharded.tensorNames) == Set(single.tensorNames))
        #expect(sharded.tensorNames.count == single.tensorNames.count)
        let map = try #require(try readIndex(fixture("llama-sharded/model.safetensors.index.json"))["weight_map"] as? [String: String])
        for name in single.tensorNames {
            let a = try #require(sharded.tensor(name)), b = try #require(single.tensor(name))
            #expect(a.shape == b.shape && a.dtype == b.dtype)
            #expect(memcmp(a.data, b.data, a.byteCount) == 0, "the shards hold llama-gqa's weights: \(name)")
            #expect((a.file as NSString).lastPathComponent == map[name], "\(name) comes from the shard the index names")
        }
        #expect(sharded.tensor("not.a.tensor") == nil)
    }

    @Test func indexNamesAMissingShardFile() throws {
        let (copy, _) = try shardedCopy { $0["lm_head.weight"] = "model-00009-of-00009.safetensors" }
        let error = rejection(copy)
        #expect(error?.kind == "unreadable")
        #expect(error?.message.contains("model-00009-of-00009.safetensors") == true, "\(error?.message ?? "")")
    }

    @Test func indexNamesATensorThatIsNotInItsShard() throws {
        let (copy, _) = try shardedCopy { map in
            // Point one tensor at another shard that does not hold it.
            let shard = map["lm_head.weight"]!
            let other = Set(map.values).sorted().first { $0 != shard }!
            map["lm_head.weight"] = other
        }
        let error = rejection(copy)
        #expect(error?.kind == "missingTensor")
        #expect(error?.message.contains("'lm_head.weight'") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains(".safetensors") == true)
    }

    @Test func indexNamesATensorNoShardHolds() throws {
        let (copy, _) = try shardedCopy { $0["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00003.safetensors" }
        let error = rejection(copy)
        #expect(error?.kind == "missingTensor")
        #expect(error?.message.contains("model.layers.9.mlp.up_proj.weight") == true)
    }

    @Test func shardHoldsATensorTheIndexDoesNotList() throws {
        let (copy, index) = try shardedCopy { $0["model.norm.weight"] = nil }
        let error = rejection(copy)
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("'model.norm.weight'") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains(index) == true)
    }

    @Test func shardNameWithASlash() throws {
        for bad in ["../llama-gqa/model.safetensors", "sub/model.safetensors", "/etc/passwd", ".hidden.safetensors"] {
            let (copy, index) = try shardedCopy { $0["lm_head.weight"] = bad }
            let error = rejection(copy)
            #expect(error?.kind == "malformed", "\(bad)")
            #expect(error?.message.contains(bad) == true && error?.message.contains(index) == true, "\(error?.message ?? "")")
        }
    }

    @Test func invalidIndex() throws {
        let copy = try folder.copy(fixture("llama-sharded"), as: "bad-index")
        let indexPath = (copy as NSString).appendingPathComponent("model.safetensors.index.json")
        for text in ["{", "[]", #"{"metadata": {}}"#, #"{"weight_map": {"a": 1}}"#] {
            try Data(text.utf8).write(to: URL(fileURLWithPath: indexPath))
            let error = rejection(copy)
            #expect(error?.kind == "malformed", "\(text)")
            #expect(error?.message.contains(indexPath) == true, "\(error?.message ?? "")")
        }
    }

    @Test func aBadShardIsReportedByItsName() throws {
        let copy = try folder.copy(fixture("llama-sharded"), as: "bad-shard")
        let shard = (copy as NSString).appendingPathComponent("model-00002-of-00003.safetensors")
        let bytes = try readBytes(shard)
        try Data(bytes[0..<(bytes.count / 2)]).write(to: URL(fileURLWithPath: shard))
        let error = rejection(copy)
        #expect(error?.message.contains(shard) == true, "\(error?.message ?? "")")
    }

    @Test func folderWithoutWeights() throws {
        let empty = folder.file("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let error = rejection(empty)
        #expect(error?.kind == "unreadable" && error?.message.contains(empty) == true)
        #expect(error?.message.contains("model.safetensors") == true)
    }
}
