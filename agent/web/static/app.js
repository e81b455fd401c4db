// The status page: reads /api/status every 10 s and /api/history per quantity every
// 5 minutes, and draws everything with DOM and SVG calls of its own (no library, no
// request to anywhere else, no innerHTML: every text from the box goes in as text).
"use strict";

const STATUS_EVERY_MS = 10000;
const PLOTS_EVERY_MS = 300000;
const PLOT_HOURS = 24;
const SVG = "http://www.w3.org/2000/svg";
const BUCKET_MS = 300000;

let lastPlots = 0;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function number(value, digits) {
  if (value === null || value === undefined) return "–";
  if (digits === undefined && Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  const places = digits !== undefined ? digits : abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return value.toFixed(places);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} days`;
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit",
    hourCycle: "h23" });
}

function fact(term, value, cls) {
  return el("div", { class: cls }, el("dt", {}, term), el("dd", {}, value));
}

function renderHeader(s) {
  document.getElementById("device").textContent = s.device_id;
  document.getElementById("version").textContent = s.version;
  document.getElementById("uptime").textContent = duration(s.uptime_s);
  document.getElementById("updated").textContent =
    new Date(s.now_ms).toLocaleTimeString([], { hourCycle: "h23" });
  const verdict = document.getElementById("verdict");
  const errors = s.problems.filter((p) => p.severity === "error").length;
  verdict.textContent = s.ok ? "All well" : `${errors} problem${errors === 1 ? "" : "s"}`;
  verdict.className = `verdict ${s.ok ? "ok" : "bad"}`;
  const list = document.getElementById("problems");
  list.replaceChildren(...s.problems.map((p) =>
    el("li", { class: p.severity }, `${p.subject}: ${p.text}`)));
}

function renderBox(s) {
  const b = s.broker, o = s.outbox, sys = s.system;
  const broker = b.connected ? "connected" : `not connected (${duration(b.down_s)})`;
  document.getElementById("box").replaceChildren(
    fact("Broker", `${b.host}:${b.port} ${broker}`, "broker"),
    fact("Sent since start", `${b.measurements_sent_total} measurements`),
    fact("Waiting in the outbox", `${o.depth} measurements`, "outbox"),
    fact("Dropped (last hour / ever)", `${o.dropped_last_hour} / ${o.dropped_total}`),
    ...(s.sinks || []).map((k) => fact(`Sink ${k.name}`, `${k.backlog} waiting, `
      + (k.last_success_age_s === null ? "nothing confirmed yet"
        : `last confirmed ${duration(k.last_success_age_s)} ago`)
      + `, ${k.errors_total} errors` + (k.refused ? ", refused" : ""), "sink")),
    fact("Disk free", sys.disk_free_mb === null ? "–" : `${number(sys.disk_free_mb / 1000, 1)} GB`),
    fact("CPU temperature", sys.cpu_temperature_c === null ? "–"
      : `${number(sys.cpu_temperature_c, 1)} °C`),
    fact("Load (1 min)", number(sys.load_1m)),
    fact("Agent memory", sys.rss_mb === null ? "–" : `${number(sys.rss_mb, 0)} MB`),
    fact("Clock", sys.clock_synced === null ? "unknown"
      : sys.clock_synced ? "NTP-synchronised" : "not synchronised"),
    fact("Power", sys.throttled === null ? "–"
      : sys.throttled === 0 ? "no throttling" : `throttled 0x${sys.throttled.toString(16)}`),
    fact("History on disk", sys.history_mb === null ? "–" : sys.history_mb < 1
      ? `${number(sys.history_mb * 1000, 0)} kB` : `${number(sys.history_mb, 1)} MB`),
  );
}

function valuesTable(values) {
  const rows = values.map((v) => el("tr", { class: "value", "data-quantity": v.quantity },
    el("td", {}, v.label),
    el("td", { class: "num" }, number(v.value), el("span", { class: "unit" }, v.display_unit)),
    el("td", { class: "num" }, v.min === undefined ? ""
      : `${number(v.min)} – ${number(v.max)} (n=${v.n})`),
    el("td", {}, ...v.flags.map((f) => el("span", { class: "flag" }, f.replace(/_/g, " ")))),
    el("td", { class: "num" }, clock(v.time_ms))));
  return el("table", { class: "values" },
    el("thead", {}, el("tr", {}, el("th", {}, "quantity"), el("th", {}, "latest"),
      el("th", {}, "window min – max"), el("th", {}, "flags"), el("th", {}, "at"))),
    el("tbody", {}, ...rows));
}

function plotSlot(sensor, quantity) {
  return el("figure", { class: "plot", "data-sensor": sensor, "data-quantity": quantity });
}

function card(kind, id, title, model, up, stateText, meta, values) {
  const node = el("article", { class: `card ${kind}`, "data-id": id },
    el("h3", {}, title, " ", el("span", { class: "model" }, model),
      el("span", { class: `state ${up ? "up" : "down"}` }, stateText)),
    el("p", { class: "meta" }, meta),
    values.length ? valuesTable(values) : el("p", { class: "note" }, "no values yet"),
    el("div", { class: "plots" }, ...values.map((v) => plotSlot(id, v.quantity))));
  return node;
}

function renderSensors(s) {
  const now = s.now_ms;
  document.getElementById("sensors").replaceChildren(...s.sensors.map((x) => {
    const seen = x.last_seen_ms === null ? "never read" : `last read ${duration((now - x.last_seen_ms) / 1000)} ago`;
    const meta = `${seen}; errors ${x.errors_total}, rejected frames ${x.frames_rejected_total}` +
      (x.consecutive_failures ? `, failing ${x.consecutive_failures}× in a row` : "") +
      (x.last_error && !x.up ? ` — ${x.last_error}` : "");
    const state = x.stalled ? "stalled" : x.state.replace("_", " ");
    return card("sensor", x.id, x.id, x.name, x.up, state, meta, x.values);
  }));
}

function renderCameras(s) {
  document.getElementById("camera-section").hidden = s.cameras.length === 0;
  const now = s.now_ms;
  document.getElementById("cameras").replaceChildren(...s.cameras.map((c) => {
    const up = c.up && c.source_up;
    const seen = c.last_seen_ms === null ? "no counts yet" : `last counts ${duration((now - c.last_seen_ms) / 1000)} ago`;
    return card("camera", c.id, c.id, "camera", up,
      !c.up ? "counter down" : c.source_up ? "counting" : "no frames",
      `${seen}; counter restarts ${c.restarts_total}`, c.values);
  }));
}

function drawPlot(figure, h) {
  const W = 320, H = 120, L = 38, R = 6, T = 6, B = 18;
  const end = Date.now(), start = end - PLOT_HOURS * 3600000;
  const points = h.points.filter((p) => p.time_ms + BUCKET_MS >= start);
  const root = svg("svg", { class: "plot", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${h.label}, last ${PLOT_HOURS} hours`, "data-points": points.length });
  root.append(svg("title", {}, `${h.label} (${h.display_unit}), last ${PLOT_HOURS} h`));
  root.append(svg("rect", { class: "frame", x: L, y: T, width: W - L - R, height: H - T - B }));
  const x = (ms) => L + (W - L - R) * (ms - start) / (end - start);
  // Grid lines at the local clock's 00:00, 06:00, 12:00 and 18:00.
  const tick = new Date(start);
  tick.setMinutes(0, 0, 0);
  tick.setHours(Math.ceil((tick.getHours() + (tick.getTime() < start ? 1 : 0)) / 6) * 6);
  for (let ms = tick.getTime(); ms <= end; ms += 6 * 3600000) {
    root.append(svg("line", { class: "grid", x1: x(ms), x2: x(ms), y1: T, y2: H - B }));
    root.append(svg("text", { x: x(ms), y: H - 5, "text-anchor": "middle" }, clock(ms)));
  }
  if (points.length === 0) {
    root.append(svg("text", { class: "empty", x: (L + W) / 2, y: H / 2,
      "text-anchor": "middle" }, "no data in the last 24 h"));
  } else {
    const bars = h.rule === "sum";
    let lo = Math.min(...points.map((p) => bars ? 0 : p.low));
    let hi = Math.max(...points.map((p) => bars ? p.value : p.high));
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.05;
    lo = bars ? lo : lo - pad; hi += pad;
    const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
    root.append(svg("text", { x: L - 3, y: T + 8, "text-anchor": "end" }, number(hi)));
    root.append(svg("text", { x: L - 3, y: H - B, "text-anchor": "end" }, number(lo)));
    if (bars) {
      const w = Math.max(1, x(start + BUCKET_MS) - x(start) - 0.5);
      for (const p of points) {
        root.append(svg("rect", { class: "bar", x: x(p.time_ms), y: y(p.value), width: w,
          height: Math.max(0, y(0) - y(p.value)) }));
      }
    } else {
      // Runs of consecutive buckets: a gap (box off, sensor down) breaks the line.
      const runs = [];
      for (const p of points) {
        const run = runs[runs.length - 1];
        if (run && p.time_ms - run[run.length - 1].time_ms <= 2 * BUCKET_MS) run.push(p);
        else runs.push([p]);
      }
      for (const run of runs) {
        const mid = (p) => x(Math.min(end, p.time_ms + BUCKET_MS / 2));
        const upper = run.map((p) => `${mid(p)},${y(p.high)}`);
        const lower = run.slice().reverse().map((p) => `${mid(p)},${y(p.low)}`);
        root.append(svg("polygon", { class: "band", points: upper.concat(lower).join(" ") }));
        const line = run.length === 1 ? run.concat(run) : run;
        root.append(svg("polyline", { class: "line", points: line.map((p, i) =>
          `${mid(p) + (run.length === 1 ? i * 2 - 1 : 0)},${y(p.value)}`).join(" ") }));
      }
    }
  }
  figure.replaceChildren(el("figcaption", {}, `${h.label} (${h.display_unit || "–"})`), root);
}

async function loadPlots() {
  const figures = [...document.querySelectorAll("figure.plot")];
  const queue = figures.slice();
  const worker = async () => {
    while (queue.length) {
      const figure = queue.shift();
      const query = new URLSearchParams({ sensor: figure.dataset.sensor,
        quantity: figure.dataset.quantity, hours: PLOT_HOURS });
      try {
        const response = await fetch(`/api/history?${query}`, { credentials: "same-origin" });
        if (response.ok) drawPlot(figure, await response.json());
        else figure.remove();  // not kept in the history (e.g. a camera's health figure)
      } catch (error) {
        figure.replaceChildren(el("figcaption", {}, `plot unavailable: ${error}`));
      }
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  document.body.dataset.plots = String(document.querySelectorAll("svg.plot").length);
}

async function refresh() {
  try {
    const response = await fetch("/api/status", { credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const s = await response.json();
    const plotsDue = Date.now() - lastPlots >= PLOTS_EVERY_MS;
    const saved = new Map([...document.querySelectorAll("figure.plot")].map((f) =>
      [`${f.dataset.sensor}/${f.dataset.quantity}`, f.childNodes.length ? [...f.childNodes] : null]));
    renderHeader(s);
    renderBox(s);
    renderSensors(s);
    renderCameras(s);
    if (plotsDue) {
      lastPlots = Date.now();
      await loadPlots();
    } else {
      for (const f of document.querySelectorAll("figure.plot")) {
        const old = saved.get(`${f.dataset.sensor}/${f.dataset.quantity}`);
        if (old) f.replaceChildren(...old); else if (saved.has(`${f.dataset.sensor}/${f.dataset.quantity}`)) f.remove();
      }
    }
    document.body.dataset.loaded = "1";
  } catch (error) {
    const verdict = document.getElementById("verdict");
    verdict.textContent = `cannot reach the agent: ${error.message}`;
    verdict.className = "verdict bad";
  }
}

refresh();
setInterval(refresh, STATUS_EVERY_MS);
