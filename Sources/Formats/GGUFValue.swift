/// A metadata value of a GGUF file.
public enum GGUFValue: Sendable, Equatable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array(GGUFArray)

    public var intValue: Int? {
        switch self {
        case .uint(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int(let v): return Int(v)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .float(let v): return v
        case .uint, .int: return intValue.map(Double.init)
        default: return nil
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var arrayValue: GGUFArray? { if case .array(let a) = self { return a } else { return nil } }
}

/// A GGUF metadata array. Arrays of numbers and strings are read from the mapped file as they are walked (they were
/// validated when the file was opened), so a 50,000-token vocabulary and its merges cost nothing in memory beyond
/// the mapping: no `String`s and no table of offsets. Strings are found by walking their length prefixes, so the
/// array is a `Collection` (each step O(1)), not random access; its index carries the element's file offset.
public struct GGUFArray: Collection, Sendable, Equatable {
    enum ScalarKind: Equatable {
        case u8, i8, u16, i16, u32, i32, f32, bool, u64, i64, f64

        init?(type: UInt32) {
            switch type {
            case 0: self = .u8
            case 1: self = .i8
            case 2: self = .u16
            case 3: self = .i16
            case 4: self = .u32
            case 5: self = .i32
            case 6: self = .f32
            case 7: self = .bool
            case 10: self = .u64
            case 11: self = .i64
            case 12: self = .f64
            default: return nil
            }
        }

        var size: Int {
            switch self {
            case .u8, .i8, .bool: return 1
            case .u16, .i16: return 2
            case .u32, .i32, .f32: return 4
            case .u64, .i64, .f64: return 8
            }
        }
    }

    /// A position in the array: the element's number and, for numbers and strings, its byte offset in the file
    /// (a string's offset is that of its length prefix).
    public struct Index: Comparable, Sendable {
        public let position: Int
        let offset: Int

        public static func < (a: Index, b: Index) -> Bool { a.position < b.position }
        public static func == (a: Index, b: Index) -> Bool { a.position == b.position }
    }

    private enum Storage: @unchecked Sendable {
        case values([GGUFValue])
        case scalars(ScalarKind, MappedFile)
        case strings(MappedFile)
    }

    private let storage: Storage
    public let count: Int
    public let startIndex: Index
    public let endIndex: Index

    init(values: [GGUFValue]) {
        storage = .values(values)
        count = values.count
        startIndex = Index(position: 0, offset: 0)
        endIndex = Index(position: count, offset: 0)
    }

    /// `count` scalars from byte `start` of `file`.
    init(scalars kind: ScalarKind, file: MappedFile, start: Int, count: Int) {
        storage = .scalars(kind, file)
        self.count = count
        startIndex = Index(position: 0, offset: start)
        endIndex = Index(position: count, offset: start + count * kind.size)
    }

    /// `count` length-prefixed strings in bytes `start..<end` of `file`, already validated.
    init(strings file: MappedFile, start: Int, end: Int, count: Int) {
        storage = .strings(file)
        self.count = count
        startIndex = Index(position: 0, offset: start)
        endIndex = Index(position: count, offset: end)
    }

    public func index(after i: Index) -> Index {
        switch storage {
        case .values:
            return Index(position: i.position + 1, offset: 0)
        case .scalars(let kind, _):
            return Index(position: i.position + 1, offset: i.offset + kind.size)
        case .strings(let file):
            return Index(position: i.position + 1, offset: i.offset + 8 + Self.stringLength(file, at: i.offset))
        }
    }

    public subscript(index: Index) -> GGUFValue {
        precondition(index.position >= 0 && index.position < count, "GGUF array index \(index.position) out of range 0..<\(count)")
        switch storage {
        case .values(let values):
            return values[index.position]
        case let .scalars(kind, file):
            let at = index.offset
            func load<T: FixedWidthInteger>(_: T.Type) -> T { T(littleEndian: file.base.loadUnaligned(fromByteOffset: at, as: T.self)) }
            switch kind {
            case .u8: return .uint(UInt64(load(UInt8.self)))
            case .i8: return .int(Int64(load(Int8.self)))
            case .u16: return .uint(UInt64(load(UInt16.self)))
            case .i16: return .int(Int64(load(Int16.self)))
            case .u32: return .uint(UInt64(load(UInt32.self)))
            case .i32: return .int(Int64(load(Int32.self)))
            case .f32: return .float(Double(Float(bitPattern: load(UInt32.self))))
            case .bool: return .bool(load(UInt8.self) == 1)
            case .u64: return .uint(load(UInt64.self))
            case .i64: return .int(load(Int64.self))
            case .f64: return .float(Double(bitPattern: load(UInt64.self)))
            }
        case .strings(let file):
            let length = Self.stringLength(file, at: index.offset)
            return .string(String(decoding: UnsafeRawBufferPointer(start: file.base + index.offset + 8, count: length), as: UTF8.self))
        }
    }

    private static func stringLength(_ file: MappedFile, at offset: Int) -> Int {
        Int(UInt64(littleEndian: file.base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
    }

    public static func == (lhs: GGUFArray, rhs: GGUFArray) -> Bool {
        lhs.count == rhs.count && zip(lhs, rhs).allSatisfy { $0 == $1 }
    }
}
