import Foundation
import Testing
@testable import Text

// Filters: Jinja2's built-ins and transformers' `tojson`, with Python's conversions and results. Expected
// strings come from Jinja2 3.1.6 with transformers' tojson.

@Suite struct JinjaFilterTests {
    /// Text filters convert their input with `str()` first, so they accept numbers and undefined values.
    @Test func textFilters() {
        expectRenders([
            ("{{ 'Hello World'|upper }}|{{ 'Hello'|lower }}|{{ 'hello world-foo(bar'|title }}|{{ 'hELLO wORLD'|capitalize }}|{{ 3|upper }}|{{ nothing|upper }}",
             "HELLO WORLD|hello|Hello World-Foo(Bar|Hello world|3|"),
            ("{{ '  x  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ ' \u{a0}\u{3000}x\t\n'|trim }}|{{ nothing|trim }}",
             "x|a|x|"),
            ("{{ 'a-b-c'|replace('-', '+') }}|{{ 'aaaa'|replace('a', 'b', 2) }}|{{ 'abc'|replace('', '-') }}|{{ 42|replace('4', 'x') }}",
             "a+b+c|bbaa|-a-b-c-|x2"),
            ("{{ 'abc'|center(9) }}|{{ 'abc'|center(8) }}|{{ 'foo bar baz qux'|truncate(9) }}|{{ 'foo bar baz qux'|truncate(9, true) }}|{{ 'foo bar baz qux'|truncate(11) }}|{{ 'a b_c d-e 12'|wordcount }}",
             "   abc   |  abc   |foo...|foo ba...|foo bar baz qux|5"),
            ("{{ '%s-%d'|format('a', 3) }}|{{ '%(n)s'|format(n=1) }}|{{ '<a&\"b\">\\''|e }}|{{ 'x'|safe }}|{{ 1000|filesizeformat }}|{{ 1500000|filesizeformat }}|{{ 1024|filesizeformat(true) }}",
             "a-3|1|&lt;a&amp;&#34;b&#34;&gt;&#39;|x|1.0 kB|1.5 MB|1.0 KiB"),
        ])
    }

    /// `indent(width, first, blank)`, including Jinja2's trailing-newline quirk and string widths.
    @Test func indentFilter() {
        expectRenders([
            ("{{ 'a\nb\n\nc'|indent }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent('> ', blank=true) }}|{{ ''|indent }}|{{ 'x\n'|indent(first=true) }}",
             "a\n    b\n\n    c|  a\n  b|a\n> \n> b||    x\n"),
        ])
    }

    /// `int`, `float`, `string`, `list`, `length`, `abs`, `round` as Jinja2 defines them.
    @Test func conversionFilters() {
        expectRenders([
            ("{{ '42'|int }}|{{ '42.7'|int }}|{{ 'x'|int }}|{{ 'x'|int(5) }}|{{ 3.9|int }}|{{ -3.9|int }}|{{ '0x1A'|int(0, 16) }}|{{ '0b11'|int(base=0) }}|{{ true|int }}|{{ ' 7 '|int }}",
             "42|42|0|5|3|-3|26|3|1|7"),
            ("{{ '3.5'|float }}|{{ 'x'|float }}|{{ 3|float }}|{{ '1e3'|float }}|{{ ' -2.5 '|float }}|{{ 'x'|float(1.5) }}",
             "3.5|0.0|3.0|1000.0|-2.5|1.5"),
            ("{{ none|string }}|{{ [1, 'a']|string }}|{{ 1.0|string }}|{{ true|string|lower }}|{{ 'abc'|list }}|{{ {'x': 1}|list }}|{{ range(3)|list }}",
             "None|[1, 'a']|1.0|true|['a', 'b', 'c']|['x']|[0, 1, 2]"),
            ("{{ [1,2,3]|length }}|{{ 'héllo'|length }}|{{ {'a':1}|count }}|{{ nothing|length }}|{{ -3|abs }}|{{ -2.5|abs }}",
             "3|5|1|0|3|2.5"),
            ("{{ 2.567|round(2) }}|{{ 2.5|round }}|{{ 3.5|round }}|{{ 42|round }}|{{ 2.675|round(2) }}|{{ 2.1|round(0, 'ceil') }}|{{ 2.9|round(0, 'floor') }}|{{ 1234|round(-2) }}|{{ 1250|round(-2) }}",
             "2.57|2.0|4.0|42|2.67|3.0|2.0|1200|1200"),
        ])
    }

    /// `default`/`d` replace undefined values, and falsy ones with `boolean=true`.
    @Test func defaultFilter() {
        expectRenders([
            ("{{ nothing|default('d') }}|{{ ''|default('d') }}|{{ ''|default('d', true) }}|{{ nothing|d('dd') }}|{{ none|default('x') }}|{{ none|default('x', true) }}|{{ messages[0].missing|default('m') }}|{{ 0|d(5, boolean=true) }}",
             "d||d|dd|None|x|m|5"),
        ])
    }

    /// `join`, `first`, `last`, `sort`, `reverse`, `unique`, `min`, `max`, `sum`, `batch`, `slice`.
    @Test func sequenceFilters() {
        expectRenders([
            ("{{ [1,2,3]|join(', ') }}|{{ [1,2,3]|join }}|{{ messages|join(' ', attribute='role') }}|{{ [1, none, 'a']|join('-') }}|{{ ('a', 'b')|join }}",
             "1, 2, 3|123|system user assistant user|1-None-a|ab"),
            ("{{ [1,2,3]|first }}|{{ [1,2,3]|last }}|{{ []|first }}|{{ 'abc'|first }}|{{ 'ab'|last }}|{{ {'k': 1, 'j': 2}|first }}|{{ {'k': 1, 'j': 2}|last }}",
             "1|3||a|b|k|j"),
            ("{{ [3,1,2]|sort }}|{{ ['b','A','a','B']|sort }}|{{ ['b','A','a','B']|sort(case_sensitive=true) }}|{{ [3,1,2]|sort(reverse=true) }}",
             "[1, 2, 3]|['A', 'a', 'b', 'B']|['A', 'B', 'a', 'b']|[3, 2, 1]"),
            ("{{ messages|sort(attribute='role')|map(attribute='role')|list }}|{{ [{'n': 'b', 'v': 2}, {'n': 'a', 'v': 2}, {'n': 'c', 'v': 1}]|sort(attribute='v,n')|map(attribute='n')|join }}",
             "['assistant', 'system', 'user', 'user']|cab"),
            ("{{ [1,2,3]|reverse|list }}|{{ 'abc'|reverse }}|{{ (1, 2)|reverse|list }}|{{ [1,2,2,3,1]|unique|list }}|{{ ['a','A','b']|unique|list }}|{{ ['a','A']|unique(case_sensitive=true)|list }}",
             "[3, 2, 1]|cba|[2, 1]|[1, 2, 3]|['a', 'b']|['a', 'A']"),
            ("{{ [3,1,2]|min }}|{{ [3,1,2]|max }}|{{ ['b','A','c']|max }}|{{ []|max }}|{{ [{'a': 2}, {'a': 5}]|max(attribute='a') }}",
             "1|3|c||{'a': 5}"),
            ("{{ [1,2,3]|sum }}|{{ [1.5,2]|sum }}|{{ [{'a': 2}, {'a': 5}]|sum(attribute='a') }}|{{ [[1], [2]]|sum(start=[]) }}",
             "6|3.5|7|[1, 2]"),
            ("{{ [1,2,3]|batch(2)|list }}|{{ [1,2,3]|batch(2, 0)|list }}|{{ [1,2,3,4,5]|slice(2)|list }}|{{ [1,2,3,4]|slice(3, 'x')|list }}",
             "[[1, 2], [3]]|[[1, 2], [3, 0]]|[[1, 2, 3], [4, 5]]|[[1, 2], [3, 'x'], [4, 'x']]"),
        ])
    }

    /// `select`/`reject`/`selectattr`/`rejectattr` with tests and arguments; `map` by attribute (with default) or by filter.
    @Test func selectAndMap() {
        expectRenders([
            ("{{ messages|selectattr('role', 'equalto', 'user')|list|length }}|{{ messages|rejectattr('role', 'eq', 'user')|map(attribute='role')|join(',') }}|{{ messages|selectattr('role', 'in', ['user', 'system'])|map(attribute='role')|list }}",
             "2|system,assistant|['system', 'user', 'user']"),
            ("{{ [0,1,2,3]|select('odd')|list }}|{{ [0,1,2,3]|reject('even')|list }}|{{ [0,1,'',none]|select|list }}|{{ [1, 2, 3, 4]|select('>', 2)|list }}|{{ [1, 2, 3]|reject('in', [1, 2])|list }}",
             "[1, 3]|[1, 3]|[1]|[3, 4]|[3]"),
            ("{{ ['a','b']|map('upper')|list }}|{{ messages|map(attribute='missing', default='?')|list }}|{{ [1,2]|map('string')|list }}|{{ ['a', 'b']|map('replace', 'a', 'z')|list }}|{{ [[3, 1], [2]]|map('sort')|list }}",
             "['A', 'B']|['?', '?', '?', '?']|['1', '2']|['z', 'b']|[[1, 3], [2]]"),
            ("{{ [{'a': {'b': 2}}, {'a': {'b': 1}}]|map(attribute='a.b')|list }}|{{ [[1, 2], [3, 4]]|map(attribute='1')|list }}|{{ (messages|selectattr('role', 'eq', 'system')|first).content }}",
             "[2, 1]|[2, 4]|You are helpful."),
            ("{% if messages|selectattr('role', 'eq', 'nobody') %}a generator is truthy{% endif %}|{% if messages|selectattr('role', 'eq', 'nobody')|list %}no{% else %}empty list{% endif %}|{{ nothing|map('upper')|list }}",
             "a generator is truthy|empty list|[]"),
        ])
    }

    /// `items`, `dictsort`, `attr`.
    @Test func mappingFilters() {
        expectRenders([
            ("{{ {'b': 1, 'a': 2}|items|list }}|{{ nothing|items|list }}|{{ {'b': 1, 'a': 2}|dictsort }}|{{ {'b': 1, 'a': 2}|dictsort(by='value', reverse=true) }}|{{ {'B': 1, 'a': 2}|dictsort }}|{{ {'B': 1, 'a': 2}|dictsort(true) }}",
             "[('b', 1), ('a', 2)]|[]|[('a', 2), ('b', 1)]|[('a', 2), ('b', 1)]|[('a', 2), ('B', 1)]|[('B', 1), ('a', 2)]"),
            ("{{ {'a': 1}|attr('a') is defined }}|{{ {'a': 1}|attr('keys') is defined }}|{{ 'x'|attr('upper') is defined }}",
             "False|True|True"),
        ])
    }

    /// `tojson` is `json.dumps(ensure_ascii=False)`: `, `/`: ` separators, insertion order, non-ASCII kept, `indent`/`separators`/`sort_keys`.
    @Test func tojsonIsTransformersJsonDumps() {
        expectRenders([
            ("{{ messages|tojson }}",
             "[{\"role\": \"system\", \"content\": \"You are helpful.\"}, {\"role\": \"user\", \"content\": \"Hi there\"}, {\"role\": \"assistant\", \"content\": \"Hello! How can I help?\"}, {\"role\": \"user\", \"content\": \"Tell me a joke.\\nPlease.\"}]"),
            ("{{ {'a': [1, 2.5, 'é\\n\"\\\\', none, true], 'b': {}}|tojson }}",
             "{\"a\": [1, 2.5, \"é\\n\\\"\\\\\", null, true], \"b\": {}}"),
            ("{{ {'a': [1, {'c': []}]}|tojson(indent=2) }}|{{ {'a': 1}|tojson(indent=0) }}|{{ {'a': 1}|tojson(sort_keys=true, indent='--') }}",
             "{\n  \"a\": [\n    1,\n    {\n      \"c\": []\n    }\n  ]\n}|{\n\"a\": 1\n}|{\n--\"a\": 1\n}"),
            ("{{ 'é😀\\x7f'|tojson(ensure_ascii=true) }}|{{ {'b':1,'a':2}|tojson(sort_keys=true) }}|{{ [1,2]|tojson(separators=(',', ':')) }}|{{ 'x'|tojson(4) }}",
             "\"\\u00e9\\ud83d\\ude00\\u007f\"|{\"a\": 2, \"b\": 1}|[1,2]|\"x\""),
            ("{{ 1.0|tojson }}{{ 1e20|tojson }}{{ [1e-7]|tojson }}{{ {1: 2, 2.5: 'b', true: 'c', none: 'd'}|tojson }}{{ 'tab\\t\\x01\\u2028'|tojson }}{{ (1, (2, 3))|tojson }}",
             "1.01e+20[1e-07]{\"1\": \"c\", \"2.5\": \"b\", \"null\": \"d\"}\"tab\\t\\u0001\u{2028}\"[1, [2, 3]]"),
        ])
    }

    /// Filters that exist in Jinja2 but are not implemented fail by name when used — and only when used.
    @Test func unimplementedFiltersFailByNameAtRenderTime() throws {
        let template = try ChatTemplate(source: "{% if tools %}{{ tools|pprint }}{% endif %}ok")
        #expect(try template.render(messages: [], addGenerationPrompt: false) == "ok")
        #expect(throws: TemplateError.unsupported("the 'pprint' filter", at: TemplateLocation(line: 1, column: 24))) {
            try template.render(messages: [], addGenerationPrompt: false, variables: ["tools": [1]])
        }
        #expect(renderError("{{ messages|groupby('role') }}") == .unsupported("the 'groupby' filter", at: TemplateLocation(line: 1, column: 13)))
    }

    /// A filter Jinja2 does not have is rejected when parsing, except inside `if` (Jinja2 defers those to runtime).
    @Test func unknownFiltersFollowJinjaCompileRules() throws {
        #expect(throws: TemplateError.syntax("No filter named 'nosuch'.", at: TemplateLocation(line: 1, column: 8))) {
            try ChatTemplate(source: "{{ x | nosuch }}")
        }
        let deferred = try ChatTemplate(source: "{% if false %}{{ x|nosuch }}{% endif %}ok")
        #expect(try deferred.render(messages: [], addGenerationPrompt: false) == "ok")
    }

    /// tojson refuses what json.dumps refuses.
    @Test func tojsonRejectsNonJSONValues() {
        #expect(renderError("{{ nothing|tojson }}")?.message == "Object of type Undefined is not JSON serializable")
        #expect(renderError("{{ {(1, 2): 3}|tojson }}")?.message == "keys must be str, int, float, bool or None, not tuple")
    }
}
