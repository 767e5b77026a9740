// realtime-style studio: plain JS over the server's JSON API (no build step, no CDN).
"use strict";
const $ = (id) => document.getElementById(id);
let state = null;
let fileId = null;

function say(text) { $("message").textContent = text || ""; }

async function api(path, body, method) {
  const opts = body === undefined ? {} : {method: method || "POST", headers: {"Content-Type": "application/json"},
                                          body: JSON.stringify(body)};
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) { throw new Error(data.error || r.statusText); }
  return data;
}

async function set(changes) {
  try { await api("/api/settings", changes); } catch (e) { say(e.message); }
}

// --- live -----------------------------------------------------------------------------------
function renderGallery() {
  const g = $("gallery");
  const ids = state.styles.map((s) => s.id).join(",");
  if (g.dataset.ids !== ids) {
    g.dataset.ids = ids;
    g.innerHTML = "";
    for (const s of state.styles) {
      const b = document.createElement("button");
      b.dataset.id = s.id;
      b.title = s.name;
      b.innerHTML = `<img src="/api/styles/${s.id}/thumb" alt="${s.name}">`;
      b.onclick = () => { set({style: s.id}); };
      g.appendChild(b);
    }
    const fs = $("f-style"), keepF = fs.value;
    fs.innerHTML = `<option value="">as in the Live tab</option>` +
      state.styles.map((s) => `<option value="${s.id}">${s.name}</option>`).join("");
    fs.value = keepF;
    for (const sel of [$("blend-a"), $("blend-b")]) {
      const keep = sel.value;
      sel.innerHTML = state.styles.map((s) => `<option value="${s.id}">${s.name}</option>`).join("");
      if (keep) sel.value = keep;
    }
    if (!$("blend-b").dataset.init && state.styles.length > 1) {
      $("blend-b").value = state.styles[1].id; $("blend-b").dataset.init = "1";
    }
  }
  for (const b of g.children) b.classList.toggle("current", b.dataset.id === state.current && !state.blend);
}

function renderStats() {
  const s = state.stats;
  const p95 = s.latency_ms_p95 == null ? "–" : s.latency_ms_p95.toFixed(0);
  const scale = s.adapt && s.adapt.scale < 1 ? `  scale ${(100 * s.adapt.scale).toFixed(0)}%` : "";
  const rec = state.recording ? `  ● REC${state.record_seconds_left ? " " + state.record_seconds_left.toFixed(0) + " s" : ""}` : "";
  $("stats").textContent = `${s.processed_fps.toFixed(1)} fps  dropped ${s.dropped_frames}  latency p95 ${p95} ms${scale}${rec}`;
  $("record").textContent = state.recording ? "Stop recording" : "Record";
}

async function poll() {
  try {
    state = await api("/api/state");
    renderGallery();
    renderStats();
  } catch (e) { $("stats").textContent = "server not answering: " + e.message; }
}

function slider(id, outId, key, digits) {
  $(id).addEventListener("input", () => { $(outId).textContent = Number($(id).value).toFixed(digits); });
  $(id).addEventListener("change", () => set({[key]: Number($(id).value)}));
}
slider("alpha", "alpha-out", "alpha", 2);
slider("strength", "strength-out", "strength", 2);
$("blend").addEventListener("input", () => { $("blend-out").textContent = Number($("blend").value).toFixed(2); });
$("blend-apply").onclick = () => set({blend: {a: $("blend-a").value, b: $("blend-b").value, t: Number($("blend").value)}});
$("style-on").onchange = () => set({style_on: $("style-on").checked});
$("hold").onchange = () => set({hold: $("hold").checked});
$("smoothing").onchange = () => set({smoothing: $("smoothing").checked});

$("snapshot").onclick = async () => {
  try { const r = await api("/api/snapshot", {}); $("snap-link").href = r.url; $("snap-link").textContent = "open"; }
  catch (e) { say(e.message); }
};
$("record").onclick = async () => {
  try { await api("/api/record", {seconds: Number($("record-seconds").value) || null}); poll(); }
  catch (e) { say(e.message); }
};
$("virtualcam").onchange = async () => {
  try { await api("/api/outputs", {kind: "virtualcam", on: $("virtualcam").checked}); say(""); }
  catch (e) { $("virtualcam").checked = false; say(e.message); }
};
$("netstream").onchange = async () => {
  try { await api("/api/outputs", {kind: "stream", on: $("netstream").checked, target: $("stream-url").value}); say(""); }
  catch (e) { $("netstream").checked = false; say(e.message); }
};
$("sheet-btn").onclick = async () => {
  say("making the sheet…");
  const url = "/api/sheet" + (fileId && $("files").classList.contains("active") ? `?file=${fileId}` : "");
  const r = await fetch(url);
  if (!r.ok) { say((await r.json()).error); return; }
  $("sheet").src = URL.createObjectURL(await r.blob());
  say("");
};

async function upload(file, kind) {
  const r = await fetch(`/api/upload?kind=${kind}&name=${encodeURIComponent(file.name)}`, {method: "POST", body: file});
  const data = await r.json().catch(() => ({error: r.statusText}));
  if (!r.ok) throw new Error(data.error);
  return data;
}

const gal = $("gallery");
gal.addEventListener("dragover", (e) => { e.preventDefault(); gal.classList.add("drop"); });
gal.addEventListener("dragleave", () => gal.classList.remove("drop"));
gal.addEventListener("drop", async (e) => {
  e.preventDefault(); gal.classList.remove("drop");
  for (const f of e.dataTransfer.files) {
    try { const r = await upload(f, "style"); await set({style: r.id}); say(`added ${f.name}`); }
    catch (err) { say(`${f.name}: ${err.message}`); }
  }
  poll();
});

// --- files ----------------------------------------------------------------------------------
for (const t of document.querySelectorAll(".tab")) {
  t.onclick = () => {
    for (const x of document.querySelectorAll(".tab")) x.classList.toggle("active", x === t);
    for (const p of document.querySelectorAll(".panel")) p.classList.toggle("active", p.id === t.dataset.tab);
  };
}
slider("f-alpha", "f-alpha-out", "_", 2);
function chosenStyles() {
  if ($("f-style").value) return [$("f-style").value];
  return state.blend ? [state.blend.a, state.blend.b] : [state.current];
}

$("file-input").onchange = async () => {
  const f = $("file-input").files[0];
  if (!f) return;
  $("file-info").textContent = `uploading ${f.name}…`;
  try {
    const r = await upload(f, "file");
    fileId = r.id;
    $("file-info").textContent = `${f.name}: ${r.kind}`;
    $("preview-btn").disabled = $("render-btn").disabled = false;
  } catch (e) { $("file-info").textContent = `${f.name}: ${e.message}`; fileId = null; }
};
$("preview-btn").onclick = async () => {
  const r = await fetch(`/api/files/${fileId}/preview?styles=${chosenStyles().join(",")}&alpha=${$("f-alpha").value}`);
  if (r.ok) $("preview").src = URL.createObjectURL(await r.blob());
  else $("file-info").textContent = (await r.json()).error;
};
$("render-btn").onclick = async () => {
  try {
    await api("/api/jobs", {file: fileId, styles: chosenStyles(),
                            settings: {alpha: Number($("f-alpha").value), smoothing: $("f-smoothing").checked}});
  } catch (e) { $("file-info").textContent = e.message; }
};

function renderJobs(jobs) {
  const body = $("jobs").querySelector("tbody");
  body.innerHTML = "";
  for (const j of jobs) {
    const tr = document.createElement("tr");
    tr.dataset.id = j.id;
    tr.dataset.status = j.status;
    const eta = j.eta_s == null ? "" : `${j.eta_s.toFixed(0)} s`;
    const action = j.status === "running" || j.status === "queued"
      ? `<button data-cancel="${j.id}">Cancel</button>`
      : (j.download ? `<a href="${j.download}" download>Download</a>` : "");
    tr.innerHTML = `<td>${j.name}</td><td><progress max="100" value="${j.progress}"></progress>
      <span class="pct">${j.progress.toFixed(0)}%</span> ${j.status}</td><td>${j.fps || ""}</td><td>${eta}</td>
      <td>${action} <span class="hint">${j.message}</span></td>`;
    body.appendChild(tr);
  }
  for (const b of body.querySelectorAll("[data-cancel]")) b.onclick = () => api(`/api/jobs/${b.dataset.cancel}/cancel`, {});
}
const events = new EventSource("/api/jobs/events");
events.onmessage = (e) => renderJobs(JSON.parse(e.data));

poll();
setInterval(poll, 1000);
