import Foundation
import Testing
@testable import Text

// Errors: every failure names what went wrong and where (line and column). Syntax errors carry Jinja2's
// wording; constructs Jinja2 has but this interpreter leaves out fail as `.unsupported`, naming themselves,
// never with a silently different output; `raise_exception` carries the template's message unchanged.

@Suite struct JinjaErrorTests {
    private func location(_ line: Int, _ column: Int) -> TemplateLocation { TemplateLocation(line: line, column: column) }

    private func parseError(_ source: String) -> TemplateError? {
        do {
            _ = try ChatTemplate(source: source)
            return nil
        } catch {
            return error as? TemplateError
        }
    }

    // MARK: - raise_exception

    @Test func raiseExceptionCarriesTheTemplatesMessage() throws {
        let template = try ChatTemplate(source: """
            {% for message in messages %}
            {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
            {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
            {% endif %}
            {% endfor %}
            """)
        let messages = [ChatMessage(role: "user", content: "a"), ChatMessage(role: "user", content: "b")]
        #expect(throws: TemplateError.raised("Conversation roles must alternate user/assistant/user/assistant/...",
                                             at: location(3, 19))) {
            try template.render(messages: messages, addGenerationPrompt: false)
        }
        do {
            _ = try template.render(messages: messages, addGenerationPrompt: false)
        } catch let error as TemplateError {
            #expect(error.message == "Conversation roles must alternate user/assistant/user/assistant/...")
            #expect(error.errorDescription == "chat template line 3, column 19: raised: Conversation roles must alternate user/assistant/user/assistant/...")
        }
    }

    @Test func raiseExceptionStringifiesItsArgument() {
        #expect(renderError("{{ raise_exception('Unknown role: ' ~ messages[0].role) }}") == .raised("Unknown role: system", at: location(1, 19)))
        #expect(renderError("{{ raise_exception(42) }}")?.message == "42")
        #expect(renderError("{{ raise_exception() }}") == .type("raise_exception() missing required argument 'message'", at: location(1, 19)))
    }

    // MARK: - Syntax errors

    @Test func syntaxErrorsUseJinjaWordingAndPosition() {
        #expect(parseError("{% if %}") == .syntax("Expected an expression, got 'end of statement block'", at: location(1, 7)))
        #expect(parseError("a\n{% if true %}") == .syntax("Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.", at: location(2, 14)))
        #expect(parseError("{% for x in y %}{% endif %}") == .syntax("Encountered unknown tag 'endif'. Jinja was looking for the following tags: 'endfor' or 'else'. The innermost block that needs to be closed is 'for'.", at: location(1, 20)))
        #expect(parseError("{% endfor %}") == .syntax("Encountered unknown tag 'endfor'.", at: location(1, 4)))
        #expect(parseError("{% foo %}") == .syntax("Encountered unknown tag 'foo'.", at: location(1, 4)))
        #expect(parseError("{{ (x for x in y) }}") == .syntax("expected token ')', got 'for'", at: location(1, 7)))
        #expect(parseError("{{ 1 +* 2 }}") == .syntax("unexpected '*'", at: location(1, 7)))
        #expect(parseError("{{ }}") == .syntax("Expected an expression, got 'end of print statement'", at: location(1, 4)))
        #expect(parseError("{% set true = 1 %}") == .syntax("can't assign to 'const'", at: location(1, 8)))
        #expect(parseError("{% break %}") == .syntax("'break' outside loop", at: location(1, 4)))
        #expect(parseError("{% for x in y %}{% macro m() %}{% continue %}{% endmacro %}{% endfor %}") == .syntax("'continue' not properly in loop", at: location(1, 35)))
        #expect(parseError("{{ x is nosuchtest }}") == .syntax("No test named 'nosuchtest'.", at: location(1, 6)))
        #expect(parseError("{% macro m(a=1, b) %}{% endmacro %}")?.message == "non-default argument follows default argument")
        #expect(parseError("{{ x is defined is defined }}") == .syntax("You cannot chain multiple tests with is", at: location(1, 17)))
    }

    // MARK: - Unsupported constructs name themselves

    @Test func unsupportedTagsFailWhenParsing() {
        #expect(parseError("a\n  {% include 'other.jinja' %}") == .unsupported("the 'include' tag (a chat template is a single template, with no loader)", at: location(2, 6)))
        #expect(parseError("{% extends 'base' %}")?.message.contains("'extends' tag") == true)
        #expect(parseError("{% import 'm' as m %}")?.message.contains("'import' tag") == true)
        #expect(parseError("{% from 'm' import x %}")?.message.contains("'from' tag") == true)
        #expect(parseError("{% block b %}{% endblock %}")?.message.contains("'block' tag") == true)
        #expect(parseError("{% call m() %}x{% endcall %}") == .unsupported("the 'call' tag", at: location(1, 4)))
        #expect(parseError("{% autoescape true %}{% endautoescape %}") == .unsupported("the 'autoescape' tag", at: location(1, 4)))
        // Python strings can hold lone surrogates; Swift strings cannot.
        #expect(parseError("{{ 'a\\ud800' }}") == .unsupported("the escape \\ud800 (a surrogate or a code point out of range)", at: location(1, 4)))
        #expect(parseError("{{ '\\N{BULLET}' }}")?.message == "named Unicode escapes (\\N{...}) in string literals")
    }

    @Test func unsupportedOperationsFailWhenEvaluated() {
        #expect(renderError("{{ [1, 2]|reverse }}") == .unsupported("printing a list_reverseiterator object (Python prints its memory address); convert it with |list first", at: location(1, 11)))
        #expect(renderError("{{ 'x'.upper }}")?.message == "printing a function (built-in method upper of str object); Python prints its memory address")
        #expect(renderError("{{ 'x'.translate({}) }}") == .unsupported("the string method 'translate'", at: location(1, 17)))
        #expect(renderError("{{ strftime_now('%G') }}") == .unsupported("the strftime directive '%G'", at: location(1, 16)))
        #expect(renderError("{{ [1] is sameas [1] }}")?.message.contains("'sameas' on list and list values") == true)
        #expect(renderError("{{ 5.5e21|int }}")?.message.contains("a big integer in Python") == true)
    }

    // MARK: - Type and runtime errors

    @Test func typeErrorsNameTheOperation() {
        #expect(renderError("{{ 'a' + 1 }}") == .type("can only concatenate str (not \"int\") to str", at: location(1, 8)))
        #expect(renderError("{{ 1 + 'a' }}") == .type("unsupported operand type(s) for +: 'int' and 'str'", at: location(1, 6)))
        #expect(renderError("{{ 'a' < 1 }}") == .type("'<' not supported between instances of 'str' and 'int'", at: location(1, 4)))
        #expect(renderError("{{ 1 in 'abc' }}")?.message == "'in <string>' requires string as left operand, not int")
        #expect(renderError("{{ 5|length }}") == .type("object of type 'int' has no len()", at: location(1, 6)))
        #expect(renderError("{% for x in 5 %}{% endfor %}") == .type("'int' object is not iterable", at: location(1, 13)))
        #expect(renderError("{{ -'a' }}")?.message == "bad operand type for unary -: 'str'")
        #expect(renderError("{{ {[1]: 2} }}")?.message == "unhashable type: 'list'")
        #expect(renderError("{{ 'abc'|join(d=1, e=2) }}")?.message == "join filter() got an unexpected keyword argument 'e'")
        #expect(renderError("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}")?.message == "macro 'm' takes not more than 1 argument(s)")
        #expect(renderError("{{ 3() }}")?.message == "'int' object is not callable")
    }

    @Test func runtimeErrors() {
        #expect(renderError("{{ 1 / 0 }}") == .runtime("division by zero", at: location(1, 6)))
        #expect(renderError("{{ 1 // 0 }}")?.message == "integer division or modulo by zero")
        #expect(renderError("{{ 1.0 % 0 }}")?.message == "float modulo")
        #expect(renderError("{% for a, b in [[1]] %}{% endfor %}") == .runtime("not enough values to unpack (expected 2, got 1)", at: location(1, 16)))
        #expect(renderError("{{ range(200000) }}")?.message == "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).")
        #expect(renderError("{{ 'a'.split('') }}")?.message == "empty separator")
        #expect(renderError("{{ [1][::0] }}")?.message == "slice step cannot be zero")
    }

    @Test func sandboxRefusesMutation() {
        #expect(renderError("{{ [].append(1) }}") == .runtime("access to attribute 'append' of 'list' object is unsafe.", at: location(1, 13)))
        #expect(renderError("{% set d = {} %}{{ d.update({'a': 1}) }}")?.message == "access to attribute 'update' of 'dict' object is unsafe.")
        #expect(renderError("{{ ''.__class__ }}")?.message == nil)  // renders as undefined (empty): nothing is reachable
        #expect(renderError("{{ ''.__class__.mro() }}")?.message == "access to attribute '__class__' of 'str' object is unsafe.")
        #expect(renderError("{% set x = 1 %}{% set x.a = 2 %}") == .runtime("cannot assign attribute on non-namespace object", at: location(1, 19)))
        #expect(renderError("{% set ns = namespace() %}{% set ns._a = 1 %}")?.message == "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '_a'. Please rename the attribute.")
    }
}
