#if canImport(Glibc)
import Glibc
#endif

/// An owned, 64-byte aligned, zero-initialised array of floats with a stable address: the scratch and state buffers
/// of the forward pass. Allocated once, up front; the hot path only reads and writes through `pointer`.
public final class FloatBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// `zeroed: false` leaves large buffers untouched until written, so their pages cost nothing until used
    /// (the KV cache); their contents are then undefined. Zeroed buffers cost nothing until written either (see
    /// `zeroLazily`): a session's scratch is sized for 128-token prefill chunks, and a short prompt or a decoded
    /// token touches only its first rows.
    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        if zeroed { zeroLazily(raw, byteCount: max(1, count) * 4) }
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

    /// With `hugePages`, storage of 2 MiB or more is 2 MiB-aligned and asks for transparent huge pages before its
    /// first touch: for data read in many short pieces scattered over hundreds of megabytes (the adapters' decoding
    /// layouts), which otherwise cost a page walk every 4 KiB — ~1.5 points of token-fused overhead on smollm2-135m
    /// f32. The advice is only advice: where the kernel gives no huge pages, the memory works as any other.
    public init(count: Int, hugePages: Bool = false) {
        self.count = count
        let huge = 2 << 20
        if hugePages && count >= huge {
            let size = (count + huge - 1) / huge * huge
            pointer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: huge)
            _ = madvise(pointer, size, MADV_HUGEPAGE)
        } else {
            pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, count), alignment: 64)
        }
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(1, count))
    }

    deinit { pointer.deallocate() }
}

/// Zeroes `byteCount` bytes at `raw` (memory this process owns, private and anonymous: the heap). Whole pages are
/// handed back to the kernel (`madvise(MADV_DONTNEED)`), which then reads them as zero and gives them memory only
/// when written; memset zeroed every page, so that a 128-token scratch cost its full size at once (~3.4 MiB for
/// SmolLM2-135M). The partial pages at either end, and everything when the advice fails, are zeroed by hand.
@inline(never)
func zeroLazily(_ raw: UnsafeMutableRawPointer, byteCount: Int) {
    let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = (Int(bitPattern: raw) + pageSize - 1) / pageSize * pageSize
    let end = (Int(bitPattern: raw) + byteCount) / pageSize * pageSize
    guard byteCount >= 16 * pageSize, end > start,
          madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) == 0 else {
        memset(raw, 0, byteCount)
        return
    }
    memset(raw, 0, start - Int(bitPattern: raw))
    memset(UnsafeMutableRawPointer(bitPattern: end)!, 0, Int(bitPattern: raw) + byteCount - end)
}
