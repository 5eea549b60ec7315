import Kernels

/// The one place adapters enter the fused forward pass (as llama.cpp's `build_lora_mm`): every projection is the
/// base product plus what the adapters active for each token add. Implementations (LoRA, MoE-LoRA with token or layer
/// routing, fused or merged) live in the Adapters module; an `InferenceSession` calls them at fixed points of every
/// layer. The reference forward takes the plain form of the same, `ProjectionAdapters`.
///
/// An implementation belongs to one session: the routing decisions it makes for the tokens in flight are per-call
/// values it hands from one hook to the next, never state of the shared model.
public protocol ForwardAdapters: AnyObject {
    /// Throws unless the implementation was made for `session`'s model, thread count and chunk size (checked before
    /// the first pass after it is attached; its buffers are sized by them).
    func check(fits session: InferenceSession) throws

    /// The layer where a token's experts become known (`DecodingPartition.startsInOwnRegion`): a token router's
    /// layer, else 0.
    var decisionLayer: Int { get }

    /// The weights of `layer` for a chunk of `tokens` tokens — merged copies under a merging strategy — or nil for
    /// the model's own.
    func weights(layer: Int, tokens: Int) -> LayerWeights?

    /// Called on the calling thread after `layer`'s attention norm: `normalized` [T, D] is the input of its q, k and
    /// v. Token routing decides here (at layer 0), and a merging strategy merges; both may run parallel regions.
    func didNormalize(layer: Int, normalized: UnsafePointer<Float>, tokens: Int, pool: ThreadPool)

    /// Called on the calling thread before the parallel region of `projections` (which share the input x [T, in], the
    /// rows of this implementation's group): routing decisions and the adapters' input-side products may be computed
    /// here, so that the projection's region only adds the output side. `decoding`: the pass is one row, the
    /// products may run in a parallel region of their own, and the region adds `decodingTerms` next. Otherwise
    /// (several rows; `adjust` comes next, even for a group of one row in a pass of several) the products are only
    /// staged, as `stagedItems` independent items: the session runs every group's items in one parallel region
    /// (`runStaged`), so that a pass costs one region per site however many adapters its rows have.
    func prepare(layer: Int, projections: [LayerTensor], input x: UnsafePointer<Float>, tokens: Int, decoding: Bool,
                 pool: ThreadPool)

    /// The items the last `prepare` of several rows staged (0 after a decoding one).
    var stagedItems: Int { get }

    /// Runs staged item `item` (0..<stagedItems) on thread `thread`, inside the session's parallel region.
    func runStaged(item: Int, thread: Int)

    /// One token, inside the parallel region that finishes the input of `projections` of `layer`, on thread
    /// `thread`, once `source[inputs]` — this thread's share — is final: the adapters may start their input-side
    /// products on those inputs (partial products that each thread adds up in `decodingTerms`, with no parallel
    /// region of their own). It is also called at the start of a projection's own region, with that projection, for
    /// an input no region produces by rows (`DecodingPartition.startsInOwnRegion`). The
    /// input is `source` itself when `norm` is nil, else RMSNorm(source) with weights `norm`: by the norm's
    /// linearity, A·RMSNorm(x) = A·(x ∘ norm) / rms(x), so each share gives a partial product and a partial Σx².
    /// An implementation may ignore the call; its `prepare` then computes the products itself.
    func foldInput(layer: Int, projections: [LayerTensor], source: UnsafePointer<Float>, norm: UnsafePointer<Float>?,
                   inputs: Range<Int>, thread: Int)

    /// Whether `projection` of `layer` has adapters (the session skips the calls below otherwise).
    func adapts(layer: Int, projection: LayerTensor) -> Bool

    /// One token, inside the parallel region of `projection` (after `prepare`), on thread `thread`: the low-rank
    /// terms (B_j, u_j) its matrix-vector product adds to the thread's rows (`DecodingPartition.rows`) — empty for
    /// none.
    func decodingTerms(layer: Int, projection: LayerTensor, thread: Int) -> UnsafeBufferPointer<LowRankTerm>

    /// Several tokens, inside a parallel region, on thread `thread`: y[t, rows] holds the base product of
    /// `projection` for the input x [T, in]; add the adapters' share for those rows (y row stride `ldy`).
    func adjust(layer: Int, projection: LayerTensor, input x: UnsafePointer<Float>, tokens: Int,
                output y: UnsafeMutablePointer<Float>, ldy: Int, rows: Range<Int>, thread: Int)
}

/// How a session runs its adapters.
public enum SessionAdapters {
    /// Inside the decoding regions (fused or merged).
    case fused(ForwardAdapters)
    /// Through the reference forward, one operation at a time.
    case reference(ProjectionAdapters)
}
