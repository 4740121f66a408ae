(function () {
  "use strict";
  // cnnlens explorer: every sample with every method's map, drawn from #explorer-data.
  // Data is text: names are written with textContent, never parsed as markup.
  var source = document.getElementById("explorer-data");
  var app = document.getElementById("explorer-app");
  if (!source || !app) { return; }
  var D = JSON.parse(source.textContent);
  function bytes(b64) {
    var s = atob(b64), a = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) { a[i] = s.charCodeAt(i); }
    return a;
  }
  function make(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function inflate(b64) {  // maps travel deflated (zlib); the browser inflates them
    var stream = new Blob([bytes(b64)]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buf) { return new Uint8Array(buf); });
  }
  Promise.all(D.methods.map(function (m) { return inflate(D.maps[m].deflate); }))
    .then(start, function (err) {
      app.hidden = false;
      app.textContent = "The explorer could not read its maps: " + err;
      throw err;
    });

  function start(inflated) {
    var N = D.index.length;
    var PAGE = 48, CARD_PX = 104, BIG_PX = 288, SIG_W = 200, SIG_H = 52, BIG_SIG_W = 760;
    var BIG_SIG_H = 150, LINE_COLOURS = ["#111", "#7a2", "#a27", "#27a"];

    var LUT = bytes(D.cmap);
    var MAPS = {};
    D.methods.forEach(function (m, k) {
      var shape = D.maps[m].shape;
      MAPS[m] = { shape: shape, size: shape.reduce(function (a, b) { return a * b; }, 1),
                  data: inflated[k] };
    });
    var SIG = D.signals ? { c: D.signals.channels, l: D.signals.length,
                            data: bytes(D.signals.data) } : null;
    var hasLabels = D.label.some(function (v) { return v >= 0; });

    function className(c) {
      if (c < 0) { return "?"; }
      return c < D.classes.length ? D.classes[c] : String(c);
    }
    function isWrong(i) { return D.label[i] >= 0 && D.label[i] !== D.pred[i]; }

    // ---- sort keys: "index", "conf", "dis", "metric|<key>|<method>" -------------------------
    var SORTS = [["index", "sample index"], ["conf", "confidence"]];
    if (D.disagreement) { SORTS.push(["dis", "disagreement between methods (1 − rank correlation)"]); }
    var METRIC = {};
    D.metrics.forEach(function (spec) {
      Object.keys(spec.values).forEach(function (m) {
        var key = "metric|" + spec.key + "|" + m;
        METRIC[key] = { spec: spec, method: m };
        SORTS.push([key, m + " · " + spec.label]);
      });
    });
    function sortValue(key, i) {
      if (key === "conf") { return D.conf[i]; }
      if (key === "dis") { return D.disagreement[i]; }
      if (METRIC[key]) { return METRIC[key].spec.values[METRIC[key].method][i]; }
      return D.index[i];
    }
    function shownValue(key, i) {
      var v = sortValue(key, i);
      if (v === null || v === undefined) { return "–"; }
      if (METRIC[key]) {
        var spec = METRIC[key].spec;
        return (v * spec.scale).toFixed(spec.digits);
      }
      return key === "index" ? String(v) : v.toFixed(4);
    }

    // ---- state, kept in the URL fragment (#explorer?t=..&p=..) -----------------------------
    function defaults() {
      return { t: "", p: "", c: "", s: "index", d: "asc", o: Math.round(100 * D.alpha), pg: 0,
               open: null };
    }
    var state = defaults();
    function readHash() {
      var h = location.hash;
      if (h.indexOf("#explorer?") !== 0) { return false; }
      var q = new URLSearchParams(h.slice("#explorer?".length));
      state = defaults();
      ["t", "p", "c", "s", "d"].forEach(function (k) { if (q.has(k)) { state[k] = q.get(k); } });
      if (q.has("o")) { state.o = Math.max(0, Math.min(100, parseInt(q.get("o"), 10) || 0)); }
      if (q.has("pg")) { state.pg = Math.max(0, parseInt(q.get("pg"), 10) || 0); }
      state.open = q.has("open") ? parseInt(q.get("open"), 10) : null;
      if (!SORTS.some(function (s) { return s[0] === state.s; })) { state.s = "index"; }
      if (state.d !== "desc") { state.d = "asc"; }
      return true;
    }
    function writeHash() {
      var q = new URLSearchParams();
      ["t", "p", "c"].forEach(function (k) { if (state[k] !== "") { q.set(k, state[k]); } });
      q.set("s", state.s); q.set("d", state.d); q.set("o", String(state.o));
      q.set("pg", String(state.pg));
      if (state.open !== null) { q.set("open", String(state.open)); }
      history.replaceState(null, "", "#explorer?" + q.toString());
    }

    function order() {
      var rows = [];
      for (var i = 0; i < N; i++) {
        if (state.t !== "" && D.label[i] !== +state.t) { continue; }
        if (state.p !== "" && D.pred[i] !== +state.p) { continue; }
        if (state.c === "wrong" && !isWrong(i)) { continue; }
        if (state.c === "correct" && (D.label[i] < 0 || isWrong(i))) { continue; }
        rows.push(i);
      }
      var sign = state.d === "desc" ? -1 : 1;
      rows.sort(function (a, b) {
        var va = sortValue(state.s, a), vb = sortValue(state.s, b);
        var na = va === null || va === undefined, nb = vb === null || vb === undefined;
        if (na || nb) { return na === nb ? a - b : (na ? 1 : -1); }  // missing values last
        return va === vb ? a - b : sign * (va < vb ? -1 : 1);
      });
      return rows;
    }

    // ---- drawing ------------------------------------------------------------------------------
    var images = {};
    function withImage(i, done) {
      var img = images[i];
      if (!img) {
        img = images[i] = new Image();
        img.src = D.thumbs[i];
      }
      if (img.complete && img.naturalWidth) { done(img); } else { img.addEventListener("load", function () { done(img); }); }
    }
    function mapValue(m, i, fy, fx) {
      // bilinear, align_corners=False (as the engine upsamples), of sample i's map at (fy, fx)
      var shape = m.shape, off = i * m.size, h = shape.length === 2 ? shape[0] : 1;
      var w = shape.length === 2 ? shape[1] : shape[0];
      var y = Math.min(Math.max(fy * h - 0.5, 0), h - 1), x = Math.min(Math.max(fx * w - 0.5, 0), w - 1);
      var y0 = Math.floor(y), x0 = Math.floor(x), y1 = Math.min(y0 + 1, h - 1), x1 = Math.min(x0 + 1, w - 1);
      var wy = y - y0, wx = x - x0, d = m.data;
      var top = d[off + y0 * w + x0] * (1 - wx) + d[off + y0 * w + x1] * wx;
      var bottom = d[off + y1 * w + x0] * (1 - wx) + d[off + y1 * w + x1] * wx;
      return Math.round(top * (1 - wy) + bottom * wy);
    }
    function drawImage(canvas, i, method, px) {
      withImage(i, function (img) {
        var s = px / Math.max(img.naturalWidth, img.naturalHeight);
        var W = Math.max(1, Math.round(img.naturalWidth * s)), H = Math.max(1, Math.round(img.naturalHeight * s));
        canvas.width = W; canvas.height = H;
        var ctx = canvas.getContext("2d");
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(img, 0, 0, W, H);
        if (!method) { return; }
        var m = MAPS[method], a = state.o / 100, im = ctx.getImageData(0, 0, W, H), p = im.data;
        for (var y = 0; y < H; y++) {
          for (var x = 0; x < W; x++) {
            var v = 3 * mapValue(m, i, (y + 0.5) / H, (x + 0.5) / W), k = 4 * (y * W + x);
            p[k] = (1 - a) * p[k] + a * LUT[v];
            p[k + 1] = (1 - a) * p[k + 1] + a * LUT[v + 1];
            p[k + 2] = (1 - a) * p[k + 2] + a * LUT[v + 2];
            p[k + 3] = 255;
          }
        }
        ctx.putImageData(im, 0, 0);
      });
    }
    function drawSignal(canvas, i, method, W, H) {
      canvas.width = W; canvas.height = H;
      var ctx = canvas.getContext("2d"), a = state.o / 100;
      ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
      if (method) {
        var m = MAPS[method];
        for (var x = 0; x < W; x++) {
          var v = 3 * mapValue(m, i, 0.5, (x + 0.5) / W);
          ctx.fillStyle = "rgba(" + LUT[v] + "," + LUT[v + 1] + "," + LUT[v + 2] + "," + a + ")";
          ctx.fillRect(x, 0, 1, H);
        }
      }
      var n = SIG.l, off = i * SIG.c * n;
      for (var c = 0; c < SIG.c; c++) {
        ctx.strokeStyle = LINE_COLOURS[c % LINE_COLOURS.length];
        ctx.lineWidth = 1.2;
        ctx.beginPath();
        for (var t = 0; t < n; t++) {
          var px = (t + 0.5) * W / n, py = H - 3 - SIG.data[off + c * n + t] / 255 * (H - 6);
          if (t === 0) { ctx.moveTo(px, py); } else { ctx.lineTo(px, py); }
        }
        ctx.stroke();
      }
    }
    function panel(i, method, big) {
      var fig = make("figure"), canvas = make("canvas");
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", (method || "input") + " of sample " + D.index[i]);
      if (SIG) {
        drawSignal(canvas, i, method, big ? BIG_SIG_W : SIG_W, big ? BIG_SIG_H : SIG_H);
      } else {
        drawImage(canvas, i, method, big ? BIG_PX : CARD_PX);
      }
      fig.appendChild(canvas);
      fig.appendChild(make("figcaption", "", method || "input"));
      return fig;
    }
    function caption(i) {
      var cap = make("div", "cap");
      cap.appendChild(make("strong", "", "#" + D.index[i]));
      if (D.names) { cap.appendChild(make("span", "name", " " + D.names[i])); }
      var conf = D.conf[i] === null ? "–" : D.conf[i].toFixed(3);
      var text = (hasLabels ? " true " + className(D.label[i]) + " →" : "") + " predicted " +
        className(D.pred[i]) + " (" + conf + ")";
      cap.appendChild(make("span", isWrong(i) ? "wrong" : "", text));
      return cap;
    }

    // ---- controls ---------------------------------------------------------------------------
    function select(id, label, options, key) {
      var wrap = make("label", "", label + " "), s = make("select");
      s.id = id;
      options.forEach(function (o) { var opt = make("option", "", o[1]); opt.value = o[0]; s.appendChild(opt); });
      s.addEventListener("change", function () { state[key] = s.value; state.pg = 0; update(); });
      wrap.appendChild(s);
      return wrap;
    }
    var classOptions = [["", "all"]].concat(D.classes.map(function (c, k) { return [String(k), c]; }));
    var controls = make("div", "controls");
    if (hasLabels) {
      controls.appendChild(select("explorer-true", "true class", classOptions, "t"));
    }
    controls.appendChild(select("explorer-pred", "predicted class", classOptions, "p"));
    if (hasLabels) {
      controls.appendChild(select("explorer-correct", "", [["", "correct and wrong"],
        ["correct", "correct only"], ["wrong", "wrong only"]], "c"));
    }
    controls.appendChild(select("explorer-sort", "sort by", SORTS, "s"));
    var dir = make("button", "", "");
    dir.id = "explorer-dir"; dir.type = "button";
    dir.addEventListener("click", function () { state.d = state.d === "asc" ? "desc" : "asc"; state.pg = 0; update(); });
    controls.appendChild(dir);
    var opacityLabel = make("label", "", "map opacity ");
    var opacity = make("input");
    opacity.type = "range"; opacity.min = "0"; opacity.max = "100"; opacity.id = "explorer-opacity";
    opacity.addEventListener("input", function () { state.o = +opacity.value; redraw(); writeHash(); });
    opacityLabel.appendChild(opacity);
    controls.appendChild(opacityLabel);
    var count = make("span", "count");
    count.id = "explorer-count";
    count.setAttribute("aria-live", "polite");
    controls.appendChild(count);
    var pager = make("div", "pager"), prev = make("button", "", "◀ previous"),
        next = make("button", "", "next ▶"), pageText = make("span");
    prev.type = next.type = "button";
    prev.addEventListener("click", function () { state.pg -= 1; update(); });
    next.addEventListener("click", function () { state.pg += 1; update(); });
    pager.appendChild(prev); pager.appendChild(pageText); pager.appendChild(next);
    var cards = make("div", SIG ? "cards signals" : "cards");
    cards.id = "explorer-cards";
    var modal = make("div", "modal"), sheet = make("div", "sheet");
    modal.id = "explorer-modal";
    modal.hidden = true;
    modal.setAttribute("role", "dialog");
    modal.setAttribute("aria-modal", "true");
    modal.appendChild(sheet);
    modal.addEventListener("click", function (ev) { if (ev.target === modal) { close(); } });
    app.appendChild(controls); app.appendChild(pager); app.appendChild(cards); app.appendChild(modal);

    // ---- rendering ----------------------------------------------------------------------------
    var list = [];
    function update() {
      list = order();
      var pages = Math.max(1, Math.ceil(list.length / PAGE));
      state.pg = Math.min(Math.max(0, state.pg), pages - 1);
      ["t", "p", "c", "s"].forEach(function (k) {
        var s = document.getElementById({ t: "explorer-true", p: "explorer-pred",
                                          c: "explorer-correct", s: "explorer-sort" }[k]);
        if (s) { s.value = state[k]; }
      });
      dir.textContent = state.d === "asc" ? "ascending ↑" : "descending ↓";
      opacity.value = String(state.o);
      count.textContent = list.length + " of " + N + " samples";
      pageText.textContent = " page " + (state.pg + 1) + " of " + pages + " ";
      prev.disabled = state.pg === 0; next.disabled = state.pg >= pages - 1;
      cards.textContent = "";
      list.slice(state.pg * PAGE, (state.pg + 1) * PAGE).forEach(function (i) { cards.appendChild(card(i)); });
      if (state.open !== null) { open(state.open); } else { writeHash(); }
    }
    function card(i) {
      var c = make("div", "card" + (isWrong(i) ? " wrong" : ""));
      c.tabIndex = 0;
      c.dataset.index = String(D.index[i]);
      var v = sortValue(state.s, i);
      c.dataset.value = v === null || v === undefined ? "" : String(v);
      c.appendChild(caption(i));
      var row = make("div", SIG ? "col" : "row");
      row.appendChild(panel(i, null, false));
      D.methods.forEach(function (m) { row.appendChild(panel(i, m, false)); });
      c.appendChild(row);
      if (state.s !== "index") {
        var label = SORTS.filter(function (s) { return s[0] === state.s; })[0][1];
        c.appendChild(make("div", "val", label + ": " + shownValue(state.s, i)));
      }
      c.addEventListener("click", function () { open(D.index[i]); });
      c.addEventListener("keydown", function (ev) {
        // preventDefault: the same Enter must not also press the close button focused by open()
        if (ev.key === "Enter") { ev.preventDefault(); open(D.index[i]); }
      });
      return c;
    }
    function redraw() {
      Array.prototype.forEach.call(cards.children, function (c) {
        var i = D.index.indexOf(+c.dataset.index), row = c.querySelector(".row, .col");
        row.textContent = "";
        row.appendChild(panel(i, null, false));
        D.methods.forEach(function (m) { row.appendChild(panel(i, m, false)); });
      });
      if (state.open !== null) { open(state.open); }
    }
    function open(sample) {
      var i = D.index.indexOf(sample);
      if (i < 0) { state.open = null; writeHash(); return; }
      state.open = sample;
      sheet.textContent = "";
      var bar = make("div", "bar"), back = make("button", "", "◀"), fwd = make("button", "", "▶"),
          shut = make("button", "", "close ✕");
      back.type = fwd.type = shut.type = "button";
      back.addEventListener("click", function () { step(-1); });
      fwd.addEventListener("click", function () { step(1); });
      shut.addEventListener("click", close);
      bar.appendChild(back); bar.appendChild(fwd); bar.appendChild(shut);
      sheet.appendChild(bar);
      sheet.appendChild(caption(i));
      var row = make("div", SIG ? "col" : "row");
      row.appendChild(panel(i, null, true));
      D.methods.forEach(function (m) { row.appendChild(panel(i, m, true)); });
      sheet.appendChild(row);
      var table = make("table"), head = make("tr");
      head.appendChild(make("th", "", "per sample"));
      D.methods.forEach(function (m) { head.appendChild(make("th", "", m)); });
      table.appendChild(head);
      D.metrics.forEach(function (spec) {
        var tr = make("tr");
        tr.appendChild(make("th", "", spec.label));
        D.methods.forEach(function (m) {
          var col = spec.values[m], v = col ? col[i] : null;
          tr.appendChild(make("td", "n", v === null || v === undefined ? "–" : (v * spec.scale).toFixed(spec.digits)));
        });
        table.appendChild(tr);
      });
      if (D.disagreement) {
        sheet.appendChild(make("p", "", "disagreement between methods (1 − rank correlation): " +
          (D.disagreement[i] === null ? "–" : D.disagreement[i].toFixed(3))));
      }
      if (D.metrics.length) { sheet.appendChild(table); }
      modal.hidden = false;
      writeHash();
      shut.focus();
    }
    function close() {
      modal.hidden = true;
      state.open = null;
      writeHash();
    }
    function step(delta) {
      var k = list.indexOf(D.index.indexOf(state.open)) + delta;
      if (k < 0 || k >= list.length) { return; }
      state.pg = Math.floor(k / PAGE);
      state.open = D.index[list[k]];
      update();
    }
    document.addEventListener("keydown", function (ev) {
      if (!modal.hidden) {
        if (ev.key === "Escape") { close(); ev.preventDefault(); }
        if (ev.key === "ArrowRight") { step(1); ev.preventDefault(); }
        if (ev.key === "ArrowLeft") { step(-1); ev.preventDefault(); }
        return;
      }
      var focused = document.activeElement;
      if (!focused || focused.parentNode !== cards) { return; }
      var sibling = ev.key === "ArrowRight" ? focused.nextElementSibling
        : ev.key === "ArrowLeft" ? focused.previousElementSibling : null;
      if (sibling) { sibling.focus(); ev.preventDefault(); }
    });
    window.addEventListener("hashchange", function () { if (readHash()) { update(); } });

    var fromLink = readHash();
    app.hidden = false;
    update();
    if (fromLink) { app.scrollIntoView(); }
    app.dataset.ready = String(Math.round(performance.now()));  // ms from navigation start
  }
}());
