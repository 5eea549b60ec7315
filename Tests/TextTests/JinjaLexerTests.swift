import Foundation
import Testing
@testable import Text

// Lexing: text and tags, whitespace control, trim_blocks and lstrip_blocks exactly as Jinja2 applies them in
// transformers' environment, comments, raw blocks, newline handling. Expected strings come from Jinja2 3.1.6.

@Suite struct JinjaLexerTests {
    /// trim_blocks: the one newline right after `%}` goes, also after `#}`; not after `}}`.
    @Test func trimBlocksDropsTheNewlineAfterABlockTag() {
        expectRenders([
            ("a\n{% if true %}\nb\n{% endif %}\nc",
             "a\nb\nc"),
            ("{% for x in [1,2] %}\n{{ x }}\n{% endfor %}\n",
             "1\n2\n"),
            ("{% set x = 1 %}\n\n{{ x }}\n",
             "\n1"),
            ("a {# comment #}\nb",
             "a b"),
            ("{{ 'v' }}\nafter",
             "v\nafter"),
            ("{% if true %}\r\nx\r\n{% endif %}\r\n",
             "x\n"),
        ])
    }

    /// lstrip_blocks: spaces/tabs from the start of the line to a block or comment tag go; a `{{` tag keeps them.
    @Test func lstripBlocksRemovesIndentationBeforeBlockTags() {
        expectRenders([
            ("a\n  {% if true %}\n  b\n  {% endif %}\nc\n",
             "a\n  b\nc"),
            ("  {% if true %}x{% endif %}",
             "x"),
            ("a  {% if true %}b{% endif %}  c",
             "a  b  c"),
            ("a\n  {# comment #}\nb",
             "a\nb"),
            ("x\n \t {{ 'v' }}",
             "x\n \t v"),
            ("{% if true %}\n\n  {% if true %}z{% endif %}\n{% endif %}",
             "\nz"),
            ("{{ 1 }}\n  {% if true %}y{% endif %}",
             "1\ny"),
            ("x {{ 1 }}  {% if true %}y{% endif %}",
             "x 1  y"),
        ])
    }

    /// A tag whose newline was trimmed leaves the next tag at a line start, so that tag's indentation goes too.
    @Test func lineStartingAfterATrimmedTag() {
        expectRenders([
            ("{% if true %}\n    {% if true %}deep{% endif %}\n{% endif %}",
             "deep"),
            ("{% for i in [1, 2] %}\n    {{ i }}\n{% endfor %}",
             "    1\n    2\n"),
            ("{%- if true -%}\n   {% if true %}x{% endif %}{% endif %}",
             "x"),
        ])
    }

    /// `{%-`, `-%}`, `{{-`, `-}}`, `{#-`, `-#}` strip every whitespace character (newlines, NBSP, ideographic space).
    @Test func minusStripsAllWhitespace() {
        expectRenders([
            ("a\n\t {%- if true %} b {% endif -%}\n\n c",
             "a b c"),
            ("{% for x in [1,2] %}\n  {{- x }}\n{% endfor %}",
             "1\n2\n"),
            ("{{- '  x  ' -}}",
             "  x  "),
            ("a   {{- 'x' -}}   b",
             "axb"),
            ("a\n  {#- comment -#}  \n b",
             "ab"),
            ("a\u{a0}\u{3000}{%- if true %}b{% endif %}",
             "ab"),
            ("{%- if true -%}\n  a\n{%- endif -%}\n",
             "a"),
            ("{{ 'a' -}}\n\n\n{{ 'b' }}",
             "ab"),
        ])
    }

    /// `{%+` turns lstrip_blocks off for one tag and `+%}` turns trim_blocks off; `+#}` likewise for comments.
    @Test func plusDisablesTrimming() {
        expectRenders([
            ("a\n  {%+ if true %}b\n{%+ endif +%}\nc",
             "a\n  b\n\nc"),
            ("a\n  {#+ comment +#}\nb",
             "a\n  \nb"),
            ("{% if true +%}\nkept newline\n{% endif %}",
             "\nkept newline\n"),
        ])
    }

    /// lstrip_blocks only strips whitespace-only line prefixes, and Python's whitespace includes NBSP.
    @Test func nonBreakingSpaceIsNotLStripped() {
        expectRenders([
            ("x\n \u{a0}{% if true %}y{% endif %}",
             "x\ny"),
            ("x\n .{% if true %}y{% endif %}",
             "x\n .y"),
        ])
    }

    /// `{% raw %}` keeps tags as text; trim_blocks does not apply to the raw opener itself (as in Jinja2).
    @Test func rawBlocksAreLiteral() {
        expectRenders([
            ("{% raw %}\n{{ x }}{% if %}\n{% endraw %}\nafter",
             "\n{{ x }}{% if %}\nafter"),
            ("  {% raw %}{{ x }}{% endraw %}  \n",
             "{{ x }}  "),
            ("a\n  {%- raw -%}  {{ x }}  {%- endraw -%}  \nb",
             "a{{ x }}b"),
            ("{%raw%}{#{%{{{%endraw%}",
             "{#{%{{"),
        ])
    }

    /// keep_trailing_newline=False: one final newline of the template is dropped, only one, and `\r\n` counts as one.
    @Test func trailingNewlineHandling() {
        expectRenders([
            ("text\n",
             "text"),
            ("text\n\n",
             "text\n"),
            ("text\r\n",
             "text"),
            ("text\r\n\r\n",
             "text\n"),
            ("text",
             "text"),
            ("\n",
             ""),
        ])
    }

    /// `\r\n` and `\r` in the template become `\n`, in text and in string literals alike.
    @Test func newlinesAreNormalised() {
        expectRenders([
            ("line1\r\nline2\rline3",
             "line1\nline2\nline3"),
            ("{{ 'a\r\nb' }}",
             "a\nb"),
        ])
    }

    /// Comments, including ones holding tag syntax, render as nothing.
    @Test func commentsProduceNothing() {
        expectRenders([
            ("a{# {{ x }} {% if %} #}b",
             "ab"),
            ("a{#\nmulti\nline\n#}b",
             "ab"),
            ("a{# - #}b{#-#}c",
             "abc"),
        ])
    }

    /// `}}` inside a dict literal does not close the tag while brackets are open.
    @Test func bracesInsideTagsAreBalanced() {
        expectRenders([
            ("{{ {'a': {'b': 1}} }}",
             "{'a': {'b': 1}}"),
            ("{{ {'a': 1}['a'] }}{% set d = {'k': {}} %}{{ d }}",
             "1{'k': {}}"),
        ])
    }

    /// Unterminated tags, comments and raw blocks are syntax errors at the opening delimiter.
    @Test func unterminatedConstructsAreSyntaxErrors() {
        #expect(renderError("ab\n  {# never closed") == .syntax("Missing end of comment tag", at: TemplateLocation(line: 2, column: 3)))
        #expect(renderError("{% raw %}abc") == .syntax("Missing end of raw directive", at: TemplateLocation(line: 1, column: 1)))
        #expect(renderError("x {{ 1 + 2") == .syntax("unexpected end of template, expected 'end of print statement'", at: TemplateLocation(line: 1, column: 11)))
        #expect(renderError("{{ 'abc }}") == .syntax("unterminated string literal", at: TemplateLocation(line: 1, column: 4)))
        #expect(renderError("{{ 1 }") == .syntax("unexpected '}'", at: TemplateLocation(line: 1, column: 6)))
        #expect(renderError("{{ (1 ] }}") == .syntax("unexpected ']', expected ')'", at: TemplateLocation(line: 1, column: 7)))
        #expect(renderError("{{ 1 ? 2 }}") == .syntax("unexpected char '?' at 5", at: TemplateLocation(line: 1, column: 6)))
    }

    /// Positions count lines after newline normalisation and columns in Unicode scalars.
    @Test func locationsCountScalarsAndNormalisedLines() {
        #expect(renderError("a\r\nb\r\n  {{ 1 +* 2 }}")?.location == TemplateLocation(line: 3, column: 9))
        #expect(renderError("é😀 {{ ) }}")?.location == TemplateLocation(line: 1, column: 7))
    }

    /// Token-level details: literals of every base, underscores, the float rule, adjacent strings, escapes.
    @Test func literalsLexLikePython() throws {
        expectRenders([
            ("{{ 0x1F }} {{ 0b101 }} {{ 0o17 }} {{ 1_000 }} {{ 1_0.5 }} {{ 1e3 }} {{ 2.5E-3 }} {{ 0 }} {{ 00 }}",
             "31 5 15 1000 10.5 1000.0 0.0025 0 0"),
            ("{{ 'a' \"b\" 'c' }}|{{ \"it's\" }}|{{ 'say \\'hi\\'' }}", "abc|it's|say 'hi'"),
            ("{{ '\\u00e9\\x41\\101\\t|' }}{{ 'a\\qb' }}{{ '\\\\' }}", "éAA\t|a\\qb\\"),
            ("{{ messages.0.role }}{{ [[1, 2]].0.1 }}", "system2"),
        ])
    }
}
