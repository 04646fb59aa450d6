// The Train tab: start a run, watch its loss and samples arrive, stop it, resume it; every run under --runs.
import { $, button, describe, finished, onEvent, post, state, track } from "./common.js";

// --- train: start a run, watch its loss, stop it, resume it -----------------------------------------------------
async function startTraining(resume) {
  const f = $("#train-form").elements;
  const params = { family: f.family.value, data: f.data.value, preset: f.preset.value, name: f.name.value,
                   steps: Number(f.steps.value), set: f.set.value.split(/\s+/).filter(Boolean), resume };
  try {
    const { job } = await post("/api/jobs", { kind: "train", params });
    state.train = job.id; state.losses = []; $("#train-chart").dataset.points = 0; drawLosses();
    $("#train-status").textContent = `${params.name}: queued`;
    $("#train-stop").disabled = false; $("#train-go").disabled = true;
    track(job.id);
  } catch (err) { $("#train-status").textContent = `error: ${err.message}`; }
}
$("#train-form").addEventListener("submit", (e) => { e.preventDefault(); startTraining(false); });
const TEXT_FAMILIES = ["lstm", "gpt"];
function matchData() {  // the data a family can train on: images for the image families, text for the text ones
  const f = $("#train-form").elements, kind = TEXT_FAMILIES.includes(f.family.value) ? "text" : "image";
  for (const o of f.data.options) o.disabled = o.dataset.kind !== kind;
  if (f.data.selectedOptions[0].disabled) f.data.value = [...f.data.options].find((o) => !o.disabled).value;
}
$("#train-form").elements.family.addEventListener("change", matchData);
matchData();
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
    for (const v of [run.name, `${run.family} on ${run.data}`, run.step ?? "", last]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    const samples = document.createElement("td");
    if (run.sample) {
      const img = document.createElement("img");
      img.src = run.sample; img.alt = `${run.name}: latest samples`;
      samples.appendChild(img);
    }
    tr.appendChild(samples);
    const td = document.createElement("td");
    td.appendChild(button("Resume", () => {
      const f = $("#train-form").elements;
      f.name.value = run.name; f.family.value = run.family; matchData(); startTraining(true);
    }));
    tr.appendChild(td);
    body.appendChild(tr);
  }
}


onEvent((ev) => {
  if (ev.type === "loss" && ev.job === state.train) {
    state.losses.push([ev.step, ev.loss]);
    $("#train-chart").dataset.points = state.losses.length;
    $("#train-status").textContent = `${ev.run}: step ${ev.step}, loss ${ev.loss.toFixed(4)}`;
    drawLosses();
  }
  if (ev.type === "sample" && ev.job === state.train) {
    $("#train-sample").src = ev.url;
    $("#train-sample-caption").textContent = `${ev.run}: samples at step ${ev.step}`;
  }
  if (ev.type === "job" && ev.job.id === state.train && finished(ev.job)) {
    const job = ev.job;
    $("#train-status").textContent = `${job.params.name}: ${describe(job)}` +
      (job.state === "cancelled" ? " (checkpoint saved: Resume continues it)" : "");
    state.train = null; $("#train-stop").disabled = true; $("#train-go").disabled = false; loadRuns();
  }
});
