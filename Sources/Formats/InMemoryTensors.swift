import Kernels

/// Tensors that live in memory rather than in a file: models built by the program itself (random benchmark
/// weights, merged adapters). Serves them through the same `TensorSource` interface as the file formats.
public final class InMemoryTensors: TensorSource, @unchecked Sendable {
    public private(set) var tensorNames: [String] = []
    private var entries: [String: (view: TensorView, storage: ByteStorage)] = [:]
    public let label: String

    /// `label` stands in for a file name in messages.
    public init(label: String) { self.label = label }

    /// Adds a tensor of `shape` (row-major, outermost first) and returns its bytes to fill. A row (the last
    /// dimension) must be whole blocks of `dtype`.
    public func add(_ name: String, dtype: DType, shape: [Int]) -> UnsafeMutableRawPointer {
        let elements = shape.reduce(1, *)
        precondition(shape.last.map { $0 % dtype.blockElements == 0 } ?? true, "\(name): rows are not whole blocks")
        let bytes = dtype.byteCount(elements: elements)!
        let storage = ByteStorage(count: bytes)
        let view = TensorView(name: name, dtype: dtype, shape: shape, data: storage.pointer, byteCount: bytes, file: label)
        if entries[name] == nil { tensorNames.append(name) }
        entries[name] = (view, storage)
        return storage.pointer
    }

    public func tensor(_ name: String) -> TensorView? { entries[name]?.view }
}
