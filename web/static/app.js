// kokoro-edge playground: builds a speech request from the form, plays it while it
// streams (server-sent events with PCM deltas, scheduled on Web Audio), highlights
// the word being spoken from the word timestamps, downloads the same request in the
// chosen format, and shows it as curl and OpenAI SDK code. Talks only to its origin.
"use strict";

const MAX_CHARS = 4096;
const RATE = 24000;
const NORMALIZATION = ["enabled", "urls", "emails", "phone_numbers", "dates", "times",
  "money", "percentages", "units", "years", "ordinals", "decimals", "numbers"];
const LANGUAGES = { "en-us": "English (US)", "en-gb": "English (UK)", es: "Spanish",
  "fr-fr": "French", hi: "Hindi", it: "Italian", ja: "Japanese", "pt-br": "Portuguese (BR)",
  cmn: "Mandarin Chinese" };

const $ = (id) => document.getElementById(id);
// What a test (or a curious person) can read: how far playback has got.
const state = { voices: [], blend: [], samplesScheduled: 0, wordsSeen: 0, playing: false,
  lastError: null, ctx: null, core: null, preview: null };
window.kokoroPlayground = state;

let run = null; // the playback in progress: { abort, sources, start }

function chars(s) { return [...s].length; }

function authHeaders() {
  const key = $("key").value.trim();
  sessionStorage.setItem("kokoro-key", key);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function normalization() {
  const out = {};
  for (const name of NORMALIZATION) {
    if (!$(`norm-${name}`).checked) out[name] = false;
  }
  return Object.keys(out).length ? out : undefined;
}

// The request as the API takes it; only what differs from the defaults is sent.
function requestBody(extra) {
  const body = { model: "kokoro", input: $("text").value, voice: $("voice").value.trim() };
  const speed = Number($("speed").value);
  if (speed !== 1) body.speed = speed;
  const norm = normalization();
  if (norm) body.normalization = norm;
  return Object.assign(body, extra);
}

function showError(message) {
  state.lastError = message;
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

function setStatus(text) { $("status").textContent = text; }

// The API's own words for a failed answer (the contract's error envelope).
async function apiError(resp) {
  const text = await resp.text();
  try {
    const e = JSON.parse(text).error;
    if (e && e.message) return e.message;
  } catch (_) { /* not the envelope */ }
  return `The server answered ${resp.status}.`;
}

// ---- text, count and code ----

function updateCount() {
  const n = chars($("text").value);
  const out = $("count");
  out.textContent = `${n} / ${MAX_CHARS}`;
  out.classList.toggle("over", n > MAX_CHARS);
}

function shellQuote(s) { return `'${s.replace(/'/g, `'\\''`)}'`; }

function pyLiteral(v) {
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "object") {
    const items = Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${pyLiteral(x)}`);
    return `{${items.join(", ")}}`;
  }
  return JSON.stringify(v);
}

function updateCode() {
  schedulePreview();
  const format = $("format").value;
  const body = requestBody({ response_format: format });
  const keyed = $("key").value.trim() !== "";
  const origin = window.location.origin;
  const lines = [`curl -sS ${origin}/v1/audio/speech`, "  -H 'Content-Type: application/json'"];
  if (keyed) lines.push("  -H \"Authorization: Bearer $KOKORO_API_KEY\"");
  lines.push(`  -d ${shellQuote(JSON.stringify(body))}`, `  -o speech.${format}`);
  $("curl").textContent = lines.join(" \\\n");
  const args = [`model=${pyLiteral(body.model)}`, `voice=${pyLiteral(body.voice)}`,
    `input=${pyLiteral(body.input)}`, `response_format=${pyLiteral(format)}`];
  if (body.speed !== undefined) args.push(`speed=${body.speed}`);
  if (body.normalization) args.push(`extra_body={"normalization": ${pyLiteral(body.normalization)}}`);
  $("sdk").textContent = [
    "import os",
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url=${pyLiteral(origin + "/v1")}, api_key=os.environ.get("KOKORO_API_KEY", "none"))`,
    "with client.audio.speech.with_streaming_response.create(",
    ...args.map((a) => `    ${a},`),
    ") as response:",
    `    response.stream_to_file("speech.${format}")`,
  ].join("\n");
}

// ---- the server's rules in the page (kokoro-core in WebAssembly) ----

// The body Play sends: what the preview checks.
function playBody() {
  return requestBody({ response_format: "pcm", stream: true, stream_format: "sse", timestamps: "word" });
}

let previewPending = false;
function schedulePreview() {
  if (previewPending || !state.core) return;
  previewPending = true;
  requestAnimationFrame(() => { previewPending = false; updatePreview(); });
}

function updatePreview() {
  const v = JSON.parse(state.core.preview(JSON.stringify(playBody())));
  state.preview = v;
  const err = $("preview-error");
  const list = $("preview-pieces");
  list.replaceChildren();
  if (!v.ok) {
    $("preview-summary").textContent = `The server will answer ${v.status}:`;
    err.textContent = v.error; // the server's body, byte for byte
    err.hidden = false;
    return;
  }
  err.hidden = true;
  err.textContent = "";
  const texts = v.pieces.filter((p) => p.text !== undefined).length;
  $("preview-summary").textContent =
    `${v.chars} of ${v.limit} characters; spoken as ${texts} piece${texts === 1 ? "" : "s"}, after normalization:`;
  for (const p of v.pieces) {
    const li = document.createElement("li");
    if (p.text !== undefined) li.textContent = p.text;
    else { li.className = "pause"; li.textContent = `pause ${p.pause_secs} s`; }
    list.append(li);
  }
}

async function loadCore() {
  try {
    const mod = await import("/web/core.js");
    await mod.default({ module_or_path: "/web/core.wasm" });
    state.core = mod;
    updatePreview();
  } catch (e) {
    $("preview-note").textContent = "The live preview is not in this build (make wasm builds it).";
  }
}

// ---- voices and blends ----

function renderVoices() {
  const q = $("voice-search").value.trim().toLowerCase();
  const list = $("voice-list");
  const selected = list.value;
  list.replaceChildren();
  const groups = new Map();
  for (const v of state.voices) {
    const lang = LANGUAGES[v.language] || v.language;
    if (q && !v.id.includes(q) && !lang.toLowerCase().includes(q) && !v.language.includes(q)) continue;
    if (!groups.has(lang)) groups.set(lang, []);
    groups.get(lang).push(v.id);
  }
  for (const [lang, ids] of groups) {
    const g = document.createElement("optgroup");
    g.label = lang;
    for (const id of ids) g.append(new Option(id, id, false, id === selected));
    list.append(g);
  }
}

async function loadVoices() {
  try {
    const resp = await fetch("/v1/audio/voices", { headers: authHeaders() });
    if (!resp.ok) { showError(await apiError(resp)); return; }
    state.voices = (await resp.json()).voices || [];
    renderVoices();
  } catch (e) {
    showError(`The voice list could not be loaded: ${e.message}`);
  }
}

function blendString() {
  if (state.blend.length === 1) return state.blend[0].id;
  return state.blend.map((b) => `${b.id}(${b.weight})`).join("+");
}

function renderBlend() {
  const ul = $("blend");
  ul.replaceChildren();
  state.blend.forEach((b, i) => {
    const li = document.createElement("li");
    li.textContent = `${b.id} (${b.weight})`;
    const rm = document.createElement("button");
    rm.type = "button";
    rm.textContent = "×";
    rm.setAttribute("aria-label", `Remove ${b.id} from the blend`);
    rm.addEventListener("click", () => { state.blend.splice(i, 1); renderBlend(); });
    li.append(rm);
    ul.append(li);
  });
  if (state.blend.length) $("voice").value = blendString();
  updateCode();
}

function addToBlend() {
  const id = $("voice-list").value;
  const weight = Number($("blend-weight").value);
  if (!id) { showError("Choose a voice to add to the blend."); return; }
  if (!(weight > 0)) { showError("A blend weight must be more than 0."); return; }
  showError("");
  const existing = state.blend.find((b) => b.id === id);
  if (existing) existing.weight = weight; else state.blend.push({ id, weight });
  renderBlend();
}

// ---- the words being spoken ----

function renderSpoken(text) {
  const p = $("spoken");
  p.replaceChildren(document.createTextNode(text));
  p.dataset.text = text;
}

// Words arrive as { word, start, end, char_start, char_end } (seconds, code points).
const spans = [];
function addWords(words, offset) {
  const p = $("spoken");
  const text = [...p.dataset.text];
  for (const w of words) {
    spans.push({ start: w.start + offset, end: w.end + offset, from: w.char_start, to: w.char_end });
    state.wordsSeen += 1;
  }
  // Rebuild the paragraph: plain text between the spans, a span per word.
  const nodes = [];
  let at = 0;
  spans.forEach((s, i) => {
    if (s.from > at) nodes.push(document.createTextNode(text.slice(at, s.from).join("")));
    const el = document.createElement("span");
    el.className = "word";
    el.dataset.i = String(i);
    el.textContent = text.slice(s.from, s.to).join("");
    nodes.push(el);
    at = Math.max(at, s.to);
  });
  if (at < text.length) nodes.push(document.createTextNode(text.slice(at).join("")));
  p.replaceChildren(...nodes);
}

function highlight() {
  if (!run) return;
  const t = state.ctx.currentTime - run.start;
  for (const el of $("spoken").querySelectorAll(".word")) {
    const s = spans[Number(el.dataset.i)];
    el.classList.toggle("now", t >= s.start && t < s.end);
    el.classList.toggle("done", t >= s.end);
  }
  requestAnimationFrame(highlight);
}

// ---- playback ----

function stop() {
  if (!run) return;
  run.abort.abort();
  for (const s of run.sources) { try { s.stop(); } catch (_) { /* already ended */ } }
  run = null;
  state.playing = false;
  $("stop").disabled = true;
  $("play").disabled = false;
}

// s16le PCM bytes (an even count) onto the Web Audio clock, right after the last.
function schedule(bytes) {
  const n = bytes.length >> 1;
  if (!n) return;
  const view = new DataView(bytes.buffer, bytes.byteOffset, n * 2);
  const buf = state.ctx.createBuffer(1, n, RATE);
  const ch = buf.getChannelData(0);
  for (let i = 0; i < n; i++) ch[i] = view.getInt16(i * 2, true) / 32768;
  const src = state.ctx.createBufferSource();
  src.buffer = buf;
  src.connect(state.ctx.destination);
  const now = state.ctx.currentTime;
  if (run.next < now) run.next = now + 0.05; // ran dry (or the first chunk): small lead
  if (run.start === null) run.start = run.next;
  src.start(run.next);
  run.next += buf.duration;
  run.sources.push(src);
  state.samplesScheduled += n;
}

function base64Bytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function play(event) {
  event.preventDefault();
  stop();
  showError("");
  if (!state.ctx) state.ctx = new AudioContext();
  await state.ctx.resume();
  const abort = new AbortController();
  run = { abort, sources: [], start: null, next: 0 };
  const mine = run;
  spans.length = 0;
  renderSpoken($("text").value);
  $("stop").disabled = false;
  $("play").disabled = true;
  setStatus("Synthesizing…");
  const t0 = performance.now();
  try {
    const body = playBody();
    const resp = await fetch("/v1/audio/speech", {
      method: "POST", signal: abort.signal,
      headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()),
      body: JSON.stringify(body),
    });
    if (!resp.ok) { showError(await apiError(resp)); setStatus(""); return; }
    state.playing = true;
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let text = "";
    let carry = new Uint8Array(0); // an odd byte waits for its pair
    let audioSecs = 0;
    let first = true;
    let done = false;
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      text += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = text.indexOf("\n\n")) >= 0) {
        const frame = text.slice(0, cut);
        text = text.slice(cut + 2);
        const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
        if (!data) continue;
        const ev = JSON.parse(data);
        if (ev.type === "speech.audio.delta") {
          const raw = base64Bytes(ev.audio);
          const bytes = new Uint8Array(carry.length + raw.length);
          bytes.set(carry);
          bytes.set(raw, carry.length);
          const even = bytes.length & ~1;
          carry = bytes.slice(even);
          if (mine !== run) return;
          schedule(bytes.subarray(0, even));
          audioSecs += even / 2 / RATE;
          if (first) {
            first = false;
            setStatus(`Playing: first audio after ${Math.round(performance.now() - t0)} ms.`);
            requestAnimationFrame(highlight);
          }
        } else if (ev.type === "speech.audio.timestamps") {
          addWords(ev.words, 0);
        } else if (ev.type === "speech.audio.done") {
          done = true;
        } else if (ev.type === "error" || ev.error) {
          showError((ev.error && ev.error.message) || "The stream failed.");
        }
      }
    }
    if (!done && mine === run) showError("The stream ended before all of the audio arrived.");
    else setStatus(`Done: ${audioSecs.toFixed(2)} s of audio.`);
  } catch (e) {
    if (e.name !== "AbortError") showError(`The request failed: ${e.message}`);
  } finally {
    if (mine === run) {
      $("play").disabled = false;
      // Stop stays enabled until the scheduled audio has played.
      const left = Math.max(0, run.next - state.ctx.currentTime);
      setTimeout(() => { if (mine === run) { state.playing = false; $("stop").disabled = true; } }, left * 1000);
    }
  }
}

async function download() {
  showError("");
  const format = $("format").value;
  setStatus(`Synthesizing ${format} for download…`);
  try {
    const resp = await fetch("/v1/audio/speech", {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()),
      body: JSON.stringify(requestBody({ response_format: format, stream: false })),
    });
    if (!resp.ok) { showError(await apiError(resp)); setStatus(""); return; }
    const blob = await resp.blob();
    const a = $("download-link");
    if (a.href) URL.revokeObjectURL(a.href);
    a.href = URL.createObjectURL(blob);
    a.download = `speech.${format}`;
    a.click();
    setStatus(`Downloaded speech.${format} (${blob.size} bytes).`);
  } catch (e) {
    showError(`The request failed: ${e.message}`);
  }
}

// ---- wiring ----

function init() {
  const norm = $("norm");
  for (const name of NORMALIZATION) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = `norm-${name}`;
    box.checked = true;
    box.addEventListener("change", updateCode);
    label.append(box, ` ${name.replace("_", " ")}`);
    norm.append(label);
  }
  $("key").value = sessionStorage.getItem("kokoro-key") || "";
  $("text").addEventListener("input", () => { updateCount(); updateCode(); });
  $("voice").addEventListener("input", updateCode);
  $("voice-search").addEventListener("input", renderVoices);
  $("voice-list").addEventListener("change", () => {
    if (!state.blend.length) $("voice").value = $("voice-list").value;
    updateCode();
  });
  $("voice-list").addEventListener("dblclick", addToBlend);
  $("blend-add").addEventListener("click", addToBlend);
  $("blend-clear").addEventListener("click", () => {
    state.blend = [];
    renderBlend();
    $("voice").value = $("voice-list").value || "af_heart";
    updateCode();
  });
  $("speed").addEventListener("input", () => {
    $("speed-value").textContent = `${Number($("speed").value).toFixed(2)}×`;
    updateCode();
  });
  $("format").addEventListener("change", updateCode);
  $("key").addEventListener("change", () => { loadVoices(); updateCode(); });
  $("form").addEventListener("submit", play);
  $("stop").addEventListener("click", stop);
  $("download").addEventListener("click", download);
  updateCount();
  updateCode();
  loadVoices();
  loadCore();
}

init();
