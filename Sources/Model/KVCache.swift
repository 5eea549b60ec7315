import Kernels

/// Keys and values of every processed position, float32, laid out [layer, kvHead, position, headDim] so that one
/// head's keys are contiguous for attention. Pages are touched only as positions fill.
final class KVCache {
    let capacity: Int
    let headDim: Int
    let kvHeads: Int
    private let keyStorage: FloatBuffer
    private let valueStorage: FloatBuffer
    /// The same storage as pointers, for the parallel regions (no reference counting).
    let view: KVCacheView

    init(configuration c: ModelConfiguration, capacity: Int) {
        self.capacity = capacity
        headDim = c.headDim
        kvHeads = c.numKeyValueHeads
        let count = c.numHiddenLayers * c.numKeyValueHeads * capacity * c.headDim
        keyStorage = FloatBuffer(count: count, zeroed: false)
        valueStorage = FloatBuffer(count: count, zeroed: false)
        view = KVCacheView(keys: keyStorage.pointer, values: valueStorage.pointer, capacity: capacity, headDim: headDim,
                           kvHeads: kvHeads)
    }

    /// Bytes held once every position is filled.
    var byteCount: Int { 2 * keyStorage.count * 4 }

    /// Keys of one head: position p at `+ p · headDim`.
    @inline(__always) func keys(layer: Int, head: Int) -> UnsafeMutablePointer<Float> { view.keys(layer: layer, head: head) }

    @inline(__always) func values(layer: Int, head: Int) -> UnsafeMutablePointer<Float> { view.values(layer: layer, head: head) }

    /// Stores one position's keys and values, each [kvHeads · headDim].
    @inline(__always) func store(layer: Int, position: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>) {
        view.store(layer: layer, position: position, keys: k, values: v)
    }

    /// Copies positions 0..<count of every layer and head from `other` (same layout, any capacity ≥ count).
    func copyPositions(_ count: Int, from other: KVCache) {
        let layers = keyStorage.count / (kvHeads * capacity * headDim)
        for l in 0..<layers {
            for h in 0..<kvHeads {
                keys(layer: l, head: h).update(from: other.keys(layer: l, head: h), count: count * headDim)
                values(layer: l, head: h).update(from: other.values(layer: l, head: h), count: count * headDim)
            }
        }
    }
}

/// A KV cache's storage as plain pointers (valid while its `KVCache` lives).
struct KVCacheView {
    let keyBase: UnsafeMutablePointer<Float>
    let valueBase: UnsafeMutablePointer<Float>
    let capacity: Int
    let headDim: Int
    let kvHeads: Int

    init(keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>, capacity: Int, headDim: Int, kvHeads: Int) {
        keyBase = keys
        valueBase = values
        self.capacity = capacity
        self.headDim = headDim
        self.kvHeads = kvHeads
    }

    @inline(__always) private func offset(layer: Int, head: Int) -> Int { (layer * kvHeads + head) * capacity * headDim }

    @inline(__always) func keys(layer: Int, head: Int) -> UnsafeMutablePointer<Float> { keyBase + offset(layer: layer, head: head) }

    @inline(__always) func values(layer: Int, head: Int) -> UnsafeMutablePointer<Float> { valueBase + offset(layer: layer, head: head) }

    @inline(__always) func store(layer: Int, position: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>) {
        for h in 0..<kvHeads {
            (keys(layer: layer, head: h) + position * headDim).update(from: k + h * headDim, count: headDim)
            (values(layer: layer, head: h) + position * headDim).update(from: v + h * headDim, count: headDim)
        }
    }
}
