import Kernels

/// One sequence's state apart from the forward pass: its KV cache and how many positions of it are filled. A forward
/// pass (`InferenceSession`) runs a step of rows, each a token of some sequence at that sequence's next position, so
/// one pass can advance several sequences at once (`InferenceSession.step`).
public final class SequenceState {
    /// Keys and values of every processed position.
    let cache: KVCache
    /// Positions already in the cache.
    public internal(set) var position = 0
    /// Positions the cache holds.
    public var capacity: Int { cache.capacity }
    /// The model the cache's layout is for.
    public let configuration: ModelConfiguration

    /// An empty sequence for `model` with room for `capacity` positions (default: the model's context, at most 4096).
    public init(model: LanguageModel, capacity: Int? = nil) {
        configuration = model.configuration
        let positions = max(1, capacity ?? min(configuration.maxPositionEmbeddings, 4096))
        cache = KVCache(configuration: configuration, capacity: positions)
    }

    /// Forgets the sequence: the next token goes to position 0.
    public func reset() { position = 0 }

    /// Drops cached positions from `newPosition` on (to rewind, e.g. to a shared prompt prefix).
    public func truncate(to newPosition: Int) { position = min(position, max(0, newPosition)) }

    /// Copies the first `count` cached positions of `other` (a sequence of the same model) into this one, which then
    /// holds exactly those: a shared prompt prefix computed once.
    public func copyPrefix(of other: SequenceState, count: Int) {
        precondition(other.configuration == configuration && count <= other.position && count <= capacity,
                     "copyPrefix: another model's sequence, or more positions than it holds")
        cache.copyPositions(count, from: other.cache)
        position = count
    }
}
