import Foundation
import Testing
@testable import Text

// Jinja2's tests (`is defined`, `is none`, `is divisibleby 3`…) with Python's view of types. Expected strings
// come from Jinja2 3.1.6.

@Suite struct JinjaPredicateTests {
    /// Type tests: bool is a number, a dict is a sequence, an undefined value is iterable, strings are sequences.
    @Test func typeTests() {
        expectRenders([
            ("{{ nothing is none }}{{ none is none }}{{ 1 is number }}{{ 1.0 is float }}{{ 1 is integer }}{{ true is integer }}{{ true is boolean }}{{ true is number }}{{ 'a' is string }}",
             "FalseTrueTrueTrueTrueFalseTrueTrueTrue"),
            ("{{ [] is iterable }}{{ {} is mapping }}{{ [] is mapping }}{{ {} is sequence }}{{ 'a' is sequence }}{{ none is iterable }}{{ 1 is iterable }}{{ range(2) is sequence }}{{ {}.keys() is sequence }}",
             "TrueTrueFalseTrueTrueFalseFalseTrueFalse"),
            ("{{ nothing is sequence }}{{ nothing is iterable }}{{ nothing is callable }}{{ dict is callable }}{{ 'upper' is filter }}{{ 'odd' is test }}{{ 'nope' is filter }}",
             "TrueTrueTrueTrueTrueTrueFalse"),
        ])
    }

    /// Numeric, comparison, membership and case tests, with and without parentheses, negated with `is not`.
    @Test func valueTests() {
        expectRenders([
            ("{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 3 is divisibleby(2) }}{{ 3.0 is odd }}{{ -3 is odd }}{{ true is odd }}",
             "TrueTrueTrueFalseTrueTrueTrue"),
            ("{{ 2 is in [1,2] }}{{ 'a' is eq 'a' }}{{ 'a' is equalto 'b' }}{{ 1 is lt 2 }}{{ 2 is ge 2 }}{{ 'a' is ne 'b' }}",
             "TrueTrueFalseTrueTrueTrue"),
            ("{{ 1 is not none }}{{ nothing is not defined }}{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 0 is false }}{{ none is sameas none }}{{ 1 is sameas 1 }}",
             "TrueTrueTrueFalseTrueFalseTrueTrue"),
            ("{{ 'abc' is lower }}{{ 'ABC1' is upper }}{{ 'aB' is lower }}{{ '1' is lower }}",
             "TrueTrueFalseFalse"),
            ("{{ messages[0].role is string }}{{ messages[0].content is not string }}{{ messages is not mapping }}",
             "TrueFalseTrue"),
        ])
    }
}
