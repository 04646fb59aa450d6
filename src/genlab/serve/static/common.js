// What every part of the studio's page shares: element lookup, the page's state, JSON and upload requests, and the
// handlers of the one event stream (each part registers its own with onEvent).

export const $ = (sel) => document.querySelector(sel);
export const state = { text: null, image: null, imageStarted: 0, firstPreview: 0, segment: null, edit: null,
                       editJob: null, train: null, losses: [], chat: null, conversation: [] };
export const handlers = [];
export const onEvent = (fn) => handlers.push(fn);

// A job's first events can arrive on the stream before the POST that queued it has answered (a short job can even
// finish first): every event is kept per job for a while, and track() replays a job's events once the page knows
// its id.
const recent = new Map();
export function dispatch(ev) {
  if (ev.job) {
    const id = typeof ev.job === "string" ? ev.job : ev.job.id;
    if (!recent.has(id)) recent.set(id, []);
    const list = recent.get(id);
    if (list.length < 5000) list.push(ev);
    while (recent.size > 50) recent.delete(recent.keys().next().value);
  }
  for (const handle of handlers) handle(ev);
}
export function track(id) {
  for (const ev of recent.get(id) || []) for (const handle of handlers) handle(ev);
}
export const finished = (job) => ["done", "failed", "cancelled"].includes(job.state);
export const describe = (job) => job.state + (job.error ? `: ${job.error}` : "");

export async function post(url, body) {
  const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
                               body: JSON.stringify(body ?? {}) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `${r.status}`);
  return data;
}

export async function upload(file, purpose = "") {
  const body = new FormData();
  body.append("file", file);
  const r = await fetch(`/api/upload${purpose ? `?for=${purpose}` : ""}`, { method: "POST", body });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `${r.status}`);
  return data;
}

export function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = label; b.addEventListener("click", onClick);
  return b;
}

export function formParams(form) {
  const out = {};
  for (const el of form.elements) if (el.name) out[el.name] = el.type === "number" ? Number(el.value) : el.value;
  return out;
}

export function fillForm(form, params) {
  for (const [key, value] of Object.entries(params)) {
    const el = form.elements.namedItem(key);
    if (el && "value" in el) el.value = value;
  }
}
