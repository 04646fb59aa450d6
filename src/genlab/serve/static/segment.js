// The Segment tab: upload an image (encoded once on the server), click positive or negative points or drag a box;
// the three masks come back with their predicted IoU as run lengths and are drawn on the canvas.
import { $, post, state, upload } from "./common.js";

const canvas = $("#segment-canvas");
const ctx = canvas.getContext("2d");

$("#segment-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    const info = await upload(file, "segment");
    const bitmap = await createImageBitmap(file);
    state.segment = { id: info.image, bitmap, points: [], labels: [], box: null, masks: [], chosen: 0,
                      picked: false, w: info.width, h: info.height };
    canvas.width = info.width; canvas.height = info.height;
    canvas.style.width = `${Math.max(256, Math.min(512, info.width))}px`;
    drawSegment();
    $("#segment-status").textContent = `${info.width}×${info.height}: click on an object`;
  } catch (err) { $("#segment-status").textContent = `error: ${err.message}`; }
});

function canvasXY(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
}

let dragFrom = null;
canvas.addEventListener("mousedown", (e) => { if (state.segment) dragFrom = canvasXY(e); });
canvas.addEventListener("mouseup", async (e) => {
  if (!state.segment || !dragFrom) return;
  const [x, y] = canvasXY(e), [x0, y0] = dragFrom;
  dragFrom = null;
  const s = state.segment;
  if (Math.hypot(x - x0, y - y0) > 4) s.box = [Math.min(x, x0), Math.min(y, y0), Math.max(x, x0), Math.max(y, y0)];
  else {
    s.points.push([x, y]);
    s.labels.push(Number(document.querySelector("input[name=polarity]:checked").value));
  }
  await predict();
});
canvas.addEventListener("contextmenu", (e) => e.preventDefault());
$("#segment-clear").addEventListener("click", () => {
  if (!state.segment) return;
  Object.assign(state.segment, { points: [], labels: [], box: null, masks: [], chosen: 0, picked: false });
  drawSegment(); $("#segment-masks").textContent = "";
});

async function predict() {
  const s = state.segment;
  const start = performance.now();
  try {
    const out = await post("/api/segment", { image: s.id, points: s.points, labels: s.labels, box: s.box });
    s.masks = out.masks;
    if (!s.picked) s.chosen = out.best;  // the highest predicted IoU, until the user picks an output
    const ms = performance.now() - start;
    canvas.dataset.roundTripMs = ms.toFixed(1);
    $("#segment-status").textContent = `round trip ${ms.toFixed(0)} ms (decoder ${out.decoder_ms} ms)`;
    listMasks(); drawSegment();
  } catch (err) { $("#segment-status").textContent = `error: ${err.message}`; }
}

function listMasks() {
  const ol = $("#segment-masks");
  ol.textContent = "";
  state.segment.masks.forEach((m, i) => {
    const li = document.createElement("li");
    li.textContent = `mask ${i + 1}: predicted IoU ${m.iou.toFixed(3)}`;
    li.className = i === state.segment.chosen ? "chosen" : "";
    li.addEventListener("click", () => {
      Object.assign(state.segment, { chosen: i, picked: true }); listMasks(); drawSegment();
    });
    ol.appendChild(li);
  });
}

function drawSegment() {
  const s = state.segment;
  ctx.drawImage(s.bitmap, 0, 0, canvas.width, canvas.height);
  const mask = s.masks[s.chosen];
  if (mask) {
    const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
    let pos = 0, on = false;
    for (const run of mask.rle) {
      if (on) for (let k = pos; k < pos + run; k++) {
        img.data[4 * k] = (img.data[4 * k] + 30) / 2; img.data[4 * k + 1] = (img.data[4 * k + 1] + 144) / 2;
        img.data[4 * k + 2] = (img.data[4 * k + 2] + 255) / 2;
      }
      pos += run; on = !on;
    }
    ctx.putImageData(img, 0, 0);
  }
  s.points.forEach(([x, y], i) => {
    ctx.fillStyle = s.labels[i] ? "#0a0" : "#d00";
    ctx.beginPath(); ctx.arc(x, y, Math.max(2, canvas.width / 80), 0, 2 * Math.PI); ctx.fill();
  });
  if (s.box) { ctx.strokeStyle = "#fc0"; ctx.strokeRect(s.box[0], s.box[1], s.box[2] - s.box[0], s.box[3] - s.box[1]); }
}


// --- everything: every mask the automatic generator finds, each in its own colour ---------------------------------
$("#segment-all").addEventListener("click", async () => {
  const s = state.segment;
  if (!s) return;
  try {
    const out = await post("/api/segment/everything", { image: s.id });
    s.everything = out.masks;
    ctx.drawImage(s.bitmap, 0, 0, canvas.width, canvas.height);
    const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
    out.masks.forEach((m, i) => {
      const hue = (i * 137) % 360, [r, g, b] = hsl(hue);
      let pos = 0, on = false;
      for (const run of m.rle) {
        if (on) for (let k = pos; k < pos + run; k++) {
          img.data[4 * k] = (img.data[4 * k] + r) / 2; img.data[4 * k + 1] = (img.data[4 * k + 1] + g) / 2;
          img.data[4 * k + 2] = (img.data[4 * k + 2] + b) / 2;
        }
        pos += run; on = !on;
      }
    });
    ctx.putImageData(img, 0, 0);
    canvas.dataset.everything = out.masks.length;
    $("#segment-status").textContent = `${out.masks.length} masks in ${out.ms} ms`;
  } catch (err) { $("#segment-status").textContent = `error: ${err.message}`; }
});

function hsl(h) {  // a bright colour for hue h (degrees), as [r, g, b] in 0..255
  const f = (n) => { const k = (n + h / 30) % 12; return 255 * (0.5 - 0.5 * Math.max(-1, Math.min(k - 3, 9 - k, 1))); };
  return [f(0), f(8), f(4)];
}

// --- downloads of the chosen mask: PNG, or COCO's uncompressed RLE (column-major counts) ---------------------------
function chosenBits() {
  const s = state.segment, mask = s && s.masks[s.chosen];
  if (!mask) return null;
  const bits = new Uint8Array(s.w * s.h);
  let pos = 0, on = false;
  for (const run of mask.rle) { if (on) bits.fill(1, pos, pos + run); pos += run; on = !on; }
  return bits;
}

function save(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob); a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

$("#segment-png").addEventListener("click", () => {
  const bits = chosenBits(), s = state.segment;
  if (!bits) return;
  const c = document.createElement("canvas");
  c.width = s.w; c.height = s.h;
  const g = c.getContext("2d"), img = g.createImageData(s.w, s.h);
  bits.forEach((v, k) => { img.data.fill(v ? 255 : 0, 4 * k, 4 * k + 3); img.data[4 * k + 3] = 255; });
  g.putImageData(img, 0, 0);
  c.toBlob((blob) => save(blob, "mask.png"), "image/png");
});

$("#segment-coco").addEventListener("click", () => {
  const bits = chosenBits(), s = state.segment;
  if (!bits) return;
  const counts = [];
  let on = 0, run = 0;
  for (let x = 0; x < s.w; x++) for (let y = 0; y < s.h; y++) {
    const v = bits[y * s.w + x];
    if (v !== on) { counts.push(run); run = 0; on = v; }
    run++;
  }
  counts.push(run);
  const rle = { size: [s.h, s.w], counts, predicted_iou: s.masks[s.chosen].iou };
  save(new Blob([JSON.stringify(rle)], { type: "application/json" }), "mask.json");
});
