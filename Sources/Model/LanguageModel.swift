import Foundation
import Formats
import Kernels
import Text

/// A loaded model: its configuration and weights, immutable and shareable. Decoding state lives in a
/// `InferenceSession`, so one model serves any number of sessions.
public final class LanguageModel: @unchecked Sendable {
    public let path: String
    public let format: Format
    public let configuration: ModelConfiguration
    public let weights: ModelWeights

    public enum Format: String, Sendable { case huggingFace = "Hugging Face safetensors", gguf = "GGUF" }

    public init(path: String, format: Format, weights: ModelWeights) {
        self.path = path
        self.format = format
        self.configuration = weights.configuration
        self.weights = weights
    }

    /// Loads a Hugging Face model folder (config.json + safetensors, single or sharded) or a `.gguf` file.
    public static func load(path: String) throws -> LanguageModel {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw ModelError.notAModel(path: path, detail: "no such file or folder")
        }
        if isFolder.boolValue {
            let configPath = (path as NSString).appendingPathComponent("config.json")
            guard FileManager.default.fileExists(atPath: configPath) else {
                throw ModelError.notAModel(path: path, detail: "a model folder needs a config.json")
            }
            let configuration = try ModelConfiguration.load(path: configPath)
            let source = try SafetensorsFolder(folder: path)
            let weights = try ModelWeights(configuration: configuration, source: source, naming: .huggingFace, path: path)
            return LanguageModel(path: path, format: .huggingFace, weights: weights)
        }
        let file = try GGUFFile(path: path)
        let configuration = try ModelConfiguration(gguf: file)
        let weights = try ModelWeights(configuration: configuration, source: file, naming: .gguf, path: path)
        return LanguageModel(path: path, format: .gguf, weights: weights)
    }

    /// The model's tokenizer: from the GGUF file already mapped and parsed for the weights (not a second mapping of
    /// it), or from the folder's tokenizer.json.
    public func loadTokenizer() throws -> Tokenizer {
        if let file = weights.source as? GGUFFile { return try Tokenizer(gguf: file) }
        return try Tokenizer.load(model: path)
    }

    /// Gives back the resident pages of a GGUF file's metadata once the configuration and tokenizer are read; a later
    /// read of the metadata pages it in again. (Hugging Face folders keep theirs in separate, small files.)
    public func releaseMetadataPages() {
        (weights.source as? GGUFFile)?.releaseMetadataPages()
    }

    /// Number of parameters (elements of every tensor of the source).
    public var parameterCount: Int {
        weights.source.tensorNames.reduce(0) { $0 + (weights.source.tensor($1)?.elementCount ?? 0) }
    }
}
