import Kernels

/// A tensor inside a mapped file: its stored type, its row-major shape (outermost first, as PyTorch writes it)
/// and its bytes. Valid while the file that produced it is alive.
public struct TensorView: @unchecked Sendable {
    public let name: String
    public let dtype: DType
    /// Row-major, outermost first: a Linear weight is [out, in].
    public let shape: [Int]
    public let data: UnsafeRawPointer
    public let byteCount: Int
    /// The file it lives in, for messages.
    public let file: String

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A tensor to write: its type, its row-major shape (outermost first) and its bytes as the format lays them out.
public struct TensorBytes {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let bytes: UnsafeRawBufferPointer

    /// `bytes` must stay valid until the write returns; its size must match shape × dtype.
    public init(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// Throws unless shape × dtype is exactly `bytes` (writers check before writing anything to `path`).
    func checkSize(writing path: String) throws {
        guard let elements = checkedProduct(shape), dtype.byteCount(elements: elements) == bytes.count else {
            throw FormatError.shapeMismatch(file: path, tensor: name, detail: "shape \(shape) does not match \(bytes.count) bytes")
        }
    }
}

/// Where a model's tensors come from: one safetensors file, a sharded folder, or a GGUF file.
public protocol TensorSource: AnyObject, Sendable {
    /// Every tensor name, in file order.
    var tensorNames: [String] { get }
    func tensor(_ name: String) -> TensorView?
}

/// Multiplies sizes, or nil on overflow or a negative size.
func checkedProduct(_ values: [Int]) -> Int? {
    var result = 1
    for v in values {
        guard v >= 0 else { return nil }
        let (p, overflow) = result.multipliedReportingOverflow(by: v)
        if overflow { return nil }
        result = p
    }
    return result
}
