import Foundation
import Testing
@testable import Text

// The chat templates of the model families this engine serves, written out here (the fixture conformance test
// checks the published files), rendered through the public API for several conversations, with and without the
// generation prompt. Expected strings come from Jinja2 3.1.6 in transformers' environment (tools=None,
// documents=None). Also: the public API's variables, defaults and JSON input.

@Suite struct ChatTemplateTests {
    enum Outcome: Sendable {
        case expected(String)
        case raises(String)
    }

    static let templates: [String: String] = [
        "chatml": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        "smollm2": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        "llama2": "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
        "llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
        "mistral": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
        "zephyr": "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
    ]

    static let tokens: [String: (bos: String, eos: String)] = [
        "chatml": ("<s>", "<|im_end|>"),
        "smollm2": ("<|im_start|>", "<|im_end|>"),
        "llama2": ("<s>", "</s>"),
        "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
        "mistral": ("<s>", "</s>"),
        "zephyr": ("<s>", "</s>"),
    ]

    static let cases: [(template: String, messages: [ChatMessage], addGenerationPrompt: Bool, outcome: Outcome)] = [
        ("chatml", [ChatMessage(role: "user", content: "Where is the treasure?")], true, .expected("<|im_start|>user\nWhere is the treasure?<|im_end|>\n<|im_start|>assistant\n")),
        ("chatml", [ChatMessage(role: "user", content: "Where is the treasure?")], false, .expected("<|im_start|>user\nWhere is the treasure?<|im_end|>\n")),
        ("chatml", [ChatMessage(role: "system", content: "You are a pirate."), ChatMessage(role: "user", content: "Where is the treasure?")], true, .expected("<|im_start|>system\nYou are a pirate.<|im_end|>\n<|im_start|>user\nWhere is the treasure?<|im_end|>\n<|im_start|>assistant\n")),
        ("chatml", [ChatMessage(role: "system", content: "You are a pirate."), ChatMessage(role: "user", content: "Where is the treasure?")], false, .expected("<|im_start|>system\nYou are a pirate.<|im_end|>\n<|im_start|>user\nWhere is the treasure?<|im_end|>\n")),
        ("chatml", [ChatMessage(role: "user", content: "Hi!"), ChatMessage(role: "assistant", content: "Ahoy."), ChatMessage(role: "user", content: "  Where is it?\n")], true, .expected("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nAhoy.<|im_end|>\n<|im_start|>user\n  Where is it?\n<|im_end|>\n<|im_start|>assistant\n")),
        ("chatml", [ChatMessage(role: "user", content: "Hi!"), ChatMessage(role: "assistant", content: "Ahoy."), ChatMessage(role: "user", content: "  Where is it?\n")], false, .expected("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nAhoy.<|im_end|>\n<|im_start|>user\n  Where is it?\n<|im_end|>\n")),
        ("chatml", [ChatMessage(role: "user", content: " \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}")], true, .expected("<|im_start|>user\n \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}<|im_end|>\n<|im_start|>assistant\n")),
        ("chatml", [ChatMessage(role: "user", content: " \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}")], false, .expected("<|im_start|>user\n \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}<|im_end|>\n")),
        ("smollm2", [ChatMessage(role: "user", content: "Where is the treasure?")], true, .expected("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhere is the treasure?<|im_end|>\n<|im_start|>assistant\n")),
        ("smollm2", [ChatMessage(role: "user", content: "Where is the treasure?")], false, .expected("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhere is the treasure?<|im_end|>\n")),
        ("smollm2", [ChatMessage(role: "system", content: "You are a pirate."), ChatMessage(role: "user", content: "Where is the treasure?")], true, .expected("<|im_start|>system\nYou are a pirate.<|im_end|>\n<|im_start|>user\nWhere is the treasure?<|im_end|>\n<|im_start|>assistant\n")),
        ("smollm2", [ChatMessage(role: "system", content: "You are a pirate."), ChatMessage(role: "user", content: "Where is the treasure?")], false, .expected("<|im_start|>system\nYou are a pirate.<|im_end|>\n<|im_start|>user\nWhere is the treasure?<|im_end|>\n")),
        ("smollm2", [ChatMessage(role: "user", content: "Hi!"), ChatMessage(role: "assistant", content: "Ahoy."), ChatMessage(role: "user", content: "  Where is it?\n")], true, .expected("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nAhoy.<|im_end|>\n<|im_start|>user\n  Where is it?\n<|im_end|>\n<|im_start|>assistant\n")),
        ("smollm2", [ChatMessage(role: "user", content: "Hi!"), ChatMessage(role: "assistant", content: "Ahoy."), ChatMessage(role: "user", content: "  Where is it?\n")], false, .expected("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nAhoy.<|im_end|>\n<|im_start|>user\n  Where is it?\n<|im_end|>\n")),
        ("smollm2", [ChatMessage(role: "user", content: " \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}")], true, .expected("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}<|im_end|>\n<|im_start|>assistant\n")),
        ("smollm2", [ChatMessage(role: "user", content: " \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}")], false, .expected("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}<|im_end|>\n")),
        ("llama2", [ChatMessage(role: "user", content: "Where is the treasure?")], true, .expected("<s>[INST] Where is the treasure? [/INST]")),
        ("llama2", [ChatMessage(role: "user", content: "Where is the treasure?")], false, .expected("<s>[INST] Where is the treasure? [/INST]")),
        ("llama2", [ChatMessage(role: "system", content: "You are a pirate."), ChatMessage(role: "user", content: "Where is the treasure?")], true, .expected("<s>[INST] <<SYS>>\nYou are a pirate.\n<</SYS>>\n\nWhere is the treasure? [/INST]")),
        ("llama2", [ChatMessage(role: "system", content: "You are a pirate."), ChatMessage(role: "user", content: "Where is the treasure?")], false, .expected("<s>[INST] <<SYS>>\nYou are a pirate.\n<</SYS>>\n\nWhere is the treasure? [/INST]")),
        ("llama2", [ChatMessage(role: "user", content: "Hi!"), ChatMessage(role: "assistant", content: "Ahoy."), ChatMessage(role: "user", content: "  Where is it?\n")], true, .expected("<s>[INST] Hi! [/INST] Ahoy. </s><s>[INST] Where is it? [/INST]")),
        ("llama2", [ChatMessage(role: "user", content: "Hi!"), ChatMessage(role: "assistant", content: "Ahoy."), ChatMessage(role: "user", content: "  Where is it?\n")], false, .expected("<s>[INST] Hi! [/INST] Ahoy. </s><s>[INST] Where is it? [/INST]")),
        ("llama2", [ChatMessage(role: "user", content: " \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}")], true, .expected("<s>[INST] tabs\tand spaces, 谢谢 😀 [/INST]")),
        ("llama2", [ChatMessage(role: "user", content: " \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}")], false, .expected("<s>[INST] tabs\tand spaces, 谢谢 😀 [/INST]")),
        ("llama3", [ChatMessage(role: "user", content: "Where is the treasure?")], true, .expected("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhere is the treasure?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")),
        ("llama3", [ChatMessage(role: "user", content: "Where is the treasure?")], false, .expected("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhere is the treasure?<|eot_id|>")),
        ("llama3", [ChatMessage(role: "system", content: "You are a pirate."), ChatMessage(role: "user", content: "Where is the treasure?")], true, .expected("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a pirate.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhere is the treasure?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")),
        ("llama3", [ChatMessage(role: "system", content: "You are a pirate."), ChatMessage(role: "user", content: "Where is the treasure?")], false, .expected("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a pirate.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhere is the treasure?<|eot_id|>")),
        ("llama3", [ChatMessage(role: "user", content: "Hi!"), ChatMessage(role: "assistant", content: "Ahoy."), ChatMessage(role: "user", content: "  Where is it?\n")], true, .expected("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nAhoy.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhere is it?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")),
        ("llama3", [ChatMessage(role: "user", content: "Hi!"), ChatMessage(role: "assistant", content: "Ahoy."), ChatMessage(role: "user", content: "  Where is it?\n")], false, .expected("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nAhoy.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhere is it?<|eot_id|>")),
        ("llama3", [ChatMessage(role: "user", content: " \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}")], true, .expected("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\ntabs\tand spaces, 谢谢 😀<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")),
        ("llama3", [ChatMessage(role: "user", content: " \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}")], false, .expected("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\ntabs\tand spaces, 谢谢 😀<|eot_id|>")),
        ("mistral", [ChatMessage(role: "user", content: "Where is the treasure?")], true, .expected("<s>[INST] Where is the treasure? [/INST]")),
        ("mistral", [ChatMessage(role: "user", content: "Where is the treasure?")], false, .expected("<s>[INST] Where is the treasure? [/INST]")),
        ("mistral", [ChatMessage(role: "system", content: "You are a pirate."), ChatMessage(role: "user", content: "Where is the treasure?")], true, .raises("Conversation roles must alternate user/assistant/user/assistant/...")),
        ("mistral", [ChatMessage(role: "system", content: "You are a pirate."), ChatMessage(role: "user", content: "Where is the treasure?")], false, .raises("Conversation roles must alternate user/assistant/user/assistant/...")),
        ("mistral", [ChatMessage(role: "user", content: "Hi!"), ChatMessage(role: "assistant", content: "Ahoy."), ChatMessage(role: "user", content: "  Where is it?\n")], true, .expected("<s>[INST] Hi! [/INST]Ahoy.</s> [INST]   Where is it?\n [/INST]")),
        ("mistral", [ChatMessage(role: "user", content: "Hi!"), ChatMessage(role: "assistant", content: "Ahoy."), ChatMessage(role: "user", content: "  Where is it?\n")], false, .expected("<s>[INST] Hi! [/INST]Ahoy.</s> [INST]   Where is it?\n [/INST]")),
        ("mistral", [ChatMessage(role: "user", content: " \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}")], true, .expected("<s>[INST]  \u{a0}tabs\tand spaces, 谢谢 😀\u{3000} [/INST]")),
        ("mistral", [ChatMessage(role: "user", content: " \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}")], false, .expected("<s>[INST]  \u{a0}tabs\tand spaces, 谢谢 😀\u{3000} [/INST]")),
        ("zephyr", [ChatMessage(role: "user", content: "Where is the treasure?")], true, .expected("<|user|>\nWhere is the treasure?</s>\n<|assistant|>\n")),
        ("zephyr", [ChatMessage(role: "user", content: "Where is the treasure?")], false, .expected("<|user|>\nWhere is the treasure?</s>\n")),
        ("zephyr", [ChatMessage(role: "system", content: "You are a pirate."), ChatMessage(role: "user", content: "Where is the treasure?")], true, .expected("<|system|>\nYou are a pirate.</s>\n<|user|>\nWhere is the treasure?</s>\n<|assistant|>\n")),
        ("zephyr", [ChatMessage(role: "system", content: "You are a pirate."), ChatMessage(role: "user", content: "Where is the treasure?")], false, .expected("<|system|>\nYou are a pirate.</s>\n<|user|>\nWhere is the treasure?</s>\n")),
        ("zephyr", [ChatMessage(role: "user", content: "Hi!"), ChatMessage(role: "assistant", content: "Ahoy."), ChatMessage(role: "user", content: "  Where is it?\n")], true, .expected("<|user|>\nHi!</s>\n<|assistant|>\nAhoy.</s>\n<|user|>\n  Where is it?\n</s>\n<|assistant|>\n")),
        ("zephyr", [ChatMessage(role: "user", content: "Hi!"), ChatMessage(role: "assistant", content: "Ahoy."), ChatMessage(role: "user", content: "  Where is it?\n")], false, .expected("<|user|>\nHi!</s>\n<|assistant|>\nAhoy.</s>\n<|user|>\n  Where is it?\n</s>\n")),
        ("zephyr", [ChatMessage(role: "user", content: " \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}")], true, .expected("<|user|>\n \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}</s>\n<|assistant|>\n")),
        ("zephyr", [ChatMessage(role: "user", content: " \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}")], false, .expected("<|user|>\n \u{a0}tabs\tand spaces, 谢谢 😀\u{3000}</s>\n")),
    ]

    @Test func familiesRenderLikeTransformers() throws {
        for c in Self.cases {
            let template = try ChatTemplate(source: Self.templates[c.template]!)
            let tokens = Self.tokens[c.template]!
            let variables: [String: TemplateValue] = ["bos_token": .string(tokens.bos), "eos_token": .string(tokens.eos)]
            let label = "\(c.template) \(c.messages.map(\.role)) agp=\(c.addGenerationPrompt)"
            switch c.outcome {
            case let .expected(expected):
                let output = try template.render(messages: c.messages, addGenerationPrompt: c.addGenerationPrompt, variables: variables)
                #expect(output == expected, "\(label)")
            case let .raises(message):
                #expect(throws: TemplateError.self, "\(label)") {
                    try template.render(messages: c.messages, addGenerationPrompt: c.addGenerationPrompt, variables: variables)
                }
                do {
                    _ = try template.render(messages: c.messages, addGenerationPrompt: c.addGenerationPrompt, variables: variables)
                } catch let error as TemplateError {
                    guard case .raised = error else { Issue.record("\(label): \(error)"); continue }
                    #expect(error.message == message, "\(label)")
                }
            }
        }
    }

    /// transformers passes `tools=None` and `documents=None` unless given, so `tools is none` holds and
    /// `tools is defined` too; variables can replace them and add others.
    @Test func defaultsAndVariables() throws {
        let template = try ChatTemplate(source: "{{ tools is defined }} {{ tools is none }} {{ documents is none }} {{ date_string|default('no date') }} {{ add_generation_prompt }} {{ messages|length }}")
        #expect(try template.render(messages: [], addGenerationPrompt: true) == "True True True no date True 0")
        let withTools = try template.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: false,
                                            variables: ["tools": [["name": "f"]], "date_string": "26 Jul 2024"])
        #expect(withTools == "True False True 26 Jul 2024 False 1")
        // `messages` and `add_generation_prompt` always come from the arguments.
        let overridden = try template.render(messages: [], addGenerationPrompt: false, variables: ["messages": [1, 2], "add_generation_prompt": true])
        #expect(overridden == "True True True no date False 0")
        // An explicitly undefined variable is missing, as if not passed.
        let undefinedToken = try ChatTemplate(source: "[{{ bos_token }}] {{ bos_token is defined }}")
        #expect(try undefinedToken.render(messages: [], addGenerationPrompt: false, variables: ["bos_token": .undefined]) == "[] False")
    }

    /// Messages with more than role and text (tool calls, structured content) go through the `TemplateValue` form.
    @Test func structuredMessages() throws {
        let template = try ChatTemplate(source: "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}{% for part in m.content %}<{{ part.type }}:{{ part.text|default('') }}>{% endfor %}{% endif %}{% if m.tool_calls %}{{ m.tool_calls|tojson }}{% endif %};{% endfor %}")
        let messages: TemplateValue = [
            ["role": "user", "content": [["type": "image"], ["type": "text", "text": "What is this?"]]],
            ["role": "assistant", "content": "", "tool_calls": [["type": "function", "function": ["name": "look", "arguments": ["zoom": 2, "area": nil]]]]],
        ]
        let output = try template.render(messages: messages, addGenerationPrompt: false)
        #expect(output == "<image:><text:What is this?>;[{\"type\": \"function\", \"function\": {\"name\": \"look\", \"arguments\": {\"zoom\": 2, \"area\": null}}}];")
    }

    /// Message objects are prepared as transformers 5's apply_chat_template prepares them: keys holding None are
    /// dropped, and reasoning under any of its names is also exposed as `thinking` and `reasoning_content`.
    @Test func messagesArePreparedLikeTransformers() throws {
        let template = try ChatTemplate(source: "{{ messages|tojson }}")
        let messages: TemplateValue = [
            ["role": "user", "content": "hi", "name": nil],
            ["role": "assistant", "content": nil, "reasoning": "think!", "tool_calls": nil],
            ["role": "assistant", "thinking": "a", "content": "x", "reasoning_content": "b"],
        ]
        let expected = #"[{"role": "user", "content": "hi"}, {"thinking": "think!", "role": "assistant", "reasoning": "think!", "reasoning_content": "think!"}, {"thinking": "a", "role": "assistant", "content": "x", "reasoning_content": "b"}]"#
        #expect(try template.render(messages: messages, addGenerationPrompt: false) == expected)
    }

    /// `strftime_now` reads the clock given to `render` (the current time by default).
    @Test func strftimeNowUsesTheGivenClock() throws {
        let template = try ChatTemplate(source: "{{ strftime_now('%d %b %Y') }}")
        #expect(try template.render(messages: [], addGenerationPrompt: false, now: fixedNow) == "26 Jul 2024")
        let today = try template.render(messages: [], addGenerationPrompt: false)
        #expect(today.count == 11)
    }

    /// JSON input keeps key order, so `tojson` and `items()` see keys as written, as Python's json.loads gives them.
    @Test func jsonInputKeepsKeyOrder() throws {
        let tools = try TemplateValue(json: #"[{"name": "f", "parameters": {"z": {"type": "string"}, "a": {"type": "integer", "enum": [1, 2.5, true, null]}}, "note": "caf\u00e9 \ud83d\ude00"}]"#)
        let template = try ChatTemplate(source: "{{ tools|tojson }}|{% for k, v in tools[0].parameters.items() %}{{ k }}{% endfor %}")
        let output = try template.render(messages: [], addGenerationPrompt: false, variables: ["tools": tools])
        #expect(output == #"[{"name": "f", "parameters": {"z": {"type": "string"}, "a": {"type": "integer", "enum": [1, 2.5, true, null]}}, "note": "café 😀"}]|za"#)
        #expect(throws: TemplateJSONError.self) { try TemplateValue(json: "{\"a\": }") }
        #expect(throws: TemplateJSONError.self) { try TemplateValue(json: "[1] x") }
    }

    /// A template is parsed once and can render many times, from any thread.
    @Test func templatesAreReusableValues() async throws {
        let template = try ChatTemplate(source: Self.templates["chatml"]!)
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<8 {
                group.addTask { try template.render(messages: [ChatMessage(role: "user", content: "m\(i)")], addGenerationPrompt: true) }
            }
            var all: [String] = []
            for try await output in group { all.append(output) }
            return all.sorted()
        }
        #expect(outputs.count == 8)
        #expect(outputs[0] == "<|im_start|>user\nm0<|im_end|>\n<|im_start|>assistant\n")
    }
}
