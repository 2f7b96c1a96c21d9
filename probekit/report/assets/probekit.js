/* probekit report: draws the charts, drives the step sliders, the prompt table and the prompt page. Needs only
   the files shipped beside it (assets/vega/vega.min.js); makes no network request. Each chart comes as its
   Vega-Lite spec (the source, with the data) and the Vega spec it was compiled to when the site was built, so a
   page loads Vega's runtime only (0.5 MB), and only where it draws a chart; charts are drawn again when the
   palette switches light <-> dark. */
(function () {
  "use strict";

  var here = document.currentScript && document.currentScript.src;
  var BASE = here ? here.replace(/probekit\.js(\?.*)?$/, "") : "assets/";
  /* vega-themes' "dark", as a Vega config, on the page's own background */
  var DARK = {
    background: "transparent", title: {color: "#fff", subtitleColor: "#fff"},
    style: {"guide-label": {fill: "#fff"}, "guide-title": {fill: "#fff"}, "group-title": {fill: "#fff"},
            "group-subtitle": {fill: "#fff"}, cell: {stroke: "#888"}},
    axis: {domainColor: "#fff", gridColor: "#888", tickColor: "#fff", labelColor: "#fff", titleColor: "#fff"},
    legend: {labelColor: "#fff", titleColor: "#fff"}, text: {fill: "#fff"}
  };

  var watcher = null;

  /* Call `fn` once `node` is on screen or within a screen of it (never while it is hidden): charts and head views
     are drawn, and their libraries loaded, only when the reader gets to them. */
  function whenVisible(node, fn) {
    if (!("IntersectionObserver" in window)) { fn(); return; }
    if (!watcher) {
      watcher = new IntersectionObserver(function (entries) {
        entries.forEach(function (entry) {
          var todo = entry.target.probekitOnVisible;
          if (!entry.isIntersecting || !todo) return;
          watcher.unobserve(entry.target);
          entry.target.probekitOnVisible = null;
          todo();
        });
      }, {rootMargin: "0px 0px 25% 0px"});  // on screen, or a quarter screen below it
    }
    node.probekitOnVisible = fn;
    watcher.unobserve(node);
    watcher.observe(node);
  }

  /* A script, injected once; resolves when it has run. */
  var scripts = {};
  function inject(src) {
    if (!scripts[src]) {
      scripts[src] = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = src;
        script.onload = resolve;
        script.onerror = function () { reject(new Error("could not load " + src)); };
        document.head.appendChild(script);
      });
    }
    return scripts[src];
  }

  /* Vega's runtime, injected on first use. */
  function loadVega() {
    return window.vega ? Promise.resolve() : inject(BASE + "vega/vega.min.js");
  }

  /* bertviz's head view (assets/headview.js) and the jQuery and d3 it needs, filed under window.probekitLibs
     without touching the page's own globals. */
  function loadHeadView() {
    if (window.probekitHeadView && window.probekitLibs) return Promise.resolve();
    var saved = {$: window.$, jQuery: window.jQuery, d3: window.d3, define: window.define};
    window.define = undefined;  // UMD builds would otherwise register with a page's AMD loader
    return inject(BASE + "jquery.js").then(function () { return inject(BASE + "d3.js"); }).then(function () {
      if (!window.probekitLibs) window.probekitLibs = {jquery: window.jQuery.noConflict(true), d3: window.d3};
      window.d3 = saved.d3;
      window.define = saved.define;
      return inject(BASE + "headview.js");
    });
  }

  function darkTheme() {
    return document.body.getAttribute("data-md-color-scheme") === "slate";
  }

  /* Every inline dataset of a Vega-Lite spec by its name (the compiled spec's data of that name is empty). */
  function datasets(node, found) {
    found = found || {};
    if (Array.isArray(node)) { node.forEach(function (n) { datasets(n, found); }); return found; }
    if (!node || typeof node !== "object") return found;
    if (node.data && node.data.name && Array.isArray(node.data.values)) found[node.data.name] = node.data.values;
    Object.keys(node).forEach(function (key) { if (key !== "data") datasets(node[key], found); });
    return found;
  }

  /* Set the type of every scale of a Vega spec whose domain is the step (the linear/log toggle). */
  function setStepScale(node, type) {
    if (Array.isArray(node)) { node.forEach(function (n) { setStepScale(n, type); }); return; }
    if (!node || typeof node !== "object") return;
    (Array.isArray(node.scales) ? node.scales : []).forEach(function (scale) {
      var domain = scale.domain || {}, fields = [domain.field].concat((domain.fields || []).map(function (f) {
        return f && typeof f === "object" ? f.field : f;
      }));
      var continuous = scale.type === "linear" || scale.type === "symlog";  // not a band of steps (a heat map)
      if (continuous && fields.some(function (f) { return f === "step" || f === "from"; })) scale.type = type;
    });
    Object.keys(node).forEach(function (key) { if (key !== "data") setStepScale(node[key], type); });
  }

  /* A small menu at the chart's top right: save it as SVG or PNG (for papers), or its Vega-Lite source. */
  function actions(box, view, source) {
    var old = box.querySelector(".probekit-actions");
    if (old) old.remove();
    var menu = document.createElement("div"), button = document.createElement("button");
    var list = document.createElement("div"), name = box.id || "chart";
    menu.className = "probekit-actions";
    button.type = "button";
    button.title = "save this chart";
    button.textContent = "⋯";
    list.className = "probekit-menu";
    list.hidden = true;
    button.addEventListener("click", function () { list.hidden = !list.hidden; });
    function item(label, make) {
      var a = document.createElement("a");
      a.href = "#";
      a.textContent = label;
      a.addEventListener("click", function (event) {
        event.preventDefault();
        Promise.resolve(make()).then(function (file) {
          var link = document.createElement("a");
          link.href = file[0];
          link.download = name + file[1];
          document.body.appendChild(link);
          link.click();
          link.remove();
          list.hidden = true;
        });
      });
      list.appendChild(a);
    }
    item("Save as SVG", function () { return view.toImageURL("svg").then(function (u) { return [u, ".svg"]; }); });
    item("Save as PNG", function () { return view.toImageURL("png", 2).then(function (u) { return [u, ".png"]; }); });
    if (source) {
      item("Vega-Lite spec (JSON)", function () {
        return [URL.createObjectURL(new Blob([source], {type: "application/json"})), ".vl.json"];
      });
    }
    menu.appendChild(button);
    menu.appendChild(list);
    box.insertBefore(menu, box.firstChild);
  }

  /* Draw the compiled Vega `spec` into `container` (a fresh view replaces the one before and releases its
     listeners), with `data` (name -> rows) filled in, dark when the page is dark. Resolves to the view, or to
     null when a later draw of the same container replaced it before it finished (its menu is not made). */
  function drawSpec(container, spec, data) {
    return loadVega().then(function () {
      spec = JSON.parse(JSON.stringify(spec));
      (spec.data || []).forEach(function (d) { if (data && data[d.name]) d.values = data[d.name]; });
      var dark = darkTheme();
      if (dark) spec.background = "transparent";
      if (container.probekitView) container.probekitView.finalize();
      container.textContent = "";
      var view = new vega.View(vega.parse(spec, dark ? DARK : {}), {renderer: "svg", container: container,
                                                                   hover: true});
      container.probekitView = view;
      return view.runAsync();
    }).then(function (view) {
      if (container.probekitView !== view) return null;  // a later draw (palette, axis) replaced it meanwhile
      container.setAttribute("data-theme", darkTheme() ? "dark" : "light");
      return view;
    }).catch(function (err) {
      container.textContent = "chart failed: " + err;
      console.error(err);
    });
  }

  var redraws = [];  // one function per drawn view: called when the palette switches

  function onPalette(redraw) { redraws.push(redraw); }

  function watchPalette() {
    var scheme = document.body.getAttribute("data-md-color-scheme");
    new MutationObserver(function () {
      var now = document.body.getAttribute("data-md-color-scheme");
      if (now === scheme) return;
      scheme = now;
      redraws.forEach(function (redraw) { redraw(); });
    }).observe(document.body, {attributes: true, attributeFilter: ["data-md-color-scheme"]});
  }

  /* A chart template compiled by the site build (a <script type="application/json" data-vega id=...>), for
     charts whose data only the page knows (the prompt page, the Q·K maps). */
  function template(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  window.probekitCharts = {load: loadVega, render: drawSpec, template: template, actions: actions,
                           onPalette: onPalette, dark: darkTheme, whenVisible: whenVisible,
                           loadHeadView: loadHeadView};

  /* A chart's specs: its script (data-src: the Vega-Lite source with the data, and the compiled Vega) loaded
     once, as a <script src> since Chromium refuses fetch() of files from file://. */
  function specsOf(box) {
    var own = (window.probekitSpecs || {})[box.id];
    if (own) return Promise.resolve(own);
    return inject(box.getAttribute("data-src")).then(function () { return window.probekitSpecs[box.id]; });
  }

  function draw(box) {
    var view = box.querySelector(".probekit-view");
    return specsOf(box).then(function (specs) {
      var spec = JSON.parse(JSON.stringify(specs.vega));
      setStepScale(spec, box.getAttribute("data-scale") || "linear");
      return drawSpec(view, spec, datasets(specs.vega_lite)).then(function (drawn) {
        if (drawn) actions(box, drawn, JSON.stringify(specs.vega_lite, null, 1));
      });
    }).catch(function (err) {
      view.textContent = "chart failed: " + err;
      console.error(err);
    });
  }

  function charts() {
    document.querySelectorAll(".probekit-chart").forEach(function (box) {
      box.setAttribute("data-scale", "linear");
      whenVisible(box, function () {
        draw(box);
        onPalette(function () { draw(box); });  // the step axis as it was: linear or log
      });
      box.querySelectorAll(".probekit-axis button").forEach(function (button) {
        button.addEventListener("click", function () {
          box.querySelectorAll(".probekit-axis button").forEach(function (b) { b.classList.remove("on"); });
          button.classList.add("on");
          box.setAttribute("data-scale", button.getAttribute("data-scale"));
          if (box.querySelector(".probekit-view").probekitView) draw(box);
        });
      });
    });
  }

  function sliders() {
    document.querySelectorAll(".probekit-steps").forEach(function (box) {
      var input = box.querySelector("input[type=range]");
      var label = box.querySelector(".probekit-step-label");
      var panes = box.querySelectorAll(".probekit-step");
      function show(i) {
        panes.forEach(function (p, k) { p.style.display = k === i ? "" : "none"; });
        label.textContent = panes[i].getAttribute("data-label");
        input.value = i;
      }
      input.addEventListener("input", function () { show(parseInt(input.value, 10)); });
      show(parseInt(input.value, 10));
    });
  }

  function text(value) { return value === null || value === undefined ? "" : String(value); }

  function promptTable() {
    var box = document.querySelector(".probekit-prompts");
    if (!box || !window.probekitPrompts) return;
    var data = window.probekitPrompts;
    var rows = data.rows.map(function (values) {
      var row = {};
      data.columns.forEach(function (c, i) { row[c] = values[i]; });
      return row;
    });
    var search = box.querySelector("input[type=search]");
    var groups = box.querySelector("select[name=group]");
    var body = box.querySelector("tbody"), count = box.querySelector(".probekit-count");
    var sortKey = "final_rank", sortUp = true;
    var columns = ["relation", "group", "prompt", "answer", "final_rank", "first_correct"];
    function render() {
      var q = search.value.trim().toLowerCase(), g = groups.value;
      var shown = rows.filter(function (r) {
        return (!g || r.group === g) && (!q || (r.prompt + " " + r.answer + " " + r.relation)
                                                  .toLowerCase().indexOf(q) >= 0);
      });
      shown.sort(function (a, b) {
        var x = a[sortKey], y = b[sortKey];
        if (x === y) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        return (x < y ? -1 : 1) * (sortUp ? 1 : -1);
      });
      body.textContent = "";
      shown.slice(0, 500).forEach(function (r) {
        var tr = document.createElement("tr");
        columns.forEach(function (c) {
          var td = document.createElement("td");
          if (c === "prompt") {
            var a = document.createElement("a");
            a.href = "prompt.html#" + r.id;
            a.textContent = r.prompt;
            td.appendChild(a);
          } else {
            td.textContent = c === "first_correct" && r[c] === null ? "never" : text(r[c]);
          }
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      count.textContent = shown.length + " of " + rows.length + " prompts" +
        (shown.length > 500 ? " (first 500 shown; narrow the search)" : "");
    }
    box.querySelectorAll("th[data-key]").forEach(function (th) {
      th.addEventListener("click", function () {
        var key = th.getAttribute("data-key");
        sortUp = key === sortKey ? !sortUp : true;
        sortKey = key;
        render();
      });
    });
    search.addEventListener("input", render);
    groups.addEventListener("change", render);
    render();
  }

  var CHOOSE = "Choose a prompt in the prompt table.";

  /* One prompt's page (prompt.html#ID): its detail file (assets/prompts/<ID / chunk>.js) loaded for it alone. */
  function promptPage() {
    var box = document.querySelector(".probekit-prompt");
    if (!box) return;
    var chunk = parseInt(box.getAttribute("data-chunk"), 10), count = parseInt(box.getAttribute("data-count"), 10);
    var title = box.querySelector(".probekit-prompt-title"), table = box.querySelector("tbody");
    function say(message) {
      table.textContent = "";
      title.textContent = message;
    }
    function show(data, r) {
      table.textContent = "";
      title.textContent = r.prompt + " → " + r.answer + " (" + r.relation + ", " + r.group + ")";
      var values = [];
      data.steps.forEach(function (step, i) {
        if (r.ranks[i] === null) return;
        values.push({step: step, gold_rank: r.ranks[i]});
        var tr = document.createElement("tr");
        var cells = [step, r.ranks[i]].concat(r.top[i].map(function (k) { return data.vocab[k]; }));
        cells.forEach(function (value, c) {
          var td = document.createElement("td");
          td.textContent = text(value);
          if (c >= 2 && text(value).toLowerCase() === r.answer.toLowerCase()) td.className = "probekit-correct";
          tr.appendChild(td);
        });
        if (r.ranks[i] === 1) tr.className = "probekit-correct-row";
        table.appendChild(tr);
      });
      var chart = box.querySelector(".probekit-view");
      drawSpec(chart, template("probekit-prompt-chart"), {ranks: values}).then(function (view) {
        if (view) actions(box, view, null);
      });
    }
    function render() {
      var id = decodeURIComponent(location.hash.slice(1));
      if (!/^[0-9]+$/.test(id) || parseInt(id, 10) >= count) return say(CHOOSE);  // no such prompt: no file
      var n = Math.floor(parseInt(id, 10) / chunk);
      inject("assets/prompts/" + n + ".js").then(function () {
        var data = (window.probekitPromptChunks || {})[n], r = data && data.prompts[id];
        if (String(decodeURIComponent(location.hash.slice(1))) !== id) return;  // another prompt chosen meanwhile
        return r ? show(data, r) : say(CHOOSE);
      }).catch(function () { say("This prompt's data could not be loaded (assets/prompts/" + n + ".js)."); });
    }
    window.addEventListener("hashchange", render);
    onPalette(render);
    render();
  }

  function start() {
    watchPalette();
    charts();
    sliders();
    promptTable();
    promptPage();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

/* Lazy panes (the Attention and Q/K/V pages): an element with data-probekit-lazy="KIND", data-key and data-src
   is drawn when it is shown. Its numbers are a script (data-src) that files them under
   window.probekitData[key]; it is injected on first show, since a <script src> loads from file:// where
   Chromium refuses fetch() of local files. KIND "headview": bertviz's head view (assets/headview.js);
   "qk": Q·Kᵀ scores beside attention, one layer at a time, drawn with Vega-Lite. */
(function () {
  "use strict";

  var requested = {};

  /* One layer's Q·Kᵀ/√d scores beside its attention, every head, as rows for the page's compiled template. */
  function qkRows(data, layer) {
    var n = data.tokens.length, values = [];
    var names = data.tokens.map(function (t, i) { return i + " " + t; });
    data.scores[layer].forEach(function (rows, head) {
      for (var q = 0; q < n; q++) {
        for (var k = 0; k < n; k++) {
          values.push({head: "head " + head, query: names[q], key: names[k], score: rows[q][k],
                       attention: data.attention[layer][head][q][k]});
        }
      }
    });
    return values;
  }

  function drawQk(box, data) {
    var menu = document.createElement("select"), view = document.createElement("div");
    menu.setAttribute("aria-label", "layer");
    data.scores.forEach(function (_, layer) {
      var option = document.createElement("option");
      option.value = layer;
      option.textContent = "layer " + layer;
      menu.appendChild(option);
    });
    var label = document.createElement("label");
    label.textContent = "Layer: ";
    label.appendChild(menu);
    box.appendChild(label);
    box.appendChild(view);
    var charts = window.probekitCharts;
    function render() {
      charts.render(view, charts.template("probekit-qk-chart"), {qk: qkRows(data, parseInt(menu.value, 10))})
        .then(function (drawn) { if (drawn) charts.actions(box, drawn, null); });
    }
    menu.addEventListener("change", render);
    charts.onPalette(render);
    render();
  }

  var DRAW = {
    headview: function (box, data) {
      var params = JSON.parse(JSON.stringify(data));
      params.root_div_id = box.querySelector("[id^='bertviz-']").id;
      window.probekitCharts.loadHeadView().then(function () { window.probekitHeadView(params); })
        .catch(function (err) { box.textContent = "head view failed: " + err; console.error(err); });
    },
    qk: drawQk
  };

  function draw(box) {
    var data = (window.probekitData || {})[box.getAttribute("data-key")];
    if (!data || box.getAttribute("data-drawn")) return;
    box.setAttribute("data-drawn", "1");
    DRAW[box.getAttribute("data-probekit-lazy")](box, data);
  }

  function load(box) {
    if (box.getAttribute("data-drawn")) return;
    if ((window.probekitData || {})[box.getAttribute("data-key")]) { draw(box); return; }
    var src = box.getAttribute("data-src");
    if (requested[src]) return;
    requested[src] = true;
    var script = document.createElement("script");
    script.src = src;
    script.onload = function () { draw(box); };
    script.onerror = function () { box.textContent = "could not load " + src; };
    document.head.appendChild(script);
  }

  function shown(box) {
    var pane = box.closest(".probekit-step");
    return !pane || pane.style.display !== "none";
  }

  function loadShown() {
    document.querySelectorAll("[data-probekit-lazy]").forEach(function (box) {
      if (shown(box)) window.probekitCharts.whenVisible(box, function () { load(box); });
    });
  }

  function start() {
    document.querySelectorAll(".probekit-steps input[type=range]").forEach(function (input) {
      input.addEventListener("input", loadShown);  // after sliders()' own listener: the new pane is shown
    });
    loadShown();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
