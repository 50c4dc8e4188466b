/* attnlab interactive attention view: a head view (query tokens left, key tokens right, one colour
   per head) and a model view (a layer x head grid of pattern thumbnails). Reads the JSON in
   #attn-data; the array layout is documented in attnlab/viz/payload.py. Self-contained: no
   external scripts, fonts or network. The head view draws only the rows on screen, so it stays
   responsive for long inputs. */
(function () {
  "use strict";

  var ROW_H = 18;
  var PAD = 8;
  var MAX_LABEL = 24;
  var $ = function (id) { return document.getElementById(id); };
  var DATA = JSON.parse($("attn-data").textContent);

  // ------------------------------------------------------------------ data access
  function decode(b64, Type) {
    var bin = atob(b64);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Type(bytes.buffer);
  }

  var groups = DATA.groups.map(function (g) {
    return { meta: g, H: g.heads.length, L: g.layers.length, T: g.T, S: g.S, arrays: null, topCache: {} };
  });

  function arrays(G) {  // decoded lazily, once per group
    if (!G.arrays) {
      var g = G.meta;
      G.arrays = {
        rowmax: decode(g.rowmax, Float32Array),
        values: decode(g.values, Uint8Array),
        index: g.format === "topk" ? decode(g.index, Uint16Array) : null,
        thumb: decode(g.thumb.data, Uint8Array)
      };
    }
    return G.arrays;
  }

  function rowBase(G, li, h, i) { return (li * G.H + h) * G.T + i; }

  // [[key, weight], ...] of query row i (weights are probabilities)
  function rowOf(G, li, h, i) {
    var a = arrays(G), base = rowBase(G, li, h, i), rm = a.rowmax[base], out = [], v, t;
    if (G.meta.format === "dense") {
      var off = base * G.S;
      for (t = 0; t < G.S; t++) { v = a.values[off + t]; if (v) out.push([t, v / 255 * rm]); }
    } else {
      var k = G.meta.k, o = base * k;
      for (t = 0; t < k; t++) { v = a.values[o + t]; if (v) out.push([a.index[o + t], v / 255 * rm]); }
    }
    return out;
  }

  // [[query, weight], ...] of key column j
  function colOf(G, li, h, j, lo, hi) {
    var a = arrays(G), out = [], i, v;
    for (i = lo; i < hi; i++) {
      var base = rowBase(G, li, h, i), rm = a.rowmax[base];
      if (G.meta.format === "dense") {
        v = a.values[base * G.S + j];
        if (v) out.push([i, v / 255 * rm]);
      } else {
        var k = G.meta.k, o = base * k;
        for (var t = 0; t < k; t++) {
          if (a.index[o + t] === j) { v = a.values[o + t]; if (v) out.push([i, v / 255 * rm]); break; }
        }
      }
    }
    return out;
  }

  function topOf(G, li, h, i, n) {  // the n strongest keys of a row, cached
    var key = li + ":" + h + ":" + i;
    var hit = G.topCache[key];
    if (!hit) {
      hit = rowOf(G, li, h, i).sort(function (x, y) { return y[1] - x[1]; }).slice(0, 8);
      G.topCache[key] = hit;
    }
    return hit.slice(0, n);
  }

  function rowMax(G, li, h, i) { return arrays(G).rowmax[rowBase(G, li, h, i)] || 1e-12; }

  // ------------------------------------------------------------------ state and controls
  var state = { g: 0, li: 0, on: [], view: "head", hoverQ: null, hoverK: null, pinQ: null };

  function G() { return groups[state.g]; }
  function headColor(h) { return "hsl(" + Math.round((h * 137.508 + 210) % 360) + ", 68%, 44%)"; }
  function short(s) { s = String(s); return s.length > MAX_LABEL ? s.slice(0, MAX_LABEL - 1) + "\u2026" : s; }
  function show(s) {  // newlines and bare spaces made visible
    s = String(s).replace(/\n/g, "\u23ce");
    return s.trim() === "" && s.length ? s.replace(/ /g, "\u2423") : s;
  }

  function publish() {
    var d = document.body.dataset;
    d.group = G().meta.name;
    d.layer = String(G().meta.layers[state.li]);
    d.heads = state.on.map(function (h) { return G().meta.heads[h]; }).join(",");
    d.view = state.view;
  }

  function buildGroupSelect() {
    var sel = $("group");
    sel.textContent = "";
    groups.forEach(function (g, i) {
      var o = document.createElement("option");
      o.value = String(i);
      o.textContent = g.meta.name + (g.meta.binned ? " (binned)" : "");
      sel.appendChild(o);
    });
    sel.parentNode.style.display = groups.length > 1 ? "" : "none";
    sel.addEventListener("change", function () { setGroup(Number(sel.value)); });
  }

  function buildLayerSelect() {
    var sel = $("layer");
    sel.textContent = "";
    G().meta.layers.forEach(function (layer, li) {
      var o = document.createElement("option");
      o.value = String(li);
      o.textContent = String(layer);
      sel.appendChild(o);
    });
    sel.value = String(state.li);
  }

  function buildHeadChips() {
    var box = $("heads");
    box.textContent = "";
    G().meta.heads.forEach(function (head, h) {
      var label = document.createElement("label");
      label.className = "head";
      var box2 = document.createElement("input");
      box2.type = "checkbox";
      box2.id = "head-" + head;
      box2.checked = state.on.indexOf(h) >= 0;
      box2.addEventListener("change", function () {
        var on = state.on.filter(function (x) { return x !== h; });
        if (box2.checked) on.push(h);
        setHeads(on);
      });
      var sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = headColor(h);
      label.appendChild(box2);
      label.appendChild(sw);
      label.appendChild(document.createTextNode(String(head)));
      box.appendChild(label);
    });
    syncChips();
  }

  function syncChips() {
    G().meta.heads.forEach(function (head, h) {
      var input = $("head-" + head);
      if (!input) return;
      input.checked = state.on.indexOf(h) >= 0;
      input.parentNode.classList.toggle("off", !input.checked);
    });
  }

  function setGroup(i) {
    state.g = Math.max(0, Math.min(groups.length - 1, i));
    state.li = 0;
    state.on = G().meta.heads.map(function (_, h) { return h; });
    state.hoverQ = state.hoverK = state.pinQ = null;
    $("group").value = String(state.g);
    buildLayerSelect();
    buildHeadChips();
    sizeSpacer();
    $("hv-scroll").scrollTop = 0;
    if (state.view === "model") buildModelView();
    redraw();
  }

  function setLayer(li) {
    state.li = Math.max(0, Math.min(G().L - 1, li));
    $("layer").value = String(state.li);
    redraw();
  }

  function setHeads(on) {
    state.on = on.filter(function (h) { return h >= 0 && h < G().H; }).sort(function (a, b) { return a - b; });
    syncChips();
    redraw();
  }

  function setView(view) {
    state.view = view === "model" ? "model" : "head";
    $("head-view").hidden = state.view !== "head";
    $("model-view").hidden = state.view !== "model";
    $("tab-head").classList.toggle("active", state.view === "head");
    $("tab-model").classList.toggle("active", state.view === "model");
    if (state.view === "model") buildModelView();
    redraw();
  }

  // ------------------------------------------------------------------ head view
  var canvas = $("hv-canvas"), ctx = canvas.getContext("2d"), scroller = $("hv-scroll");
  var geom = { w: 0, h: 0, xL: 0, xR: 0, colW: 0 };

  function sizeSpacer() {
    $("hv-spacer").style.height = (Math.max(G().T, G().S) * ROW_H + 2 * PAD) + "px";
  }

  function sizeCanvas() {
    var dpr = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    if (w === 0 || h === 0) return false;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    geom.w = w - 14;  // leave the scroll bar alone
    geom.h = h;
    geom.colW = Math.max(90, Math.min(240, geom.w * 0.3));
    geom.xL = geom.colW;
    geom.xR = geom.w - geom.colW;
    return true;
  }

  function yOf(i) { return PAD + i * ROW_H + ROW_H / 2 - scroller.scrollTop; }

  function visible(n) {
    var first = Math.max(0, Math.floor((scroller.scrollTop - PAD) / ROW_H) - 1);
    var last = Math.min(n, Math.ceil((scroller.scrollTop + geom.h) / ROW_H) + 1);
    return [first, last];
  }

  function shadeTokens(weights, x, width, lo, hi) {  // weights: {index: value in [0, 1]}
    for (var i = lo; i < hi; i++) {
      var v = weights[i];
      if (!v) continue;
      ctx.fillStyle = "rgba(47, 95, 208, " + Math.min(0.85, v).toFixed(3) + ")";
      ctx.fillRect(x, yOf(i) - ROW_H / 2 + 1, width, ROW_H - 2);
    }
  }

  function drawLabels(labels, lo, hi, x, align, hot) {
    ctx.textAlign = align;
    ctx.textBaseline = "middle";
    for (var i = lo; i < hi; i++) {
      ctx.font = (i === hot ? "600 " : "") + "13px system-ui, sans-serif";
      ctx.fillStyle = i === hot ? "#000" : "#1d2330";
      ctx.fillText(short(show(labels[i])), x, yOf(i));
    }
  }

  function line(i, j, color, alpha, width) {
    ctx.globalAlpha = alpha;
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    ctx.moveTo(geom.xL + 6, yOf(i));
    ctx.lineTo(geom.xR - 6, yOf(j));
    ctx.stroke();
  }

  function drawHeadView() {
    if (!sizeCanvas()) return;
    var g = G(), meta = g.meta;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    var vq = visible(g.T), vk = visible(g.S);
    var qShade = {}, kShade = {};
    var nOn = Math.max(1, state.on.length);
    if (state.hoverQ !== null) {
      state.on.forEach(function (h) {
        var rm = rowMax(g, state.li, h, state.hoverQ);
        rowOf(g, state.li, h, state.hoverQ).forEach(function (e) { kShade[e[0]] = (kShade[e[0]] || 0) + e[1] / rm / nOn; });
      });
    } else if (state.hoverK !== null) {
      state.on.forEach(function (h) {
        colOf(g, state.li, h, state.hoverK, vq[0], vq[1]).forEach(function (e) {
          qShade[e[0]] = (qShade[e[0]] || 0) + e[1] / rowMax(g, state.li, h, e[0]) / nOn;
        });
      });
    }
    shadeTokens(qShade, 2, geom.xL - 2, vq[0], vq[1]);
    shadeTokens(kShade, geom.xR + 2, geom.colW - 4, vk[0], vk[1]);
    drawLines(g, vq);
    ctx.globalAlpha = 1;
    drawLabels(meta.queries, vq[0], vq[1], geom.xL - 4, "right", state.hoverQ);
    drawLabels(meta.keys, vk[0], vk[1], geom.xR + 4, "left", state.hoverK);
  }

  function drawLines(g, vq) {
    var li = state.li;
    state.on.forEach(function (h) {
      var color = headColor(h);
      if (state.hoverQ !== null) {
        var rm = rowMax(g, li, h, state.hoverQ);
        rowOf(g, li, h, state.hoverQ).forEach(function (e) {
          var r = e[1] / rm;
          if (r > 0.02) line(state.hoverQ, e[0], color, Math.min(1, 0.15 + 0.85 * r), 2);
        });
      } else if (state.hoverK !== null) {
        var lo = Math.max(0, vq[0] - 200), hi = Math.min(g.T, vq[1] + 200);
        colOf(g, li, h, state.hoverK, lo, hi).forEach(function (e) {
          var r = e[1] / rowMax(g, li, h, e[0]);
          if (r > 0.02) line(e[0], state.hoverK, color, Math.min(1, 0.15 + 0.85 * r), 2);
        });
      } else {
        for (var i = vq[0]; i < vq[1]; i++) {
          var rmi = rowMax(g, li, h, i);
          topOf(g, li, h, i, 3).forEach(function (e) {
            var r = e[1] / rmi;
            if (r > 0.05) line(i, e[0], color, 0.45 * r, 1);
          });
        }
      }
    });
  }

  function describe() {
    var g = G(), meta = g.meta, layer = meta.layers[state.li], parts = [];
    var heads = state.on.map(function (h) { return meta.heads[h]; });
    var head = "<b>" + escapeText(meta.name) + "</b> · layer <b>" + layer + "</b> · heads <b>" +
      (heads.length ? heads.join(", ") : "none") + "</b>";
    if (state.hoverQ !== null && state.on.length) {
      var sums = {};
      state.on.forEach(function (h) {
        rowOf(g, state.li, h, state.hoverQ).forEach(function (e) { sums[e[0]] = (sums[e[0]] || 0) + e[1] / state.on.length; });
      });
      var top = Object.keys(sums).map(Number).sort(function (a, b) { return sums[b] - sums[a]; }).slice(0, 4);
      top.forEach(function (j) { parts.push("\u201c" + escapeText(short(show(meta.keys[j]))) + "\u201d " + fmt(sums[j])); });
      return head + " · query <b>\u201c" + escapeText(short(show(meta.queries[state.hoverQ]))) + "\u201d</b> (#" +
        state.hoverQ + ") attends to " + parts.join(", ");
    }
    if (state.hoverK !== null) {
      return head + " · lines into key <b>\u201c" + escapeText(short(show(meta.keys[state.hoverK]))) + "\u201d</b> (#" + state.hoverK + ")";
    }
    return head + " · " + meta.T + " queries × " + meta.S + " keys" + (meta.binned ? " (binned)" : "") +
      " · hover a token to see its attention";
  }

  function fmt(w) { return w >= 0.01 ? w.toFixed(2) : w.toPrecision(2); }

  function escapeText(s) {
    return String(s).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;" }[c]; });
  }

  function pointer(ev) {
    var r = scroller.getBoundingClientRect();
    var x = ev.clientX - r.left, y = ev.clientY - r.top + scroller.scrollTop - PAD;
    var i = Math.floor(y / ROW_H), g = G();
    var q = x < geom.xL + 8 && i >= 0 && i < g.T ? i : null;
    var k = x > geom.xR - 8 && i >= 0 && i < g.S ? i : null;
    return { q: q, k: k };
  }

  scroller.addEventListener("mousemove", function (ev) {
    var p = pointer(ev);
    if (p.q !== state.hoverQ || p.k !== state.hoverK) { state.hoverQ = p.q; state.hoverK = p.k; schedule(); }
  });
  scroller.addEventListener("mouseleave", function () { state.hoverQ = state.hoverK = null; schedule(); });
  scroller.addEventListener("click", function (ev) {
    var p = pointer(ev);
    if (p.q !== null) state.pinQ = state.pinQ === p.q ? null : p.q;
    schedule();
  });
  scroller.addEventListener("scroll", function () { schedule(); });

  // ------------------------------------------------------------------ model view
  var CELL = 88;

  function colormap(v) {  // white -> deep blue
    var t = v / 255;
    return [Math.round(255 - 208 * t), Math.round(255 - 160 * t), Math.round(255 - 47 * t)];
  }

  function buildModelView() {
    var g = G(), meta = g.meta, grid = $("mv-grid");
    grid.textContent = "";
    CELL = g.H > 12 ? 64 : g.H > 6 ? 88 : 120;
    grid.style.gridTemplateColumns = "auto repeat(" + g.H + ", " + (CELL + 2) + "px)";
    grid.appendChild(document.createElement("span"));
    meta.heads.forEach(function (head, h) {
      var s = document.createElement("span");
      s.className = "rowlabel";
      s.style.color = headColor(h);
      s.textContent = "head " + head;
      grid.appendChild(s);
    });
    meta.layers.forEach(function (layer, li) {
      var lab = document.createElement("span");
      lab.className = "rowlabel";
      lab.textContent = "layer " + layer;
      grid.appendChild(lab);
      meta.heads.forEach(function (head, h) {
        var cell = document.createElement("div");
        cell.className = "cell";
        cell.dataset.layer = String(li);
        cell.dataset.head = String(h);
        cell.title = "layer " + layer + ", head " + head + " (click: open in the head view)";
        var c = document.createElement("canvas");
        c.width = CELL;
        c.height = CELL;
        cell.appendChild(c);
        cell.addEventListener("click", function () { state.li = li; $("layer").value = String(li); setHeads([h]); setView("head"); });
        grid.appendChild(cell);
      });
    });
  }

  function drawThumb(c, g, li, h) {
    var t = g.meta.thumb, a = arrays(g), n = t.rows * t.cols, off = (li * g.H + h) * n;
    var off2 = document.createElement("canvas");
    off2.width = t.cols;
    off2.height = t.rows;
    var octx = off2.getContext("2d"), img = octx.createImageData(t.cols, t.rows);
    for (var p = 0; p < n; p++) {
      var rgb = colormap(a.thumb[off + p]);
      img.data[4 * p] = rgb[0]; img.data[4 * p + 1] = rgb[1]; img.data[4 * p + 2] = rgb[2]; img.data[4 * p + 3] = 255;
    }
    octx.putImageData(img, 0, 0);
    var cx = c.getContext("2d");
    cx.imageSmoothingEnabled = false;
    cx.clearRect(0, 0, c.width, c.height);
    cx.drawImage(off2, 0, 0, c.width, c.height);
  }

  function drawRowBars(c, g, li, h, i) {  // one query's attention over the keys, as bars
    var cx = c.getContext("2d"), w = c.width, hgt = c.height, bins = new Float32Array(w);
    var rm = rowMax(g, li, h, i);
    rowOf(g, li, h, i).forEach(function (e) {
      var x = Math.min(w - 1, Math.floor(e[0] * w / g.S));
      bins[x] = Math.max(bins[x], e[1] / rm);
    });
    cx.clearRect(0, 0, w, hgt);
    cx.fillStyle = "#fff";
    cx.fillRect(0, 0, w, hgt);
    cx.fillStyle = headColor(h);
    for (var x = 0; x < w; x++) if (bins[x] > 0) cx.fillRect(x, hgt - bins[x] * (hgt - 2), 1, bins[x] * (hgt - 2));
  }

  function drawModelView() {
    var g = G(), q = state.pinQ;
    $("mv-note").textContent = q === null
      ? "Each cell is one head's attention pattern (queries down, keys across). Click a query token in the head view to see its row here; click a cell to open that head."
      : "Attention of query \u201c" + short(show(g.meta.queries[q])) + "\u201d (#" + q + ") over the keys, per head. Click it again in the head view to go back to patterns.";
    var cells = $("mv-grid").querySelectorAll(".cell");
    for (var n = 0; n < cells.length; n++) {
      var cell = cells[n], li = Number(cell.dataset.layer), h = Number(cell.dataset.head);
      cell.classList.toggle("current", li === state.li && state.on.indexOf(h) >= 0);
      if (q === null) drawThumb(cell.firstChild, g, li, h); else drawRowBars(cell.firstChild, g, li, h, q);
    }
  }

  // ------------------------------------------------------------------ drawing loop
  var pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; redraw(); });
  }

  function redraw() {
    publish();
    $("status").innerHTML = describe();
    if (state.view === "head") drawHeadView(); else drawModelView();
    document.body.dataset.ready = "1";
  }

  function timeRedraw(n) {  // mean milliseconds per redraw, for responsiveness checks
    var t0 = performance.now();
    for (var i = 0; i < n; i++) redraw();
    return (performance.now() - t0) / n;
  }

  $("layer").addEventListener("change", function () { setLayer(Number($("layer").value)); });
  $("all-heads").addEventListener("click", function () { setHeads(G().meta.heads.map(function (_, h) { return h; })); });
  $("no-heads").addEventListener("click", function () { setHeads([]); });
  $("tab-head").addEventListener("click", function () { setView("head"); });
  $("tab-model").addEventListener("click", function () { setView("model"); });
  window.addEventListener("resize", schedule);
  window.addEventListener("keydown", function (ev) {
    if (ev.target && ev.target.tagName === "SELECT") return;
    if (ev.key === "ArrowRight") setLayer(state.li + 1);
    if (ev.key === "ArrowLeft") setLayer(state.li - 1);
  });

  window.attnView = {
    state: state, setGroup: setGroup, setLayer: setLayer, setHeads: setHeads, setView: setView, redraw: redraw,
    timeRedraw: timeRedraw,
    hoverQuery: function (i) { state.hoverQ = i; state.hoverK = null; redraw(); },
    hoverKey: function (j) { state.hoverK = j; state.hoverQ = null; redraw(); },
    pinQuery: function (i) { state.pinQ = i; redraw(); }
  };

  buildGroupSelect();
  setGroup(0);
})();
