import Foundation

/// Walks a syntax tree for the checks Jinja2 makes while compiling: which names a macro body mentions (so a
/// macro accepts extra arguments only if its body reads `varargs`/`kwargs`), and that every filter and test
/// exists. Like Jinja2's compiler, an unknown filter or test fails at compile time, except inside an `if` or
/// an inline `a if c else b` (a "soft frame"), where it only fails if evaluated.
enum ASTWalk {
    /// Every expression in `nodes` (descending into sub-expressions), with whether it sits in a soft frame.
    static func visit(_ nodes: [Node], soft: Bool = false, _ visitor: (Expr, Bool) throws -> Void,
                      filters: (FilterCall, Bool) throws -> Void = { _, _ in }) rethrows {
        for node in nodes {
            switch node.kind {
            case .text, .breakLoop, .continueLoop:
                break
            case let .output(e):
                try visit(e, soft: soft, visitor)
            case let .ifChain(branches, otherwise):
                for branch in branches {
                    try visit(branch.test, soft: true, visitor)
                    try visit(branch.body, soft: true, visitor, filters: filters)
                }
                try visit(otherwise, soft: true, visitor, filters: filters)
            case let .forLoop(loop):
                // A loop body is a new (inner) frame, which is never soft.
                try visit(loop.iterable, soft: soft, visitor)
                if let condition = loop.condition { try visit(condition, soft: false, visitor) }
                try visit(loop.body, soft: false, visitor, filters: filters)
                try visit(loop.otherwise, soft: false, visitor, filters: filters)
            case let .set(_, e):
                try visit(e, soft: soft, visitor)
            case let .setBlock(_, calls, body), let .filterBlock(calls, body):
                for call in calls {
                    try filters(call, soft)
                    try visitArguments(call.arguments, soft: soft, visitor)
                }
                try visit(body, soft: false, visitor, filters: filters)
            case let .macro(definition):
                for d in definition.defaults { try visit(d, soft: false, visitor) }
                try visit(definition.body, soft: false, visitor, filters: filters)
            case let .with(assignments, body):
                for a in assignments { try visit(a.value, soft: soft, visitor) }
                try visit(body, soft: false, visitor, filters: filters)
            case let .generation(body):
                try visit(body, soft: false, visitor, filters: filters)
            }
        }
    }

    static func visit(_ e: Expr, soft: Bool, _ visitor: (Expr, Bool) throws -> Void) rethrows {
        try visitor(e, soft)
        switch e.kind {
        case .constant, .name:
            break
        case let .list(items), let .tuple(items), let .concat(items):
            for item in items { try visit(item, soft: soft, visitor) }
        case let .dict(pairs):
            for p in pairs {
                try visit(p.key, soft: soft, visitor)
                try visit(p.value, soft: soft, visitor)
            }
        case let .getattr(object, _):
            try visit(object, soft: soft, visitor)
        case let .getitem(object, key):
            try visit(object, soft: soft, visitor)
            try visit(key, soft: soft, visitor)
        case let .slice(start, stop, step):
            for part in [start, stop, step] { if let part { try visit(part, soft: soft, visitor) } }
        case let .call(callee, arguments):
            try visit(callee, soft: soft, visitor)
            try visitArguments(arguments, soft: soft, visitor)
        case let .filter(value, _, arguments), let .test(value, _, arguments):
            try visit(value, soft: soft, visitor)
            try visitArguments(arguments, soft: soft, visitor)
        case let .unary(_, operand):
            try visit(operand, soft: soft, visitor)
        case let .binary(_, left, right), let .and(left, right), let .or(left, right):
            try visit(left, soft: soft, visitor)
            try visit(right, soft: soft, visitor)
        case let .compare(first, rest):
            try visit(first, soft: soft, visitor)
            for r in rest { try visit(r.operand, soft: soft, visitor) }
        case let .conditional(test, then, otherwise):
            try visit(test, soft: true, visitor)
            try visit(then, soft: true, visitor)
            if let otherwise { try visit(otherwise, soft: true, visitor) }
        }
    }

    private static func visitArguments(_ a: Arguments, soft: Bool, _ visitor: (Expr, Bool) throws -> Void) rethrows {
        for p in a.positional { try visit(p, soft: soft, visitor) }
        for k in a.keyword { try visit(k.value, soft: soft, visitor) }
        if let s = a.star { try visit(s, soft: soft, visitor) }
        if let s = a.doubleStar { try visit(s, soft: soft, visitor) }
    }

    /// The variable names read anywhere in `nodes`.
    static func names(in nodes: [Node]) -> Set<String> {
        var names = Set<String>()
        visit(nodes, { e, _ in if case let .name(n) = e.kind { names.insert(n) } }, filters: { _, _ in })
        return names
    }

    /// Jinja2's compile-time check: a filter or test Jinja2 does not know, outside a soft frame, is an error.
    static func checkFiltersAndTests(_ nodes: [Node]) throws {
        try visit(nodes, { e, soft in
            guard !soft else { return }
            switch e.kind {
            case let .filter(_, name, _) where !Filters.jinjaNames.contains(name):
                throw TemplateError.syntax("No filter named '\(name)'.", at: e.location)
            case let .test(_, name, _) where !Predicates.jinjaNames.contains(name):
                throw TemplateError.syntax("No test named '\(name)'.", at: e.location)
            default:
                break
            }
        }, filters: { call, soft in
            if !soft, !Filters.jinjaNames.contains(call.name) {
                throw TemplateError.syntax("No filter named '\(call.name)'.", at: call.location)
            }
        })
    }
}
