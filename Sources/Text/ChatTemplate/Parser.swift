import Foundation

/// A recursive-descent parser from tokens to the syntax tree, a transcription of Jinja2 3.1's `parser.py`: the same
/// functions (`subparse`, `parse_statement`, `parse_for`, `parse_tuple`, `parse_or`…), the same precedence and the
/// same quirks (`-2 ** 2` is 4, `-x|abs` is `abs(-x)`, `a is b` takes one primary argument), and messages worded
/// like Jinja2's where a template is malformed.
///
/// Statements Jinja2 has but a chat template cannot use here (template inheritance and inclusion need other
/// templates; `call` blocks, `autoescape`) are refused while parsing, naming the tag and its position.
struct Parser {
    private var tokens: [Token]
    private var index = 0
    /// The end tags the enclosing blocks wait for, innermost last, for "unknown tag" messages.
    private var endTokenStack: [[String]] = []
    /// The tags of the enclosing blocks, innermost last.
    private var tagStack: [String] = []
    /// How many `for` bodies enclose the current position (reset inside macros), for `break`/`continue`.
    private var loopDepth = 0
    /// How deeply statements and expressions nest here, bounded so that a pathological template is a syntax
    /// error rather than a stack overflow (Jinja2 hits Python's recursion limit in the same situation).
    var nesting = 0
    static let maxNesting = 150

    mutating func enterNesting() throws {
        guard nesting < Self.maxNesting else { throw fail("template nested too deeply (more than \(Self.maxNesting) levels)") }
        nesting += 1
    }

    init(tokens: [Token]) {
        self.tokens = tokens
    }

    static func parse(_ source: String) throws -> [Node] {
        var lexer = Lexer(source: source)
        var parser = Parser(tokens: try lexer.tokenize())
        return try parser.subparse(endTokens: nil)
    }

    // MARK: - Token stream

    var current: Token { tokens[index] }
    var next: Token { tokens[min(index + 1, tokens.count - 1)] }

    @discardableResult
    mutating func advance() -> Token {
        let token = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return token
    }

    func isName(_ name: String) -> Bool {
        if case let .name(n) = current.kind { return n == name }
        return false
    }

    func isOp(_ op: String) -> Bool {
        if case let .op(o) = current.kind { return o == op }
        return false
    }

    mutating func skipName(_ name: String) -> Bool {
        guard isName(name) else { return false }
        advance()
        return true
    }

    mutating func skipOp(_ op: String) -> Bool {
        guard isOp(op) else { return false }
        advance()
        return true
    }

    func fail(_ message: String, at location: TemplateLocation? = nil) -> TemplateError {
        .syntax(message, at: location ?? current.location)
    }

    /// Jinja2's `TokenStream.expect`, with its two messages.
    private func expected(_ description: String) -> TemplateError {
        if current.kind == .eof { return fail("unexpected end of template, expected '\(description)'.") }
        return fail("expected token '\(description)', got '\(current.kind.description)'")
    }

    mutating func expectOp(_ op: String) throws {
        guard skipOp(op) else { throw expected(op) }
    }

    mutating func expectName(_ name: String) throws {
        guard skipName(name) else { throw expected(name) }
    }

    mutating func expectAnyName() throws -> String {
        guard case let .name(n) = current.kind else { throw expected("name") }
        advance()
        return n
    }

    mutating func expectBlockEnd() throws {
        guard current.kind == .blockEnd else { throw expected("end of statement block") }
        advance()
    }

    // MARK: - Template structure

    /// Parses nodes until one of `endTokens` opens a block tag (left as the current token) or the template ends.
    mutating func subparse(endTokens: [String]?) throws -> [Node] {
        var body: [Node] = []
        if let endTokens { endTokenStack.append(endTokens) }
        defer { if endTokens != nil { endTokenStack.removeLast() } }
        while true {
            let token = current
            switch token.kind {
            case .eof:
                return body
            case let .data(text):
                body.append(Node(kind: .text(text), location: token.location))
                advance()
            case .variableBegin:
                advance()
                let expression = try parseTuple(withCondexpr: true)
                guard current.kind == .variableEnd else { throw expected("end of print statement") }
                advance()
                body.append(Node(kind: .output(expression), location: expression.location))
            case .blockBegin:
                advance()
                if let endTokens, case let .name(n) = current.kind, endTokens.contains(n) { return body }
                body.append(contentsOf: try parseStatement())
                try expectBlockEnd()
            default:
                throw fail("internal parsing error: unexpected \(token.kind.description)")
            }
        }
    }

    /// Jinja2's `parse_statements`: an optional colon, the end of the opening tag, then the body up to one of
    /// `endTokens`, which is consumed when `dropNeedle` is set.
    mutating func parseStatements(_ endTokens: [String], dropNeedle: Bool = false) throws -> [Node] {
        _ = skipOp(":")
        try expectBlockEnd()
        let body = try subparse(endTokens: endTokens)
        if current.kind == .eof {
            var message = "Unexpected end of template."
            message += " Jinja was looking for the following tags: \(endTokens.map { "'\($0)'" }.joined(separator: " or "))."
            if let tag = tagStack.last { message += " The innermost block that needs to be closed is '\(tag)'." }
            throw fail(message)
        }
        if dropNeedle { advance() }
        return body
    }

    private mutating func parseStatement() throws -> [Node] {
        let token = current
        guard case let .name(tag) = token.kind else { throw fail("tag name expected") }
        try enterNesting()
        defer { nesting -= 1 }
        tagStack.append(tag)
        defer { tagStack.removeLast() }
        let location = token.location
        func node(_ kind: Node.Kind) -> [Node] { [Node(kind: kind, location: location)] }
        switch tag {
        case "if": return node(try parseIf())
        case "for": return node(.forLoop(try parseFor()))
        case "set": return node(try parseSet())
        case "macro": return node(.macro(try parseMacro()))
        case "with": return node(try parseWith())
        case "filter":
            advance()
            let filters = try parseFilterChain(startInline: true)
            return node(.filterBlock(filters, body: try parseStatements(["endfilter"], dropNeedle: true)))
        case "print":
            advance()
            var nodes: [Node] = []
            while current.kind != .blockEnd {
                if !nodes.isEmpty { try expectOp(",") }
                let e = try parseExpression()
                nodes.append(Node(kind: .output(e), location: e.location))
            }
            return nodes
        case "break", "continue":
            // jinja2.ext.loopcontrols, which transformers enables.
            // Python's compile error, which is what Jinja2 raises here.
            guard loopDepth > 0 else {
                throw fail(tag == "break" ? "'break' outside loop" : "'continue' not properly in loop", at: location)
            }
            advance()
            return node(tag == "break" ? .breakLoop : .continueLoop)
        case "generation":
            // transformers' AssistantTracker extension.
            advance()
            return node(.generation(try parseStatements(["endgeneration"], dropNeedle: true)))
        case "extends", "include", "import", "from", "block":
            throw TemplateError.unsupported("the '\(tag)' tag (a chat template is a single template, with no loader)",
                                            at: location)
        case "call", "autoescape":
            throw TemplateError.unsupported("the '\(tag)' tag", at: location)
        default:
            var message = "Encountered unknown tag '\(tag)'."
            if let looking = endTokenStack.last {
                let names = looking.map { "'\($0)'" }.joined(separator: " or ")
                if endTokenStack.contains(where: { $0.contains(tag) }) {
                    message += " You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for \(names)."
                } else {
                    message += " Jinja was looking for the following tags: \(names)."
                }
            }
            // This tag is not a block, so the innermost open block is the one before it.
            if let innermost = tagStack.dropLast().last { message += " The innermost block that needs to be closed is '\(innermost)'." }
            throw fail(message, at: location)
        }
    }

    private mutating func parseIf() throws -> Node.Kind {
        advance()
        var branches: [(test: Expr, body: [Node])] = []
        var otherwise: [Node] = []
        while true {
            let test = try parseTuple(withCondexpr: false)
            let body = try parseStatements(["elif", "else", "endif"])
            branches.append((test, body))
            let token = advance()
            if case .name("elif") = token.kind { continue }
            if case .name("else") = token.kind { otherwise = try parseStatements(["endif"], dropNeedle: true) }
            break
        }
        return .ifChain(branches: branches, otherwise: otherwise)
    }

    private mutating func parseFor() throws -> ForLoop {
        advance()
        let target = try parseAssignTarget(extraEndRules: ["in"])
        try expectName("in")
        let iterable = try parseTuple(withCondexpr: false, extraEndRules: ["recursive"])
        let condition = skipName("if") ? try parseExpression() : nil
        let recursive = skipName("recursive")
        loopDepth += 1
        let body = try parseStatements(["endfor", "else"])
        loopDepth -= 1
        var otherwise: [Node] = []
        if case .name("else") = advance().kind {
            // The else branch is outside this loop: `break` there needs an enclosing loop.
            otherwise = try parseStatements(["endfor"], dropNeedle: true)
        }
        return ForLoop(target: target, iterable: iterable, condition: condition, body: body, otherwise: otherwise,
                       recursive: recursive)
    }

    private mutating func parseSet() throws -> Node.Kind {
        advance()
        let target = try parseAssignTarget(withNamespace: true)
        if skipOp("=") { return .set(target, try parseTuple(withCondexpr: true)) }
        let filters = isOp("|") ? try parseFilterChain(startInline: false) : []
        return .setBlock(target, filters: filters, body: try parseStatements(["endset"], dropNeedle: true))
    }

    private mutating func parseWith() throws -> Node.Kind {
        advance()
        var assignments: [(target: AssignTarget, value: Expr)] = []
        while current.kind != .blockEnd {
            if !assignments.isEmpty { try expectOp(",") }
            let target = try parseAssignTarget()
            try expectOp("=")
            assignments.append((target, try parseExpression()))
        }
        return .with(assignments, body: try parseStatements(["endwith"], dropNeedle: true))
    }

    private mutating func parseMacro() throws -> MacroDefinition {
        advance()
        let name = try expectAnyName()
        try expectOp("(")
        var parameters: [String] = []
        var defaults: [Expr] = []
        while !isOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            let parameter = try expectAnyName()
            if skipOp("=") {
                defaults.append(try parseExpression())
            } else if !defaults.isEmpty {
                throw fail("non-default argument follows default argument")
            }
            parameters.append(parameter)
        }
        try expectOp(")")
        let outerLoopDepth = loopDepth
        loopDepth = 0
        defer { loopDepth = outerLoopDepth }
        let body = try parseStatements(["endmacro"], dropNeedle: true)
        let names = ASTWalk.names(in: body)
        return MacroDefinition(name: name, parameters: parameters, defaults: defaults, body: body,
                               usesVarargs: names.contains("varargs"), usesKwargs: names.contains("kwargs"))
    }

    // MARK: - Assignment targets

    /// Jinja2's `parse_assign_target`: names, tuples of names (`k, v`), and with `withNamespace` the `ns.attr`
    /// form `set` accepts.
    private mutating func parseAssignTarget(extraEndRules: [String] = [],
                                            withNamespace: Bool = false) throws -> AssignTarget {
        var targets: [AssignTarget] = []
        var isTuple = false
        while true {
            if !targets.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEndRules) { break }
            targets.append(try parseTargetPrimary(withNamespace: withNamespace))
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            guard let only = targets.first else {
                throw fail("Expected an expression, got '\(current.kind.description)'")
            }
            return only
        }
        return .tuple(targets)
    }

    private mutating func parseTargetPrimary(withNamespace: Bool) throws -> AssignTarget {
        let token = current
        switch token.kind {
        case let .name(n):
            if ["true", "false", "True", "False", "none", "None"].contains(n) {
                throw fail("can't assign to 'const'", at: token.location)
            }
            advance()
            if withNamespace, skipOp(".") { return .namespaceAttribute(n, try expectAnyName()) }
            return .name(n)
        case .op("("):
            advance()
            let inner = try parseAssignTarget()
            try expectOp(")")
            return inner
        case .string, .integer, .float:
            throw fail("can't assign to 'const'", at: token.location)
        default:
            throw fail("unexpected '\(token.kind.description)'", at: token.location)
        }
    }

    func isTupleEnd(_ extraEndRules: [String]) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd, .op(")"): return true
        case let .name(n): return extraEndRules.contains(n)
        default: return false
        }
    }
}
