import Foundation
import Testing
@testable import Text

/// Renders every case of `Tests/Fixtures/chat/cases.json` (real chat templates with the strings transformers
/// renders for them, made by `scripts/make_text_fixtures.py`) and compares byte for byte; for a case that
/// raises, checks that rendering throws with the template's message.
@Suite struct ChatTemplateConformanceTests {
    struct Fixture {
        var templates: [String: (template: ChatTemplate, variables: [String: TemplateValue])] = [:]
        var cases: [TemplateObject] = []
    }

    static let fixtureURL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/chat/cases.json")

    static func loadFixture() throws -> Fixture {
        let text = try String(contentsOf: fixtureURL, encoding: .utf8)
        guard case let .object(root) = try TemplateValue(json: text),
              case let .object(templates)? = root["templates"], case let .array(cases)? = root["cases"] else {
            throw FixtureError("cases.json does not have 'templates' and 'cases'")
        }
        var fixture = Fixture()
        for (name, entry) in templates.entries {
            guard case let .object(t) = entry, case let .string(source)? = t["template"] else {
                throw FixtureError("template '\(name)' has no 'template' string")
            }
            // A null bos_token means the tokenizer has none: the variable is left undefined.
            var variables: [String: TemplateValue] = [:]
            for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
                if case let .string(token)? = t[key] { variables[key] = .string(token) }
            }
            fixture.templates[name] = (try ChatTemplate(source: source), variables)
        }
        for c in cases {
            guard case let .object(o) = c else { throw FixtureError("a case is not an object") }
            fixture.cases.append(o)
        }
        return fixture
    }

    struct FixtureError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    @Test func fixtureIsPresentAndCoversEveryTemplate() throws {
        let fixture = try Self.loadFixture()
        #expect(fixture.cases.count >= 60)
        for name in ["smollm2", "chatml", "qwen2", "llama2", "llama3", "mistral-v0.1", "zephyr"] {
            #expect(fixture.templates[name] != nil, "fixture lacks the \(name) template")
        }
    }

    @Test func everyCaseMatchesTransformers() throws {
        let fixture = try Self.loadFixture()
        var checked = 0
        for c in fixture.cases {
            guard case let .string(name)? = c["template"], let (template, tokens) = fixture.templates[name],
                  let messages = c["messages"], case let .bool(addGenerationPrompt)? = c["add_generation_prompt"] else {
                Issue.record("malformed case \(c)")
                continue
            }
            let label = "\(name)/\(c["conversation"].map { "\($0)" } ?? "?") agp=\(addGenerationPrompt)"
            var variables = tokens
            if let tools = c["tools"] { variables["tools"] = tools }
            if case let .object(extra)? = c["extra_context"] {
                for (k, v) in extra.entries { variables[k] = v }
            }
            let rendered = Result {
                try template.render(messages: messages, addGenerationPrompt: addGenerationPrompt, variables: variables)
            }
            switch (c["expected"], c["error"], rendered) {
            case let (.string(expected)?, _, .success(output)):
                #expect(output == expected, "\(label): rendering differs")
            case let (.string(expected)?, _, .failure(error)):
                Issue.record("\(label): threw \(error.localizedDescription), expected \(expected.debugDescription)")
            case let (_, .string(message)?, .failure(error)):
                let templateError = error as? TemplateError
                #expect(templateError?.message.contains(message) == true,
                        "\(label): threw \(error.localizedDescription), expected a message containing \(message.debugDescription)")
                if case .raised? = templateError {} else { Issue.record("\(label): \(error) is not a raise_exception error") }
            case let (_, .string(message)?, .success(output)):
                Issue.record("\(label): rendered \(output.debugDescription) but should raise \(message.debugDescription)")
            default:
                Issue.record("\(label): case has neither 'expected' nor 'error'")
            }
            checked += 1
        }
        #expect(checked == fixture.cases.count)
    }
}
