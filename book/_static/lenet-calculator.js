/*
 * LeNet-5 layer calculator (chapter 1, "Try it: a layer calculator").
 *
 * Plain JavaScript, no framework and no network: the book's static pages load this file on
 * every page, and it does nothing unless the page holds a container with the attribute
 * data-lenet-calculator. It computes exactly what lenet_utils.arithmetic computes:
 * output_size() and layer_counts() are line-for-line ports of the Python functions, and
 * RULES is a copy of lenet_utils.arithmetic.RULES (tests/test_calculator.py checks both).
 *
 * window.lenetCalculator exposes the arithmetic (compute, build) that the page itself uses.
 */
(function () {
  "use strict";

  // Copy of lenet_utils.arithmetic.RULES: keep the two identical (a test compares them).
  const RULES = {
    type: "{name}: {what} must be an int or a pair of ints (height, width), got {value}",
    kind: "{name}: kind must be 'conv', 'maxpool' or 'avgpool', got {value}",
    ceil_mode:
      "{name}: ceil_mode applies to pooling only (MaxPool2d, AvgPool2d); " +
      "a convolution always rounds down",
    avgpool_dilation:
      "{name}: AvgPool2d has no dilation, got {value} ({axis}); " +
      "use dilation 1, or MaxPool2d",
    size: "{name}: the input {axis} must be at least 1 pixel, got {value}",
    kernel: "{name}: the kernel {axis} must be at least 1, got {value}",
    stride: "{name}: stride must be positive, got {value} ({axis})",
    padding: "{name}: padding cannot be negative, got {value} ({axis})",
    dilation: "{name}: dilation must be positive, got {value} ({axis})",
    pool_padding:
      "{name}: padding {padding} is more than half the kernel {kernel}: PyTorch pads " +
      "pooling layers by at most kernel_size // 2 = {half} ({axis})",
    fit:
      "{name}: the kernel spans {span} pixels but the padded input {axis} is " +
      "{size} + 2x{padding} = {padded}; use a smaller kernel or dilation, or more padding",
    fit_ceil:
      "{name}: the kernel spans {span} pixels but the padded input {axis} is " +
      "{size} + 2x{padding} = {padded}; even with ceil_mode a window may overhang it " +
      "by at most stride - 1 = {overhang} pixel(s)",
    count: "{name}: {what} must be at least 1, got {value}",
    groups_divide:
      "{name}: {what} {value} is not divisible by groups {groups}; " +
      "PyTorch splits the channels into equal groups",
    exact:
      "{name}: (W - F + 2P) / S = ({width} - {kernel} + 2x{padding}) / {stride} is not " +
      "a whole number: the last {leftover} pixel(s) are not covered, and output_size " +
      "rounds down to {general} as PyTorch does",
  };

  const KINDS = { conv: "Conv2d", maxpool: "MaxPool2d", avgpool: "AvgPool2d" };
  const AXES = ["height", "width"];

  /** An impossible layer: the message is the rule's text, as Python's ValueError. */
  class LayerError extends Error {}
  /** Input the page cannot read (an empty field, text, a fraction). */
  class InputError extends Error {}

  function broken(rule, fields) {
    const text = RULES[rule].replace(/\{(\w+)\}/g, (_, key) => String(fields[key]));
    return new LayerError(text);
  }

  function pair(value) {
    return Array.isArray(value) ? [value[0], value[1]] : [value, value];
  }

  // Floor division for integers of either sign, as Python's //.
  function floorDiv(a, b) {
    return Math.floor(a / b);
  }

  /* ------------------------------------------------------------------------------------
   * The arithmetic: ports of lenet_utils.arithmetic, checks in the same order.
   * ---------------------------------------------------------------------------------- */

  /** One axis's output size, and how it was reached (for the page's worked line). */
  function outputAxis(size, kernel, stride, padding, dilation, ceilMode, name, axis) {
    const span = dilation * (kernel - 1) + 1;
    const padded = size + 2 * padding;
    const fit = { name, span, axis, size, padding, padded };
    if (!ceilMode) {
      if (span > padded) throw broken("fit", fit);
      return { out: floorDiv(padded - span, stride) + 1, dropped: false };
    }
    if (span > padded + stride - 1) {
      throw broken("fit_ceil", Object.assign(fit, { overhang: stride - 1 }));
    }
    let out = -floorDiv(-(padded - span), stride) + 1;
    // PyTorch's pooling_output_shape: the last window may not start in the right padding.
    const dropped = (out - 1) * stride >= size + padding;
    if (dropped) out -= 1;
    return { out, dropped };
  }

  /**
   * output_size(size, kernel_size, stride, padding, dilation, ceil_mode, kind, name):
   * each geometry argument a number or [height, width]; stride null means PyTorch's
   * default (1 for a convolution, the kernel for pooling). Returns per-axis details.
   */
  function outputSize(cfg) {
    const name = cfg.name === undefined ? "layer" : cfg.name;
    const kind = cfg.kind === undefined ? "conv" : cfg.kind;
    if (!Object.prototype.hasOwnProperty.call(KINDS, kind)) {
      throw broken("kind", { name, value: "'" + kind + "'" });
    }
    const pooling = kind !== "conv";
    let stride = cfg.stride;
    if (stride === null || stride === undefined) stride = pooling ? cfg.kernel_size : 1;
    const p = {
      size: pair(cfg.size),
      kernel: pair(cfg.kernel_size),
      stride: pair(stride),
      padding: pair(cfg.padding === undefined ? 0 : cfg.padding),
      dilation: pair(cfg.dilation === undefined ? 1 : cfg.dilation),
    };
    const ceilMode = Boolean(cfg.ceil_mode);
    if (ceilMode && !pooling) throw broken("ceil_mode", { name });
    if (kind === "avgpool") {
      for (let i = 0; i < 2; i++) {
        if (p.dilation[i] !== 1) {
          throw broken("avgpool_dilation", { name, value: p.dilation[i], axis: AXES[i] });
        }
      }
    }
    const lowest = { size: 1, kernel: 1, stride: 1, padding: 0, dilation: 1 };
    for (const rule of Object.keys(lowest)) {
      for (let i = 0; i < 2; i++) {
        if (p[rule][i] < lowest[rule]) {
          throw broken(rule, { name, axis: AXES[i], value: p[rule][i] });
        }
      }
    }
    if (pooling) {
      for (let i = 0; i < 2; i++) {
        const k = p.kernel[i];
        const half = floorDiv(k, 2);
        if (p.padding[i] > half) {
          throw broken("pool_padding", {
            name, padding: p.padding[i], kernel: k, half, axis: AXES[i],
          });
        }
      }
    }
    const axes = [0, 1].map((i) => {
      const r = outputAxis(
        p.size[i], p.kernel[i], p.stride[i], p.padding[i], p.dilation[i], ceilMode,
        name, AXES[i],
      );
      return Object.assign(r, {
        size: p.size[i], kernel: p.kernel[i], stride: p.stride[i],
        padding: p.padding[i], dilation: p.dilation[i], ceil: ceilMode,
      });
    });
    return axes;
  }

  function checkCount(value, what, name) {
    if (value < 1) throw broken("count", { name, what, value });
    return value;
  }

  function checkGroups(inChannels, outChannels, groups, name) {
    checkCount(inChannels, "in_channels", name);
    checkCount(outChannels, "out_channels", name);
    checkCount(groups, "groups", name);
    for (const [what, value] of [["in_channels", inChannels], ["out_channels", outChannels]]) {
      if (value % groups !== 0) {
        throw broken("groups_divide", { name, what, value, groups });
      }
    }
  }

  /**
   * layer_counts(): output shape, parameters, connections and MACs of one layer.
   * cfg: {kind, in_channels, size, kernel_size, stride, padding, dilation, ceil_mode,
   * out_channels, groups, bias, name}. Counts are BigInts (exact, like Python's ints).
   */
  function layerCounts(cfg) {
    const name = cfg.name === undefined ? "layer" : cfg.name;
    const kind = cfg.kind === undefined ? "conv" : cfg.kind;
    const inChannels = checkCount(cfg.in_channels, "in_channels", name);
    const [kh, kw] = pair(cfg.kernel_size);
    let params = 0n;
    const groups = cfg.groups === undefined ? 1 : cfg.groups;
    const bias = cfg.bias === undefined ? true : Boolean(cfg.bias);
    if (kind === "conv") {
      checkGroups(inChannels, cfg.out_channels, groups, name);
      params =
        BigInt(cfg.out_channels) * BigInt(inChannels / groups) * BigInt(kh) * BigInt(kw) +
        (bias ? BigInt(cfg.out_channels) : 0n);
    }
    const axes = outputSize(Object.assign({}, cfg, { name, kind }));
    const [oh, ow] = [axes[0].out, axes[1].out];
    const positions = BigInt(oh) * BigInt(ow);
    if (kind === "conv") {
      const macs =
        BigInt(inChannels / groups) * BigInt(kh) * BigInt(kw) *
        BigInt(cfg.out_channels) * positions;
      return {
        output_shape: [cfg.out_channels, oh, ow], params,
        connections: params * positions, macs, axes,
      };
    }
    return {
      output_shape: [inChannels, oh, ow], params: 0n,
      connections: BigInt(inChannels) * positions * BigInt(kh) * BigInt(kw),
      macs: 0n, axes,
    };
  }

  /** linear_params(): the checks and count of a fully connected layer. */
  function linearCounts(inFeatures, outFeatures, bias, name) {
    checkCount(inFeatures, "in_features", name);
    checkCount(outFeatures, "out_features", name);
    const weights = BigInt(inFeatures) * BigInt(outFeatures);
    const params = weights + (bias ? BigInt(outFeatures) : 0n);
    return { output_shape: [outFeatures], params, connections: params, macs: weights };
  }

  /** What the page shows for one layer: figures as decimal strings, or the rule broken. */
  function compute(cfg) {
    try {
      const r = layerCounts(cfg);
      return {
        ok: true, output_shape: r.output_shape, params: String(r.params),
        connections: String(r.connections), macs: String(r.macs),
      };
    } catch (err) {
      if (err instanceof LayerError) return { ok: false, error: err.message };
      throw err;
    }
  }

  /**
   * The LeNet-5 builder: {in_channels, size, layers: [{name, kind, maps | units,
   * kernel_size, stride, padding}]}. A linear layer reads the previous output flattened.
   * A layer after an impossible one is not computed ({blocked: name of the culprit}).
   */
  function build(net) {
    const rows = [];
    let shape = [net.in_channels, ...pair(net.size)];
    let culprit = null;
    for (const layer of net.layers) {
      if (culprit !== null) {
        rows.push({ name: layer.name, ok: false, blocked: culprit });
        continue;
      }
      try {
        let r;
        if (layer.kind === "linear") {
          const features = shape.reduce((a, b) => a * b, 1);
          r = linearCounts(features, layer.units, true, layer.name);
        } else {
          r = layerCounts({
            kind: layer.kind, name: layer.name, in_channels: shape[0],
            size: [shape[1], shape[2]], kernel_size: layer.kernel_size,
            stride: layer.stride, padding: layer.padding, dilation: 1,
            ceil_mode: false, out_channels: layer.maps, groups: 1, bias: true,
          });
        }
        shape = r.output_shape;
        rows.push({
          name: layer.name, ok: true, output_shape: r.output_shape,
          params: r.params, connections: r.connections, macs: r.macs,
        });
      } catch (err) {
        if (!(err instanceof LayerError)) throw err;
        culprit = layer.name;
        rows.push({ name: layer.name, ok: false, error: err.message });
      }
    }
    const total = { params: 0n, connections: 0n, macs: 0n };
    for (const r of rows) {
      if (!r.ok) continue;
      for (const key of Object.keys(total)) total[key] += r[key];
    }
    const asText = (r) => Object.assign({}, r, r.ok ? {
      params: String(r.params), connections: String(r.connections), macs: String(r.macs),
    } : {});
    return {
      rows: rows.map(asText),
      total: culprit === null ? {
        params: String(total.params), connections: String(total.connections),
        macs: String(total.macs),
      } : null,
      culprit,
    };
  }

  /* ------------------------------------------------------------------------------------
   * Reading the fields
   * ---------------------------------------------------------------------------------- */

  const LIMIT = 1000000; // keeps every size exact in JavaScript's numbers

  /** "3", "3,5", "3 x 5" or "(3, 5)" -> 3 or [3, 5]; negative numbers pass (the rules say
   * why they are impossible). Throws InputError with a message naming the field. */
  function parseDims(text, label, allowPair) {
    const t = String(text).trim();
    const example = allowPair
      ? "a whole number such as 3, or two (height,width) such as 3,5"
      : "a whole number such as 3";
    if (t === "") throw new InputError(label + ": the field is empty; enter " + example + ".");
    const m = /^\(?\s*([+-]?\d+)\s*(?:(?:,|x|X|\u00d7)\s*([+-]?\d+)\s*)?\)?$/.exec(t);
    if (!m || (m[2] !== undefined && !allowPair)) {
      throw new InputError(label + ": \u201c" + t + "\u201d is not " + example + ".");
    }
    const values = [m[1], m[2]].filter((v) => v !== undefined).map(Number);
    for (const v of values) {
      if (Math.abs(v) > LIMIT) {
        throw new InputError(
          label + ": " + v + " is too large for this calculator (at most 1,000,000).");
      }
    }
    return values.length === 2 ? values : values[0];
  }

  function formatCount(value) {
    return BigInt(value).toLocaleString("en-US");
  }

  function formatShape(shape, tight) {
    return shape.join(tight ? "\u00d7" : " \u00d7 ");
  }

  /* ------------------------------------------------------------------------------------
   * The page
   * ---------------------------------------------------------------------------------- */

  let uid = 0;

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function field(prefix, key, label, value, hint) {
    const id = prefix + "-" + key;
    const input = el("input", {
      id, type: "text", value, autocomplete: "off",
      spellcheck: "false", "data-field": key, className: "lenet-calc__input",
    });
    const children = [el("label", { for: id, text: label }), input];
    if (hint) {
      const hintId = id + "-hint";
      input.setAttribute("aria-describedby", hintId);
      children.push(el("span", { id: hintId, className: "lenet-calc__hint", text: hint }));
    }
    return el("div", { className: "lenet-calc__field" }, children);
  }

  function checkbox(prefix, key, label, checked) {
    const id = prefix + "-" + key;
    return el("div", { className: "lenet-calc__field lenet-calc__check" }, [
      el("input", { id, type: "checkbox", checked, "data-field": key }),
      el("label", { for: id, text: label }),
    ]);
  }

  /** The one-layer calculator. */
  function layerCalculator(prefix) {
    const kindId = prefix + "-kind";
    const select = el("select", { id: kindId, "data-field": "kind" }, [
      el("option", { value: "conv", text: "Convolution (nn.Conv2d)" }),
      el("option", { value: "maxpool", text: "Max pooling (nn.MaxPool2d)" }),
      el("option", { value: "avgpool", text: "Average pooling (nn.AvgPool2d)" }),
    ]);
    const pairHint = "one number, or height,width";
    const form = el("form", { className: "lenet-calc__form", novalidate: true }, [
      el("fieldset", {}, [
        el("legend", { text: "Input" }),
        field(prefix, "size", "Size (pixels)", "32", pairHint),
        field(prefix, "in_channels", "Channels", "1"),
      ]),
      el("fieldset", {}, [
        el("legend", { text: "Layer" }),
        el("div", { className: "lenet-calc__field lenet-calc__wide" }, [
          el("label", { for: kindId, text: "Type" }), select,
        ]),
        field(prefix, "out_channels", "Output maps", "6", "convolution only"),
        field(prefix, "kernel_size", "Kernel", "5", pairHint),
        field(prefix, "stride", "Stride", "1", "pooling in PyTorch: usually the kernel"),
        field(prefix, "padding", "Padding", "0", pairHint),
        field(prefix, "dilation", "Dilation", "1", pairHint),
        field(prefix, "groups", "Groups", "1", "convolution only"),
        checkbox(prefix, "bias", "Bias (convolution)", true),
        checkbox(prefix, "ceil_mode", "ceil_mode (pooling)", false),
      ]),
    ]);
    const result = el("div", {
      className: "lenet-calc__result", role: "status", "aria-live": "polite",
      "aria-atomic": "true", "data-out": "result",
    });
    const section = el("section", {
      className: "lenet-calc__layer", "aria-labelledby": prefix + "-title",
    }, [
      el("h3", { id: prefix + "-title", text: "One layer" }),
      el("p", {
        text: "Set a layer and its input; the output size and the counts follow " +
          "the conventions of lenet_utils.arithmetic (and PyTorch's rules).",
      }),
      form, result,
    ]);

    const get = (key) => form.querySelector('[data-field="' + key + '"]');

    function readConfig() {
      const kind = get("kind").value;
      const conv = kind === "conv";
      const cfg = { kind, name: KINDS[kind] };
      cfg.size = parseDims(get("size").value, "Size", true);
      cfg.in_channels = parseDims(get("in_channels").value, "Channels", false);
      if (conv) {
        cfg.out_channels = parseDims(get("out_channels").value, "Output maps", false);
        cfg.groups = parseDims(get("groups").value, "Groups", false);
        cfg.bias = get("bias").checked;
      }
      cfg.kernel_size = parseDims(get("kernel_size").value, "Kernel", true);
      cfg.stride = parseDims(get("stride").value, "Stride", true);
      cfg.padding = parseDims(get("padding").value, "Padding", true);
      cfg.dilation = parseDims(get("dilation").value, "Dilation", true);
      cfg.ceil_mode = conv ? false : get("ceil_mode").checked;
      return cfg;
    }

    function workedLine(a) {
      const [open, close] = a.ceil ? ["\u2308", "\u2309"] : ["\u230a", "\u230b"];
      let text = open + "(" + a.size + " + 2\u00d7" + a.padding + " \u2212 " + a.dilation +
        "\u00d7(" + a.kernel + " \u2212 1) \u2212 1) / " + a.stride + close + " + 1";
      if (a.dropped) {
        text += " \u2212 1 (the last window would start in the right-hand padding)";
      }
      return text + " = " + a.out;
    }

    function update() {
      const conv = get("kind").value === "conv";
      for (const key of ["out_channels", "groups", "bias"]) get(key).disabled = !conv;
      get("ceil_mode").disabled = conv;
      result.replaceChildren();
      let cfg;
      try {
        cfg = readConfig();
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        result.append(el("p", {
          className: "lenet-calc__error", "data-out": "error", text: err.message,
        }));
        return;
      }
      let r;
      try {
        r = layerCounts(cfg);
      } catch (err) {
        if (!(err instanceof LayerError)) throw err;
        result.append(el("p", { className: "lenet-calc__error", "data-out": "error" }, [
          el("strong", { text: "Impossible layer. " }),
          el("span", { "data-out": "rule", text: err.message }),
        ]));
        return;
      }
      const rows = [
        ["Output (maps \u00d7 height \u00d7 width)", "output", formatShape(r.output_shape)],
        ["Parameters", "params", formatCount(r.params)],
        ["Connections", "connections", formatCount(r.connections)],
        ["Multiply-accumulates", "macs", formatCount(r.macs)],
      ];
      const list = el("dl", { className: "lenet-calc__figures" });
      for (const [label, key, value] of rows) {
        list.append(el("dt", { text: label }), el("dd", { "data-out": key, text: value }));
      }
      const same = ["size", "kernel", "stride", "padding", "dilation"].every(
        (k) => r.axes[0][k] === r.axes[1][k]);
      const work = el("p", { className: "lenet-calc__work", "data-out": "work" });
      if (same) {
        work.textContent = "Height and width: " + workedLine(r.axes[0]);
      } else {
        work.append("Height: " + workedLine(r.axes[0]), el("br"),
          "Width: " + workedLine(r.axes[1]));
      }
      result.append(list, work);
    }

    form.addEventListener("input", update);
    form.addEventListener("change", update);
    form.addEventListener("submit", (event) => event.preventDefault());
    update();
    return section;
  }

  /** The paper's seven layers in their modern form: 61,706 parameters on 1x32x32. */
  const LENET5 = [
    { name: "C1", kind: "conv", maps: "6", kernel_size: "5", stride: "1", padding: "0" },
    { name: "S2", kind: "maxpool", kernel_size: "2", stride: "2", padding: "0" },
    { name: "C3", kind: "conv", maps: "16", kernel_size: "5", stride: "1", padding: "0" },
    { name: "S4", kind: "maxpool", kernel_size: "2", stride: "2", padding: "0" },
    { name: "C5", kind: "conv", maps: "120", kernel_size: "5", stride: "1", padding: "0" },
    { name: "F6", kind: "linear", units: "84" },
    { name: "output", kind: "linear", units: "10" },
  ];
  const TYPE_NAMES = { conv: "convolution", maxpool: "max pool", linear: "linear" };

  /** The LeNet-5 builder: seven editable rows and their live table. */
  function lenetBuilder(prefix) {
    const inputs = el("div", { className: "lenet-calc__inline" }, [
      field(prefix, "in_channels", "Input channels", "1"),
      field(prefix, "size", "Input size (pixels)", "32", "one number, or height,width"),
    ]);
    const captionId = prefix + "-caption";
    // Soft hyphens (\u00ad) let the long headers break, so the table fits the page.
    const headers = ["Layer", "Maps / units", "Kernel", "Stride", "Pad\u00adding",
      "Output", "Param\u00adeters", "Connec\u00adtions", "MACs"];
    const head = el("tr", {}, headers.map((h) => el("th", { scope: "col", text: h })));
    const body = el("tbody");
    const cellInput = (layer, key, label) => el("td", {}, [el("input", {
      type: "text", value: layer[key], "aria-label": layer.name + " " + label,
      "data-layer": layer.name, "data-field": key, className: "lenet-calc__cell",
      autocomplete: "off", spellcheck: "false",
    })]);
    for (const layer of LENET5) {
      const tr = el("tr", { "data-row": layer.name }, [
        el("th", { scope: "row" }, [
          layer.name, el("span", { className: "lenet-calc__kind", text: TYPE_NAMES[layer.kind] }),
        ]),
      ]);
      if (layer.kind === "conv") tr.append(cellInput(layer, "maps", "maps"));
      else if (layer.kind === "linear") tr.append(cellInput(layer, "units", "units"));
      else tr.append(el("td", { className: "lenet-calc__same", text: "as input" }));
      if (layer.kind === "linear") {
        tr.append(el("td", { colspan: "3", className: "lenet-calc__same",
          text: "every input", "data-label": "Kernel, stride, padding" }));
      } else {
        tr.append(cellInput(layer, "kernel_size", "kernel"),
          cellInput(layer, "stride", "stride"), cellInput(layer, "padding", "padding"));
      }
      tr.dataset.fixed = String(tr.children.length); // cells kept on every update
      body.append(tr);
    }
    const foot = el("tfoot", {}, [el("tr", { "data-row": "total", "data-fixed": "1" }, [
      el("th", { scope: "row", colspan: "6", text: "Total" }),
    ])]);
    const table = el("table", { className: "lenet-calc__table" }, [
      el("caption", { id: captionId,
        text: "LeNet-5 (modern: dense C3, max pooling, linear output)" }),
      el("thead", {}, [head]), body, foot,
    ]);
    const wrapper = el("div", {
      className: "lenet-calc__scroll", role: "region", tabindex: "0",
      "aria-labelledby": captionId,
    }, [table]);
    const summary = el("p", {
      className: "lenet-calc__summary", role: "status", "aria-live": "polite",
      "aria-atomic": "true", "data-out": "summary",
    });
    const reset = el("button", { type: "button", className: "lenet-calc__button",
      text: "Reset to the modern LeNet-5" });
    const section = el("section", {
      className: "lenet-calc__builder", "aria-labelledby": prefix + "-title",
    }, [
      el("h3", { id: prefix + "-title", text: "LeNet-5, layer by layer" }),
      el("p", {
        text: "Change any layer (C1 to 5\u00d75 with padding 2, C3 to 32 maps, a bigger " +
          "input...) and every later size and count follows. A layer that becomes " +
          "impossible says which rule it breaks.",
      }),
      inputs, wrapper, summary, reset,
    ]);

    function readNet() {
      const value = (layer, key) => section.querySelector(
        '[data-layer="' + layer + '"][data-field="' + key + '"]').value;
      const top = (key) => inputs.querySelector('[data-field="' + key + '"]').value;
      const net = {
        in_channels: parseDims(top("in_channels"), "Input channels", false),
        size: parseDims(top("size"), "Input size", true),
        layers: [],
      };
      for (const layer of LENET5) {
        const row = { name: layer.name, kind: layer.kind };
        if (layer.kind === "linear") {
          row.units = parseDims(value(layer.name, "units"), layer.name + " units", false);
        } else {
          if (layer.kind === "conv") {
            row.maps = parseDims(value(layer.name, "maps"), layer.name + " maps", false);
          }
          for (const [key, label] of [["kernel_size", "kernel"], ["stride", "stride"],
            ["padding", "padding"]]) {
            row[key] = parseDims(value(layer.name, key), layer.name + " " + label, true);
          }
        }
        net.layers.push(row);
      }
      return net;
    }

    function fillRow(tr, cells) {
      while (tr.children.length > Number(tr.dataset.fixed)) {
        tr.lastElementChild.remove();
      }
      tr.append(...cells);
      // On a phone the rows stack as cards (lenet-calculator.css): each one-column cell
      // shows its column's name, so the card reads without the header row.
      let column = 0;
      for (const cell of tr.children) {
        const span = Number(cell.getAttribute("colspan") || 1);
        if (cell.tagName === "TD" && span === 1) {
          cell.dataset.label = headers[column].replace(/\u00ad/g, "");
        }
        column += span;
      }
    }

    function figures(r) {
      return [
        el("td", { "data-out": "output", text: formatShape(r.output_shape, true) }),
        el("td", { "data-out": "params", text: formatCount(r.params) }),
        el("td", { "data-out": "connections", text: formatCount(r.connections) }),
        el("td", { "data-out": "macs", text: formatCount(r.macs) }),
      ];
    }

    function update() {
      const rows = section.querySelectorAll("tbody tr");
      const totalRow = foot.querySelector("tr");
      let net;
      try {
        net = readNet();
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        for (const tr of rows) {
          fillRow(tr, [el("td", { colspan: "4", className: "lenet-calc__same", text: "\u2014" })]);
        }
        fillRow(totalRow, [el("td", { colspan: "3", text: "\u2014" })]);
        summary.replaceChildren(el("span", {
          className: "lenet-calc__error", "data-out": "error", text: err.message,
        }));
        return;
      }
      const out = build(net);
      out.rows.forEach((r, i) => {
        if (r.ok) fillRow(rows[i], figures(r));
        else if (r.error) {
          fillRow(rows[i], [el("td", {
            colspan: "4", className: "lenet-calc__error", "data-out": "error",
            text: r.error,
          })]);
        } else {
          fillRow(rows[i], [el("td", {
            colspan: "4", className: "lenet-calc__same", "data-out": "blocked",
            text: "\u2014 (needs a possible " + r.blocked + ")",
          })]);
        }
      });
      if (out.total) {
        fillRow(totalRow, [
          el("td", { "data-out": "params", text: formatCount(out.total.params) }),
          el("td", { "data-out": "connections", text: formatCount(out.total.connections) }),
          el("td", { "data-out": "macs", text: formatCount(out.total.macs) }),
        ]);
        summary.textContent = "Total: " + formatCount(out.total.params) + " parameters, " +
          formatCount(out.total.connections) + " connections, " +
          formatCount(out.total.macs) + " multiply-accumulates.";
      } else {
        fillRow(totalRow, [el("td", { colspan: "3", text: "\u2014" })]);
        const bad = out.rows.find((r) => r.error);
        summary.replaceChildren(el("span", {
          className: "lenet-calc__error", "data-out": "error",
          text: "No total: " + bad.error,
        }));
      }
    }

    section.addEventListener("input", update);
    reset.addEventListener("click", () => {
      for (const layer of LENET5) {
        for (const input of section.querySelectorAll('[data-layer="' + layer.name + '"]')) {
          input.value = layer[input.dataset.field];
        }
      }
      inputs.querySelector('[data-field="in_channels"]').value = "1";
      inputs.querySelector('[data-field="size"]').value = "32";
      update();
    });
    update();
    return section;
  }

  function mount(container) {
    if (container.dataset.lenetMounted) return;
    container.dataset.lenetMounted = "yes";
    uid += 1;
    const prefix = "lenet-calc" + uid;
    container.replaceChildren(
      layerCalculator(prefix + "-layer"),
      lenetBuilder(prefix + "-net"),
    );
    container.classList.add("lenet-calc");
  }

  window.lenetCalculator = {
    RULES, KINDS, LENET5, compute, build, outputSize, parseDims,
    mountAll() {
      document.querySelectorAll("[data-lenet-calculator]").forEach(mount);
    },
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", window.lenetCalculator.mountAll);
  } else {
    window.lenetCalculator.mountAll();
  }
})();
