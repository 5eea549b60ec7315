// Fixed-size groups of accumulators that stay in registers: the batched kernels (BatchedMatVec.swift) keep one
// accumulator per activation row of a group while a weight row streams past.
//
// Each size is its own struct with named fields and an unrolled `update`, because that is what LLVM keeps in
// registers: a fixed-size array (InlineArray, a tuple indexed in a loop) indexed by a loop variable was measured to
// live on the stack, with a load and a store around every multiply-add.

/// A group of `count` values of type `V`, visited in index order by closures the compiler inlines.
protocol AccumulatorGroup {
    associatedtype V
    static var count: Int { get }
    init(repeating value: V)
    /// Calls `body(j, &value j)` for j in 0..<count, unrolled.
    mutating func update(_ body: (Int, inout V) -> Void)
    /// Calls `body(j, value j)` for j in 0..<count, unrolled.
    func forEach(_ body: (Int, V) -> Void)
}

extension AccumulatorGroup {
    /// `body(j, self[j], other[j])` for every j: the two halves of a split accumulator (even and odd blocks).
    @inline(__always)
    func zip(_ other: Self, _ body: (Int, V, V) -> Void) {
        var copy = other
        forEach { j, mine in copy.update { k, theirs in if k == j { body(j, mine, theirs) } } }
    }
}

struct Group1<V>: AccumulatorGroup {
    var a0: V
    static var count: Int { 1 }
    @inline(__always) init(repeating v: V) { a0 = v }
    @inline(__always) mutating func update(_ body: (Int, inout V) -> Void) { body(0, &a0) }
    @inline(__always) func forEach(_ body: (Int, V) -> Void) { body(0, a0) }
}

struct Group2<V>: AccumulatorGroup {
    var a0, a1: V
    static var count: Int { 2 }
    @inline(__always) init(repeating v: V) { a0 = v; a1 = v }
    @inline(__always) mutating func update(_ body: (Int, inout V) -> Void) { body(0, &a0); body(1, &a1) }
    @inline(__always) func forEach(_ body: (Int, V) -> Void) { body(0, a0); body(1, a1) }
}

struct Group4<V>: AccumulatorGroup {
    var a0, a1, a2, a3: V
    static var count: Int { 4 }
    @inline(__always) init(repeating v: V) { a0 = v; a1 = v; a2 = v; a3 = v }
    @inline(__always) mutating func update(_ body: (Int, inout V) -> Void) {
        body(0, &a0); body(1, &a1); body(2, &a2); body(3, &a3)
    }
    @inline(__always) func forEach(_ body: (Int, V) -> Void) { body(0, a0); body(1, a1); body(2, a2); body(3, a3) }
}

struct Group8<V>: AccumulatorGroup {
    var low, high: Group4<V>
    static var count: Int { 8 }
    @inline(__always) init(repeating v: V) { low = Group4(repeating: v); high = Group4(repeating: v) }
    @inline(__always) mutating func update(_ body: (Int, inout V) -> Void) {
        low.update(body)
        high.update { j, v in body(4 + j, &v) }
    }
    @inline(__always) func forEach(_ body: (Int, V) -> Void) {
        low.forEach(body)
        high.forEach { j, v in body(4 + j, v) }
    }
}
