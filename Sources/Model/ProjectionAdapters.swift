import Kernels

/// Adapters as the reference forward (`ReferenceForward`) runs them: each projection's base product first, then
/// the adapters' share of it as separate steps, one operation at a time. This is the plain form of `ForwardAdapters`
/// (which the decoding regions fuse into their own passes): `--strategy reference` and training run through it.
///
/// An implementation belongs to one forward pass at a time: the routing decisions it makes for the rows in flight
/// are per-call values, never state of the shared model.
public protocol ProjectionAdapters: AnyObject {
    /// Called before a pass of `rows` rows whose steps run on `pool`: throws if the implementation cannot take them
    /// (its buffers are sized for a number of rows and threads).
    func begin(rows: Int, pool: ThreadPool) throws

    /// Called after `layer`'s attention norm with its output `normalized` [rows, D], the input of q, k and v. Token
    /// routing decides here, at its router's layer, for every adapted projection of the rows.
    func didNormalize(layer: Int, normalized: UnsafePointer<Float>, rows: Int, pool: ThreadPool)

    /// Whether `projection` of `layer` has adapters (the forward skips `apply` otherwise).
    func adapts(layer: Int, projection: LayerTensor) -> Bool

    /// y[i, 0..<out] (row stride `ldy`) holds the base product of `projection` for input x [rows, in] (row stride
    /// in): add the adapters' share. Layer routing routes here, on x.
    func apply(layer: Int, projection: LayerTensor, input x: UnsafePointer<Float>, rows: Int,
               output y: UnsafeMutablePointer<Float>, ldy: Int, pool: ThreadPool)
}
