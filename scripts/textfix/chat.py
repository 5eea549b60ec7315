"""Chat templates and their renderings by transformers."""

from __future__ import annotations

from textfix.common import *  # noqa: F401,F403  (imports, paths, corpus and helpers shared by every part)

# ---------------------------------------------------------------------------------------
# 2. Chat templates
# ---------------------------------------------------------------------------------------

def _llama_cpp_template(name: str) -> str:
    """A template constant from llama-cpp-python's llama_chat_format.py (installed package)."""
    import llama_cpp.llama_chat_format as fmt
    return getattr(fmt, name)


# meta-llama/Meta-Llama-3-8B-Instruct's template, as llama-cpp-python carries it
LLAMA3_TEMPLATE = _llama_cpp_template("LLAMA3_INSTRUCT_CHAT_TEMPLATE")


# Qwen/Qwen2-7B-Instruct tokenizer_config.json "chat_template" (transcribed; the JSON "\n"
# escapes are real newlines here, inside the Jinja string literals).
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# meta-llama/Llama-2-7b-chat-hf tokenizer_config.json "chat_template" (transcribed). Raw
# string: the file's JSON holds "\\n", so the template text has backslash-n INSIDE Jinja string
# literals, which Jinja's string-literal parser turns into newlines.
LLAMA2_TEMPLATE = (
    r"{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    r"{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    r"{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    r"{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    r"{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    r"{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    r"{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}"
    r"{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    r"{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    r"{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

# TinyLlama/TinyLlama-1.1B-Chat-v1.0 (identical to HuggingFaceH4/zephyr-7b-beta) "chat_template"
# (transcribed). Newlines between the tags: relies on trim_blocks (transformers' Jinja
# environment sets trim_blocks=True, lstrip_blocks=True); the newline after each `}}` stays.
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n"
    "{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n"
    "{{ '<|assistant|>' }}\n"
    "{% endif %}\n"
    "{% endfor %}"
)

# Qwen/Qwen2.5-7B-Instruct "chat_template" (transcribed from memory of the published file;
# formatting/whitespace control as there). Tool calling: tools | tojson, message.tool_calls.
QWEN25_TEMPLATE = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

# Not a model's template: a synthetic one that exercises the remaining constructs seen in
# newer templates (namespace, for-if filtering, inline if, `~`, `in`/`not in`, list literals,
# negative indexing, tests `is string`/`is defined`/`is none`, filters length/replace/join/
# default/upper/lower, string methods upper/title/startswith/endswith/split/lstrip/rstrip/
# replace, loop.index/length/revindex0, loop controls break/continue, comments, macros).
FEATURES_TEMPLATE = """{#- synthetic: not from any model -#}
{%- macro header(role, n) -%}
[{{ role | upper }}#{{ n }}]
{%- endmacro -%}
{%- set ns = namespace(system='', turns=0, last_user=-1) -%}
{%- if messages and messages[0].role == 'system' -%}
    {%- set ns.system = messages[0].content | trim -%}
    {%- set rest = messages[1:] -%}
{%- else -%}
    {%- set rest = messages -%}
{%- endif -%}
{%- set scoped = 'outer' -%}
{%- for m in rest -%}
    {%- set scoped = 'inner' -%}
    {%- if m.role == 'user' %}{% set ns.last_user = loop.index0 %}{% endif -%}
{%- endfor -%}
{{- bos_token -}}
{%- if ns.system %}SYSTEM({{ ns.system | length }}): {{ ns.system.upper() }}
{% endif -%}
{%- for m in rest -%}
    {%- if m.role not in ['user', 'assistant'] -%}
        {{- raise_exception('Unknown role: ' ~ m.role) -}}
    {%- endif -%}
    {%- if m.content is none or m.content == '' -%}{% continue %}{%- endif -%}
    {%- set ns.turns = ns.turns + 1 -%}
    {{- header(m.role, loop.index) ~ ' ' ~ loop.index ~ '/' ~ loop.length ~ ' left=' ~ loop.revindex0 -}}
    {{- ' ' ~ m.role.title() ~ ('*' if loop.index0 == ns.last_user else '') ~ ': ' -}}
    {%- if m.content is string -%}
        {{- m.content.strip() | replace('\\n', ' / ') -}}
        {%- if m.content.lstrip().startswith('#') %} (heading){% endif -%}
        {%- if m.content.rstrip().endswith('?') %} (question){% endif -%}
        {{- ' words=' ~ (m.content.split() | length) -}}
    {%- else -%}
        {%- for part in m.content if part.type == 'text' -%}
            {{- part.text -}}{% if not loop.last %} | {% endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{- '\\n' -}}
    {%- if m.content is string and 'STOP' in m.content -%}{% break %}{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- 'Assistant' ~ (': ' if ns.turns > 0 else '') -}}
{%- endif -%}
{{- ' [' ~ (rest | map(attribute='role') | join(',')) ~ ']' if rest | length > 1 else '' -}}
{{- ' last=' ~ rest[-1].role if rest else '' -}}
{{- ' date=' ~ (date_string | default('none')) -}}
{{- ' scoped=' ~ scoped -}}
"""

# (name, template, bos, eos, source)
def chat_templates(smollm: dict) -> dict:
    t = {}
    t["smollm2"] = {
        "source": "tokenizer.chat_template of the default model file SmolLM2-135M-Instruct.Q4_1.gguf "
                  "(= HuggingFaceTB/SmolLM2-135M-Instruct); bos/eos = its tokens 1 and 2",
        "template": smollm["chat_template"], "bos_token": smollm["bos"], "eos_token": smollm["eos"]}
    t["chatml"] = {
        "source": f"llama-cpp-python {LLAMACPP_PYTHON_VERSION} llama_chat_format.CHATML_CHAT_TEMPLATE "
                  "(teknium/OpenHermes-2.5-Mistral-7B tokenizer_config.json)",
        "template": _llama_cpp_template("CHATML_CHAT_TEMPLATE"),
        "bos_token": _llama_cpp_template("CHATML_BOS_TOKEN"), "eos_token": _llama_cpp_template("CHATML_EOS_TOKEN")}
    t["qwen2"] = {
        "source": "Qwen/Qwen2-7B-Instruct tokenizer_config.json, transcribed (no hub access)",
        "template": QWEN2_TEMPLATE, "bos_token": None, "eos_token": "<|im_end|>"}
    t["qwen2.5"] = {
        "source": "Qwen/Qwen2.5-7B-Instruct tokenizer_config.json, transcribed from memory (no hub access): "
                  "may differ from the published file in small details",
        "template": QWEN25_TEMPLATE, "bos_token": None, "eos_token": "<|im_end|>"}
    t["llama2"] = {
        "source": "meta-llama/Llama-2-7b-chat-hf tokenizer_config.json, transcribed (no hub access)",
        "template": LLAMA2_TEMPLATE, "bos_token": "<s>", "eos_token": "</s>"}
    t["llama3"] = {
        "source": f"llama-cpp-python {LLAMACPP_PYTHON_VERSION} llama_chat_format.LLAMA3_INSTRUCT_CHAT_TEMPLATE "
                  "(meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json)",
        "template": LLAMA3_TEMPLATE,
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    t["mistral-v0.1"] = {
        "source": f"llama-cpp-python {LLAMACPP_PYTHON_VERSION} llama_chat_format.MISTRAL_INSTRUCT_CHAT_TEMPLATE "
                  "(mistralai/Mistral-7B-Instruct-v0.1 tokenizer_config.json)",
        "template": _llama_cpp_template("MISTRAL_INSTRUCT_CHAT_TEMPLATE"),
        "bos_token": _llama_cpp_template("MISTRAL_INSTRUCT_BOS_TOKEN"),
        "eos_token": _llama_cpp_template("MISTRAL_INSTRUCT_EOS_TOKEN")}
    t["mixtral"] = {
        "source": f"llama-cpp-python {LLAMACPP_PYTHON_VERSION} llama_chat_format.MIXTRAL_INSTRUCT_CHAT_TEMPLATE "
                  "(mistralai/Mixtral-8x7B-Instruct-v0.1 tokenizer_config.json)",
        "template": _llama_cpp_template("MIXTRAL_INSTRUCT_CHAT_TEMPLATE"), "bos_token": "<s>", "eos_token": "</s>"}
    t["zephyr"] = {
        "source": "TinyLlama/TinyLlama-1.1B-Chat-v1.0 and HuggingFaceH4/zephyr-7b-beta tokenizer_config.json, "
                  "transcribed (no hub access)",
        "template": ZEPHYR_TEMPLATE, "bos_token": "<s>", "eos_token": "</s>"}
    t["features"] = {
        "source": "synthetic (written for these fixtures, not from any model): exercises the constructs of "
                  "newer templates that the real templates above do not use",
        "template": FEATURES_TEMPLATE, "bos_token": "<s>", "eos_token": "</s>"}
    return t


SYS = {"role": "system", "content": "You are a pirate. Answer in one sentence."}
U1 = {"role": "user", "content": "Where is the treasure?"}
A1 = {"role": "assistant", "content": "Buried under the old palm tree, matey."}
U2 = {"role": "user", "content": "And how deep?"}
UNICODE_USER = {"role": "user", "content": "  Leading spaces,\n\ttab, blank line:\n\nCaf\u00e9 \u4f60\u597d \U0001F642 \u00bfqu\u00e9?  \n"}
# Python's str.strip() (Jinja's |trim, .strip()) also strips U+3000 and U+00A0: so must ours.
UNICODE_ASSISTANT = {"role": "assistant", "content": "\n\u3000 Sure \u2014 \u00ab\u00e7a va\u00bb \U0001F44D\U0001F3FD \u00a0\n"}

CONVERSATIONS = {
    "single_user": [U1],
    "system_user": [SYS, U1],
    "multi_turn": [U1, A1, U2],
    "system_multi_turn": [SYS, U1, A1, U2],
    "ends_with_assistant": [U1, A1],
    "whitespace_unicode": [UNICODE_USER, UNICODE_ASSISTANT, {"role": "user", "content": "# Title\nline2 ?"}],
    "non_alternating": [U1, {"role": "user", "content": "Hello again?"}],
}

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city (\u00b0C or \u00b0F).",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}]
TOOL_CONVERSATION = [
    {"role": "user", "content": "What's the weather in Paris? R\u00e9ponds en fran\u00e7ais."},
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
    {"role": "tool", "content": "{\"temperature\": 18, \"sky\": \"cloudy\"}"},
    {"role": "tool", "content": "{\"wind_kmh\": 12}"},
]
MULTIMODAL_USER = {"role": "user", "content": [
    {"type": "image"}, {"type": "text", "text": "What is in the picture?"}, {"type": "text", "text": "Be brief."}]}

# (conversation, add_generation_prompt) pairs rendered for every template ...
COMMON_CASES = [
    ("single_user", True),
    ("system_user", True),
    ("multi_turn", True),
    ("ends_with_assistant", False),
    ("whitespace_unicode", True),
]
# ... and per template extras (errors from raise_exception, tools). (transformers refuses an
# empty conversation before rendering, so there is no empty case.)
EXTRA_CASES = {
    "smollm2": [("system_multi_turn", False)],
    "chatml": [("system_multi_turn", True)],
    "qwen2": [("system_multi_turn", False)],
    "qwen2.5": [("system_multi_turn", True), ("tools", True), ("tools_system", False)],
    "llama2": [("system_multi_turn", False), ("non_alternating", False)],
    "llama3": [("system_multi_turn", True), ("single_user", False)],
    "mistral-v0.1": [("non_alternating", False), ("multi_turn", False)],
    "mixtral": [("non_alternating", True), ("system_multi_turn", False)],
    "zephyr": [("system_multi_turn", True), ("single_user", False)],
    "features": [("system_multi_turn", True), ("multimodal", True), ("stop", False), ("bad_role", True),
                 ("date", True)],
}


def case_inputs(conv: str) -> tuple[list[dict], dict]:
    """Messages and extra keyword arguments (tools, other template variables) for a case."""
    if conv == "tools":
        return TOOL_CONVERSATION, {"tools": TOOLS}
    if conv == "tools_system":
        return [SYS] + TOOL_CONVERSATION, {"tools": TOOLS}
    if conv == "multimodal":
        return [MULTIMODAL_USER, A1, {"role": "assistant", "content": ""}, U2], {}
    if conv == "stop":
        return [U1, {"role": "assistant", "content": "Please STOP here."}, U2], {}
    if conv == "bad_role":
        return [U1, {"role": "tool", "content": "42"}], {}
    if conv == "date":
        return [SYS, U1], {"date_string": "26 Jul 2024"}
    return CONVERSATIONS[conv], {}


def render_with_transformers(spec: dict, messages: list[dict], add_generation_prompt: bool, extra: dict):
    """transformers' own rendering: a PreTrainedTokenizerFast with the template and bos/eos set."""
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(TOK_DIR / "bytelevel-gpt2" / "tokenizer.json"),
        bos_token=spec["bos_token"], eos_token=spec["eos_token"],
    )
    tok.chat_template = spec["template"]
    kwargs = dict(extra)
    tools = kwargs.pop("tools", None)
    return tok.apply_chat_template(
        messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs)


def make_chat_cases(smollm: dict) -> dict:
    templates = chat_templates(smollm)
    cases = []
    for name, spec in templates.items():
        for conv, agp in COMMON_CASES + EXTRA_CASES.get(name, []):
            messages, extra = case_inputs(conv)
            case = {"template": name, "conversation": conv, "messages": messages}
            if "tools" in extra:
                case["tools"] = extra["tools"]
            others = {k: v for k, v in extra.items() if k != "tools"}
            if others:
                case["extra_context"] = others
            case["add_generation_prompt"] = agp
            try:
                case["expected"] = render_with_transformers(spec, messages, agp, extra)
            except jinja2.exceptions.TemplateError as e:
                # Only raise_exception(...) errors are fixtures; anything else is a bug here.
                assert type(e) is jinja2.exceptions.TemplateError, (name, conv, repr(e))
                case["error"] = str(e)
            cases.append(case)
    obj = {
        "source": f"transformers {transformers.__version__} (jinja2 {jinja2.__version__}): "
                  "PreTrainedTokenizerFast(bos_token, eos_token) with tokenizer.chat_template = template, "
                  "apply_chat_template(messages, tools=tools, tokenize=False, "
                  "add_generation_prompt=add_generation_prompt, **other keys)",
        "templates": templates,
        "cases": cases,
    }
    write_json(CHAT_DIR / "cases.json", obj, ensure_ascii=True)
    return obj
