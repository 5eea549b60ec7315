import Foundation

// Expressions, in Jinja2's precedence order (loosest first): conditional `a if c else b`, `or`, `and`, `not`,
// comparisons (`==`, `in`, `not in`…, chained), `+`/`-`, `~`, `*`/`/`/`//`/`%`, `**`, unary `-`/`+`, then
// postfix (`.name`, `[key]`, calls) and filters/tests (`|f`, `is t`). The functions mirror `parser.py`'s.
extension Parser {
    mutating func parseExpression(withCondexpr: Bool = true) throws -> Expr {
        withCondexpr ? try parseCondexpr() : try parseOr()
    }

    /// Jinja2's `parse_tuple`: an expression, or a tuple when commas separate several. `explicitParentheses`
    /// allows `()`.
    mutating func parseTuple(withCondexpr: Bool, extraEndRules: [String] = [],
                             explicitParentheses: Bool = false) throws -> Expr {
        let location = current.location
        var items: [Expr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEndRules) { break }
            items.append(try parseExpression(withCondexpr: withCondexpr))
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let only = items.first { return only }
            if !explicitParentheses { throw fail("Expected an expression, got '\(current.kind.description)'") }
        }
        return Expr(kind: .tuple(items), location: location)
    }

    private mutating func parseCondexpr() throws -> Expr {
        var expr = try parseOr()
        while skipName("if") {
            let test = try parseOr()
            let otherwise = skipName("else") ? try parseCondexpr() : nil
            expr = Expr(kind: .conditional(test: test, then: expr, otherwise: otherwise), location: expr.location)
        }
        return expr
    }

    private mutating func parseOr() throws -> Expr {
        var left = try parseAnd()
        while skipName("or") {
            left = Expr(kind: .or(left, try parseAnd()), location: left.location)
        }
        return left
    }

    private mutating func parseAnd() throws -> Expr {
        var left = try parseNot()
        while skipName("and") {
            left = Expr(kind: .and(left, try parseNot()), location: left.location)
        }
        return left
    }

    private mutating func parseNot() throws -> Expr {
        try enterNesting()
        defer { nesting -= 1 }
        if isName("not") {
            let location = advance().location
            return Expr(kind: .unary(.not, try parseNot()), location: location)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> Expr {
        let expr = try parseMath1()
        var operations: [(op: CompareOperator, operand: Expr)] = []
        while true {
            if case let .op(o) = current.kind, let op = CompareOperator(rawValue: o), op != .isIn, op != .notIn {
                advance()
                operations.append((op, try parseMath1()))
            } else if skipName("in") {
                operations.append((.isIn, try parseMath1()))
            } else if isName("not"), case .name("in") = next.kind {
                advance()
                advance()
                operations.append((.notIn, try parseMath1()))
            } else {
                break
            }
        }
        return operations.isEmpty ? expr : Expr(kind: .compare(expr, operations), location: expr.location)
    }

    private mutating func parseMath1() throws -> Expr {
        var left = try parseConcat()
        while isOp("+") || isOp("-") {
            let op: BinaryOperator = isOp("+") ? .add : .subtract
            let location = advance().location
            left = Expr(kind: .binary(op, left, try parseConcat()), location: location)
        }
        return left
    }

    private mutating func parseConcat() throws -> Expr {
        var operands = [try parseMath2()]
        while skipOp("~") { operands.append(try parseMath2()) }
        return operands.count == 1 ? operands[0] : Expr(kind: .concat(operands), location: operands[0].location)
    }

    private mutating func parseMath2() throws -> Expr {
        var left = try parsePow()
        while true {
            let op: BinaryOperator
            switch current.kind {
            case .op("*"): op = .multiply
            case .op("/"): op = .divide
            case .op("//"): op = .floorDivide
            case .op("%"): op = .modulo
            default: return left
            }
            let location = advance().location
            left = Expr(kind: .binary(op, left, try parsePow()), location: location)
        }
    }

    private mutating func parsePow() throws -> Expr {
        var left = try parseUnary()
        while isOp("**") {
            let location = advance().location
            left = Expr(kind: .binary(.power, left, try parseUnary()), location: location)
        }
        return left
    }

    /// `-x|f` is `(-x)|f`: the operand of a sign is parsed without filters, which then apply to the result.
    private mutating func parseUnary(withFilter: Bool = true) throws -> Expr {
        try enterNesting()
        defer { nesting -= 1 }
        var node: Expr
        if isOp("-") || isOp("+") {
            let op: UnaryOperator = isOp("-") ? .negate : .plus
            let location = advance().location
            node = Expr(kind: .unary(op, try parseUnary(withFilter: false)), location: location)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpression(node) }
        return node
    }

    private mutating func parsePrimary() throws -> Expr {
        let token = current
        let location = token.location
        switch token.kind {
        case let .name(n):
            advance()
            switch n {
            case "true", "True": return Expr(kind: .constant(.bool(true)), location: location)
            case "false", "False": return Expr(kind: .constant(.bool(false)), location: location)
            case "none", "None": return Expr(kind: .constant(.none), location: location)
            default: return Expr(kind: .name(n), location: location)
            }
        case let .string(first):
            // Adjacent string literals concatenate, as in Python.
            advance()
            var text = first
            while case let .string(more) = current.kind {
                text += more
                advance()
            }
            return Expr(kind: .constant(.string(text)), location: location)
        case let .integer(i):
            advance()
            return Expr(kind: .constant(.int(i)), location: location)
        case let .float(d):
            advance()
            return Expr(kind: .constant(.double(d)), location: location)
        case .op("("):
            advance()
            let inner = try parseTuple(withCondexpr: true, explicitParentheses: true)
            try expectOp(")")
            return inner
        case .op("["):
            advance()
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return Expr(kind: .list(items), location: location)
        case .op("{"):
            advance()
            var pairs: [(key: Expr, value: Expr)] = []
            while !isOp("}") {
                if !pairs.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let key = try parseExpression()
                try expectOp(":")
                pairs.append((key, try parseExpression()))
            }
            try expectOp("}")
            return Expr(kind: .dict(pairs), location: location)
        default:
            throw fail("unexpected '\(token.kind.description)'")
        }
    }

    private mutating func parsePostfix(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            if isOp(".") || isOp("[") {
                node = try parseSubscript(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseFilterExpression(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            if isOp("|") {
                advance()
                let filter = try parseFilterCall()
                node = Expr(kind: .filter(node, name: filter.name, filter.arguments), location: filter.location)
            } else if isName("is") {
                node = try parseTest(node)
            } else if isOp("(") {
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscript(_ object: Expr) throws -> Expr {
        let token = advance()
        if case .op(".") = token.kind {
            let attribute = advance()
            switch attribute.kind {
            case let .name(n):
                return Expr(kind: .getattr(object, n), location: token.location)
            case let .integer(i):
                // `items.0` is `items[0]`.
                let key = Expr(kind: .constant(.int(i)), location: attribute.location)
                return Expr(kind: .getitem(object, key), location: token.location)
            default:
                throw fail("expected name or number", at: attribute.location)
            }
        }
        var arguments: [Expr] = []
        while !isOp("]") {
            if !arguments.isEmpty { try expectOp(",") }
            arguments.append(try parseSubscribed())
        }
        try expectOp("]")
        let key = arguments.count == 1 ? arguments[0] : Expr(kind: .tuple(arguments), location: token.location)
        return Expr(kind: .getitem(object, key), location: token.location)
    }

    /// One subscript: an expression or a slice `start:stop:step` with any part left out.
    private mutating func parseSubscribed() throws -> Expr {
        let location = current.location
        var start: Expr?
        if isOp(":") {
            advance()
        } else {
            let expr = try parseExpression()
            guard isOp(":") else { return expr }
            advance()
            start = expr
        }
        var stop: Expr?
        if !isOp(":") && !isOp("]") && !isOp(",") { stop = try parseExpression() }
        var step: Expr?
        if skipOp(":"), !isOp("]"), !isOp(",") { step = try parseExpression() }
        return Expr(kind: .slice(start: start, stop: stop, step: step), location: location)
    }

    private mutating func parseCall(_ callee: Expr) throws -> Expr {
        let location = current.location
        return Expr(kind: .call(callee, try parseCallArguments()), location: location)
    }

    /// Jinja2's `parse_call_args`: positional arguments, then `name=value` ones, with `*args` and `**kwargs`.
    mutating func parseCallArguments() throws -> Arguments {
        let open = current.location
        try expectOp("(")
        var arguments = Arguments()
        var requireComma = false
        func ensure(_ condition: Bool) throws {
            if !condition { throw fail("invalid syntax for function call expression", at: open) }
        }
        while !isOp(")") {
            if requireComma {
                try expectOp(",")
                if isOp(")") { break }  // a trailing comma
            }
            if skipOp("*") {
                try ensure(arguments.star == nil && arguments.doubleStar == nil)
                arguments.star = try parseExpression()
            } else if skipOp("**") {
                try ensure(arguments.doubleStar == nil)
                arguments.doubleStar = try parseExpression()
            } else if case let .name(key) = current.kind, case .op("=") = next.kind {
                try ensure(arguments.doubleStar == nil)
                advance()
                advance()
                arguments.keyword.append((key, try parseExpression()))
            } else {
                try ensure(arguments.star == nil && arguments.doubleStar == nil && arguments.keyword.isEmpty)
                arguments.positional.append(try parseExpression())
            }
            requireComma = true
        }
        try expectOp(")")
        return arguments
    }

    /// One filter after its `|` (or at the start of `{% filter %}`): a dotted name and optional arguments.
    private mutating func parseFilterCall() throws -> FilterCall {
        let location = current.location
        var name = try expectAnyName()
        while skipOp(".") { name += "." + (try expectAnyName()) }
        let arguments = isOp("(") ? try parseCallArguments() : .none
        return FilterCall(name: name, arguments: arguments, location: location)
    }

    /// The filters of `{% filter f|g %}` and `{% set x | f %}`.
    mutating func parseFilterChain(startInline: Bool) throws -> [FilterCall] {
        var filters: [FilterCall] = []
        var inline = startInline
        while isOp("|") || inline {
            if !inline { advance() }
            filters.append(try parseFilterCall())
            inline = false
        }
        return filters
    }

    /// `value is [not] name`, `value is name(args)` or `value is name argument` (one primary, as in
    /// `x is divisibleby 3` or `x is sameas none`).
    private mutating func parseTest(_ value: Expr) throws -> Expr {
        let location = advance().location
        let negated = skipName("not")
        var name = try expectAnyName()
        while skipOp(".") { name += "." + (try expectAnyName()) }
        var arguments = Arguments.none
        switch current.kind {
        case .op("("):
            arguments = try parseCallArguments()
        case .name("else"), .name("or"), .name("and"):
            break
        case .name("is"):
            throw fail("You cannot chain multiple tests with is")
        case .name, .string, .integer, .float, .op("["), .op("{"):
            var argument = try parsePrimary()
            argument = try parsePostfix(argument)
            arguments.positional = [argument]
        default:
            break
        }
        let test = Expr(kind: .test(value, name: name, arguments), location: location)
        return negated ? Expr(kind: .unary(.not, test), location: location) : test
    }
}
