import Foundation

/// A value while a template renders: the Python objects a Jinja2 template can hold. Beyond the JSON-like
/// `TemplateValue`s it adds what only exists inside a render: tuples, `range` and dict views, single-use iterators
/// (what `|reverse`, `|select`, `|map` return), namespaces, the `loop` object and callables.
///
/// Keeping iterators distinct from lists matters for byte-identical output: in Python a generator is truthy even
/// when empty, has no length, and can be consumed once. Templates rarely depend on it, but when they do, the
/// behaviour must be Jinja2's, or an error.
enum Value {
    case undefined(Undefined)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    /// markupsafe's `Markup`, what `|safe` and `|escape` return: a string that escapes whatever is added to it.
    /// Only printing, `~`, comparisons, tests and a few filters are supported on it; anything that would escape
    /// (`+`, `%`, its methods) fails as unsupported rather than silently not escaping.
    case markup(String)
    case list([Value])
    case tuple([Value])
    case dict(Dict)
    /// `range(…)` and `dict.keys()/values()/items()`: sized, iterable many times, read-only.
    case view(View)
    /// A Python iterator or generator: iterating it consumes it.
    case iterator(IteratorBox)
    case namespace(Namespace)
    case loop(LoopContext)
    case function(Function)

    static let emptyString = Value.string("")
}

// MARK: - Undefined

/// Jinja2's default `Undefined`: renders as "", is falsy, iterates as empty, has length 0; anything else
/// (arithmetic, comparison, calling, attribute access) raises with `message`. `security` marks the
/// sandbox's `unsafe_undefined` (what `list.append` yields), which raises a `SecurityError` instead.
struct Undefined {
    let message: String
    var security = false

    /// A variable that does not exist: `'name' is undefined`.
    static func missing(_ name: String) -> Undefined { Undefined(message: "\(pythonRepr(name)) is undefined") }

    /// `object.name` or `object["name"]` that does not exist (Jinja2's `_undefined_message` with a string name).
    static func noAttribute(_ object: Value, _ name: String) -> Undefined {
        Undefined(message: "\(pythonRepr(object.objectTypeRepr)) has no attribute \(pythonRepr(name))")
    }

    /// `object[key]` for a non-string key that does not exist.
    static func noElement(_ object: Value, _ key: Value) -> Undefined {
        Undefined(message: "\(object.objectTypeRepr) has no element \((try? key.repr()) ?? "?")")
    }
}

// MARK: - Containers

/// A Python dict: insertion-ordered, keyed by hashable values compared with Python's `==` (so `1`, `1.0` and
/// `True` are one key). Lookup is a linear scan: template dicts have a handful of keys.
struct Dict {
    private(set) var keys: [Value] = []
    private(set) var values: [Value] = []

    init() {}

    var count: Int { keys.count }
    var isEmpty: Bool { keys.isEmpty }
    var pairs: [(key: Value, value: Value)] { zip(keys, values).map { (key: $0.0, value: $0.1) } }

    func index(of key: Value) throws -> Int? {
        try key.checkHashable()
        if case let .string(s) = key {
            // The common case (JSON objects): compare UTF-8 bytes, which is Python's code point equality.
            for (i, k) in keys.enumerated() {
                if case let .string(t) = k.markupAsString, s.utf8.elementsEqual(t.utf8) { return i }
            }
            return nil
        }
        return keys.firstIndex { (try? $0.pythonEquals(key)) == true }
    }

    func get(_ key: Value) throws -> Value? {
        try index(of: key).map { values[$0] }
    }

    /// `get` for a string key, for the evaluator's attribute lookups.
    subscript(name: String) -> Value? {
        (try? index(of: .string(name))).flatMap { $0.map { values[$0] } }
    }

    mutating func set(_ key: Value, _ value: Value) throws {
        if let i = try index(of: key) {
            values[i] = value
        } else {
            keys.append(key)
            values.append(value)
        }
    }
}

/// A sized, re-iterable, read-only sequence: Python's `range` and dict views.
struct View {
    enum Kind: Equatable {
        case range(start: Int, stop: Int, step: Int)
        case keys, values, items
    }

    let kind: Kind
    let items: [Value]

    var typeName: String {
        switch kind {
        case .range: return "range"
        case .keys: return "dict_keys"
        case .values: return "dict_values"
        case .items: return "dict_items"
        }
    }
}

/// A single-use iterator (a generator, `reversed(list)`…). `typeName` is Python's name for it, for messages.
final class IteratorBox {
    let typeName: String
    private var items: [Value]
    private var position = 0

    init(typeName: String, items: [Value]) {
        self.typeName = typeName
        self.items = items
    }

    /// The items not yet consumed; consumes them all, as iterating a Python iterator to the end does.
    func drain() -> [Value] {
        let rest = Array(items[position...])
        position = items.count
        return rest
    }

    /// Consumes one item.
    func nextItem() -> Value? {
        guard position < items.count else { return nil }
        position += 1
        return items[position - 1]
    }
}

/// Jinja2's `namespace(...)`: the one mutable object a template can hold, so that a value set inside a loop
/// survives the loop (`{% set ns.found = true %}`). Shared by reference, as in Python.
final class Namespace {
    var attributes = Dict()
}

/// Jinja2's `LoopContext`, the `loop` variable inside a `for` body. Holds the whole (already filtered) item list,
/// so `length`, `last`, `revindex` and `nextitem` need no look-ahead.
final class LoopContext {
    let items: [Value]
    var index0 = 0
    let depth0: Int
    /// The node and scope to re-run for `loop(children)` in a `recursive` loop; nil otherwise.
    let recursion: (node: ForLoop, scope: WeakScope)?
    /// The arguments of the last `loop.changed(...)` call.
    var lastChanged: [Value]?

    init(items: [Value], depth0: Int, recursion: (node: ForLoop, scope: WeakScope)?) {
        self.items = items
        self.depth0 = depth0
        self.recursion = recursion
    }

    var length: Int { items.count }
}

// MARK: - Callables

/// Something a template can call: a global function, a bound method of a string, list or dict, a macro, or one
/// of `loop`'s methods.
struct Function {
    indirect enum Kind {
        /// `range`, `dict`, `namespace`, `raise_exception`, `strftime_now`, `cycler`, `joiner`.
        case global(String)
        /// `receiver.name(...)`, e.g. `message.content.strip()`.
        case method(receiver: Value, name: String)
        case macro(MacroDefinition, WeakScope)
        case loopCycle(LoopContext)
        case loopChanged(LoopContext)
        /// A `cycler(...)` object (calling it, or its `next`, advances it) and its `reset`.
        case cyclerNext(Cycler)
        case cyclerReset(Cycler)
        /// A `joiner(...)` object.
        case joiner(Joiner)
    }

    let kind: Kind

    /// Python's `type(f).__name__`-ish description, for "not callable"/"cannot render" messages.
    var description: String {
        switch kind {
        case let .global(name): return "built-in function \(name)"
        case let .method(receiver, name): return "built-in method \(name) of \(receiver.typeName) object"
        case let .macro(definition, _): return "macro '\(definition.name)'"
        case .loopCycle: return "method LoopContext.cycle"
        case .loopChanged: return "method LoopContext.changed"
        case .cyclerNext: return "Cycler"
        case .cyclerReset: return "method Cycler.reset"
        case .joiner: return "Joiner"
        }
    }
}

/// Jinja2's `cycler(a, b, …)`.
final class Cycler {
    let items: [Value]
    var position = 0
    init(items: [Value]) { self.items = items }
}

/// Jinja2's `joiner(sep)`: returns "" the first time it is called, `sep` after.
final class Joiner {
    let separator: String
    var used = false
    init(separator: String) { self.separator = separator }
}

/// A macro's defining scope, held weakly so that a scope holding the macro does not keep itself alive.
struct WeakScope {
    weak var scope: Scope?
}

// MARK: - Scopes

/// One frame of variables. Jinja2 gives every `for` iteration, macro call, `with` block and filter/set block
/// its own frame: assignments made there are invisible outside (hence `namespace`), while `if` shares its
/// enclosing frame. Lookups walk outwards to the template's globals.
final class Scope {
    let parent: Scope?
    var variables: [String: Value] = [:]

    init(parent: Scope?) {
        self.parent = parent
    }

    func lookup(_ name: String) -> Value? {
        var scope: Scope? = self
        while let s = scope {
            if let v = s.variables[name] { return v }
            scope = s.parent
        }
        return nil
    }
}
