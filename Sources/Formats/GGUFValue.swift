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

/// A GGUF metadata array. Arrays of numbers and strings are read from the mapped file when an element is asked
/// for (they were validated when the file was opened), so a 50,000-token vocabulary costs a table of offsets rather
/// than 50,000 `String`s.
public struct GGUFArray: RandomAccessCollection, Sendable, Equatable {
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

    private enum Storage: @unchecked Sendable {
        case values([GGUFValue])
        case scalars(ScalarKind, MappedFile, start: Int)
        /// Offsets of each string's length prefix in the file.
        case strings([Int], MappedFile)
    }

    private let storage: Storage
    public let count: Int

    init(values: [GGUFValue]) {
        storage = .values(values)
        count = values.count
    }

    init(scalars kind: ScalarKind, file: MappedFile, start: Int, count: Int) {
        storage = .scalars(kind, file, start: start)
        self.count = count
    }

    init(strings offsets: [Int], file: MappedFile) {
        storage = .strings(offsets, file)
        count = offsets.count
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(index: Int) -> GGUFValue {
        precondition(index >= 0 && index < count, "GGUF array index \(index) out of range 0..<\(count)")
        switch storage {
        case .values(let values):
            return values[index]
        case let .scalars(kind, file, start):
            let at = start + index * kind.size
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
        case let .strings(offsets, file):
            let at = offsets[index]
            let length = Int(UInt64(littleEndian: file.base.loadUnaligned(fromByteOffset: at, as: UInt64.self)))
            return .string(String(decoding: UnsafeRawBufferPointer(start: file.base + at + 8, count: length), as: UTF8.self))
        }
    }

    public static func == (lhs: GGUFArray, rhs: GGUFArray) -> Bool {
        lhs.count == rhs.count && zip(lhs, rhs).allSatisfy { $0 == $1 }
    }
}
