/// An owned, 64-byte aligned, zero-initialised array of floats with a stable address: the scratch and state buffers
/// of the forward pass. Allocated once, up front; the hot path only reads and writes through `pointer`.
public final class FloatBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// `zeroed: false` leaves large buffers untouched until written, so their pages cost nothing until used
    /// (the KV cache); their contents are then undefined.
    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        if zeroed { raw.initializeMemory(as: Float.self, repeating: 0, count: max(1, count)) }
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, count))
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    public subscript(index: Int) -> Float {
        get { pointer[index] }
        set { pointer[index] = newValue }
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    public func toArray() -> [Float] { Array(buffer) }
}

/// Owned raw bytes, 64-byte aligned, zeroed: weights built in memory (random benchmark models, merged adapters).
///
/// Zeroing touches every page once, in order, on the creating thread. Pages first touched by several threads at
/// once (a parallel fill) come from different per-CPU free lists and lie scattered in physical memory, and on the
/// virtual machines we measure on such weights decode measurably slower (~10% at f32) than weights whose pages
/// were touched in order.
public final class ByteStorage: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let count: Int

    public init(count: Int) {
        self.count = count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, count), alignment: 64)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(1, count))
    }

    deinit { pointer.deallocate() }
}
