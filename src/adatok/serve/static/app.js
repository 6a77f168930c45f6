// adatok serve: the page. Plain JavaScript, no build step; it talks to the API of adatok/serve/app.py.
"use strict";

const $ = (id) => document.getElementById(id);
const S = {                // what the page works on
  info: null, image: null, plain: null, steered: null, coding: null,
  k: null, pending: null, busy: false, detailsTimer: null, detailsFor: null, painted: false,
  choice: null,            // the image and tokenizer last asked for (see newChoice)
  shownWork: null,         // an AbortController for the work of the coding on screen (see takePage, setCoding)
  codingWork: null,        // ... and for the requests of the sequence the slider shows
};

// ---- every answer belongs to what it was asked for ----------------------------------------------
// A request is tied to what was current when it was sent; an answer for something no longer current
// is dropped (and the request aborted), whatever order the answers come in (until 2026-12-03 a late
// answer took the page: an older upload over a later sample, a region encode of the previous image
// under the new one, a tokenizer change re-encoding the image being replaced).
//  * a choice (an image loaded, a tokenizer picked): a newer choice aborts the older one's requests;
//  * the coding on screen (S.plain, with its steered sequence): a region encode and its comparison
//    are dropped when another coding takes the page;
//  * the sequence the slider shows (S.coding): its frames, details and curve are dropped when it
//    changes (the region toggle included).

function newChoice(image = null) {      // image: the image chosen (null: an upload or sample on its way)
  if (S.choice) S.choice.abort.abort();
  S.choice = { abort: new AbortController(), image };
  return S.choice;
}
const isCurrent = (choice) => choice === S.choice;
function choiceDone(choice) { if (isCurrent(choice)) S.choice = null; }

function setCoding(coding) {            // the sequence the slider shows; the old one's requests end
  if (S.coding === coding && S.codingWork) return;
  S.coding = coding;
  if (S.codingWork) S.codingWork.abort();
  S.codingWork = new AbortController();
}

// ---- errors in words ----------------------------------------------------------------------------

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}
function clearError() { $("error").hidden = true; }

async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (e) {
    if (e.name === "AbortError") throw e;     // (the page asked it to stop: no message)
    throw new Error("the server cannot be reached (is adatok serve still running?)");
  }
  if (!response.ok) {
    let message = `the server answered ${response.status}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}
const apiJson = async (path, options) => (await api(path, options)).json();
function form(fields) {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  return { method: "POST", body: f };
}
// a PSNR: "exact" when the server sends none (infinite: bit-exact), else dB; "–" for no pixels at all
const psnrText = (v, none = false) => none ? "–" : (v === null || v === undefined) ? "exact" : `${Number(v).toFixed(2)} dB`;
const int = (v) => Number(v).toLocaleString("en");

// ---- start --------------------------------------------------------------------------------------

async function start() {
  try {
    S.info = await apiJson("/api/info");
  } catch (e) { showError(e.message); return; }
  $("version").textContent = S.info.version;
  for (const name of S.info.samples) $("sample").add(new Option(name, name));
  for (const name of S.info.tokenizers) $("tokenizer").add(new Option(name, name));
  $("tokenizer").value = S.info.tokenizers.includes("wavelet") ? "wavelet" : S.info.tokenizers[0];
  setupGeneration();
  $("status").textContent = readyStatus();
  document.body.dataset.ready = "1";
}

// ---- an image and a coding ----------------------------------------------------------------------

async function loadImage(request, what) {
  clearError();
  const choice = newChoice();           // (an older load or encode still on its way is dropped)
  const [path, options] = request;
  $("status").textContent = `Reading ${what}...`;
  let image;
  try {
    image = await apiJson(path, { ...options, signal: choice.abort.signal });
  } catch (e) {
    if (!isCurrent(choice)) return;     // a later choice has the page
    choiceDone(choice);
    showError(e.message);
    $("status").textContent = S.coding ? codingStatus() : S.info ? readyStatus() : "";
    return;
  }
  if (!isCurrent(choice)) return;
  // the new image takes the page only once it is encoded: on a failure the page stays as it was
  // (the original, the reconstruction and the numbers always belong to one image)
  choice.image = image;
  await encode(image, choice);
}

async function picture(image) {    // the image's pixels, decoded, to be drawn as the original
  const img = new Image();
  img.src = `/api/images/${image.image}.png`;
  await img.decode();
  return img;
}

function drawOriginal(image, img) {
  for (const id of ["original", "paint", "recon"]) {
    $(id).width = image.width;
    $(id).height = image.height;
  }
  $("original").getContext("2d").drawImage(img, 0, 0);
  clearPaint();
}

const sizeText = (image) => `${int(image.height)}x${int(image.width)} (H x W)`;   // (as the library's messages)
const readyStatus = () => `Pick a sample or drop an image (up to ${int(S.info.limits.max_pixels)} pixels, ` +
  `${int(S.info.limits.max_upload_bytes)} bytes).`;

function codingStatus() {          // the status line of the coding on screen
  return `${S.image.name}: ${sizeText(S.image)}, ${int(S.plain.tokens)} tokens ` +
    `(${int(S.plain.bytes)} bytes, ${S.plain.bpp.toFixed(3)} bpp) with ${S.plain.tokenizer}.`;
}

async function encode(image, choice = newChoice(image)) {
  clearError();
  const fresh = image !== S.image;       // a new image, not yet on the page
  const tokenizer = $("tokenizer").value;
  $("status").textContent = `Encoding ${image.name} (${sizeText(image)}) with ${tokenizer}...`;
  let coding, img = null;
  try {
    coding = await apiJson("/api/codings", { ...form({ image: image.image, tokenizer }), signal: choice.abort.signal });
    if (fresh && isCurrent(choice)) img = await picture(image);
  } catch (e) {
    if (!isCurrent(choice)) return;      // a later choice has the page: this one's failure is no news
    choiceDone(choice);
    const shown = S.coding && S.image && S.coding.image === S.image.image;
    if (fresh && shown) {
      // the image on screen and its coding stay: the message says the new one was not taken
      showError(`${image.name} cannot be shown: ${e.message} (the page still shows ${S.image.name})`);
    } else showError(e.message);
    if (fresh && !shown) {               // nothing on screen yet: the new image is the one to encode next
      try {
        const shownImg = await picture(image);
        if (S.choice || S.image === image) return;     // (another choice came meanwhile)
        S.image = image;
        drawOriginal(image, shownImg);
      } catch (e2) { /* the image's picture cannot come either: the message above stands */ }
    }
    // the coding on screen stays: the menu names it again (it named the tokenizer that failed)
    if (shown) {
      $("tokenizer").value = S.coding.tokenizer;
      $("status").textContent = codingStatus();
    } else if (!S.choice) $("status").textContent = "";
    return;
  }
  if (!isCurrent(choice)) return;        // a later choice: this coding is not what the user asks for now
  choiceDone(choice);
  takePage(image, coding, img);
}

// a new coding takes the page, all at once: nothing of the one before stays on screen as its figures
function takePage(image, coding, img) {
  if (S.shownWork) S.shownWork.abort();  // the old coding's region encode and comparison, if any
  S.shownWork = new AbortController();
  S.plain = coding;
  S.steered = null;
  setCoding(S.plain);
  S.pending = null;
  clearTimeout(S.detailsTimer);
  if (img) {
    S.image = image;
    drawOriginal(image, img);
  }
  $("tokenizer").value = coding.tokenizer;
  figuresStale(Boolean(img));
  $("roi-result").hidden = true;          // the region's comparison was of the coding replaced
  $("roi-status").textContent = "";
  for (const b of ["roi-paint", "roi-auto"]) $(b).disabled = false;
  $("use-roi").checked = false;
  $("use-roi").disabled = true;
  $("status").textContent = codingStatus();
  for (const id of ["viewer", "rd", "roi"]) $(id).hidden = false;
  $("roi").hidden = !S.plain.tokenizer.startsWith("wavelet");
  $("curve").innerHTML = "";
  $("curve-status").textContent = "";
  $("curve-go").disabled = false;
  S.curveX = null;
  S.curveFor = null;
  S.lastBytes = null;
  $("slider").value = 600;
  slid();
}

// the numbers, the maps and the downloads of the coding replaced: gone until the new one's first frame
// (a new image's maps are emptied, another tokenizer's on the same image greyed)
function figuresStale(newImage) {
  for (const id of ["n-tokens", "n-bytes", "n-bpp", "n-psnr", "n-ms", "cap-k"]) $(id).textContent = "…";
  delete $("recon").dataset.k;
  $("recon").classList.add("stale");
  for (const id of ["dl-atk", "dl-png"]) $(id).removeAttribute("href");
  detailsStale();
  if (newImage) for (const id of ["errmap", "heatmap"]) $(id).removeAttribute("src");
}

// ---- the slider ---------------------------------------------------------------------------------

function sliderQuery() {            // the slider's place (0..1000) as a query in the chosen mode
  const c = S.coding, t = Number($("slider").value) / 1000, mode = $("mode").value;
  if (mode === "tokens") return { tokens: Math.min(c.tokens, Math.round(Math.pow(c.tokens + 1, t) - 1)) };
  if (mode === "bytes") return { bytes: Math.round(c.min_bytes * Math.pow(c.bytes / c.min_bytes, t)) };
  const top = c.full_psnr === null ? 60 : c.full_psnr;
  return { psnr: Math.round((10 + t * (top - 10)) * 100) / 100 };
}

const UNITS = { tokens: "tokens", bytes: "bytes", psnr: "dB target PSNR" };

function slid() {
  const q = sliderQuery(), mode = $("mode").value, v = Object.values(q)[0];
  $("value").value = v;
  // the box takes what the mode takes: whole tokens and bytes, PSNR in hundredths of a dB
  $("value").step = mode === "psnr" ? "0.01" : "1";
  $("slider").setAttribute("aria-valuetext", `${mode === "psnr" ? v : int(v)} ${UNITS[mode]}`);
  ask(q);
}

function sliderPlace(mode, v) {      // the inverse of sliderQuery: where the slider stands for a value
  const c = S.coding;
  let t;
  if (mode === "tokens") t = Math.log(v + 1) / Math.log(c.tokens + 1);
  else if (mode === "bytes") t = Math.log(v / c.min_bytes) / Math.log(c.bytes / c.min_bytes);
  else {
    const top = c.full_psnr === null ? 60 : c.full_psnr;
    t = (v - 10) / (top - 10);
  }
  return Number.isFinite(t) ? Math.round(1000 * Math.min(1, Math.max(0, t))) : null;
}

function typed() {
  const box = $("value"), mode = $("mode").value;
  if (box.validity.badInput) { showError(`${UNITS[mode]}: the box holds no number: type one`); return; }
  if (box.value === "") return;
  const v = Number(box.value);
  let sent = String(v);                  // (1e3 is sent as 1000)
  if (mode !== "psnr") {
    if (!Number.isInteger(v)) {
      showError(`${UNITS[mode]}: give a whole number of ${UNITS[mode]} (${box.value} is not one)`);
      return;
    }
    sent = BigInt(v).toString();         // (a whole number however large, never 1e+21)
  }
  const place = sliderPlace(mode, v);    // the thumb follows what was typed
  if (place !== null) $("slider").value = place;
  ask({ [mode]: sent });
}

function ask(query) {           // the latest wins: one request in flight, the newest one next
  S.pending = { query, coding: S.coding };
  if (!S.busy) pump();
}

async function pump() {
  S.busy = true;
  while (S.pending) {
    const { query, coding } = S.pending;
    S.pending = null;
    if (coding === S.coding) await showFrame(query);   // (a query of a sequence no longer shown is dropped)
  }
  S.busy = false;
}

async function showFrame(query) {
  const c = S.coding, signal = S.codingWork.signal;
  let response, n, raw;
  try {
    response = await api(`/api/codings/${c.coding}/frame?` + new URLSearchParams(query), { signal });
    n = JSON.parse(response.headers.get("X-Adatok-Frame"));
    raw = new Uint8Array(await response.arrayBuffer());
  } catch (e) {
    if (c === S.coding) showError(e.message);   // (else: of a sequence no longer shown)
    return;
  }
  if (c !== S.coding) return;
  clearError();
  drawPixels($("recon"), raw, n.width, n.height, n.channels);
  $("recon").classList.remove("stale");
  S.k = n.k;
  $("recon").dataset.k = n.k;
  $("n-tokens").textContent = `${int(n.tokens)} of ${int(n.total)}`;
  $("n-bytes").textContent = int(n.bytes);
  $("n-bpp").textContent = n.bpp.toFixed(4);
  $("n-psnr").textContent = psnrText(n.psnr);
  $("n-ms").textContent = `${n.server_ms.toFixed(1)} ms`;
  $("cap-k").textContent = int(n.k);
  $("slider").setAttribute("aria-valuetext", `${int(n.k)} of ${int(n.total)} tokens, ${int(n.bytes)} bytes, ` +
    `PSNR ${psnrText(n.psnr)}`);
  const at = `tokens=${n.k}`;
  $("dl-atk").href = `/api/codings/${c.coding}/prefix.atk?${at}`;
  $("dl-png").href = `/api/codings/${c.coding}/prefix.png?${at}`;
  markCurve(n.bytes);
  if (!S.detailsShown || S.detailsShown.coding !== c || S.detailsShown.k !== n.k) detailsStale();
  clearTimeout(S.detailsTimer);
  S.detailsTimer = setTimeout(() => details(c, n.k, signal), 120);
}

// SSIM, the error map and the heat map come in a second request: until they are of the prefix shown,
// they are greyed ("…"), never the previous prefix's values
function detailsStale() {
  S.detailsShown = null;
  $("n-ssim").textContent = "…";
  $("n-ssim").removeAttribute("title");
  for (const id of ["errmap", "heatmap"]) $(id).classList.add("stale");
}

function detailsFailed(message) {      // the details of the prefix shown cannot come: cleared, and why
  S.detailsShown = null;
  $("n-ssim").textContent = "–";
  $("n-ssim").title = `not computed: ${message}`;
  for (const id of ["errmap", "heatmap"]) { $(id).removeAttribute("src"); $(id).classList.remove("stale"); }
  showError(`SSIM, the error map and the heat map of this prefix are missing: ${message}`);
}

function drawPixels(canvas, raw, w, h, channels) {
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const out = ctx.createImageData(w, h);
  const d = out.data;
  for (let i = 0, j = 0; i < w * h; i++, j += channels) {
    const r = raw[j], g = channels === 3 ? raw[j + 1] : r, b = channels === 3 ? raw[j + 2] : r;
    d[4 * i] = r; d[4 * i + 1] = g; d[4 * i + 2] = b; d[4 * i + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
}

async function details(coding, k, signal) {
  if (coding !== S.coding) return;
  S.detailsFor = k;
  let d;
  try {
    d = await apiJson(`/api/codings/${coding.coding}/details?tokens=${k}`, { signal });
  } catch (e) {
    if (coding === S.coding && S.detailsFor === k) detailsFailed(e.message);   // (else a newer one is coming)
    return;
  }
  if (coding !== S.coding || S.detailsFor !== k) return;
  $("n-ssim").textContent = d.ssim.toFixed(4);
  $("n-ssim").removeAttribute("title");
  $("errmap").src = d.error_map;
  // a learned tokenizer's tokens have no place in the image: no heat map, and the caption says so
  $("heatmap").hidden = !d.token_map;
  $("heatmap-cap").textContent = d.token_map ? "where the first tokens landed"
    : "no heat map: this tokenizer's tokens describe the whole image, not places in it";
  if (d.token_map) $("heatmap").src = d.token_map;
  else $("heatmap").removeAttribute("src");
  for (const id of ["errmap", "heatmap"]) $(id).classList.remove("stale");
  S.detailsShown = { coding, k };
  if (S.steered) compareRegion().catch((e) => { if (e.name !== "AbortError") showError(e.message); });
}

// ---- downloads: fetched first, so that a refusal is a message on the page, not a saved error body ----

function attachmentName(header) {
  if (!header) return null;
  const star = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (star) { try { return decodeURIComponent(star[1]); } catch (e) { /* the plain name below */ } }
  const plain = /filename="([^"]*)"/i.exec(header);
  return plain ? plain[1] : null;
}

async function download(ev) {
  const link = ev.currentTarget, href = link.getAttribute("href");
  ev.preventDefault();
  if (!href || link.dataset.busy) return;
  clearError();
  link.dataset.busy = "1";
  try {
    const response = await api(href);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const save = document.createElement("a");
    save.href = url;
    save.download = attachmentName(response.headers.get("Content-Disposition")) || href.split("/").pop().split("?")[0];
    document.body.appendChild(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (e) {
    showError(`${link.textContent.trim()}: ${e.message}`);
  } finally {
    delete link.dataset.busy;
  }
}

// ---- the rate-distortion curve (inline SVG) -----------------------------------------------------

const COLOURS = { ours: "#2458d6", jpeg: "#d92d20", webp: "#039855", jp2: "#7a5af8" };

async function computeCurve() {
  const c = S.coding;
  $("curve-go").disabled = true;
  $("curve-status").textContent = "JPEG, WebP and JPEG 2000 at the same bytes: a few seconds...";
  try {
    const curve = await apiJson(`/api/codings/${c.coding}/curve`, { signal: S.codingWork.signal });
    if (c === S.coding) {   // (a codec that cannot encode an image this long has no points: its note says why)
      $("curve-status").textContent = curve.codecs.filter((s) => s.note).map((s) => s.note).join("; ");
      S.curveFor = c;
      drawCurve(curve);
    }
  } catch (e) {             // (a curve of a sequence no longer shown: its status was replaced already)
    if (c === S.coding) { showError(e.message); $("curve-status").textContent = ""; }
  }
  if (c === S.coding) $("curve-go").disabled = false;
}

function drawCurve(curve) {
  const W = 860, H = 420, L = 60, R = 170, T = 20, B = 50;
  const series = [{ key: "ours", label: curve.ours.label, points: curve.ours.points },
                  ...curve.codecs.map((c) => ({ key: c.name, label: c.label, points: c.points }))];
  const bpp = (bytes) => 8 * bytes / curve.pixels;
  const all = series.flatMap((s) => s.points.filter((p) => p.psnr !== null && p.bytes > 0));
  if (all.length === 0) {          // every point bit-exact (a flat image): no finite PSNR to place
    $("curve").innerHTML = "";
    $("curve-status").textContent = "Every point of every method decodes exactly (infinite PSNR): nothing to plot.";
    S.curveX = null;
    return;
  }
  const xs = all.map((p) => Math.log2(bpp(p.bytes))), ys = all.map((p) => p.psnr);
  const x0 = Math.floor(Math.min(...xs)), x1 = Math.ceil(Math.max(...xs));
  const y0 = Math.floor(Math.min(...ys) / 5) * 5, y1 = Math.ceil(Math.max(...ys) / 5) * 5;
  const X = (v) => L + (v - x0) / Math.max(x1 - x0, 1e-9) * (W - L - R);
  const Y = (v) => H - B - (v - y0) / Math.max(y1 - y0, 1e-9) * (H - T - B);
  let svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="PSNR against bits per pixel">`;
  const every = Math.ceil((x1 - x0 + 1) / 10);    // at most about ten labels
  for (let e = x0; e <= x1; e++) {
    svg += `<line x1="${X(e)}" x2="${X(e)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`;
    if ((e - x0) % every === 0) {
      svg += `<text x="${X(e)}" y="${H - B + 18}" text-anchor="middle" font-size="12">${e < 0 ? "1/" + Math.pow(2, -e) : Math.pow(2, e)}</text>`;
    }
  }
  for (let v = y0; v <= y1; v += 5) {
    svg += `<line x1="${L}" x2="${W - R}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eee"/>` +
           `<text x="${L - 8}" y="${Y(v) + 4}" text-anchor="end" font-size="12">${v}</text>`;
  }
  svg += `<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle" font-size="13">bits per pixel of the file (log scale)</text>` +
         `<text x="16" y="${(T + H - B) / 2}" font-size="13" transform="rotate(-90 16 ${(T + H - B) / 2})" text-anchor="middle">PSNR (dB)</text>`;
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p.psnr !== null && p.bytes > 0).sort((a, b) => a.bytes - b.bytes);
    const col = COLOURS[s.key] || "#444";
    if (pts.length) {
      svg += `<polyline class="series" data-series="${s.key}" fill="none" stroke="${col}" stroke-width="2" points="` +
             pts.map((p) => `${X(Math.log2(bpp(p.bytes))).toFixed(1)},${Y(p.psnr).toFixed(1)}`).join(" ") + `"/>`;
      for (const p of pts) svg += `<circle cx="${X(Math.log2(bpp(p.bytes)))}" cy="${Y(p.psnr)}" r="2.5" fill="${col}"/>`;
    }
    svg += `<line x1="${W - R + 15}" x2="${W - R + 40}" y1="${T + 10 + 20 * i}" y2="${T + 10 + 20 * i}" stroke="${col}" stroke-width="3"/>` +
           `<text x="${W - R + 46}" y="${T + 14 + 20 * i}" font-size="13">${s.label} (${pts.length})</text>`;
  });
  svg += `<line id="curve-mark" y1="${T}" y2="${H - B}" stroke="#98a2b3" stroke-dasharray="4 3" visibility="hidden"/></svg>`;
  $("curve").innerHTML = svg;
  S.curveX = (bytes) => X(Math.log2(bpp(bytes)));
  S.curveRange = [x0, x1];
  if (S.lastBytes) markCurve(S.lastBytes);
}

function curveFollows() {          // the curve drawn is of the sequence the slider shows, or it goes
  if (!S.curveFor || S.curveFor === S.coding) return;
  S.curveFor = null;
  S.curveX = null;
  $("curve").innerHTML = "";
  $("curve-status").textContent = S.coding === S.steered
    ? "The slider now shows the steered sequence: compute the curve again for it."
    : "The slider now shows the sequence without the region: compute the curve again for it.";
}

function markCurve(bytes) {
  S.lastBytes = bytes;
  const mark = document.getElementById("curve-mark");
  if (!mark || !S.curveX || bytes <= 0) return;
  const x = S.curveX(bytes);
  mark.setAttribute("x1", x);
  mark.setAttribute("x2", x);
  mark.setAttribute("visibility", "visible");
}

// ---- a region of interest: paint it ------------------------------------------------------------

let paintDown = false;              // a stroke in progress (ended by a new image too: it went on onto it)

function clearPaint() {
  const p = $("paint");
  p.getContext("2d").clearRect(0, 0, p.width, p.height);
  S.painted = false;
  paintDown = false;
}

function setupPainting() {
  const p = $("paint");
  const dab = (ev) => {
    const r = p.getBoundingClientRect();
    const x = (ev.clientX - r.left) * p.width / r.width, y = (ev.clientY - r.top) * p.height / r.height;
    const ctx = p.getContext("2d");
    ctx.fillStyle = "rgba(255, 40, 40, 0.45)";
    ctx.beginPath();
    ctx.arc(x, y, Number($("brush").value) * p.width / Math.max(r.width, 1) / 2, 0, 2 * Math.PI);
    ctx.fill();
    S.painted = true;
  };
  p.addEventListener("pointerdown", (ev) => { paintDown = true; p.setPointerCapture(ev.pointerId); dab(ev); });
  p.addEventListener("pointermove", (ev) => { if (paintDown) dab(ev); });
  p.addEventListener("pointerup", () => { paintDown = false; });
  $("roi-clear").addEventListener("click", clearPaint);
}

function paintedMask() {           // the painting as a black-and-white PNG of the image's size
  const p = $("paint"), mask = document.createElement("canvas");
  mask.width = p.width;
  mask.height = p.height;
  const src = p.getContext("2d").getImageData(0, 0, p.width, p.height).data;
  const ctx = mask.getContext("2d"), out = ctx.createImageData(p.width, p.height);
  for (let i = 0; i < src.length; i += 4) {
    const v = src[i + 3] > 0 ? 255 : 0;
    out.data[i] = v; out.data[i + 1] = v; out.data[i + 2] = v; out.data[i + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  return new Promise((resolve) => mask.toBlob(resolve, "image/png"));
}

async function encodeRegion(kind) {
  clearError();
  if (kind === "paint" && !S.painted) { showError("paint the region first: drag the mouse over the original"); return; }
  // the region encode belongs to the coding on screen: if another takes the page first, it is dropped
  const plain = S.plain, work = S.shownWork, mine = () => plain === S.plain && !work.signal.aborted;
  const fields = { image: plain.image, tokenizer: plain.tokenizer, roi: kind };
  const f = form(fields);
  if (kind === "paint") f.body.append("mask", await paintedMask(), "region.png");
  if (!mine()) return;
  $("roi-status").textContent = "Encoding again with the region...";
  for (const b of ["roi-paint", "roi-auto"]) $(b).disabled = true;
  try {
    const steered = await apiJson("/api/codings", { ...f, signal: work.signal });
    if (!mine()) return;                 // (the coding that took the page reset the region's section)
    S.steered = steered;
    setCoding(S.steered);
    curveFollows();
    $("use-roi").disabled = false;
    $("use-roi").checked = true;
    await compareRegion();
    if (!mine()) return;
    slid();
  } catch (e) {
    if (!mine()) return;
    showError(e.message);
    $("roi-status").textContent = "";
  }
  for (const b of ["roi-paint", "roi-auto"]) $(b).disabled = false;
}

async function compareRegion() {
  const steered = S.steered;
  if (!steered) return;
  const bytes = Math.max(S.lastBytes || 0, steered.min_bytes + 1);
  const r = await apiJson(`/api/codings/${steered.coding}/compare?bytes=${bytes}`, { signal: S.shownWork.signal });
  if (S.steered !== steered) return;      // another coding came meanwhile: this comparison is not of it
  for (const [key, row] of [["without", r.without], ["with", r.with]]) {
    const cells = $(`roi-${key}`).querySelectorAll("td");
    cells[0].textContent = int(row.tokens);
    cells[1].textContent = int(row.bytes);
    cells[2].textContent = psnrText(row.inside, r.region_pixels === 0);
    cells[3].textContent = psnrText(row.outside, r.region_pixels === r.pixels);
    cells[4].textContent = psnrText(row.psnr);
  }
  $("roi-result").hidden = false;
  const pct = (100 * r.region_pixels / r.pixels).toFixed(1);
  $("roi-status").textContent = `At ${int(r.bytes)} bytes; the region (${steered.roi}) covers ${pct}% of the image.`;
}

// ---- generation (server-sent events) ------------------------------------------------------------

function setupGeneration() {
  const gens = S.info.generators;
  if (!gens.length) { $("gen-none").hidden = false; $("gen-controls").hidden = true; return; }
  for (const g of gens) $("gen-model").add(new Option(`${g.id} (${g.language}${g.tokenizer ? ", " + g.tokenizer : ""})`, g.id));
  $("gen-class").add(new Option("any", "-1"));
  S.info.classes.forEach((name, i) => $("gen-class").add(new Option(`${i}: ${name}`, String(i))));
  $("gen-class").value = "5";
}

function options() {                // the form's fields; an empty or unreadable number is refused here
  // (an empty field was sent as "", which the server took as its default: 4 samples for an empty box)
  const fields = { n: ["gen-n", "Samples"], seed: ["gen-seed", "Seed"], cfg: ["gen-cfg", "Guidance"] };
  const out = { model: $("gen-model").value, label: $("gen-class").value };
  for (const [key, [id, name]] of Object.entries(fields)) {
    const box = $(id);
    const v = box.validity, empty = box.value.trim() === "";   // (guidance takes any value between its ends)
    if (empty || v.badInput || v.rangeOverflow || v.rangeUnderflow || (key !== "cfg" && v.stepMismatch)) {
      throw new Error(`${name}: give a number${box.min !== "" ? ` from ${box.min}` : ""}` +
                      `${box.max !== "" ? ` to ${box.max}` : ""} (the box is ${empty ? "empty" : "not such a number"})`);
    }
    out[key] = box.value.trim();
  }
  return out;
}

function stream(job, out, status, button) {
  return new Promise((resolve) => {
    const events = new EventSource(`/api/jobs/${job}/events`);
    let updates = 0;
    const t0 = performance.now();
    const finish = () => { events.close(); button.disabled = false; resolve(); };
    events.onmessage = (msg) => {
      const ev = JSON.parse(msg.data);
      if (ev.error) { showError(ev.error); status.textContent = ""; finish(); return; }
      updates++;
      ev.images.forEach((uri, i) => {
        let fig = out.children[i];
        if (!fig) {
          fig = document.createElement("figure");
          fig.innerHTML = `<img alt="sample ${i}"><figcaption></figcaption>`;
          out.appendChild(fig);
        }
        fig.querySelector("img").src = uri;
        fig.querySelector("figcaption").textContent = `${int(ev.tokens[i])} tokens`;
      });
      const secs = (performance.now() - t0) / 1000;
      status.textContent = ev.done ? `done: ${ev.images.length} samples, ${updates} updates in ${secs.toFixed(1)} s`
                                   : `writing... ${updates} updates, ${secs.toFixed(1)} s`;
      out.dataset.updates = updates;
      if (ev.done) { out.dataset.done = "1"; finish(); }
    };
    events.onerror = () => { if (!out.dataset.done) showError("the generation stream was cut"); finish(); };
  });
}

async function generate() {
  clearError();
  let fields;
  try { fields = options(); } catch (e) { showError(e.message); return; }
  $("gen-go").disabled = true;
  $("gen-out").innerHTML = "";
  delete $("gen-out").dataset.done;
  $("gen-status").textContent = "Loading the model...";
  try {
    const { job } = await apiJson("/api/jobs/generate", form(fields));
    await stream(job, $("gen-out"), $("gen-status"), $("gen-go"));
  } catch (e) { showError(e.message); $("gen-status").textContent = ""; $("gen-go").disabled = false; }
}

async function completeFile() {
  clearError();
  const file = $("cmp-file").files[0];
  if (!file) { showError("choose a cut .atk file first"); return; }
  let fields;
  try { fields = options(); } catch (e) { showError(e.message); return; }
  $("cmp-go").disabled = true;
  $("cmp-out").innerHTML = "";
  $("cmp-prefix-fig").hidden = true;     // (the previous completion's prefix is not this file's)
  $("cmp-prefix").removeAttribute("src");
  delete $("cmp-out").dataset.done;
  const f = form(fields);
  f.body.append("file", file, file.name);
  try {
    const r = await apiJson("/api/jobs/complete", f);
    $("cmp-prefix").src = r.prefix_image;
    $("cmp-prefix-fig").hidden = false;
    $("cmp-prefix-fig").querySelector("figcaption").textContent = `the prefix: ${int(r.prefix)} tokens`;
    await stream(r.job, $("cmp-out"), $("cmp-status"), $("cmp-go"));
  } catch (e) { showError(e.message); $("cmp-status").textContent = ""; $("cmp-go").disabled = false; }
}

// ---- wiring -------------------------------------------------------------------------------------

function setupInputs() {
  $("load-sample").addEventListener("click", () => {
    const name = $("sample").value;
    loadImage([`/api/samples/${encodeURIComponent(name)}`, { method: "POST" }], name);
  });
  const upload = (file) => {
    if (!file) return;
    const f = new FormData();
    f.append("file", file, file.name);
    loadImage(["/api/images", { method: "POST", body: f }], file.name);
  };
  $("file").addEventListener("change", () => { upload($("file").files[0]); $("file").value = ""; });
  const drop = $("drop");
  drop.addEventListener("keydown", (ev) => {     // the drop zone is the keyboard's way to the file chooser
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); $("file").click(); }
  });
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    upload(ev.dataTransfer.files[0]);
  });
  $("tokenizer").addEventListener("change", () => {
    // for the image last asked for: the one being encoded if any (a load still on its way reads the
    // menu when its image comes), else the one shown
    if (S.choice && !S.choice.image) return;
    const image = S.choice ? S.choice.image : S.image;
    if (image) encode(image);
  });
  $("slider").addEventListener("input", slid);
  $("mode").addEventListener("change", slid);
  $("value").addEventListener("change", typed);
  $("curve-go").addEventListener("click", computeCurve);
  for (const id of ["dl-atk", "dl-png"]) $(id).addEventListener("click", download);
  $("roi-paint").addEventListener("click", () => encodeRegion("paint"));
  $("roi-auto").addEventListener("click", () => encodeRegion("auto"));
  $("use-roi").addEventListener("change", () => {
    setCoding($("use-roi").checked && S.steered ? S.steered : S.plain);
    curveFollows();
    slid();
  });
  $("gen-go").addEventListener("click", generate);
  $("cmp-go").addEventListener("click", completeFile);
  setupPainting();
  $("error").addEventListener("click", clearError);     // (it stays in view: a click puts it away)
  // from the keyboard: its close button (Tab to it, Enter), or Escape anywhere
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && !$("error").hidden) clearError(); });
}

setupInputs();
start();
