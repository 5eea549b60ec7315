/// A read-only view of a row-major weight matrix [rows, cols] in its stored dtype — usually inside a memory-mapped
/// file, never copied. Row r starts at `data + r · rowBytes`; quantized rows are whole blocks (cols % 32 == 0).
///
/// The memory it points to is owned elsewhere (a mapped file or a `WeightStorage`); whoever builds the view keeps
/// that owner alive for as long as the view is used.
public struct WeightMatrix: @unchecked Sendable {
    public let data: UnsafeRawPointer
    public let dtype: DType
    /// Output features (HF Linear `out_features`).
    public let rows: Int
    /// Input features (HF Linear `in_features`).
    public let cols: Int
    public let rowBytes: Int

    /// Fails when `cols` is not a whole number of blocks of `dtype` or the size overflows.
    public init?(data: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int) {
        guard rows >= 0, let rowBytes = dtype.byteCount(elements: cols),
              !rows.multipliedReportingOverflow(by: rowBytes).overflow else { return nil }
        self.data = data
        self.dtype = dtype
        self.rows = rows
        self.cols = cols
        self.rowBytes = rowBytes
    }

    @inline(__always)
    public func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    public var byteCount: Int { rows * rowBytes }

    /// The sub-matrix of rows `range` (a view, no copy).
    public func rows(_ range: Range<Int>) -> WeightMatrix {
        WeightMatrix(data: row(range.lowerBound), dtype: dtype, rows: range.count, cols: cols)!
    }

    /// Row r as float32 into `out` [cols].
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        dequantize(row(r), dtype: dtype, count: cols, into: out)
    }

    /// Elements `columns` of row r as float32 into `out` [columns.count]. `columns.lowerBound` is a multiple of
    /// `dtype.blockElements` (a block boundary); the range may end inside a block.
    public func dequantizeRow(_ r: Int, columns: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        let block = dtype.blockElements
        precondition(columns.lowerBound % block == 0 && columns.upperBound <= cols, "columns start at a block boundary")
        let start = row(r) + columns.lowerBound / block * dtype.blockBytes
        let whole = columns.count / block * block
        dequantize(start, dtype: dtype, count: whole, into: out)
        guard whole < columns.count else { return }
        var tail = SIMD32<Float>()
        withUnsafeMutableBytes(of: &tail) { raw in
            let t = raw.baseAddress!.assumingMemoryBound(to: Float.self)
            dequantizeBlock(start + whole / block * dtype.blockBytes, dtype: dtype, into: t)
            out.advanced(by: whole).update(from: t, count: columns.count - whole)
        }
    }
}
