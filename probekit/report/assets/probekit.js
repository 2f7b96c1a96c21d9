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
