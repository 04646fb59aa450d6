// genlab studio: one page, no build step. Actions are fetch() POSTs; progress and results arrive on one
// Server-Sent Events stream. Model output and metadata are set as text (textContent), never as HTML.
import { $, button, describe, dispatch, fillForm, finished, formParams, onEvent, post, state, track, upload }
  from "./common.js";
import "./edit.js";
import "./segment.js";
import { loadRuns } from "./train.js";

// --- tabs ---------------------------------------------------------------------------------------------------
function show(tab) {
  for (const b of document.querySelectorAll("nav button")) b.setAttribute("aria-selected", b.dataset.tab === tab);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== `tab-${tab}`;
  if (tab === "history") loadHistory();
  if (tab === "queue") loadQueue();
  if (tab === "train") loadRuns();
}
for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => show(b.dataset.tab));
const current = () => document.querySelector("nav button[aria-selected=true]").dataset.tab;

// --- events -------------------------------------------------------------------------------------------------
const events = new EventSource("/api/events");
events.addEventListener("hello", () => { $("#connection").textContent = "connected"; });
events.onerror = () => { $("#connection").textContent = "reconnecting…"; };
events.onmessage = (e) => dispatch(JSON.parse(e.data));

onEvent((ev) => {
  if (ev.type === "text" && ev.job === state.text) $("#text-out").textContent += ev.text;
  if (ev.type === "text" && ev.job === state.chat) $("#chat-log li:last-child").textContent += ev.text;
  if (ev.type === "preview" && ev.job === state.image) {
    if (!state.firstPreview) state.firstPreview = performance.now() - state.imageStarted;
    $("#image-preview").src = `/api/previews/${ev.item}.png`;
    $("#image-status").textContent = `step ${ev.step} of ${ev.steps}; first preview after ` +
      `${(state.firstPreview / 1000).toFixed(2)} s`;
  }
  if (ev.type === "job") onJob(ev.job);
  if (ev.type === "job" || ev.type === "position") if (current() === "queue") loadQueue();
});

function onJob(job) {
  const done = finished(job);
  if (job.id === state.text) {
    $("#text-status").textContent = job.state === "done"
      ? `done: ${job.result.tokens} tokens, ${job.result.tokens_per_s} tokens/s`
      : describe(job);
    if (done) { state.text = null; $("#text-stop").disabled = true; $("#text-go").disabled = false; }
  }
  if (job.id === state.image) {
    if (job.state === "done") {
      $("#image-result").src = `/api/files/${job.result.item}.png`;
      $("#image-result").dataset.item = job.result.item;
      $("#image-caption").textContent = `result: ${job.result.seconds} s`;
      $("#image-reuse").disabled = false;
    }
    if (job.state !== "running") {
      $("#image-status").textContent = describe(job) + (job.result?.warning ? `. Note: ${job.result.warning}` : "");
    }
    if (done) { state.image = null; $("#image-stop").disabled = true; $("#image-go").disabled = false; }
  }
  if (job.id === state.chat) {
    if (job.state === "done") {
      state.conversation.push({ role: "assistant", content: job.result.answer });
      $("#chat-status").textContent = `${job.result.tokens} tokens, ${job.result.tokens_per_s} tokens/s`;
    } else if (done) {
      $("#chat-status").textContent = describe(job);
      const partial = $("#chat-log li:last-child").textContent.trim();  // Stop keeps what was said
      if (partial) state.conversation.push({ role: "assistant", content: partial });
    }
    if (done) { state.chat = null; $("#chat-stop").disabled = true; $("#chat-go").disabled = false; }
  }
  loadQueueCount();
}

// --- text ---------------------------------------------------------------------------------------------------
$("#text-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#text-out").textContent = "";
  try {
    const { job } = await post("/api/jobs", { kind: "text", params: formParams($("#text-form")) });
    state.text = job.id;
    $("#text-status").textContent = "queued";
    $("#text-stop").disabled = false; $("#text-go").disabled = true;
    track(job.id);
  } catch (err) { $("#text-status").textContent = `error: ${err.message}`; }
});
$("#text-stop").addEventListener("click", () => state.text && post(`/api/jobs/${state.text}/cancel`));

// --- chat -------------------------------------------------------------------------------------------------------
function say(role, text) {
  const li = document.createElement("li");
  li.className = role; li.textContent = text;
  $("#chat-log").appendChild(li);
}
$("#chat-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("#chat-form").elements.content, text = input.value.trim();
  if (!text || state.chat) return;
  state.conversation.push({ role: "user", content: text });
  say("user", text); say("assistant", ""); input.value = "";
  try {
    const { job } = await post("/api/jobs", { kind: "chat", params: { messages: state.conversation } });
    state.chat = job.id;
    $("#chat-stop").disabled = false; $("#chat-go").disabled = true;
    track(job.id);
  } catch (err) { $("#chat-status").textContent = `error: ${err.message}`; state.conversation.pop(); }
});
$("#chat-stop").addEventListener("click", () => state.chat && post(`/api/jobs/${state.chat}/cancel`));
$("#chat-new").addEventListener("click", () => { state.conversation = []; $("#chat-log").textContent = ""; });

// --- image --------------------------------------------------------------------------------------------------
$("#image-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    state.imageStarted = performance.now(); state.firstPreview = 0;
    const { job } = await post("/api/jobs", { kind: "image", params: formParams($("#image-form")) });
    state.image = job.id;
    $("#image-status").textContent = "queued";
    $("#image-stop").disabled = false; $("#image-go").disabled = true;
    track(job.id);
  } catch (err) { $("#image-status").textContent = `error: ${err.message}`; }
});
$("#image-stop").addEventListener("click", () => state.image && post(`/api/jobs/${state.image}/cancel`));

// img2img: an uploaded image, this tab's last result or a result in the history becomes the init image
function setInit(id, name) {
  $("#image-form").elements.init.value = id;
  $("#image-init-status").hidden = !id;
  $("#image-init-name").textContent = id ? `img2img from ${name}: the batch is variations of it at this strength` : "";
}
$("#image-init-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try { setInit((await upload(file)).image, file.name); } catch (err) { $("#image-status").textContent = `error: ${err.message}`; }
});
$("#image-init-clear").addEventListener("click", () => { setInit("", ""); $("#image-init-file").value = ""; });
$("#image-reuse").addEventListener("click", () => setInit($("#image-result").dataset.item, "the last result"));

// --- keyboard: Ctrl-Enter generates, Esc cancels, on the visible tab --------------------------------------------
document.addEventListener("keydown", (e) => {
  const tab = current();
  const runs = tab === "text" || tab === "image" || tab === "edit";
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && runs) { e.preventDefault(); $(`#${tab}-form`).requestSubmit(); }
  if (e.key === "Escape" && runs) $(`#${tab}-stop`).click();
});

// --- history ------------------------------------------------------------------------------------------------
async function loadHistory() {
  const q = encodeURIComponent($("#history-q").value);
  const fav = $("#history-fav").checked ? "&fav=1" : "";
  const { items } = await (await fetch(`/api/history?q=${q}${fav}`)).json();
  const ul = $("#history-list");
  ul.textContent = "";
  for (const item of items) {
    const li = document.createElement("li");
    li.dataset.item = item.id;
    if (item.has_file) {
      const img = document.createElement("img");
      img.src = `/api/files/${item.id}.png`; img.alt = item.kind;
      li.appendChild(img);
    }
    if (item.text) { const pre = document.createElement("pre"); pre.textContent = item.text; li.appendChild(pre); }
    const meta = document.createElement("div");
    meta.textContent = `${item.kind} · ${new Date(item.created * 1000).toLocaleString()} · ` +
      Object.entries(item.params).map(([k, v]) => `${k}: ${v}`).join(", ");
    li.appendChild(meta);
    const reuse = button("Reuse settings", () => {
      const blank = item.kind === "image" ? { prompt: "", negative_prompt: "", init: "" } : {};
      fillForm($(`#${item.kind}-form`), { ...blank, ...item.params }); show(item.kind);
      if (item.kind === "image") setInit(item.params.init || "", "the image it was made from");
    });
    if (item.has_file) li.append(button("Use for img2img", () => { setInit(item.id, "a history result"); show("image"); }));
    const star = button(item.favourite ? "★" : "☆", async () => {
      await post(`/api/history/${item.id}/favourite`, { value: !item.favourite }); loadHistory();
    });
    const del = button("Delete", async () => { await post(`/api/history/${item.id}/delete`); loadHistory(); });
    li.append(reuse, star, del);
    ul.appendChild(li);
  }
}
$("#history-q").addEventListener("input", loadHistory);
$("#history-fav").addEventListener("change", loadHistory);

// --- queue --------------------------------------------------------------------------------------------------
async function loadQueue() {
  const { jobs } = await (await fetch("/api/jobs")).json();
  const body = $("#queue-table tbody");
  body.textContent = "";
  for (const job of jobs) {
    const tr = document.createElement("tr");
    for (const v of [job.id, job.kind, job.state + (job.error ? `: ${job.error}` : ""), job.position ?? ""]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    const td = document.createElement("td");
    if (job.state === "queued" || job.state === "running") {
      td.appendChild(button("Cancel", () => post(`/api/jobs/${job.id}/cancel`)));
    }
    tr.appendChild(td);
    body.appendChild(tr);
  }
  setCount(jobs);
}
async function loadQueueCount() { setCount((await (await fetch("/api/jobs")).json()).jobs); }
function setCount(jobs) {
  const n = jobs.filter((j) => j.state === "queued" || j.state === "running").length;
  $("#queue-count").textContent = n ? `(${n})` : "";
}

// --- drop a PNG made here: restore its settings -----------------------------------------------------------------
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", async (e) => {
  e.preventDefault();
  const file = e.dataTransfer.files[0];
  if (!file) return;
  try {
    const info = await upload(file);
    if (info.params && info.params.model && (info.params.class !== undefined || info.params.prompt !== undefined)) {
      fillForm($("#image-form"), info.params); show("image");
      $("#image-status").textContent = "settings restored from the dropped image";
    }
  } catch (err) { $("#image-status").textContent = `error: ${err.message}`; }
});
