import Kernels

/// Keys and values of every processed position, float32, laid out [layer, kvHead, position, headDim] so that one
/// head's keys are contiguous for attention. Pages are touched only as positions fill.
final class KVCache {
    let capacity: Int
    let headDim: Int
    let kvHeads: Int
    private let keyStorage: FloatBuffer
    private let valueStorage: FloatBuffer

    init(configuration c: ModelConfiguration, capacity: Int) {
        self.capacity = capacity
        headDim = c.headDim
        kvHeads = c.numKeyValueHeads
        let count = c.numHiddenLayers * c.numKeyValueHeads * capacity * c.headDim
        keyStorage = FloatBuffer(count: count, zeroed: false)
        valueStorage = FloatBuffer(count: count, zeroed: false)
    }

    /// Bytes held once every position is filled.
    var byteCount: Int { 2 * keyStorage.count * 4 }

    @inline(__always) private func offset(layer: Int, head: Int) -> Int { (layer * kvHeads + head) * capacity * headDim }

    /// Keys of one head: position p at `+ p · headDim`.
    @inline(__always) func keys(layer: Int, head: Int) -> UnsafeMutablePointer<Float> {
        keyStorage.pointer + offset(layer: layer, head: head)
    }

    @inline(__always) func values(layer: Int, head: Int) -> UnsafeMutablePointer<Float> {
        valueStorage.pointer + offset(layer: layer, head: head)
    }

    /// Stores one position's keys and values, each [kvHeads · headDim].
    @inline(__always) func store(layer: Int, position: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>) {
        for h in 0..<kvHeads {
            (keys(layer: layer, head: h) + position * headDim).update(from: k + h * headDim, count: headDim)
            (values(layer: layer, head: h) + position * headDim).update(from: v + h * headDim, count: headDim)
        }
    }
}
