import Foundation

/// Python's arithmetic and comparison operators on template values, with Python's results (`7 / 2` is `3.5`,
/// `-7 // 2` is `-4`, `-7 % 3` is `2`, `"ab" * 2` is `"abab"`) and Python's `TypeError` messages. Integers are
/// 64-bit; where Python would grow a big integer, this reports an overflow instead of wrapping.
enum Operators {
    static func apply(_ op: BinaryOperator, _ a: Value, _ b: Value) throws -> Value {
        // Jinja2's Undefined fails any arithmetic, on either side — except `str % undefined`, which Python's
        // str.__mod__ handles itself (the undefined value is a single argument that prints as "").
        try a.failIfUndefined()
        if case .string = a, op == .modulo {} else { try b.failIfUndefined() }
        for v in [a, b] {
            if case .markup = v {
                throw ValueError.unsupported("'\(op.rawValue)' on a Markup string (the output of |safe or |escape), which escapes its other operand")
            }
        }
        if let x = a.number, let y = b.number { return try numeric(op, x, y) }
        switch (op, a, b) {
        case let (.add, .string(x), .string(y)): return .string(x + y)
        case let (.add, .list(x), .list(y)): return .list(x + y)
        case let (.add, .tuple(x), .tuple(y)): return .tuple(x + y)
        case let (.multiply, .string(s), n), let (.multiply, n, .string(s)):
            if let count = repeatCount(n) { return .string(String(scalars: try repeated(s.scalars, count))) }
        case let (.multiply, .list(items), n), let (.multiply, n, .list(items)):
            if let count = repeatCount(n) { return .list(try repeated(items, count)) }
        case let (.multiply, .tuple(items), n), let (.multiply, n, .tuple(items)):
            if let count = repeatCount(n) { return .tuple(try repeated(items, count)) }
        case let (.modulo, .string(format), arguments):
            return .string(try PercentFormat.format(format, arguments))
        default:
            break
        }
        if op == .add, case .string = a {
            throw ValueError.type("can only concatenate str (not \"\(b.typeName)\") to str")
        }
        if op == .add, case .list = a {
            throw ValueError.type("can only concatenate list (not \"\(b.typeName)\") to list")
        }
        throw ValueError.type("unsupported operand type(s) for \(op.rawValue): '\(a.typeName)' and '\(b.typeName)'")
    }

    private static func repeatCount(_ n: Value) -> Int? {
        switch n {
        case let .int(i): return Swift.max(0, i)
        case let .bool(b): return b ? 1 : 0
        default: return nil
        }
    }

    private static func repeated<T>(_ items: [T], _ count: Int) throws -> [T] {
        let (total, overflow) = items.count.multipliedReportingOverflow(by: count)
        _ = try checkedSize(overflow ? .max : total, "a repetition")
        return Array(repeating: items, count: count).flatMap { $0 }
    }

    private static func overflow(_ op: BinaryOperator) -> ValueError {
        .unsupported("integer overflow in '\(op.rawValue)' (Python would use a big integer; only 64-bit integers are supported)")
    }

    private static func numeric(_ op: BinaryOperator, _ x: Value.Number, _ y: Value.Number) throws -> Value {
        if case let .int(a) = x, case let .int(b) = y {
            switch op {
            case .add:
                let (r, o) = a.addingReportingOverflow(b)
                if o { throw overflow(op) }
                return .int(r)
            case .subtract:
                let (r, o) = a.subtractingReportingOverflow(b)
                if o { throw overflow(op) }
                return .int(r)
            case .multiply:
                let (r, o) = a.multipliedReportingOverflow(by: b)
                if o { throw overflow(op) }
                return .int(r)
            case .divide:
                guard b != 0 else { throw ValueError.runtime("division by zero") }
                return .double(Double(a) / Double(b))
            case .floorDivide:
                guard b != 0 else { throw ValueError.runtime("integer division or modulo by zero") }
                if a == .min && b == -1 { throw overflow(op) }
                let q = a / b
                return .int((a % b != 0) && ((a < 0) != (b < 0)) ? q - 1 : q)
            case .modulo:
                guard b != 0 else { throw ValueError.runtime("integer modulo by zero") }
                if b == -1 { return .int(0) }
                let r = a % b
                return .int(r != 0 && ((r < 0) != (b < 0)) ? r + b : r)
            case .power:
                if b < 0 {
                    guard a != 0 else { throw ValueError.runtime("0.0 cannot be raised to a negative power") }
                    return .double(Foundation.pow(Double(a), Double(b)))
                }
                var result = 1, base = a, exponent = b
                while exponent > 0 {
                    if exponent & 1 == 1 {
                        let (r, o) = result.multipliedReportingOverflow(by: base)
                        if o { throw overflow(op) }
                        result = r
                    }
                    exponent >>= 1
                    if exponent > 0 {
                        let (sq, o) = base.multipliedReportingOverflow(by: base)
                        if o { throw overflow(op) }
                        base = sq
                    }
                }
                return .int(result)
            }
        }
        let a = x.asDouble, b = y.asDouble
        switch op {
        case .add: return .double(a + b)
        case .subtract: return .double(a - b)
        case .multiply: return .double(a * b)
        case .divide:
            guard b != 0 else { throw ValueError.runtime("float division by zero") }
            return .double(a / b)
        case .floorDivide:
            guard b != 0 else { throw ValueError.runtime("float floor division by zero") }
            return .double(floatDivMod(a, b).quotient)
        case .modulo:
            guard b != 0 else { throw ValueError.runtime("float modulo") }
            return .double(floatDivMod(a, b).remainder)
        case .power:
            if a == 0 && b < 0 { throw ValueError.runtime("0.0 cannot be raised to a negative power") }
            if a < 0 && b != b.rounded() { throw ValueError.unsupported("a negative number raised to a fractional power (a complex number in Python)") }
            let result = Foundation.pow(a, b)
            // CPython's float_pow reports overflow instead of returning infinity.
            if result.isInfinite && a.isFinite && b.isFinite { throw ValueError.runtime("(34, 'Numerical result out of range')") }
            return .double(result)
        }
    }

    /// CPython's `float_divmod`: the remainder takes the divisor's sign, the quotient is floored.
    private static func floatDivMod(_ vx: Double, _ wx: Double) -> (quotient: Double, remainder: Double) {
        var mod = fmod(vx, wx)
        var div = (vx - mod) / wx
        if mod != 0 {
            if (wx < 0) != (mod < 0) {
                mod += wx
                div -= 1
            }
        } else {
            mod = copysign(0, wx)
        }
        var floordiv: Double
        if div != 0 {
            floordiv = div.rounded(.down)
            if div - floordiv > 0.5 { floordiv += 1 }
        } else {
            floordiv = copysign(0, vx / wx)
        }
        return (floordiv, mod)
    }

    static func negate(_ v: Value) throws -> Value {
        try v.failIfUndefined()
        switch v.number {
        case let .int(i)?:
            guard i != .min else { throw overflow(.subtract) }
            return .int(-i)
        case let .double(d)?: return .double(-d)
        case nil: throw ValueError.type("bad operand type for unary -: '\(v.typeName)'")
        }
    }

    static func plus(_ v: Value) throws -> Value {
        try v.failIfUndefined()
        switch v.number {
        case let .int(i)?: return .int(i)
        case let .double(d)?: return .double(d)
        case nil: throw ValueError.type("bad operand type for unary +: '\(v.typeName)'")
        }
    }

    static func compare(_ op: CompareOperator, _ a: Value, _ b: Value) throws -> Bool {
        switch op {
        case .equal: return try a.pythonEquals(b)
        case .notEqual: return try !a.pythonEquals(b)
        case .isIn: return try b.contains(a)
        case .notIn: return try !b.contains(a)
        case .less: return try a.pythonCompare(b, "<") == .orderedAscending
        case .lessEqual:
            let r = try a.pythonCompare(b, "<=")
            return r == .orderedAscending || r == .orderedSame
        case .greater: return try a.pythonCompare(b, ">") == .orderedDescending
        case .greaterEqual:
            let r = try a.pythonCompare(b, ">=")
            return r == .orderedDescending || r == .orderedSame
        }
    }
}
