import Foundation
import Testing
@testable import Text

// Statements: if/elif/else, for loops and the loop object, loop controls, filtered loops, for-else, assignment and
// Jinja2's scoping rules, namespaces, macros, set/filter/with blocks, recursive loops. Expected strings come from
// Jinja2 3.1.6.

@Suite struct JinjaStatementTests {
    /// Python truthiness decides branches; `if` makes no scope.
    @Test func ifElifElse() {
        expectRenders([
            ("{% for v in [0, 1, '', 'x', [], [0], {}, none] %}{% if v %}T{% else %}F{% endif %}{% endfor %}",
             "FTFTFTFF"),
            ("{% for m in messages %}{% if loop.first and m.role == 'system' %}S{% elif m.role == 'user' %}U{% else %}A{% endif %}{% endfor %}",
             "SUAU"),
            ("{% set x = 5 %}{% if true %}{% set x = 6 %}{% endif %}{{ x }}",
             "6"),
        ])
    }

    /// `loop.index`, `index0`, `revindex`, `revindex0`, `first`, `last`, `length`, `depth`, `previtem`, `nextitem`, `cycle`, `changed`.
    @Test func loopVariables() {
        expectRenders([
            ("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.depth }}|{% endfor %}",
             "1032TrueFalse31|2121FalseFalse31|3210FalseTrue31|"),
            ("{% for x in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('a','b') }}-{{ loop.changed(x > 1) }}|{% endfor %}",
             "-2-a-True|1-3-b-True|2--a-False|"),
            ("{% for x in [1,2] %}{{ loop }}{% endfor %}",
             "<LoopContext 1/2><LoopContext 2/2>"),
            ("{% for x in [1,2] %}{% set outer = loop %}{% for y in 'ab' %}{{ outer.index }}{{ loop.index }}{{ y }} {% endfor %}{% endfor %}",
             "11a 12b 21a 22b "),
        ])
    }

    /// Loops over dicts (keys), strings (characters), `items()` with unpacking, nested unpacking.
    @Test func loopTargets() {
        expectRenders([
            ("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}|{% for c in 'ab' %}{{ c }}.{% endfor %}",
             "a=1;b=2;|ab|a.b."),
            ("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}|{% for a, (b, c) in [(1, (2, 3))] %}{{ a }}{{ b }}{{ c }}{% endfor %}",
             "37|123"),
            ("{% for k, v in {'b': 1, 'a': 2}|dictsort %}{{ k }}{{ v }}{% endfor %}|{% for k, v in {'x': 1}|items %}{{ k }}{{ v }}{% endfor %}",
             "a2b1|x1"),
        ])
    }

    /// `for x in xs if cond` filters first: `loop.length`, `loop.last` and `else` see only the kept items.
    @Test func filteredLoopsCountOnlyKeptItems() {
        expectRenders([
            ("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.index }}/{{ loop.length }}{{ loop.last }};{% else %}none{% endfor %}",
             "21/2False;42/2True;"),
            ("{% for m in messages if m.role != 'system' %}{{ loop.index0 }}{{ m.role[0] }}{% endfor %}",
             "0u1a2u"),
            ("{% for i in range(3) if i > 5 %}x{% else %}filtered-out{% endfor %}",
             "filtered-out"),
        ])
    }

    /// The else branch runs when no iteration completed its body — Jinja2 counts an iteration ended by `continue` or `break` as not completed.
    @Test func forElse() {
        expectRenders([
            ("{% for x in [] %}a{% else %}empty{% endfor %}|{% for x in nothing %}a{% else %}undefined-is-empty{% endfor %}",
             "empty|undefined-is-empty"),
            ("{% for i in range(3) %}{% continue %}{% else %}else-after-continue{% endfor %}",
             "else-after-continue"),
            ("{% for i in range(3) %}{% if i < 2 %}{% continue %}{% endif %}{{ i }}{% else %}not-rendered{% endfor %}",
             "2"),
            ("{% for o in [1, 2] %}{% for i in [] %}{% else %}{% if o == 1 %}{% continue %}{% endif %}E{% break %}{% endfor %}[{{ o }}]{% endfor %}",
             "E"),
        ])
    }

    /// jinja2.ext.loopcontrols, which transformers enables.
    @Test func breakAndContinue() {
        expectRenders([
            ("{% for i in range(3) %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}",
             "02"),
            ("{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}",
             "012"),
            ("{% for i in range(2) %}{% for j in range(3) %}{% if j == 1 %}{% break %}{% endif %}{{ i }}{{ j }} {% endfor %}{% endfor %}",
             "00 10 "),
        ])
    }

    /// Each iteration starts from the enclosing values; nothing set inside a loop is visible after it.
    @Test func setInsideLoopsIsLocalToTheIteration() {
        expectRenders([
            ("{% set x = 0 %}{% for i in range(3) %}{{ x }}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}",
             "0101010"),
            ("{% for i in [1,2] %}{% set j = i * 10 %}{% for k in [1] %}{{ j }}{% set j = 5 %}{{ j }}{% endfor %}{{ j }}{% endfor %}[{{ j }}]",
             "1051020520[]"),
            ("{% for i in range(3) %}{% if i == 1 %}{% set x = 'one' %}{% endif %}[{{ x }}]{% endfor %}",
             "[][one][]"),
            ("{% set messages = messages[1:] %}{{ messages|length }}{% for m in messages %}{% set messages = [] %}{{ messages|length }}{% endfor %}{{ messages|length }}",
             "30003"),
            ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% endif %}{{ loop_messages|length }} {{ system_message }}",
             "3 You are helpful."),
        ])
    }

    /// `namespace()` attributes set in a loop survive it; namespaces print like Jinja2's.
    @Test func namespacesCarryStateOutOfLoops() {
        expectRenders([
            ("{% set ns = namespace(a=1, b='x') %}{% set ns.a = ns.a + 1 %}{{ ns.a }}{{ ns.b }}{{ ns }}|{% for i in range(3) %}{% set ns.a = ns.a * 2 %}{% endfor %}{{ ns.a }}",
             "2x<Namespace {'a': 2, 'b': 'x'}>|16"),
            ("{% set ns = namespace(found=false) %}{% for m in messages %}{% if m.role == 'assistant' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}",
             "True"),
            ("{% set ns = namespace(x=[]) %}{% for i in range(3) %}{% set ns.x = ns.x + [i] %}{% endfor %}{{ ns.x }}{{ ns['x'] }}[{{ ns.y }}]",
             "[0, 1, 2][0, 1, 2][]"),
            ("{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a + ns.b }}",
             "3"),
        ])
    }

    /// Tuple unpacking in `set`, block `set` capturing output (optionally filtered), `with` scopes.
    @Test func assignments() {
        expectRenders([
            ("{% set a, b = 'xy' %}{{ b }}{{ a }}|{% set a, b = [1, 2] %}{% set (c, d) = (3, 4) %}{{ a + b + c + d }}",
             "yx|10"),
            ("{% set s %}captured {{ 1 + 1 }}{% endset %}[{{ s }}]{% set t | upper %}up{% endset %}{{ t }}",
             "[captured 2]UP"),
            ("{% set x %}{% for i in range(3) %}{{ i }}{% endfor %}{% endset %}{{ x|length }}",
             "3"),
            ("{% set outer = 'o' %}{% with outer = 'w', other = outer %}{{ outer }}{{ other }}{% set outer = 'z' %}{{ outer }}{% endwith %}{{ outer }}",
             "wozo"),
            ("{% filter upper %}hello {{ 'x' }}{% endfilter %}|{% filter replace('a', 'b')|upper %}aaa{% endfilter %}",
             "HELLO X|BBB"),
            ("{% print 'p', 1 %}",
             "p1"),
        ])
    }

    /// Macros: defaults evaluated per call (seeing earlier parameters), keyword arguments, missing parameters undefined, `varargs`/`kwargs`, recursion, the defining scope visible at call time.
    @Test func macros() {
        expectRenders([
            ("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }} {{ greet() }}",
             "Hello, Bob! Hi, Al! Hello, !"),
            ("{% macro m(a, b=a * 2) %}{{ a }},{{ b }}{% endmacro %}{{ m(3) }}",
             "3,6"),
            ("{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, a=3) }}",
             "(1, 2){'a': 3}"),
            ("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}",
             "321"),
            ("{% macro m() %}[{{ x }}]{% endmacro %}{% set x = 5 %}{{ m() }}",
             "[5]"),
            ("{% set a = 1 %}{% macro m() %}{{ a }}{% set a = 2 %}{{ a }}{% endmacro %}{{ m() }}{{ a }}",
             "121"),
            ("{% macro m() %}{{ i }}{% endmacro %}{% for i in [1, 2] %}{{ m() }}{% endfor %}",
             ""),
            ("{% for i in [1,2] %}{% macro m() %}[{{ i }}]{% endmacro %}{{ m() }}{% endfor %}",
             "[1][2]"),
            ("{% macro m(x) %}{{ x }}{% endmacro %}{{ m }}|{{ m is callable }}",
             "<Macro 'm'>|True"),
            ("{% macro outer() %}{% macro inner() %}in{% endmacro %}{{ inner() }}{% endmacro %}{{ outer() }}",
             "in"),
            ("{% macro m(items) %}{% for i in items %}{{ i }}{% endfor %}{% endmacro %}{{ m([1, 2]) ~ '!' }}{{ m(items=[3]) }}",
             "12!3"),
        ])
    }

    /// `recursive` loops re-render their body for `loop(children)`, one level deeper.
    @Test func recursiveLoops() {
        let tree: TemplateValue = [
            ["name": "a", "children": [["name": "b", "children": [["name": "c"]]], ["name": "d"]]],
            ["name": "e"],
        ]
        expectRenders([
            ("{% for item in tree recursive %}<{{ item.name }}{% if item.children %}[{{ loop(item.children) }}]{% endif %} d{{ loop.depth }}>{% endfor %}",
             "<a[<b[<c d3>] d2><d d2>] d1><e d1>"),
        ], context: ["tree": tree])
    }

    /// transformers' `{% generation %}` tag (AssistantTracker) renders its body unchanged.
    @Test func generationBlockRendersItsBody() throws {
        #expect(try render("{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}[{{ m.content }}]{% endgeneration %}{% endif %}{% endfor %}") == "[Hello! How can I help?]")
    }

    /// Runaway recursion fails cleanly (Jinja2 hits Python's recursion limit at a similar depth).
    @Test func runawayRecursionIsAnError() {
        let error = renderError("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
        #expect(error?.message.contains("maximum recursion depth exceeded") == true)
        let deep = String(repeating: "(", count: 400) + "1" + String(repeating: ")", count: 400)
        if case .syntax? = renderError("{{ " + deep + " }}") {} else { Issue.record("deep nesting not refused") }
    }
}
