"use strict";
// Camera set-up: frame geometry, lines and zones, k-anonymous heat cells (docs/camera-setup.md).
// Everything drawn here comes from /api/setup: numbers, never a picture.
const $ = (id) => document.getElementById(id);
const canvas = $("frame");
const ctx = canvas.getContext("2d");
const HIT_PX = 10;
let state = null;      // the last /api/setup document
let draft = null;      // {lines, zones} being edited, native pixels
let dirty = false;
let mode = "edit";
let selected = null;   // {kind: "line"|"zone", index}
let drag = null;       // {kind, index, point} or {kind: "new-line", ...}
let zoneDraft = null;  // vertices of a zone being drawn

$("token").value = sessionStorage.getItem("lokaalmeten-token") || "";
$("token").addEventListener("change", () =>
  sessionStorage.setItem("lokaalmeten-token", $("token").value));

function camera() {
  return state && state.cameras.find((c) => c.id === $("camera").value);
}

function frameSize(cam) {
  if (cam.frame) return cam.frame;
  const xs = [640], ys = [480];  // no frame yet: room for what is configured
  for (const l of draft.lines) { xs.push(l.x1, l.x2); ys.push(l.y1, l.y2); }
  for (const z of draft.zones) for (const [x, y] of z.polygon) { xs.push(x); ys.push(y); }
  return [Math.max(...xs), Math.max(...ys)];
}

function scale(cam) {
  const [w, h] = frameSize(cam);
  return Math.min(canvas.width / w, canvas.height / h);
}

function toNative(event) {
  const rect = canvas.getBoundingClientRect();
  const s = scale(camera());
  const x = (event.clientX - rect.left) * (canvas.width / rect.width) / s;
  const y = (event.clientY - rect.top) * (canvas.height / rect.height) / s;
  return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
}

function draw() {
  const cam = camera();
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!cam) return;
  const s = scale(cam);
  const [w, h] = frameSize(cam);
  const [cols, rows] = state.grid;
  ctx.fillStyle = "#f0f0f3";
  ctx.fillRect(0, 0, w * s, h * s);
  const most = Math.max(cam.k, ...cam.cells.map((c) => c[1]));
  for (const [i, n] of cam.cells) {
    ctx.fillStyle = `rgba(214, 69, 30, ${0.25 + 0.6 * n / most})`;
    ctx.fillRect((i % cols) * w / cols * s, Math.floor(i / cols) * h / rows * s,
                 w / cols * s, h / rows * s);
  }
  ctx.strokeStyle = "#dcdce2";
  ctx.lineWidth = 1;
  for (let c = 0; c <= cols; c++) line(c * w / cols * s, 0, c * w / cols * s, h * s);
  for (let r = 0; r <= rows; r++) line(0, r * h / rows * s, w * s, r * h / rows * s);
  draft.zones.forEach((z, i) => drawZone(z.polygon, s, isSelected("zone", i), z.name));
  if (zoneDraft) drawZone(zoneDraft, s, true, "", true);
  draft.lines.forEach((l, i) => drawLine(l, s, isSelected("line", i)));
  canvas.dataset.cells = String(cam.cells.length);
  canvas.dataset.frame = cam.frame ? cam.frame.join("x") : "";
  canvas.dataset.lines = String(draft.lines.length);
}

function line(x1, y1, x2, y2) {
  ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke();
}

function isSelected(kind, index) {
  return selected && selected.kind === kind && selected.index === index;
}

function drawLine(l, s, chosen) {
  ctx.strokeStyle = chosen ? "#b3261e" : "#1f5fa8";
  ctx.lineWidth = 3;
  line(l.x1 * s, l.y1 * s, l.x2 * s, l.y2 * s);
  const dx = l.x2 - l.x1, dy = l.y2 - l.y1, len = Math.hypot(dx, dy) || 1;
  const mx = (l.x1 + l.x2) / 2 * s, my = (l.y1 + l.y2) / 2 * s;
  const nx = -dy / len * 28, ny = dx / len * 28;  // "in": from its left to its right
  ctx.lineWidth = 2;
  line(mx - nx, my - ny, mx + nx, my + ny);
  line(mx + nx, my + ny, mx + nx * 0.6 - ny * 0.3, my + ny * 0.6 + nx * 0.3);
  line(mx + nx, my + ny, mx + nx * 0.6 + ny * 0.3, my + ny * 0.6 - nx * 0.3);
  ctx.fillStyle = ctx.strokeStyle;
  ctx.font = "13px system-ui, sans-serif";
  ctx.fillText(`${l.name} (in →)`, mx + nx + 4, my + ny + 4);
  for (const [x, y] of [[l.x1, l.y1], [l.x2, l.y2]]) {
    ctx.beginPath(); ctx.arc(x * s, y * s, 5, 0, 2 * Math.PI); ctx.fill();
  }
}

function drawZone(polygon, s, chosen, name, open = false) {
  if (!polygon.length) return;
  ctx.strokeStyle = chosen ? "#b3261e" : "#1b7f3b";
  ctx.fillStyle = "rgba(27, 127, 59, 0.08)";
  ctx.lineWidth = 2;
  ctx.beginPath();
  polygon.forEach(([x, y], i) => (i ? ctx.lineTo(x * s, y * s) : ctx.moveTo(x * s, y * s)));
  if (!open) { ctx.closePath(); ctx.fill(); }
  ctx.stroke();
  ctx.fillStyle = ctx.strokeStyle;
  for (const [x, y] of polygon) { ctx.beginPath(); ctx.arc(x * s, y * s, 4, 0, 2 * Math.PI); ctx.fill(); }
  if (name) ctx.fillText(name, polygon[0][0] * s + 6, polygon[0][1] * s - 6);
}

function nearestPoint(p) {
  const s = scale(camera());
  let best = null;
  const near = (x, y) => Math.hypot(x - p[0], y - p[1]) * s <= HIT_PX;
  draft.lines.forEach((l, i) => {
    if (near(l.x1, l.y1)) best = { kind: "line", index: i, point: 1 };
    else if (near(l.x2, l.y2)) best = { kind: "line", index: i, point: 2 };
  });
  draft.zones.forEach((z, i) => z.polygon.forEach(([x, y], j) => {
    if (near(x, y)) best = { kind: "zone", index: i, point: j };
  }));
  return best;
}

canvas.addEventListener("mousedown", (event) => {
  if (!camera()) return;
  const p = toNative(event);
  if (mode === "line") {
    drag = { kind: "new-line", line: { name: $("name").value.trim(), x1: p[0], y1: p[1],
                                       x2: p[0], y2: p[1] } };
    draft.lines.push(drag.line);
    selected = { kind: "line", index: draft.lines.length - 1 };
  } else if (mode === "zone") {
    zoneDraft = zoneDraft || [];
    zoneDraft.push(p);
  } else {
    drag = nearestPoint(p);
    if (drag) selected = { kind: drag.kind, index: drag.index };
  }
  dirty = true;
  draw();
});

canvas.addEventListener("mousemove", (event) => {
  if (!drag) return;
  const [x, y] = toNative(event);
  if (drag.kind === "new-line") { drag.line.x2 = x; drag.line.y2 = y; }
  else if (drag.kind === "line") {
    const l = draft.lines[drag.index];
    if (drag.point === 1) { l.x1 = x; l.y1 = y; } else { l.x2 = x; l.y2 = y; }
  } else draft.zones[drag.index].polygon[drag.point] = [x, y];
  draw();
});

canvas.addEventListener("mouseup", () => {
  if (drag && drag.kind === "new-line") setMode("edit");
  drag = null;
  draw();
});

canvas.addEventListener("dblclick", () => {
  if (mode !== "zone" || !zoneDraft) return;
  const polygon = zoneDraft.filter((p, i) => i === 0 || p.join() !== zoneDraft[i - 1].join());
  zoneDraft = null;
  if (polygon.length >= 3) draft.zones.push({ name: $("name").value.trim(), polygon });
  setMode("edit");
});

function setMode(next) {
  mode = next;
  zoneDraft = null;
  for (const m of ["line", "zone", "edit"]) $(`mode-${m}`).classList.toggle("active", m === mode);
  draw();
}

$("mode-line").addEventListener("click", () => setMode("line"));
$("mode-zone").addEventListener("click", () => setMode("zone"));
$("mode-edit").addEventListener("click", () => setMode("edit"));
$("delete").addEventListener("click", () => {
  if (!selected) return;
  (selected.kind === "line" ? draft.lines : draft.zones).splice(selected.index, 1);
  selected = null; dirty = true; draw();
});
$("revert").addEventListener("click", () => { dirty = false; takeConfig(); draw(); });

async function post(action, body) {
  $("errors").replaceChildren();
  const response = await fetch(`/api/setup/${action}`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Lokaalmeten-Token": $("token").value },
    body: JSON.stringify(body) });
  const text = await response.text();
  let answer = {};
  try { answer = JSON.parse(text); } catch { answer = { errors: [{ file: "", key: "", reason: text.trim() }] }; }
  for (const e of answer.errors || []) {
    const li = document.createElement("li");
    li.textContent = [e.file, e.key, e.reason].filter(Boolean).join(": ");
    $("errors").append(li);
  }
  return response.ok ? answer : null;
}

$("start").addEventListener("click", async () => {
  if (await post("start", { camera: $("camera").value, minutes: Number($("minutes").value) })) refresh();
});
$("stop").addEventListener("click", async () => {
  if (await post("stop", { camera: $("camera").value })) refresh();
});
$("save").addEventListener("click", async () => {
  const answer = await post("save", { camera: $("camera").value, lines: draft.lines.map(
    ({ name, x1, y1, x2, y2, hysteresis_px }) => ({ name, x1, y1, x2, y2, hysteresis_px })),
    zones: draft.zones });
  if (answer) {
    dirty = false;
    $("message").textContent = answer.proposed
      ? `Checked and handed to the box's set-up service (${answer.proposed}); it writes ` +
        `${answer.file} and reloads the camera in a moment.`
      : `Saved to ${answer.file}; the agent reloads the camera.`;
    document.body.dataset.saved = answer.file;
  }
});

function takeConfig() {
  const cam = camera();
  draft = cam ? { lines: cam.lines.map((l) => ({ name: l.name, x1: l.x1, y1: l.y1, x2: l.x2,
                                                 y2: l.y2, hysteresis_px: l.hysteresis_px })),
                  zones: cam.zones.map((z) => ({ ...z, polygon: z.polygon.map((p) => [...p]) })) }
              : { lines: [], zones: [] };
  selected = null;
}

function showSession(cam) {
  const on = cam.remaining_s > 0;
  $("session").textContent = on ? `on, ${Math.ceil(cam.remaining_s / 60)} min left` : "off";
  $("session").className = `verdict ${on ? "ok" : ""}`;
  document.body.dataset.setup = on ? "on" : "off";
  $("minutes").max = String(cam.max_minutes);
  $("legend").textContent = `Grid ${state.grid[0]}×${state.grid[1]}; a cell shows when at least ` +
    `${cam.k} different people stood in it within ${Math.round(cam.window_s / 60)} minutes ` +
    `(${cam.people} people seen). Frame ${cam.frame ? cam.frame.join(" × ") + " px" : "not known yet"}.`;
  $("counts").tBodies[0].replaceChildren(...cam.lines.map((l) => {
    const tr = document.createElement("tr");
    tr.dataset.line = l.name;
    for (const v of [l.name, l.in ?? "–", l.out ?? "–"]) {
      const td = document.createElement("td"); td.textContent = String(v); tr.append(td);
    }
    return tr;
  }));
}

async function refresh() {
  let doc;
  try {
    const response = await fetch("/api/setup", { credentials: "same-origin" });
    if (!response.ok) return;
    doc = await response.json();
  } catch { return; }  // a reload restarts the page's server for a moment
  const chosen = $("camera").value;
  state = doc;
  if ($("camera").options.length !== doc.cameras.length) {
    $("camera").replaceChildren(...doc.cameras.map((c) => new Option(c.id, c.id)));
    if (chosen) $("camera").value = chosen;
  }
  const cam = camera();
  if (!draft || !dirty) takeConfig();
  if (cam) showSession(cam);
  draw();
}

$("camera").addEventListener("change", () => { dirty = false; takeConfig(); refresh(); });
refresh();
setInterval(refresh, 2000);
