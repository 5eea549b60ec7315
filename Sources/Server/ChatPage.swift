// The chat page served at GET /: one self-contained page (no build step, nothing fetched from elsewhere). It lists
// the base model and the adapters from /v1/models, streams answers from /v1/chat/completions, and, for a MoE-LoRA
// with token routing, colors each generated piece by its first expert (hover: every expert with its gate).
let chatPage = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>loraswitch</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { padding: 8px 12px; border-bottom: 1px solid #ddd; display: flex; gap: 8px; align-items: center; }
  #log { flex: 1; overflow-y: auto; padding: 12px; }
  .turn { margin: 0 0 12px; white-space: pre-wrap; }
  .user { color: #333; font-weight: 600; }
  .assistant { color: #111; }
  .error { color: #b00; }
  form { display: flex; gap: 8px; padding: 8px 12px; border-top: 1px solid #ddd; }
  textarea { flex: 1; height: 3em; font: inherit; }
  .tok { border-radius: 3px; }
  #legend span { padding: 0 4px; margin-right: 2px; border-radius: 3px; font-size: 12px; }
</style>
</head>
<body>
<header>
  <label>model <select id="model"></select></label>
  <button id="reset" type="button">new chat</button>
  <span id="legend"></span>
</header>
<div id="log"></div>
<form id="form">
  <textarea id="prompt" placeholder="Say something (Enter sends, Shift+Enter breaks the line)"></textarea>
  <button id="send" type="submit">send</button>
</form>
<script>
const palette = ["#fde2e4", "#e2ece9", "#dfe7fd", "#fff1c1", "#e8dff5", "#d3f8e2", "#fbd3c9", "#cde7f0",
                 "#f0e6ef", "#e4f1c5", "#ffd6a5", "#caffbf", "#9bf6ff", "#bdb2ff", "#ffc6ff", "#fdffb6"];
const log = document.getElementById("log"), select = document.getElementById("model");
let messages = [];

const tokenRouted = new Set();

async function loadModels() {
  const adapters = await (await fetch("/v1/adapters")).json();
  for (const a of adapters.data) if (a.kind === "moe-token") tokenRouted.add(a.name);
  const r = await fetch("/v1/models");
  const body = await r.json();
  for (const m of body.data) {
    const o = document.createElement("option");
    o.value = m.id;
    o.textContent = m.parent ? m.id + " (adapter)" : m.id + " (base)";
    select.appendChild(o);
  }
}

function add(cls, text) {
  const div = document.createElement("div");
  div.className = "turn " + cls;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

// A piece of text with the routing of the tokens it came from: colored by the first token's top expert, every
// token's experts and gates on hover.
function piece(target, text, routing) {
  if (!routing || !routing.length) { target.appendChild(document.createTextNode(text)); return; }
  const span = document.createElement("span");
  span.className = "tok";
  span.textContent = text;
  span.style.background = palette[routing[0].experts[0] % palette.length];
  span.dataset.experts = routing.map(r => r.experts.join(",")).join(";");
  span.title = routing.map(r => r.experts.map((e, i) => "expert " + e + ": " + r.gates[i].toFixed(3)).join(", ")).join("\n");
  target.appendChild(span);
}

async function send(text) {
  messages.push({role: "user", content: text});
  add("user", text);
  const out = add("assistant", "");
  const body = {model: select.value, messages, stream: true};
  if (tokenRouted.has(select.value)) body.routing = {return: true};
  let answer = "";
  try {
    const r = await fetch("/v1/chat/completions", {method: "POST", headers: {"Content-Type": "application/json"},
                                                   body: JSON.stringify(body)});
    if (!r.ok) { const e = await r.json(); throw new Error(e.error ? e.error.message : r.statusText); }
    const reader = r.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        for (const c of chunk.choices || []) {
          const t = (c.delta && c.delta.content) || "";
          answer += t;
          piece(out, t, c.routing);
        }
        log.scrollTop = log.scrollHeight;
      }
    }
    messages.push({role: "assistant", content: answer});
  } catch (e) {
    out.classList.add("error");
    out.appendChild(document.createTextNode(" [" + e.message + "]"));
    messages.pop();
  }
}

document.getElementById("form").addEventListener("submit", ev => {
  ev.preventDefault();
  const p = document.getElementById("prompt"), text = p.value.trim();
  if (!text) return;
  p.value = "";
  send(text);
});
document.getElementById("prompt").addEventListener("keydown", ev => {
  if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); document.getElementById("form").requestSubmit(); }
});
document.getElementById("reset").addEventListener("click", () => { messages = []; log.textContent = ""; });
loadModels();
</script>
</body>
</html>
"""#
