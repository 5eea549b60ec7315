import Foundation

/// Renders a parsed template: walks the statement tree, writing text, the way the Python code Jinja2's compiler
/// generates would run. One evaluator serves one render.
///
/// Scoping follows Jinja2's frames: each `for` iteration, macro call, `with`, filter block, set block and
/// `generation` block renders in a child `Scope`; `if` does not. So `{% set %}` inside a loop body is gone at
/// the next iteration and after the loop, which is why chat templates carry state in `namespace()` objects.
final class Evaluator {
    /// The variables passed to `render` (messages, add_generation_prompt, bos_token…).
    let root: Scope
    /// What `strftime_now` reads.
    let now: Date
    /// Nested macro calls and recursive-loop calls, bounded like Python's recursion limit bounds Jinja2 (which
    /// fails somewhere between 150 and 200 levels), so a runaway template errors instead of overflowing the stack.
    var callDepth = 0
    static let maxCallDepth = 200
    /// Scopes that macros or recursive loops were defined in. Those hold their scope weakly (a scope holding a
    /// macro that held it strongly would never be freed); the evaluator keeps them alive until the render ends,
    /// so a macro stored in a namespace can still be called after its loop iteration is over.
    private var retainedScopes: [Scope] = []

    func retain(_ scope: Scope) {
        if !retainedScopes.contains(where: { $0 === scope }) { retainedScopes.append(scope) }
    }

    func enterCall() throws {
        guard callDepth < Self.maxCallDepth else {
            throw ValueError.runtime("maximum recursion depth exceeded (\(Self.maxCallDepth) nested macro or recursive loop calls)")
        }
        callDepth += 1
    }

    init(context: [String: Value], now: Date) {
        root = Scope(parent: nil)
        root.variables = context
        self.now = now
    }

    /// How a run of statements ended: normally, or by `{% break %}` / `{% continue %}` (jinja2.ext.loopcontrols).
    enum Flow {
        case normal, breakLoop, continueLoop
    }

    func render(_ nodes: [Node]) throws -> String {
        var out = ""
        _ = try run(nodes, in: root, into: &out)
        return out
    }

    // MARK: - Statements

    func run(_ nodes: [Node], in scope: Scope, into out: inout String) throws -> Flow {
        for node in nodes {
            switch node.kind {
            case let .text(text):
                out += text
            case let .output(expression):
                let value = try evaluate(expression, in: scope)
                do { out += try value.str() } catch let e as ValueError { throw e.at(expression.location) }
            case let .ifChain(branches, otherwise):
                var body = otherwise
                for branch in branches {
                    if try evaluate(branch.test, in: scope).isTruthy {
                        body = branch.body
                        break
                    }
                }
                let flow = try run(body, in: scope, into: &out)
                if flow != .normal { return flow }
            case let .forLoop(loop):
                let iterable = try evaluate(loop.iterable, in: scope)
                let flow = try runFor(loop, over: iterable, in: scope, depth0: 0, location: loop.iterable.location, into: &out)
                if flow != .normal { return flow }
            case let .set(target, expression):
                let value = try evaluate(expression, in: scope)
                try assign(value, to: target, in: scope, at: node.location)
            case let .setBlock(target, filters, body):
                var captured = ""
                _ = try run(body, in: Scope(parent: scope), into: &captured)
                let value = try applyFilters(filters, to: .string(captured), in: scope)
                try assign(value, to: target, in: scope, at: node.location)
            case let .macro(definition):
                retain(scope)
                scope.variables[definition.name] = .function(Function(kind: .macro(definition, WeakScope(scope: scope))))
            case let .filterBlock(filters, body):
                var captured = ""
                _ = try run(body, in: Scope(parent: scope), into: &captured)
                let value = try applyFilters(filters, to: .string(captured), in: scope)
                do { out += try value.str() } catch let e as ValueError { throw e.at(node.location) }
            case let .with(assignments, body):
                // The values are evaluated in the enclosing scope, then bound in the inner one.
                let inner = Scope(parent: scope)
                for (target, expression) in assignments {
                    try assign(try evaluate(expression, in: scope), to: target, in: inner, at: node.location)
                }
                let flow = try run(body, in: inner, into: &out)
                if flow != .normal { return flow }
            case .breakLoop:
                return .breakLoop
            case .continueLoop:
                return .continueLoop
            case let .generation(body):
                let flow = try run(body, in: Scope(parent: scope), into: &out)
                if flow != .normal { return flow }
            }
        }
        return .normal
    }

    /// A `for` loop over `iterable`, also used for `loop(children)` in recursive loops (with `depth0 + 1`).
    /// Returns how the else branch ended, if it ran.
    func runFor(_ loop: ForLoop, over iterable: Value, in scope: Scope, depth0: Int, location: TemplateLocation,
                into out: inout String) throws -> Flow {
        var items: [Value]
        do { items = try iterable.iterate() } catch let e as ValueError { throw e.at(location) }
        if let condition = loop.condition {
            // `for x in xs if c`: the condition sees the loop target but not this loop's `loop`.
            items = try items.filter { item in
                let probe = Scope(parent: scope)
                try assign(item, to: loop.target, in: probe, at: location)
                return try evaluate(condition, in: probe).isTruthy
            }
        }
        if loop.recursive { retain(scope) }
        let context = LoopContext(items: items, depth0: depth0,
                                  recursion: loop.recursive ? (loop, WeakScope(scope: scope)) : nil)
        // Jinja2 clears its "run the else branch" flag at the end of the body, so an iteration left by `break`
        // or `continue` does not count: `{% for x in xs %}{% continue %}{% else %}…` renders the else branch.
        var completedAnIteration = false
        for (i, item) in items.enumerated() {
            context.index0 = i
            let iteration = Scope(parent: scope)
            try assign(item, to: loop.target, in: iteration, at: location)
            iteration.variables["loop"] = .loop(context)
            let flow = try run(loop.body, in: iteration, into: &out)
            if flow == .breakLoop { break }
            if flow == .normal { completedAnIteration = true }
        }
        // The else branch runs in the enclosing loop (if any), so its `break`/`continue` act on that loop.
        if !completedAnIteration && !loop.otherwise.isEmpty {
            return try run(loop.otherwise, in: Scope(parent: scope), into: &out)
        }
        return .normal
    }

    /// `set`, `for` and `with` targets: a name, tuple unpacking, or a namespace attribute.
    func assign(_ value: Value, to target: AssignTarget, in scope: Scope, at location: TemplateLocation) throws {
        switch target {
        case let .name(name):
            scope.variables[name] = value
        case let .tuple(targets):
            let items: [Value]
            do { items = try value.iterate() } catch let e as ValueError { throw e.at(location) }
            guard items.count == targets.count else {
                let message = items.count < targets.count
                    ? "not enough values to unpack (expected \(targets.count), got \(items.count))"
                    : "too many values to unpack (expected \(targets.count))"
                throw TemplateError.runtime(message, at: location)
            }
            for (item, t) in zip(items, targets) { try assign(item, to: t, in: scope, at: location) }
        case let .namespaceAttribute(name, attribute):
            guard case let .namespace(namespace) = scope.lookup(name) ?? .none else {
                throw TemplateError.runtime("cannot assign attribute on non-namespace object", at: location)
            }
            // transformers' TemplateNamespace refuses underscore-prefixed names.
            if attribute.hasPrefix("_") {
                throw TemplateError.runtime("Chat templates cannot store underscore-prefixed attributes on a namespace, but got \(pythonRepr(attribute)). Please rename the attribute.", at: location)
            }
            do { try namespace.attributes.set(.string(attribute), value) } catch let e as ValueError { throw e.at(location) }
        }
    }

    func applyFilters(_ filters: [FilterCall], to value: Value, in scope: Scope) throws -> Value {
        var result = value
        for filter in filters {
            let arguments = try evaluateArguments(filter.arguments, in: scope, at: filter.location)
            do {
                result = try applyFilter(filter.name, to: result, arguments)
            } catch let e as ValueError {
                throw e.at(filter.location)
            }
        }
        return result
    }

    // MARK: - Macros

    /// Calls a macro: binds arguments like Jinja2's `Macro._invoke` (missing parameters are undefined, extra
    /// ones go to `varargs`/`kwargs` when the body mentions them), renders the body in a new scope under the
    /// macro's defining scope, and returns the text.
    func callMacro(_ macro: MacroDefinition, definedIn weakScope: WeakScope, _ arguments: CallArguments) throws -> Value {
        guard let definingScope = weakScope.scope else {
            throw ValueError.runtime("macro '\(macro.name)' outlived its render")
        }
        try enterCall()
        defer { callDepth -= 1 }
        let scope = Scope(parent: definingScope)
        let parameters = macro.parameters
        if arguments.positional.count > parameters.count && !macro.usesVarargs {
            throw ValueError.type("macro '\(macro.name)' takes not more than \(parameters.count) argument(s)")
        }
        var given = [Value?](repeating: nil, count: parameters.count)
        for (i, v) in arguments.positional.prefix(parameters.count).enumerated() { given[i] = v }
        var extraKeywords = Dict()
        for (name, value) in arguments.keyword {
            if let i = parameters.firstIndex(of: name) {
                guard given[i] == nil else {
                    throw ValueError.type("macro '\(macro.name)' got multiple values for argument '\(name)'")
                }
                given[i] = value
            } else if macro.usesKwargs {
                try extraKeywords.set(.string(name), value)
            } else {
                throw ValueError.type("macro '\(macro.name)' takes no keyword argument '\(name)'")
            }
        }
        let firstDefault = parameters.count - macro.defaults.count
        for (i, name) in parameters.enumerated() {
            if let v = given[i] {
                scope.variables[name] = v
            } else if i >= firstDefault {
                // Defaults are evaluated at call time, seeing the parameters bound before them.
                let defaultExpression = macro.defaults[i - firstDefault]
                scope.variables[name] = try evaluate(defaultExpression, in: scope)
            } else {
                scope.variables[name] = .undefined(Undefined(message: "parameter \(pythonRepr(name)) was not provided"))
            }
        }
        if macro.usesVarargs { scope.variables["varargs"] = .tuple(Array(arguments.positional.dropFirst(parameters.count))) }
        if macro.usesKwargs { scope.variables["kwargs"] = .dict(extraKeywords) }
        var out = ""
        _ = try run(macro.body, in: scope, into: &out)
        return .string(out)
    }
}
