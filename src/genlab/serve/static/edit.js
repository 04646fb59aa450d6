// The Edit tab: upload an image, then inpaint a painted area, retarget it to a new width, move a dragged box
// (reshuffle), grow a texture from it, or run a Deep Image Prior task; progress and previews arrive as events.
import { $, describe, finished, onEvent, post, state, track, upload } from "./common.js";

const form = $("#edit-form"), f = form.elements;
const editCanvas = $("#edit-canvas"), maskCanvas = $("#edit-mask"), boxCanvas = $("#edit-box");
const maskCtx = maskCanvas.getContext("2d"), boxCtx = boxCanvas.getContext("2d");
const status = (text) => { $("#edit-status").textContent = text; };
const HINTS = { inpaint: "paint over what to fill", retarget: "choose the new width with the slider",
                reshuffle: "drag a box around what to move, then drag the box to its new place",
                texture: "the image is the sample; choose the size of the texture to grow",
                dip: "choose the task (paint the area to fill for inpaint)" };

function showOptions() {  // only the controls of the chosen operation (and DIP's task)
  for (const label of form.querySelectorAll("[data-ops]")) {
    label.hidden = !label.dataset.ops.split(" ").includes(f.op.value);
  }
  f.brush.closest("label").hidden = !(f.op.value === "inpaint" || (f.op.value === "dip" && f.task.value === "inpaint"));
  f.scale.closest("label").hidden = !(f.op.value === "dip" && f.task.value === "superres");
  boxCanvas.style.cursor = f.op.value === "reshuffle" ? "move" : "crosshair";
  showWidth();
  if (state.edit) status(`${state.edit.w}×${state.edit.h}: ${HINTS[f.op.value]}`);
}
function newWidth() { return state.edit ? Math.max(9, Math.round(state.edit.w * Number(f.width_percent.value) / 100)) : 0; }
function showWidth() {
  $("#edit-width-out").textContent = state.edit ? `${newWidth()} px (${f.width_percent.value}%)` : `${f.width_percent.value}%`;
}
f.op.addEventListener("change", () => {  // a box belongs to reshuffle; a painted mask stays for inpaint and DIP
  boxCtx.clearRect(0, 0, boxCanvas.width, boxCanvas.height);
  if (state.edit) { state.edit.region = null; state.edit.to = null; }
  showOptions();
});
f.task.addEventListener("change", showOptions);
f.width_percent.addEventListener("input", showWidth);

$("#edit-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    const info = await upload(file);
    const bitmap = await createImageBitmap(file);
    state.edit = { id: info.image, w: info.width, h: info.height, region: null, to: null };
    for (const c of [editCanvas, maskCanvas, boxCanvas]) { c.width = info.width; c.height = info.height; }
    editCanvas.getContext("2d").drawImage(bitmap, 0, 0);
    f.out_width.value = Math.min(1024, 2 * info.width); f.out_height.value = Math.min(1024, 2 * info.height);
    clear();
    showOptions();
  } catch (err) { status(`error: ${err.message}`); }
});

function canvasXY(e) {
  const r = boxCanvas.getBoundingClientRect();
  return [(e.clientX - r.left) * boxCanvas.width / r.width, (e.clientY - r.top) * boxCanvas.height / r.height];
}
function clear() {
  maskCtx.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
  boxCtx.clearRect(0, 0, boxCanvas.width, boxCanvas.height);
  if (state.edit) { state.edit.region = null; state.edit.to = null; }
}
$("#edit-clear").addEventListener("click", clear);

// --- painting (inpaint) and dragging (reshuffle) on the top canvas --------------------------------------------
let gesture = null;  // {kind: "paint" | "select" | "move", from: [x, y], ...}
function paint([x, y]) {
  maskCtx.fillStyle = "rgb(255, 0, 200)";
  maskCtx.beginPath(); maskCtx.arc(x, y, Number(f.brush.value) / 2, 0, 2 * Math.PI); maskCtx.fill();
}
function inside([x, y], [x0, y0, x1, y1]) { return x >= x0 && x < x1 && y >= y0 && y < y1; }
function drawBox() {  // the chosen box (dashed) and, once dragged, its pixels at the new place (solid)
  const s = state.edit, [x0, y0, x1, y1] = s.region;
  boxCtx.clearRect(0, 0, boxCanvas.width, boxCanvas.height);
  boxCtx.lineWidth = Math.max(1, boxCanvas.width / 200);
  boxCtx.setLineDash([4, 3]); boxCtx.strokeStyle = "#f0c"; boxCtx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  if (s.to) {
    boxCtx.drawImage(editCanvas, x0, y0, x1 - x0, y1 - y0, s.to[0], s.to[1], x1 - x0, y1 - y0);
    boxCtx.setLineDash([]); boxCtx.strokeStyle = "#0a6"; boxCtx.strokeRect(s.to[0], s.to[1], x1 - x0, y1 - y0);
  }
}
boxCanvas.addEventListener("mousedown", (e) => {
  if (!state.edit) return;
  const at = canvasXY(e), s = state.edit;
  if (f.op.value === "reshuffle") {
    const placed = s.region && (s.to ? [s.to[0], s.to[1], s.to[0] + s.region[2] - s.region[0],
                                        s.to[1] + s.region[3] - s.region[1]] : s.region);
    gesture = placed && inside(at, placed) ? { kind: "move", from: at, start: s.to || s.region.slice(0, 2) }
                                           : { kind: "select", from: at };
  } else { gesture = { kind: "paint" }; paint(at); }
});
boxCanvas.addEventListener("mousemove", (e) => {
  if (!gesture) return;
  const at = canvasXY(e), s = state.edit;
  if (gesture.kind === "paint") paint(at);
  else if (gesture.kind === "select") {
    const [ax, ay] = gesture.from;
    const clamp = (v, hi) => Math.max(0, Math.min(hi, Math.round(v)));
    s.region = [clamp(Math.min(ax, at[0]), s.w), clamp(Math.min(ay, at[1]), s.h),
                clamp(Math.max(ax, at[0]), s.w), clamp(Math.max(ay, at[1]), s.h)];
    s.to = null; drawBox();
  } else {
    const [bw, bh] = [s.region[2] - s.region[0], s.region[3] - s.region[1]];
    const x = Math.round(gesture.start[0] + at[0] - gesture.from[0]), y = Math.round(gesture.start[1] + at[1] - gesture.from[1]);
    s.to = [Math.max(0, Math.min(s.w - bw, x)), Math.max(0, Math.min(s.h - bh, y))];
    drawBox();
  }
});
document.addEventListener("mouseup", () => {
  if (gesture && gesture.kind !== "paint" && state.edit.region) {
    const [x0, y0, x1, y1] = state.edit.region;
    status(state.edit.to ? `move the ${x1 - x0}×${y1 - y0} box from (${x0}, ${y0}) to (${state.edit.to}): Run`
                         : `${x1 - x0}×${y1 - y0} box: now drag it to its new place`);
  }
  gesture = null;
});

function maskRuns() {  // row-major run lengths of the painted pixels, starting with a run of unpainted ones
  const { data } = maskCtx.getImageData(0, 0, maskCanvas.width, maskCanvas.height);
  const runs = [];
  let on = false, run = 0;
  for (let k = 3; k < data.length; k += 4) {
    const painted = data[k] > 0;
    if (painted !== on) { runs.push(run); run = 0; on = painted; }
    run++;
  }
  runs.push(run);
  return runs;
}

function editParams() {
  const s = state.edit, op = f.op.value, p = { image: s.id, seed: Number(f.seed.value) };
  if (op === "inpaint") Object.assign(p, { mask: maskRuns(), method: f.method.value, prompt: f.prompt.value });
  if (op === "retarget") p.width = newWidth();
  if (op === "reshuffle") {
    if (!s.region || !s.to) throw new Error("drag a box around what to move, then drag it to its new place");
    Object.assign(p, { region: s.region, to: s.to });
  }
  if (op === "texture") Object.assign(p, { method: f.texture_method.value, width: Number(f.out_width.value),
                                           height: Number(f.out_height.value) });
  if (op === "dip") {
    Object.assign(p, { task: f.task.value, iterations: Number(f.iterations.value) });
    if (f.task.value === "inpaint") p.mask = maskRuns();
    if (f.task.value === "superres") p.scale = Number(f.scale.value);
  }
  return p;
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!state.edit) { status("upload an image first"); return; }
  try {
    const { job } = await post("/api/jobs", { kind: f.op.value, params: editParams() });
    state.editJob = job.id;
    status("queued");
    $("#edit-stop").disabled = false; $("#edit-go").disabled = true;
    track(job.id);
  } catch (err) { status(`error: ${err.message}`); }
});
$("#edit-stop").addEventListener("click", () => state.editJob && post(`/api/jobs/${state.editJob}/cancel`));

onEvent((ev) => {
  if (ev.job !== state.editJob && !(ev.type === "job" && ev.job.id === state.editJob)) return;
  if (ev.type === "progress") {
    status(`${ev.unit} ${ev.done}${ev.total ? ` of ${ev.total}` : ""}${ev.loss !== undefined ? `, loss ${ev.loss}` : ""}`);
  }
  if (ev.type === "preview") {
    $("#edit-result").src = `/api/previews/${ev.item}.png`;
    $("#edit-caption").textContent = `step ${ev.step} of ${ev.steps}`;
  }
  if (ev.type !== "job") return;
  const job = ev.job;
  if (job.state === "done") {
    $("#edit-result").src = `/api/files/${job.result.item}.png`;
    $("#edit-result").dataset.item = job.result.item;
    $("#edit-caption").textContent = `result (${job.kind})`;
    status(`done in ${job.result.seconds} s` + (job.result.warning ? `. Note: ${job.result.warning}` : ""));
  } else if (job.state !== "running") status(describe(job));
  if (finished(job)) { state.editJob = null; $("#edit-stop").disabled = true; $("#edit-go").disabled = false; }
});

// the result at the input's scale on the page, so a retargeted or grown image shows its size against the input
$("#edit-result").addEventListener("load", (e) => {
  const scale = editCanvas.getBoundingClientRect().width / editCanvas.width;
  e.target.style.width = `${Math.round(e.target.naturalWidth * scale)}px`;
});

showOptions();
