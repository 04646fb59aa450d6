// The Edit tab (paint a hole, fill it) and the Train tab (start a run, watch its loss, stop and resume it).
import { $, button, describe, finished, onEvent, post, state, track, upload } from "./common.js";

// --- edit: paint a mask, fill it ------------------------------------------------------------------------------
const editCanvas = $("#edit-canvas"), maskCanvas = $("#edit-mask");
const maskCtx = maskCanvas.getContext("2d");
$("#edit-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    const info = await upload(file);
    const bitmap = await createImageBitmap(file);
    state.edit = { id: info.image };
    for (const c of [editCanvas, maskCanvas]) { c.width = info.width; c.height = info.height; }
    editCanvas.getContext("2d").drawImage(bitmap, 0, 0);
    maskCtx.clearRect(0, 0, info.width, info.height);
    $("#edit-status").textContent = `${info.width}×${info.height}: paint over what to fill`;
  } catch (err) { $("#edit-status").textContent = `error: ${err.message}`; }
});
let painting = false;
function paint(e) {
  const r = maskCanvas.getBoundingClientRect();
  const x = (e.clientX - r.left) * maskCanvas.width / r.width, y = (e.clientY - r.top) * maskCanvas.height / r.height;
  const radius = Number($("#edit-form").elements.brush.value) / 2;
  maskCtx.fillStyle = "rgb(255, 0, 200)";
  maskCtx.beginPath(); maskCtx.arc(x, y, radius, 0, 2 * Math.PI); maskCtx.fill();
}
maskCanvas.addEventListener("mousedown", (e) => { if (state.edit) { painting = true; paint(e); } });
maskCanvas.addEventListener("mousemove", (e) => { if (painting) paint(e); });
document.addEventListener("mouseup", () => { painting = false; });
$("#edit-clear").addEventListener("click", () => maskCtx.clearRect(0, 0, maskCanvas.width, maskCanvas.height));

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

$("#edit-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!state.edit) { $("#edit-status").textContent = "upload an image first"; return; }
  const f = $("#edit-form").elements;
  try {
    const params = { image: state.edit.id, mask: maskRuns(), method: f.method.value, prompt: f.prompt.value,
                     seed: Number(f.seed.value) };
    const { job } = await post("/api/jobs", { kind: "inpaint", params });
    state.editJob = job.id;
    $("#edit-status").textContent = "queued";
    $("#edit-stop").disabled = false; $("#edit-go").disabled = true;
    track(job.id);
  } catch (err) { $("#edit-status").textContent = `error: ${err.message}`; }
});
$("#edit-stop").addEventListener("click", () => state.editJob && post(`/api/jobs/${state.editJob}/cancel`));

// --- train: start a run, watch its loss, stop it, resume it -----------------------------------------------------
async function startTraining(resume) {
  const f = $("#train-form").elements;
  const params = { family: f.family.value, name: f.name.value, steps: Number(f.steps.value),
                   set: f.set.value.split(/\s+/).filter(Boolean), resume };
  try {
    const { job } = await post("/api/jobs", { kind: "train", params });
    state.train = job.id; state.losses = []; $("#train-chart").dataset.points = 0; drawLosses();
    $("#train-status").textContent = `${params.name}: queued`;
    $("#train-stop").disabled = false; $("#train-go").disabled = true;
    track(job.id);
  } catch (err) { $("#train-status").textContent = `error: ${err.message}`; }
}
$("#train-form").addEventListener("submit", (e) => { e.preventDefault(); startTraining(false); });
$("#train-stop").addEventListener("click", () => state.train && post(`/api/jobs/${state.train}/cancel`));

function drawLosses() {
  const c = $("#train-chart"), g = c.getContext("2d"), pts = state.losses;
  g.clearRect(0, 0, c.width, c.height);
  g.fillStyle = "#777"; g.font = "12px sans-serif"; g.fillText("loss", 6, 14);
  if (pts.length < 2) return;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const X = (x) => 40 + (c.width - 50) * (x - x0) / Math.max(1e-9, x1 - x0);
  const Y = (y) => c.height - 20 - (c.height - 40) * (y - y0) / Math.max(1e-9, y1 - y0);
  g.strokeStyle = "#246"; g.beginPath();
  pts.forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
  g.stroke();
  g.fillText(`${y1.toPrecision(3)}`, 2, 24); g.fillText(`${y0.toPrecision(3)}`, 2, c.height - 20);
  g.fillText(`step ${x1}`, c.width - 70, c.height - 4);
}

export async function loadRuns() {
  const { runs } = await (await fetch("/api/runs")).json();
  const body = $("#runs-table tbody");
  body.textContent = "";
  for (const run of runs) {
    const tr = document.createElement("tr");
    const last = run.losses.length ? run.losses[run.losses.length - 1][1].toFixed(4) : "";
    for (const v of [run.name, run.family, run.step ?? "", last]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    const td = document.createElement("td");
    td.appendChild(button("Resume", () => {
      const f = $("#train-form").elements;
      f.name.value = run.name; f.family.value = run.family; startTraining(true);
    }));
    tr.appendChild(td);
    body.appendChild(tr);
  }
}


onEvent((ev) => {
  if (ev.type === "progress" && ev.job === state.editJob) {
    $("#edit-status").textContent = `${ev.unit} ${ev.done} of ${ev.total}`;
  }
  if (ev.type === "loss" && ev.job === state.train) {
    state.losses.push([ev.step, ev.loss]);
    $("#train-chart").dataset.points = state.losses.length;
    $("#train-status").textContent = `${ev.run}: step ${ev.step}, loss ${ev.loss.toFixed(4)}`;
    drawLosses();
  }
  if (ev.type !== "job") return;
  const job = ev.job;
  if (job.id === state.editJob) {
    if (job.state === "done") {
      $("#edit-result").src = `/api/files/${job.result.item}.png`;
      $("#edit-status").textContent = `done in ${job.result.seconds} s`;
    } else if (job.state !== "running") $("#edit-status").textContent = describe(job);
    if (finished(job)) { state.editJob = null; $("#edit-stop").disabled = true; $("#edit-go").disabled = false; }
  }
  if (job.id === state.train && finished(job)) {
    $("#train-status").textContent = `${job.params.name}: ${describe(job)}` +
      (job.state === "cancelled" ? " (checkpoint saved: Resume continues it)" : "");
    state.train = null; $("#train-stop").disabled = true; $("#train-go").disabled = false; loadRuns();
  }
});
