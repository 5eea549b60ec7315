import Foundation

extension Evaluator {
    /// Evaluates an expression. Errors raised by value operations are given the location of the innermost node
    /// they came from.
    func evaluate(_ e: Expr, in scope: Scope) throws -> Value {
        do {
            return try evaluateUnlocated(e, in: scope)
        } catch let error as ValueError {
            throw error.at(e.location)
        }
    }

    private func evaluateUnlocated(_ e: Expr, in scope: Scope) throws -> Value {
        switch e.kind {
        case let .constant(c):
            switch c {
            case .none: return .none
            case let .bool(b): return .bool(b)
            case let .int(i): return .int(i)
            case let .double(d): return .double(d)
            case let .string(s): return .string(s)
            }
        case let .name(name):
            return scope.lookup(name) ?? Globals.value(named: name) ?? .undefined(.missing(name))
        case let .list(items):
            return .list(try items.map { try evaluate($0, in: scope) })
        case let .tuple(items):
            return .tuple(try items.map { try evaluate($0, in: scope) })
        case let .dict(pairs):
            var d = Dict()
            for p in pairs {
                let key = try evaluate(p.key, in: scope)
                let value = try evaluate(p.value, in: scope)
                do { try d.set(key, value) } catch let error as ValueError { throw error.at(p.key.location) }
            }
            return .dict(d)
        case let .getattr(object, name):
            return try getAttribute(try evaluate(object, in: scope), name)
        case let .getitem(object, key):
            let container = try evaluate(object, in: scope)
            if case let .slice(start, stop, step) = key.kind {
                func bound(_ part: Expr?) throws -> Int? {
                    guard let part else { return nil }
                    let v = try evaluate(part, in: scope)
                    if case .none = v { return nil }
                    return try v.asInt("slice indices")
                }
                return try slice(container, try bound(start), try bound(stop), try bound(step))
            }
            return try getItem(container, try evaluate(key, in: scope))
        case .slice:
            throw ValueError.unsupported("a slice outside a subscript")
        case let .call(callee, arguments):
            let function = try evaluate(callee, in: scope)
            let values = try evaluateArguments(arguments, in: scope, at: e.location)
            return try call(function, values)
        case let .filter(value, name, arguments):
            let input = try evaluate(value, in: scope)
            let values = try evaluateArguments(arguments, in: scope, at: e.location)
            return try applyFilter(name, to: input, values)
        case let .test(value, name, arguments):
            // `x is defined` must see undefined values without failing on them.
            let input = try evaluate(value, in: scope)
            let values = try evaluateArguments(arguments, in: scope, at: e.location)
            return .bool(try applyTest(name, to: input, values))
        case let .unary(op, operand):
            let v = try evaluate(operand, in: scope)
            switch op {
            case .not: return .bool(!v.isTruthy)
            case .negate: return try Operators.negate(v)
            case .plus: return try Operators.plus(v)
            }
        case let .binary(op, left, right):
            let a = try evaluate(left, in: scope)
            let b = try evaluate(right, in: scope)
            return try Operators.apply(op, a, b)
        case let .concat(operands):
            var text = ""
            for operand in operands {
                let v = try evaluate(operand, in: scope)
                do { text += try v.str() } catch let error as ValueError { throw error.at(operand.location) }
            }
            return .string(text)
        case let .compare(first, rest):
            // Chained like Python: `a < b < c` is `a < b and b < c`, each operand evaluated once.
            var left = try evaluate(first, in: scope)
            for (op, operandExpression) in rest {
                let right = try evaluate(operandExpression, in: scope)
                if !(try Operators.compare(op, left, right)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case let .and(left, right):
            let a = try evaluate(left, in: scope)
            return a.isTruthy ? try evaluate(right, in: scope) : a
        case let .or(left, right):
            let a = try evaluate(left, in: scope)
            return a.isTruthy ? a : try evaluate(right, in: scope)
        case let .conditional(test, then, otherwise):
            if try evaluate(test, in: scope).isTruthy { return try evaluate(then, in: scope) }
            if let otherwise { return try evaluate(otherwise, in: scope) }
            return .undefined(Undefined(message: "the inline if-expression on line \(e.location.line) evaluated to false and no else section was defined."))
        }
    }

    /// Evaluates call arguments, expanding `*args` and `**kwargs`.
    func evaluateArguments(_ arguments: Arguments, in scope: Scope, at location: TemplateLocation) throws -> CallArguments {
        var result = CallArguments()
        for p in arguments.positional { result.positional.append(try evaluate(p, in: scope)) }
        for k in arguments.keyword { result.keyword.append((k.name, try evaluate(k.value, in: scope))) }
        if let star = arguments.star {
            let v = try evaluate(star, in: scope)
            do { result.positional += try v.iterate() } catch let error as ValueError { throw error.at(star.location) }
        }
        if let doubleStar = arguments.doubleStar {
            guard case let .dict(d) = try evaluate(doubleStar, in: scope) else {
                throw TemplateError.type("argument after ** must be a mapping", at: doubleStar.location)
            }
            for (k, v) in d.pairs {
                guard case let .string(name) = k else {
                    throw TemplateError.type("keywords must be strings", at: doubleStar.location)
                }
                result.keyword.append((name, v))
            }
        }
        return result
    }

    // MARK: - Attribute and item access

    /// `object.name`, as the ImmutableSandboxedEnvironment's `getattr`: a real attribute first (a method of a
    /// string, list or dict; a namespace's or loop's attribute), then `object["name"]`, else undefined.
    /// Reading an attribute of an undefined value fails, as with Jinja2's default `Undefined`.
    func getAttribute(_ object: Value, _ name: String) throws -> Value {
        if case let .undefined(u) = object {
            if name.hasPrefix("__") && name.hasSuffix("__") { return .undefined(.noAttribute(object, name)) }
            throw u.error
        }
        if case .markup = object {
            throw ValueError.unsupported("the methods of a Markup string (the output of |safe or |escape)")
        }
        if name.hasPrefix("__") {
            return .undefined(Undefined(message: "access to attribute \(pythonRepr(name)) of \(pythonRepr(object.typeName)) object is unsafe.",
                                        security: true))
        }
        switch object {
        case let .namespace(n):
            return n.attributes[name] ?? .undefined(.noAttribute(object, name))
        case let .loop(l):
            return loopAttribute(l, name) ?? .undefined(.noAttribute(object, name))
        case let .function(f):
            if case let .cyclerNext(c) = f.kind, name == "next" || name == "current" || name == "reset" {
                return cyclerAttribute(c, name)
            }
            if case .global("dict") = f.kind, name == "fromkeys" {
                return .function(Function(kind: .global("dict.fromkeys")))  // transformers' TemplateDict
            }
            return .undefined(.noAttribute(object, name))
        default:
            break
        }
        if let method = try Methods.lookup(object, name) { return method }
        if case let .dict(d) = object, let v = d[name] { return v }
        return .undefined(.noAttribute(object, name))
    }

    /// `object[key]`, as the sandbox's `getitem`: the item first; for a string key that is not an item, the
    /// attribute of that name (so `message['items']` finds dict.items when there is no such key).
    func getItem(_ object: Value, _ key: Value) throws -> Value {
        if case let .undefined(u) = object { throw u.error }
        if case .markup = object { throw ValueError.unsupported("indexing a Markup string (the output of |safe or |escape)") }
        switch object {
        case let .list(items), let .tuple(items):
            if let i = pythonIndex(key), let item = element(items, i) { return item }
        case let .string(s):
            if let i = pythonIndex(key) {
                let a = s.scalars
                if let u = element(a, i) { return .string(String(u)) }
            }
        case let .view(v):
            if case .range = v.kind, let i = pythonIndex(key), let item = element(v.items, i) { return item }
        case let .dict(d):
            if (try? key.checkHashable()) != nil, let v = try d.get(key) { return v }
        default:
            break
        }
        if case let .string(name) = key { return try getAttribute(object, name) }
        return .undefined(.noElement(object, key))
    }

    private func pythonIndex(_ key: Value) -> Int? {
        switch key {
        case let .int(i): return i
        case let .bool(b): return b ? 1 : 0
        default: return nil
        }
    }

    private func element<T>(_ items: [T], _ index: Int) -> T? {
        let i = index < 0 ? index + items.count : index
        return items.indices.contains(i) ? items[i] : nil
    }

    /// `object[start:stop:step]` with Python's bound adjustment (`PySlice_AdjustIndices`).
    func slice(_ object: Value, _ start: Int?, _ stop: Int?, _ step: Int?) throws -> Value {
        if case let .undefined(u) = object { throw u.error }
        if case .markup = object { throw ValueError.unsupported("slicing a Markup string (the output of |safe or |escape)") }
        let step = step ?? 1
        guard step != 0 else { throw ValueError.runtime("slice step cannot be zero") }
        /// The adjusted start and stop, and the indices they select.
        func adjusted(count: Int) -> (lo: Int, hi: Int, picked: [Int]) {
            func adjust(_ v: Int?, _ defaultValue: Int) -> Int {
                guard var v else { return defaultValue }
                if v < 0 {
                    v += count
                    if v < 0 { v = step < 0 ? -1 : 0 }
                } else if v >= count {
                    v = step < 0 ? count - 1 : count
                }
                return v
            }
            let lo = adjust(start, step < 0 ? count - 1 : 0)
            let hi = adjust(stop, step < 0 ? -1 : count)
            return (lo, hi, Array(stride(from: lo, to: hi, by: step)))
        }
        switch object {
        case let .list(items): return .list(adjusted(count: items.count).picked.map { items[$0] })
        case let .tuple(items): return .tuple(adjusted(count: items.count).picked.map { items[$0] })
        case let .string(s):
            let a = s.scalars
            return .string(String(scalars: adjusted(count: a.count).picked.map { a[$0] }))
        case let .view(v):
            if case let .range(rangeStart, _, rangeStep) = v.kind {
                // range[i:j:k] is a range again: from element i, to element j, with the step times k.
                let (lo, hi, picked) = adjusted(count: v.items.count)
                let (newStep, overflow) = rangeStep.multipliedReportingOverflow(by: step)
                if overflow { throw ValueError.unsupported("a range step beyond 64-bit integers") }
                // lo and hi are within -1...count, so these stay between the range's own bounds and one step past.
                return .view(View(kind: .range(start: rangeStart + lo * rangeStep, stop: rangeStart + hi * rangeStep,
                                               step: newStep), items: picked.map { v.items[$0] }))
            }
        case .dict:
            throw ValueError.type("unhashable type: 'slice'")
        default:
            break
        }
        // Jinja2 compiles slices to Python's own `obj[a:b]`, bypassing its lenient getitem.
        throw ValueError.type("'\(object.typeName)' object is not subscriptable")
    }

    private func loopAttribute(_ l: LoopContext, _ name: String) -> Value? {
        switch name {
        case "index": return .int(l.index0 + 1)
        case "index0": return .int(l.index0)
        case "revindex": return .int(l.length - l.index0)
        case "revindex0": return .int(l.length - l.index0 - 1)
        case "first": return .bool(l.index0 == 0)
        case "last": return .bool(l.index0 == l.length - 1)
        case "length": return .int(l.length)
        case "depth": return .int(l.depth0 + 1)
        case "depth0": return .int(l.depth0)
        case "previtem":
            return l.index0 > 0 ? l.items[l.index0 - 1] : .undefined(Undefined(message: "there is no previous item"))
        case "nextitem":
            return l.index0 + 1 < l.length ? l.items[l.index0 + 1] : .undefined(Undefined(message: "there is no next item"))
        case "cycle": return .function(Function(kind: .loopCycle(l)))
        case "changed": return .function(Function(kind: .loopChanged(l)))
        default: return nil
        }
    }

    private func cyclerAttribute(_ c: Cycler, _ name: String) -> Value {
        switch name {
        case "current": return c.items[c.position]
        case "reset": return .function(Function(kind: .cyclerReset(c)))
        default: return .function(Function(kind: .cyclerNext(c)))
        }
    }

    // MARK: - Calls

    func call(_ callee: Value, _ arguments: CallArguments) throws -> Value {
        switch callee {
        case let .undefined(u):
            throw u.error
        case let .function(f):
            switch f.kind {
            case let .global(name):
                return try Globals.call(name, arguments, evaluator: self)
            case let .method(receiver, name):
                return try Methods.call(receiver, name, arguments, evaluator: self)
            case let .macro(definition, scope):
                return try callMacro(definition, definedIn: scope, arguments)
            case let .loopCycle(l):
                guard arguments.keyword.isEmpty else { throw ValueError.type("cycle() takes no keyword arguments") }
                guard !arguments.positional.isEmpty else { throw ValueError.type("no items for cycling given") }
                return arguments.positional[l.index0 % arguments.positional.count]
            case let .loopChanged(l):
                let values = arguments.positional
                if let last = l.lastChanged, try Value.tuple(last).pythonEquals(.tuple(values)) { return .bool(false) }
                l.lastChanged = values
                return .bool(true)
            case let .cyclerReset(c):
                try arguments.bindNone("reset")
                c.position = 0
                return .none
            case let .cyclerNext(c):
                try arguments.bindNone("next")
                let v = c.items[c.position]
                c.position = (c.position + 1) % c.items.count
                return v
            case let .joiner(j):
                try arguments.bindNone("joiner")
                if !j.used {
                    j.used = true
                    return .emptyString
                }
                return .string(j.separator)
            }
        case let .loop(l):
            return try recurse(l, arguments)
        default:
            throw ValueError.type("'\(callee.typeName)' object is not callable")
        }
    }

    /// `loop(children)` inside a `recursive` loop: renders the loop again over `children`, one level deeper.
    private func recurse(_ l: LoopContext, _ arguments: CallArguments) throws -> Value {
        guard let recursion = l.recursion, let scope = recursion.scope.scope else {
            throw ValueError.type("The loop must have the 'recursive' marker to be called recursively.")
        }
        let iterable = try arguments.bind("loop", ["iterable"], required: 1)[0]!
        try enterCall()
        defer { callDepth -= 1 }
        var out = ""
        _ = try runFor(recursion.node, over: iterable, in: scope, depth0: l.depth0 + 1,
                   location: recursion.node.iterable.location, into: &out)
        return .string(out)
    }
}
