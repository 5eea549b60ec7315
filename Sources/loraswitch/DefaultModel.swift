import Engine
import Foundation

/// Where the default model lives: `$XDG_CACHE_HOME/loraswitch` (else `~/.cache/loraswitch`), put there by
/// scripts/fetch-default-model.sh. The program itself never downloads anything.
enum DefaultModel {
    static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    static let fetchCommand = "scripts/fetch-default-model.sh"

    static var directory: String { cacheDirectory() }

    /// The default model's path; a usage error saying how to fetch it when it is absent.
    static func path() throws -> String {
        let path = directory + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else {
            throw DefaultModelMissing(path: path)
        }
        return path
    }
}

/// The default model is not there: one line saying which command fetches it.
struct DefaultModelMissing: Error, LocalizedError {
    let path: String
    var errorDescription: String? {
        "no --model given and the default model is not at \(path); fetch it with \(DefaultModel.fetchCommand) (or pass --model PATH)"
    }
}
