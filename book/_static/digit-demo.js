/* Draw a digit (chapter 4, issue 26): the chapter's recorded modern LeNet-5 reads a digit the
   reader draws, in the browser, with no server and nothing fetched from the network.

   - preprocess(): a drawing becomes an MNIST digit, as the paper describes (section II-A):
     scaled to fit a 20x20 box keeping its proportions (area averaging gives the grey edges),
     then placed in a 28x28 field with its centre of mass at the centre;
   - forward(): the network in plain JavaScript (convolution, ReLU, max pooling, linear), over
     the weights that scripts/export_digit_model.py wrote from results/models/ into
     _static/digit/lenet5-mnist.js, with the record they came from;
   - the page: a drawing box (mouse, finger or pen: pointer events), the ten softmax scores,
     the input as the network sees it, and the C1 and C3 feature maps.

   The weights (0.4 MB) load only when the box comes into view. The tests compare
   preprocess() with a Python reference and forward() with torch (tests/test_digit_demo.py). */
(function () {
  "use strict";
  const SCRIPT = document.currentScript;
  const MODEL_FILE = "digit/lenet5-mnist.js";
  const FIELD = 28; // MNIST's field
  const BOX = 20; // the box a digit is scaled into
  const CANVAS = 280; // the drawing box, in canvas pixels
  const PEN = 22; // stroke width: about MNIST's 2 to 3 pixels once scaled to the 20-pixel box

  // ---------------------------------------------------------------------------------------
  // Preprocessing: a drawing (ink in [0, 1], w x h) to a 28 x 28 digit, or null when empty
  // ---------------------------------------------------------------------------------------

  function inkBox(ink, w, h) {
    let x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (ink[y * w + x] > 0) {
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          if (y > y1) y1 = y;
        }
      }
    }
    return x1 < 0 ? null : { x0, y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
  }

  /** Area averaging from n source pixels to m: each target pixel's share of each source. */
  function areaWeights(n, m) {
    const scale = n / m;
    const rows = [];
    for (let t = 0; t < m; t++) {
      const a = t * scale, b = (t + 1) * scale;
      const row = [];
      for (let s = Math.floor(a); s < Math.min(n, Math.ceil(b)); s++) {
        row.push([s, (Math.min(b, s + 1) - Math.max(a, s)) / scale]);
      }
      rows.push(row);
    }
    return rows;
  }

  function preprocess(ink, w, h) {
    const box = inkBox(ink, w, h);
    if (!box) return null;
    const s = BOX / Math.max(box.w, box.h);
    const tw = Math.max(1, Math.floor(box.w * s + 0.5));
    const th = Math.max(1, Math.floor(box.h * s + 0.5));
    const wx = areaWeights(box.w, tw), wy = areaWeights(box.h, th);
    const small = new Float64Array(tw * th);
    for (let ty = 0; ty < th; ty++) {
      for (const [sy, fy] of wy[ty]) {
        const row = (box.y0 + sy) * w + box.x0;
        for (let tx = 0; tx < tw; tx++) {
          let v = 0;
          for (const [sx, fx] of wx[tx]) v += ink[row + sx] * fx;
          small[ty * tw + tx] += v * fy;
        }
      }
    }
    let mass = 0, mx = 0, my = 0;
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        const v = small[y * tw + x];
        mass += v;
        mx += (x + 0.5) * v;
        my += (y + 0.5) * v;
      }
    }
    const clamp = (v, hi) => Math.min(Math.max(v, 0), hi);
    const ox = clamp(Math.floor(FIELD / 2 - mx / mass + 0.5), FIELD - tw);
    const oy = clamp(Math.floor(FIELD / 2 - my / mass + 0.5), FIELD - th);
    const out = new Float64Array(FIELD * FIELD);
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) out[(y + oy) * FIELD + x + ox] = small[y * tw + x];
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------
  // The network: LeNet5("modern", input_size=28) of lenet_utils.models, layer by layer
  // ---------------------------------------------------------------------------------------

  function conv(x, c, h, w, weight, bias, pad) {
    const out = bias.length, k = Math.round(Math.sqrt(weight.length / (out * c)));
    const oh = h + 2 * pad - k + 1, ow = w + 2 * pad - k + 1;
    const y = new Float64Array(out * oh * ow);
    for (let o = 0; o < out; o++) {
      const plane = y.subarray(o * oh * ow, (o + 1) * oh * ow).fill(bias[o]);
      for (let i = 0; i < c; i++) {
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            const wv = weight[((o * c + i) * k + ky) * k + kx];
            for (let py = 0; py < oh; py++) {
              const iy = py + ky - pad;
              if (iy < 0 || iy >= h) continue;
              const src = (i * h + iy) * w - pad + kx;
              for (let px = Math.max(0, pad - kx); px < Math.min(ow, w + pad - kx); px++) {
                plane[py * ow + px] += wv * x[src + px];
              }
            }
          }
        }
      }
    }
    return { y, c: out, h: oh, w: ow };
  }

  function relu(a) {
    for (let i = 0; i < a.y.length; i++) if (a.y[i] < 0) a.y[i] = 0;
    return a;
  }

  function maxPool(a) {
    const h = a.h >> 1, w = a.w >> 1, y = new Float64Array(a.c * h * w);
    for (let c = 0; c < a.c; c++) {
      for (let py = 0; py < h; py++) {
        for (let px = 0; px < w; px++) {
          const at = (c * a.h + 2 * py) * a.w + 2 * px;
          y[(c * h + py) * w + px] = Math.max(
            a.y[at], a.y[at + 1], a.y[at + a.w], a.y[at + a.w + 1]);
        }
      }
    }
    return { y, c: a.c, h, w };
  }

  function linear(x, weight, bias) {
    const y = Float64Array.from(bias);
    for (let o = 0; o < bias.length; o++) {
      for (let i = 0; i < x.length; i++) y[o] += weight[o * x.length + i] * x[i];
    }
    return y;
  }

  /** One 28 x 28 digit (values in [0, 1]) through the network, with what the page shows. */
  function forward(model, digit) {
    const p = model.params;
    const x = Float64Array.from(digit, (v) => (v - model.mean) / model.std);
    const c1 = relu(conv(x, 1, FIELD, FIELD, p["C1.weight"], p["C1.bias"], 2));
    const c3 = relu(conv(maxPool(c1).y, 6, 14, 14, p["C3.weight"], p["C3.bias"], 0));
    const c5 = relu(conv(maxPool(c3).y, 16, 5, 5, p["C5.weight"], p["C5.bias"], 0));
    const f6 = linear(c5.y, p["F6.weight"], p["F6.bias"]).map((v) => Math.max(v, 0));
    const logits = linear(f6, p["output.weight"], p["output.bias"]);
    const top = Math.max(...logits);
    const e = logits.map((v) => Math.exp(v - top));
    const sum = e.reduce((a, b) => a + b, 0);
    return { x, c1, c3, logits: Array.from(logits), probs: Array.from(e, (v) => v / sum) };
  }

  // ---------------------------------------------------------------------------------------
  // The weights: a script tag added on demand (works from a local build, file:// included)
  // ---------------------------------------------------------------------------------------

  function bytes(base64) {
    const text = atob(base64), out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }

  function unpack(raw) {
    const view = new DataView(bytes(raw.weights).buffer), params = {};
    let at = 0;
    for (const [name, shape] of raw.tensors) {
      const n = shape.reduce((a, b) => a * b, 1), t = new Float64Array(n);
      for (let i = 0; i < n; i++) t[i] = view.getFloat32(4 * (at + i), true);
      params[name] = t;
      at += n;
    }
    const images = bytes(raw.samples.images);
    return { ...raw, params, samples: { images, labels: raw.samples.labels } };
  }

  let loading = null;
  function load() {
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        if (window.lenetDigitModel) return resolve(unpack(window.lenetDigitModel));
        const tag = document.createElement("script");
        tag.src = new URL(MODEL_FILE, SCRIPT ? SCRIPT.src : document.baseURI).href;
        tag.onload = () => resolve(unpack(window.lenetDigitModel));
        tag.onerror = () => reject(new Error("the network's weights did not load"));
        document.head.append(tag);
      });
    }
    return loading;
  }

  // ---------------------------------------------------------------------------------------
  // The page: drawing box, answer, and the network's inside
  // ---------------------------------------------------------------------------------------

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  /** A small canvas showing one map (values scaled to [0, 1] by `top`), pixelated. */
  function paint(canvas, values, w, h, low, top) {
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
    for (let i = 0; i < w * h; i++) {
      const g = Math.round(255 * Math.min(Math.max((values[i] - low) / (top - low), 0), 1));
      img.data.set([g, g, g, 255], 4 * i);
    }
    ctx.putImageData(img, 0, 0);
  }

  function mapGroup(title, count, size, scale) {
    const maps = [];
    for (let i = 0; i < count; i++) {
      maps.push(el("canvas", { width: size, height: size, className: "digit-demo__map",
        style: `width:${size * scale}px;height:${size * scale}px`,
        role: "img", "aria-label": `${title.split(":")[0]} map ${i + 1}` }));
    }
    const figure = el("figure", { className: "digit-demo__maps" }, [
      el("div", { className: "digit-demo__grid" }, maps),
      el("figcaption", { text: title }),
    ]);
    return { figure, maps };
  }

  function build(root) {
    const box = el("canvas", {
      width: CANVAS, height: CANVAS, className: "digit-demo__canvas", tabindex: "-1",
      role: "img", "aria-label": "Drawing box: draw one digit with a mouse, a finger or a pen",
    });
    const clear = el("button", { type: "button", className: "digit-demo__button",
      text: "Clear" });
    const pick = el("button", { type: "button", className: "digit-demo__button",
      text: "Pick a test image" });
    const status = el("p", { className: "digit-demo__status", role: "status",
      "aria-live": "polite", text: "Loading the network\u2026" });
    const top = el("p", { className: "digit-demo__top", "data-out": "top", text: "\u2013" });
    const bars = el("ol", { className: "digit-demo__bars", start: "0",
      "aria-label": "the ten softmax scores" });
    const rows = [];
    for (let d = 0; d < 10; d++) {
      const fill = el("span", { className: "digit-demo__fill" });
      const pct = el("span", { className: "digit-demo__pct", text: "" });
      const li = el("li", { "data-digit": String(d) }, [
        el("span", { className: "digit-demo__label", text: String(d) }),
        el("span", { className: "digit-demo__bar" }, [fill]), pct,
      ]);
      rows.push({ li, fill, pct });
      bars.append(li);
    }
    const input = el("canvas", { width: FIELD, height: FIELD, className: "digit-demo__map",
      style: "width:84px;height:84px", role: "img",
      "aria-label": "the digit as the network sees it, 28 by 28" });
    const padded = el("canvas", { width: 32, height: 32, className: "digit-demo__map",
      style: "width:96px;height:96px", role: "img",
      "aria-label": "the normalised digit padded to 32 by 32" });
    const c1 = mapGroup("C1: 6 maps, 28\u00d728 (after ReLU)", 6, 28, 2);
    const c3 = mapGroup("C3: 16 maps, 10\u00d710 (after ReLU)", 16, 10, 4);
    const source = el("p", { className: "digit-demo__source" });
    root.replaceChildren(el("div", { className: "digit-demo__ui" }, [
      el("div", { className: "digit-demo__draw" }, [
        box, el("div", { className: "digit-demo__buttons" }, [clear, pick]), status]),
      el("div", { className: "digit-demo__answer" }, [
        el("p", { className: "digit-demo__heading", text: "LeNet-5 reads" }), top, bars]),
      el("div", { className: "digit-demo__inside" }, [
        el("figure", { className: "digit-demo__maps" }, [input,
          el("figcaption", { text: "28\u00d728, prepared as MNIST" })]),
        el("figure", { className: "digit-demo__maps" }, [padded,
          el("figcaption", { text: "normalised, padded to 32\u00d732 by C1" })]),
        c1.figure, c3.figure]),
      source,
    ]));
    return { box, clear, pick, status, top, rows, input, padded, c1, c3, source };
  }

  function show(ui, model, digit, what) {
    const out = forward(model, digit);
    const best = out.probs.indexOf(Math.max(...out.probs));
    ui.top.textContent = String(best);
    ui.rows.forEach((r, d) => {
      const p = 100 * out.probs[d];
      r.fill.style.width = p.toFixed(1) + "%";
      r.pct.textContent = p < 0.1 ? "<0.1%" : p.toFixed(1) + "%";
      r.li.classList.toggle("digit-demo__best", d === best);
    });
    ui.status.textContent = `${what}: LeNet-5 reads ${best} ` +
      `(${(100 * out.probs[best]).toFixed(1)}%).`;
    paint(ui.input, digit, FIELD, FIELD, 0, 1);
    const pad = new Float64Array(32 * 32);
    for (let y = 0; y < FIELD; y++) {
      pad.set(out.x.subarray(y * FIELD, (y + 1) * FIELD), (y + 2) * 32 + 2);
    }
    paint(ui.padded, pad, 32, 32, Math.min(...pad), Math.max(...pad));
    for (const [group, a] of [[ui.c1, out.c1], [ui.c3, out.c3]]) {
      const peak = Math.max(...a.y) || 1;
      group.maps.forEach((c, i) =>
        paint(c, a.y.subarray(i * a.h * a.w, (i + 1) * a.h * a.w), a.w, a.h, 0, peak));
    }
    return out;
  }

  function empty(ui, text) {
    ui.top.textContent = "\u2013";
    for (const r of ui.rows) {
      r.fill.style.width = "0";
      r.pct.textContent = "";
      r.li.classList.remove("digit-demo__best");
    }
    ui.status.textContent = text;
  }

  function mount(root) {
    if (root.dataset.digitMounted) return;
    root.dataset.digitMounted = "yes";
    const ui = build(root);
    const ctx = ui.box.getContext("2d", { willReadFrequently: true });
    let last = null, sample = Math.floor(Math.random() * 50);

    const read = () => load().then((model) => {
      const rgba = ctx.getImageData(0, 0, CANVAS, CANVAS).data;
      const ink = new Float64Array(CANVAS * CANVAS);
      for (let i = 0; i < ink.length; i++) ink[i] = rgba[4 * i + 3] / 255;
      const digit = preprocess(ink, CANVAS, CANVAS);
      if (!digit) return empty(ui, "The box is empty: draw a digit, or pick a test image.");
      return show(ui, model, digit, "Your drawing");
    });
    const at = (e) => {
      const r = ui.box.getBoundingClientRect();
      return [(e.clientX - r.left) * CANVAS / r.width, (e.clientY - r.top) * CANVAS / r.height];
    };
    ui.box.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      ui.box.setPointerCapture(e.pointerId);
      last = at(e);
      Object.assign(ctx, { lineWidth: PEN, lineCap: "round", lineJoin: "round" });
      ctx.strokeStyle = ctx.fillStyle = "#000";
      ctx.beginPath();
      ctx.arc(last[0], last[1], PEN / 2, 0, 2 * Math.PI);
      ctx.fill();
      root.lenetDigitWake();
    });
    ui.box.addEventListener("pointermove", (e) => {
      if (!last) return;
      const next = at(e);
      ctx.beginPath();
      ctx.moveTo(...last);
      ctx.lineTo(...next);
      ctx.stroke();
      last = next;
    });
    const end = () => {
      if (!last) return;
      last = null;
      read();
    };
    ui.box.addEventListener("pointerup", end);
    ui.box.addEventListener("pointercancel", end);
    ui.clear.addEventListener("click", () => {
      ctx.clearRect(0, 0, CANVAS, CANVAS);
      read();
    });
    ui.pick.addEventListener("click", () => load().then((model) => {
      sample = (sample + 1) % model.samples.labels.length;
      pickTest(ui, ctx, model, sample);
    }));
    // The weights load once the box is about to come into view (or at the first touch).
    root.lenetDigitWake = () => load().then((model) => {
      const r = model.record;
      ui.source.textContent = `The network: ${r.model}, seed ${r.seed}, trained in chapter 4 ` +
        `(test accuracy ${r.top1}%, record ${r.file}, commit ${r.commit}).`;
      if (ui.status.textContent.startsWith("Loading")) {
        ui.status.textContent = "Draw a digit in the box, or pick a test image.";
      }
    }, (err) => { ui.status.textContent = "Sorry: " + err.message + "."; });
  }

  /** Test image i: shown in the box, and read as it is (it is an MNIST digit already). */
  function pickTest(ui, ctx, model, i) {
    const digit = Float64Array.from(
      model.samples.images.subarray(i * FIELD * FIELD, (i + 1) * FIELD * FIELD), (v) => v / 255);
    const img = ctx.createImageData(CANVAS, CANVAS), k = CANVAS / FIELD;
    for (let y = 0; y < CANVAS; y++) {
      for (let x = 0; x < CANVAS; x++) {
        const v = digit[Math.floor(y / k) * FIELD + Math.floor(x / k)];
        img.data[4 * (y * CANVAS + x) + 3] = 255 * v;
      }
    }
    ctx.putImageData(img, 0, 0);
    return show(ui, model, digit, `Test image ${i + 1} (a ${model.samples.labels[i]})`);
  }

  function mountAll() {
    const roots = document.querySelectorAll("[data-digit-demo]");
    if (!roots.length) return;
    roots.forEach(mount);
    const watch = "IntersectionObserver" in window && new IntersectionObserver((seen) => {
      for (const s of seen) {
        if (s.isIntersecting) {
          watch.unobserve(s.target);
          s.target.lenetDigitWake();
        }
      }
    }, { rootMargin: "400px" });
    roots.forEach((r) => (watch ? watch.observe(r) : r.lenetDigitWake()));
  }

  // For the browser check (tests/test_digit_demo.py): it compares these with Python.
  window.lenetDigit = { preprocess, forward, load };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mountAll);
  } else {
    mountAll();
  }
})();
