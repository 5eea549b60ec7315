import Foundation
import Text

/// `loraswitch tokenize`: text to token ids, or ids back to text, with a model's tokenizer.
struct TokenizeCommand: Command {
    static let name = "tokenize"
    static let summary = "print the token ids of a text, or the text of token ids"
    static let usage = "[--model PATH] (--text TEXT | --decode 1,2,3) [--no-special]"

    let model: String
    let text: String?
    let ids: [Int]?
    let addSpecial: Bool

    init(_ arguments: inout Arguments) throws {
        model = try arguments.option("model") ?? DefaultModel.path()
        text = try arguments.option("text")
        if let list = try arguments.option("decode") {
            ids = try parseTokenList(list, option: "decode")
        } else {
            ids = nil
        }
        addSpecial = !arguments.flag("no-special")
        guard (text == nil) != (ids == nil) else { throw UsageError("give exactly one of --text and --decode") }
    }

    func run() throws {
        let tokenizer = try Tokenizer.load(model: model)
        if let text {
            print(tokenizer.encode(text, addSpecialTokens: addSpecial).map(String.init).joined(separator: ","))
        } else if let ids {
            print(try tokenizer.decode(ids))
        }
    }
}

/// "1,2,3" → [1, 2, 3]; a usage error naming `option` otherwise.
func parseTokenList(_ list: String, option: String) throws -> [Int] {
    var tokens: [Int] = []
    for item in list.split(separator: ",", omittingEmptySubsequences: false) {
        guard let id = Int(item.trimmingCharacters(in: .whitespaces)), id >= 0 else {
            throw UsageError("--\(option) must be a comma-separated list of token ids, not '\(list)'")
        }
        tokens.append(id)
    }
    return tokens
}
