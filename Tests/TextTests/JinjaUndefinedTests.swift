import Foundation
import Testing
@testable import Text

// Undefined values behave as Jinja2's default `Undefined` (not the strict one): lenient when printed, tested or
// iterated, an error when used otherwise. Expected strings come from Jinja2 3.1.6.

@Suite struct JinjaUndefinedTests {
    /// An undefined value prints as nothing, is falsy, iterates as empty, has length 0, equals only undefined, and passes through `default`.
    @Test func undefinedValuesAreLenient() {
        expectRenders([
            ("[{{ nothing }}]|{{ nothing is defined }}|{{ nothing is undefined }}|{% if nothing %}t{% else %}f{% endif %}|{% for x in nothing %}x{% else %}empty{% endfor %}|{{ nothing|length }}|{{ nothing|list }}",
             "[]|False|True|f|empty|0|[]"),
            ("{{ nothing == nothing }}|{{ nothing == none }}|{{ nothing != none }}|{{ 1 in nothing }}|{{ 'a' ~ nothing ~ 'b' }}|{{ [nothing] }}|{{ nothing|string }}|{{ nothing|join }}",
             "True|False|True|False|ab|[Undefined]||"),
        ])
    }

    /// A missing key, attribute or index is undefined (not an error) until it is used for something else.
    @Test func missingKeysAndIndicesAreUndefined() {
        expectRenders([
            ("[{{ messages[0].nonexistent }}]|{{ messages[0].nonexistent is defined }}|{{ messages[0]['nonexistent']|default('z') }}|{{ messages[10] is defined }}|[{{ [1][5] }}]|[{{ none.x }}]",
             "[]|False|z|False|[]|[]"),
            ("{{ messages[0].tool_calls is defined and messages[0].tool_calls }}|{% if messages[0].tool_calls %}x{% else %}no tool calls{% endif %}",
             "False|no tool calls"),
            ("{{ (messages|selectattr('role', 'eq', 'nobody')|first) is defined }}|{{ []|last is defined }}|{{ [] | max is defined }}|{{ loop is defined }}",
             "False|False|False|False"),
            ("{{ messages|map(attribute='missing')|list }}|{{ messages|selectattr('missing')|list }}",
             "[Undefined, Undefined, Undefined, Undefined]|[]"),
        ])
    }

    /// Using an undefined value for anything else fails with Jinja2's messages, at the place it happens.
    @Test func usingAnUndefinedValueFails() {
        #expect(renderError("{{ x + 1 }}") == .undefined("'x' is undefined", at: TemplateLocation(line: 1, column: 6)))
        #expect(renderError("{{ x.y }}") == .undefined("'x' is undefined", at: TemplateLocation(line: 1, column: 5)))
        #expect(renderError("{{ x() }}") == .undefined("'x' is undefined", at: TemplateLocation(line: 1, column: 5)))
        #expect(renderError("{{ x < 1 }}")?.message == "'x' is undefined")
        #expect(renderError("{{ messages[0].nope.deeper }}")?.message == "'dict object' has no attribute 'nope'")
        #expect(renderError("{{ messages[0].nope.strip() }}")?.message == "'dict object' has no attribute 'nope'")
        #expect(renderError("{{ messages[9].role }}")?.message == "list object has no element 9")
        #expect(renderError("{{ 'x'.foo() }}")?.message == "'str object' has no attribute 'foo'")
        #expect(renderError("{{ loop.index }}")?.message == "'loop' is undefined")
        #expect(renderError("{% macro m(a) %}{{ a + 1 }}{% endmacro %}{{ m() }}")?.message == "parameter 'a' was not provided")
        #expect(renderError("{{ (none if false).x }}")?.message == "the inline if-expression on line 1 evaluated to false and no else section was defined.")
    }
}
