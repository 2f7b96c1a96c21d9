/* probekit report: draws the Vega-Lite charts, drives the step sliders, the prompt table and the prompt
   page. Needs only the files shipped beside it (assets/vega/*); makes no network request. */
(function () {
  "use strict";

  var ACTIONS = {export: true, source: false, compiled: false, editor: false};

  function setStepScale(node, type) {
    if (Array.isArray(node)) { node.forEach(function (n) { setStepScale(n, type); }); return; }
    if (!node || typeof node !== "object") return;
    Object.keys(node).forEach(function (key) {
      var value = node[key];
      if ((key === "x" || key === "x2") && value && value.type === "quantitative" && value.scale &&
          (value.field === "step" || value.field === "from")) {
        value.scale.type = type;
      }
      setStepScale(value, type);
    });
  }

  function darkTheme() {
    return document.body.getAttribute("data-md-color-scheme") === "slate";
  }

  function draw(box, type) {
    var spec = JSON.parse(box.querySelector("script[type='application/json']").textContent);
    if (type) setStepScale(spec, type);
    var options = {actions: ACTIONS, renderer: "svg"};
    if (darkTheme()) options.theme = "dark";
    return vegaEmbed(box.querySelector(".probekit-view"), spec, options).catch(function (err) {
      box.querySelector(".probekit-view").textContent = "chart failed: " + err;
      console.error(err);
    });
  }

  function charts() {
    document.querySelectorAll(".probekit-chart").forEach(function (box) {
      draw(box, "linear");
      box.querySelectorAll(".probekit-axis button").forEach(function (button) {
        button.addEventListener("click", function () {
          box.querySelectorAll(".probekit-axis button").forEach(function (b) { b.classList.remove("on"); });
          button.classList.add("on");
          draw(box, button.getAttribute("data-scale"));
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
    var data = window.probekitPrompts, rows = data.prompts;
    var search = box.querySelector("input[type=search]");
    var groups = box.querySelector("select[name=group]");
    var body = box.querySelector("tbody"), count = box.querySelector(".probekit-count");
    var sortKey = "final_rank", sortUp = true;
    var columns = ["relation", "group", "prompt", "answer", "final_rank", "first_correct"];
    function render() {
      var q = search.value.trim().toLowerCase(), g = groups.value;
      var shown = rows.filter(function (r) {
        return (!g || r.group === g) && (!q || (r.prompt + " " + r.answer + " " + r.relation + " " +
                                                r.subject).toLowerCase().indexOf(q) >= 0);
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

  function promptPage() {
    var box = document.querySelector(".probekit-prompt");
    if (!box || !window.probekitPrompts) return;
    var data = window.probekitPrompts;
    function render() {
      var id = decodeURIComponent(location.hash.slice(1));
      var r = data.prompts.filter(function (p) { return String(p.id) === id; })[0];
      var title = box.querySelector(".probekit-prompt-title"), table = box.querySelector("tbody");
      table.textContent = "";
      if (!r) { title.textContent = "Choose a prompt in the prompt table."; return; }
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
      var spec = {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json", width: "container", height: 220,
        data: {values: values}, mark: {type: "line", point: true},
        params: [{name: "zoom", select: {type: "interval", encodings: ["x"]}, bind: "scales"}],
        encoding: {
          x: {field: "step", type: "quantitative", title: "training step", scale: {type: "linear"},
              axis: {format: ",d"}},
          y: {field: "gold_rank", type: "quantitative", title: "gold rank (1 = top)",
              scale: {type: "log", reverse: true}},
          tooltip: [{field: "step", type: "quantitative", format: ",d"}, {field: "gold_rank", type: "quantitative"}]
        }
      };
      vegaEmbed(chart, spec, {actions: ACTIONS, renderer: "svg"});
    }
    window.addEventListener("hashchange", render);
    render();
  }

  function start() {
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

  function qkSpec(data, layer, dark) {
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
    var side = Math.max(120, Math.min(260, 14 * n));
    function panel(head, field, scheme, title) {
      var scale = field === "score" ? {scheme: scheme, domainMid: 0, reverse: true} : {scheme: scheme, domain: [0, 1]};
      return {
        width: side, height: side, mark: "rect", title: title,
        transform: [{filter: {field: "head", equal: head}}],
        encoding: {
          x: {field: "key", type: "ordinal", sort: names, axis: {labelFontSize: 8, title: "key"}},
          y: {field: "query", type: "ordinal", sort: names, axis: {labelFontSize: 8, title: "query"}},
          color: {field: field, type: "quantitative", scale: scale, title: field === "score" ? "Q·K/√d" : field},
          tooltip: [{field: "head"}, {field: "query"}, {field: "key"},
                    {field: "score", type: "quantitative", title: "Q·K/√d", format: ".2f"},
                    {field: "attention", type: "quantitative", format: ".3f"}]
        }
      };
    }
    return {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      data: {values: values},
      vconcat: data.scores[layer].map(function (_, head) {
        var name = "head " + head;
        return {hconcat: [panel(name, "score", "redblue", name + ": Q·Kᵀ/√d"),
                          panel(name, "attention", "blues", name + ": attention")],
                resolve: {scale: {color: "independent"}}};
      }),
      resolve: {scale: {color: "independent"}},
      config: {background: dark ? "transparent" : "white"}
    };
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
    function render() {
      var dark = document.body.getAttribute("data-md-color-scheme") === "slate";
      var options = {actions: {export: true, source: false, compiled: false, editor: false}, renderer: "svg"};
      if (dark) options.theme = "dark";
      vegaEmbed(view, qkSpec(data, parseInt(menu.value, 10), dark), options).catch(function (err) {
        view.textContent = "chart failed: " + err;
        console.error(err);
      });
    }
    menu.addEventListener("change", render);
    render();
  }

  var DRAW = {
    headview: function (box, data) {
      var params = JSON.parse(JSON.stringify(data));
      params.root_div_id = box.querySelector("[id^='bertviz-']").id;
      window.probekitHeadView(params);
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
    document.querySelectorAll("[data-probekit-lazy]").forEach(function (box) { if (shown(box)) load(box); });
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
