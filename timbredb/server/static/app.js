// timbredb serve: the page. Plain JS and SVG, no build step, nothing loaded from anywhere but this server.
// Text from the server is only ever set with textContent (never parsed as HTML).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

function setStatus(text, isError = false) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "";
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    throw new Error(`${path}: HTTP ${response.status}`);
  }
  if (!response.ok) throw new Error(body && body.error ? body.error : `${path}: HTTP ${response.status}`);
  return body;
}

function testId(model) {
  return model.replace(/[^A-Za-z0-9_-]/g, "_");
}

function baseName(path) {
  if (!path) return "(no recorded path)";
  const parts = String(path).split(/[\\/]/);
  return parts[parts.length - 1] || String(path);
}

// ------------------------------------------------------------------ set-up
async function init() {
  try {
    const [health, spaces, vocabularies] = await Promise.all([
      api("/api/healthz"), api("/api/spaces"), api("/api/vocabularies"),
    ]);
    $("store-info").textContent =
      `${health.store} · ${health.spaces} spaces · ${health.audio_vectors} audio vectors · timbredb ${health.version}`;
    const box = $("models");
    const describable = spaces.filter((s) => s.modalities.includes("text") && s.usable);
    if (!describable.length) {
      box.appendChild(el("span", { class: "empty" }, "no text-capable model is usable here"));
    }
    describable.forEach((s, i) => {
      const label = el("label");
      const input = el("input", { type: "checkbox", value: s.model, name: "model" });
      input.checked = i === 0;
      label.appendChild(input);
      label.appendChild(document.createTextNode(` ${s.model} (${s.n_audio} clips)`));
      box.appendChild(label);
    });
    const select = $("vocabulary");
    for (const v of vocabularies) {
      const option = el("option", { value: v.name }, `${v.name} (${v.n_words} words)`);
      if (v.default) option.selected = true;
      select.appendChild(option);
    }
    setStatus("Ready: drop a sound.");
  } catch (e) {
    setStatus(`Cannot reach the store: ${e.message}`, true);
  }
}

function selectedModels() {
  return [...document.querySelectorAll("#models input:checked")].map((i) => i.value);
}

// ------------------------------------------------------------------ describe a file
async function describeFile(file) {
  const models = selectedModels();
  if (!models.length) {
    setStatus("Tick at least one model.", true);
    return;
  }
  const k = $("k").value || "8";
  const clips = $("clips").value || "0";
  const vocabulary = $("vocabulary").value;
  setStatus(`Describing ${file.name} with ${models.join(", ")}…`);
  const results = $("results");
  results.replaceChildren();
  const form = new FormData();
  form.append("file", file);
  for (const m of models) form.append("model", m);
  form.append("k", k);
  form.append("clips", clips);
  if (vocabulary) form.append("vocabulary", vocabulary);
  let descriptions;
  try {
    descriptions = await api("/api/describe", { method: "POST", body: form });
  } catch (e) {
    setStatus(e.message, true);
    return;
  }
  const cards = descriptions.map((d) => renderCard(d));
  cards.forEach((c) => results.appendChild(c.node));
  await Promise.all(descriptions.map((d, i) => fillCard(cards[i], d, file, vocabulary)));
  setStatus(`Described ${file.name}.`);
}

function renderCard(description) {
  const id = testId(description.model);
  const node = el("article", { class: "card", "data-testid": `card-${id}` });
  const h2 = el("h2", {}, description.model + " ");
  h2.appendChild(el("span", { class: "file" }, `· ${description.file}`));
  node.appendChild(h2);
  const panels = el("div", { class: "panels" });
  const chart = el("div", { "data-testid": `chart-${id}` });
  chart.appendChild(el("h3", {}, "Nearest descriptors"));
  chart.appendChild(barChart(description.descriptors, (description.calibration || {}).ranked_by));
  const similar = el("div", { "data-testid": `similar-${id}` });
  similar.appendChild(el("h3", {}, "Nearest stored clips"));
  const map = el("div", { "data-testid": `map-${id}` });
  map.appendChild(el("h3", {}, "Map of the space (PCA)"));
  panels.append(chart, similar, map);
  node.appendChild(panels);
  return { node, similar, map };
}

async function fillCard(card, description, file, vocabulary) {
  renderSimilar(card.similar, description.similar_clips || []);
  const form = new FormData();
  form.append("file", file);
  form.append("model", description.model);
  if (vocabulary) form.append("vocabulary", vocabulary);
  try {
    const map = await api("/api/map", { method: "POST", body: form });
    card.map.appendChild(scatter(map));
  } catch (e) {
    card.map.appendChild(el("p", { class: "empty" }, `no map: ${e.message}`));
  }
}

// ------------------------------------------------------------------ bar chart
function barChart(descriptors, rankedBy) {
  const rowH = 22, labelW = 110, valueW = 56, width = 420;
  const height = rowH * descriptors.length + 24;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
                             "aria-label": "descriptor scores", class: "bar-chart" });
  if (!descriptors.length) return svg;
  const scores = descriptors.map((d) => d.score);
  const lo = Math.min(0, ...scores), hi = Math.max(0, ...scores);
  const span = hi - lo || 1;
  const plotW = width - labelW - valueW;
  const x = (v) => labelW + ((v - lo) / span) * plotW;
  descriptors.forEach((d, i) => {
    const y = 4 + i * rowH;
    const x0 = x(Math.min(0, d.score)), x1 = x(Math.max(0, d.score));
    const g = svgEl("g", { class: "bar-row", "data-descriptor": d.descriptor, "data-score": d.score });
    g.appendChild(svgEl("text", { x: labelW - 6, y: y + rowH * 0.62, "text-anchor": "end", class: "bar-label" },
                        d.descriptor));
    const bar = svgEl("rect", { x: x0, y: y + 3, width: Math.max(1, x1 - x0), height: rowH - 7,
                                class: i === 0 ? "bar top" : "bar" });
    bar.appendChild(svgEl("title", {}, `${d.descriptor}: ${d.score.toFixed(4)}`));
    g.appendChild(bar);
    g.appendChild(svgEl("text", { x: width - valueW + 6, y: y + rowH * 0.62, class: "bar-value" },
                        d.score.toFixed(3)));
    svg.appendChild(g);
  });
  const zero = x(0);
  svg.appendChild(svgEl("line", { x1: zero, x2: zero, y1: 2, y2: height - 20, class: "axis" }));
  svg.appendChild(svgEl("text", { x: labelW, y: height - 6 },
                        rankedBy === "cosine" ? "cosine" : "calibrated score (z against a reference set of sounds)"));
  return svg;
}

// ------------------------------------------------------------------ similar clips
async function renderSimilar(container, clips) {
  if (!clips.length) {
    container.appendChild(el("p", { class: "empty" }, "none asked for, or the store holds no other clip"));
    return;
  }
  const list = el("ol", { class: "similar" });
  container.appendChild(list);
  for (const c of clips) {
    const item = el("li", { "data-clip": c.clip_sha256 });
    item.appendChild(el("span", { class: "score" }, c.score.toFixed(3)));
    item.appendChild(el("span", { title: c.source_path || c.clip_sha256 }, baseName(c.source_path)));
    list.appendChild(item);
  }
  // a player only where the server can read a file recorded for the clip
  await Promise.all(clips.map(async (c, i) => {
    try {
      const info = await api(`/api/clips/${c.clip_sha256}`);
      if (info.audio_url) {
        list.children[i].appendChild(el("audio", { controls: "", preload: "none", src: info.audio_url }));
      }
    } catch (e) {
      /* the list stays without a player */
    }
  }));
}

// ------------------------------------------------------------------ map
function label(x, y, text, cls, width, gap = 4) {
  // labels in the right third of the map read leftwards, so they stay inside it
  const left = x > width * 0.66;
  return svgEl("text", { x: left ? x - gap : x + gap, y, class: cls, "text-anchor": left ? "end" : "start" }, text);
}

function scatter(map) {
  const width = 460, height = 360, pad = 28;
  const points = [...map.clips, ...map.words, ...(map.upload ? [map.upload] : [])];
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
                             "aria-label": `PCA map of ${map.model}`, class: "map" });
  if (!points.length) return svg;
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const xmin = Math.min(...xs), xmax = Math.max(...xs), ymin = Math.min(...ys), ymax = Math.max(...ys);
  const sx = (v) => pad + ((v - xmin) / ((xmax - xmin) || 1)) * (width - 2 * pad);
  const sy = (v) => height - pad - ((v - ymin) / ((ymax - ymin) || 1)) * (height - 2 * pad);
  svg.appendChild(svgEl("rect", { x: 0.5, y: 0.5, width: width - 1, height: height - 1, fill: "none",
                                  class: "axis" }));
  for (const c of map.clips) {
    const dot = svgEl("circle", { cx: sx(c.x), cy: sy(c.y), r: 3, class: "clip-point", "data-clip": c.clip_sha256 });
    dot.appendChild(svgEl("title", {}, c.source_path || c.clip_sha256));
    svg.appendChild(dot);
  }
  for (const w of map.words) {
    svg.appendChild(svgEl("circle", { cx: sx(w.x), cy: sy(w.y), r: 2.5, class: "word-point",
                                      "data-descriptor": w.descriptor }));
    svg.appendChild(label(sx(w.x), sy(w.y) - 3, w.descriptor, "word-label", width));
  }
  if (map.upload) {
    const ux = sx(map.upload.x), uy = sy(map.upload.y);
    const star = svgEl("circle", { cx: ux, cy: uy, r: 7, class: "upload-point", "data-testid": "upload-point" });
    star.appendChild(svgEl("title", {}, map.upload.file));
    svg.appendChild(star);
    svg.appendChild(label(ux, uy + 4, map.upload.file, "upload-label", width, 9));
  }
  const [r1, r2] = map.explained_variance_ratio.map((r) => (100 * r).toFixed(0));
  svg.appendChild(svgEl("text", { x: pad, y: height - 8 },
                        `PC1 ${r1}% · PC2 ${r2}% · ${map.clips.length} of ${map.n_clips_total} clips (grey), words (blue)`));
  return svg;
}

// ------------------------------------------------------------------ wiring
function wire() {
  const drop = $("drop");
  const input = $("file");
  input.addEventListener("change", () => {
    if (input.files.length) describeFile(input.files[0]);
    input.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => {
    const files = e.dataTransfer && e.dataTransfer.files;
    if (files && files.length) describeFile(files[0]);
  });
}

wire();
init();
