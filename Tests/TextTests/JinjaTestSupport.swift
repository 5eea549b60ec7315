import Foundation
import Testing
@testable import Text

// Shared helpers for the Jinja interpreter tests. Expected strings in these tests were produced by Jinja2 3.1.6
// in the environment transformers builds (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
// loopcontrols, transformers' tojson/raise_exception/namespace) and checked by hand.

/// A conversation used by many tests.
let sampleMessages: TemplateValue = [
    ["role": "system", "content": "You are helpful."],
    ["role": "user", "content": "Hi there"],
    ["role": "assistant", "content": "Hello! How can I help?"],
    ["role": "user", "content": "Tell me a joke.\nPlease."],
]

let sampleContext: [String: TemplateValue] = [
    "messages": sampleMessages, "bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": true,
]

/// July 26, 2024, 14:05:09 local time: what `strftime_now` sees in tests.
let fixedNow: Date = {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = .current
    return calendar.date(from: DateComponents(year: 2024, month: 7, day: 26, hour: 14, minute: 5, second: 9))!
}()

func render(_ source: String, _ context: [String: TemplateValue] = sampleContext) throws -> String {
    try ChatTemplate(source: source).render(context: context, now: fixedNow)
}

/// Renders each `(template, expected)` pair with `context` and checks the output byte for byte.
func expectRenders(_ table: [(String, String)], context: [String: TemplateValue] = sampleContext,
                   sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    for (template, expected) in table {
        do {
            let output = try render(template, context)
            #expect(output == expected, "template: \(template.debugDescription)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("template \(template.debugDescription) threw \(error.localizedDescription)",
                         sourceLocation: sourceLocation)
        }
    }
}

/// The error rendering (or parsing) `template` throws, if any.
func renderError(_ template: String, _ context: [String: TemplateValue] = sampleContext) -> TemplateError? {
    do {
        _ = try render(template, context)
        return nil
    } catch let error as TemplateError {
        return error
    } catch {
        return nil
    }
}
