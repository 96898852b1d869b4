// Dashboards: the list page's import, and a dashboard's widgets (ECharts and HTML), time range,
// refresh (an interval, plus the change stream throttled to it; "off" stops both) and the grid
// editor (gridstack: drag, resize, add, edit, remove, save, cancel).
(function () {
  "use strict";

  function esc(value) {
    return String(value === null || value === undefined ? "" : value).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function clone(value) { return JSON.parse(JSON.stringify(value)); }

  function errorText(answer, body) {
    if (body && body.message) return body.message;
    return "The server answered " + answer.status + ".";
  }

  function send(method, url, body) {
    return fetch(url, {
      method: method,
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (answer) {
      return answer.json().catch(function () { return null; }).then(function (data) {
        if (!answer.ok) { var e = new Error(errorText(answer, data)); e.status = answer.status; throw e; }
        return data;
      });
    });
  }

  // -- the list page: import a JSON export -------------------------------------------------
  var importForm = document.querySelector("form[data-import]");
  if (importForm) {
    importForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var file = importForm.querySelector("input[type=file]").files[0];
      var problem = document.getElementById("import-error");
      if (!file) return;
      file.text().then(function (text) {
        var doc;
        try { doc = JSON.parse(text); } catch (e) { throw new Error(file.name + " is not JSON: " + e.message); }
        return send("POST", "/api/v1/dashboards/import", doc);
      }).then(function (created) {
        window.location.href = "/dashboards/" + encodeURIComponent(created.id);
      }).catch(function (e) {
        problem.textContent = e.message;
        problem.hidden = false;
      });
    });
  }

  var specNode = document.getElementById("dashboard-spec");
  if (!specNode || !window.GridStack) return;

  // -- state ------------------------------------------------------------------------------
  var spec = JSON.parse(specNode.textContent);
  var editor = JSON.parse(document.getElementById("dashboard-editor").textContent);
  var saved = clone(spec);
  var REFRESH = { "1s": 1, "5s": 5, "30s": 30, "1m": 60, "off": null };
  var METRIC_TYPES = ["line", "bar", "pie", "heatmap", "gauge", "stat", "table"];
  var COLORS = ["#1f4f99", "#2e8540", "#b7791f", "#8e3b9b", "#c62828", "#00796b", "#5d6d7e", "#d35400"];
  var STATUS_COLORS = { SUCCESS: "#2e8540", FAILED: "#c62828", RUNNING: "#1f4f99", PENDING: "#6b737c" };
  var LEVEL_COLORS = { ok: "#2e8540", warn: "#b7791f", bad: "#c62828" };
  var view = viewFromUrl();
  var editing = false;
  var charts = {};
  var busy = {};
  var again = {};
  var lastRefresh = 0;
  var timer = null;
  var pending = null;

  var gridNode = document.getElementById("board-grid");
  var grid = null;
  var GRID_OPTIONS = {
    column: 12,
    cellHeight: 70,
    margin: 6,
    float: false,
    animate: false,
    staticGrid: true,
    handle: ".widget-head",
    columnOpts: { breakpoints: [{ w: 700, c: 1 }] }
  };

  function viewFromUrl() {
    var params = new URLSearchParams(window.location.search);
    var range = clone(spec.time_range);
    if (params.get("range") && params.get("range") !== "custom") range = { last: params.get("range") };
    if (params.get("from") && params.get("to")) range = { start: params.get("from"), end: params.get("to") };
    var refresh = params.get("refresh") in REFRESH ? params.get("refresh") : spec.refresh;
    return { range: range, refresh: refresh };
  }

  function viewToUrl() {
    var params = new URLSearchParams(window.location.search);
    ["range", "from", "to", "refresh", "edit"].forEach(function (k) { params.delete(k); });
    if (JSON.stringify(view.range) !== JSON.stringify(spec.time_range)) {
      if (view.range.last) params.set("range", view.range.last);
      else { params.set("from", view.range.start); params.set("to", view.range.end); }
    }
    if (view.refresh !== spec.refresh) params.set("refresh", view.refresh);
    var query = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
  }

  // -- formatting -------------------------------------------------------------------------
  var plain = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
  var compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
  function duration(s) {
    if (s < 60) return (Math.round(s * 10) / 10) + " s";
    s = Math.round(s);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? h + " h " + String(m).padStart(2, "0") + " min" : m + " min " + String(r).padStart(2, "0") + " s";
  }
  function fmt(format, v, short) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    if (format === "percent") return (Math.round(v * 1000) / 10) + " %";
    if (format === "duration") return duration(v);
    return short && Math.abs(v) >= 10000 ? compact.format(v) : plain.format(v);
  }
  function levelOf(options, v) {
    var level = options.base || "ok";
    (options.thresholds || []).forEach(function (t) { if (v !== null && v >= t.value) level = t.level; });
    return level;
  }
  function when(iso) { return iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, "") + " UTC" : ""; }
  function rangeText(range) {
    if (range.last) {
      var option = document.querySelector("#board-range option[value='" + range.last + "']");
      return option ? option.textContent : range.last;
    }
    return when(range.start) + " – " + when(range.end);
  }

  // -- widgets in the grid ----------------------------------------------------------------
  function widgetById(id) {
    for (var i = 0; i < spec.widgets.length; i++) if (spec.widgets[i].id === id) return spec.widgets[i];
    return null;
  }

  function itemFor(widget) {
    var item = document.createElement("div");
    item.className = "grid-stack-item";
    item.setAttribute("gs-id", widget.id);
    item.setAttribute("gs-x", widget.grid.x);
    item.setAttribute("gs-y", widget.grid.y);
    item.setAttribute("gs-w", widget.grid.w);
    item.setAttribute("gs-h", widget.grid.h);
    item.setAttribute("data-widget-id", widget.id);
    item.style.setProperty("--fd-w", widget.grid.w);
    item.style.setProperty("--fd-h", widget.grid.h);
    var titleId = "wt-" + widget.id;
    item.innerHTML =
      '<section class="grid-stack-item-content widget" aria-labelledby="' + titleId + '">' +
      '<header class="widget-head"><h2 id="' + titleId + '">' + esc(widget.title || widget.type) + "</h2>" +
      '<span class="widget-actions"><button type="button" class="secondary small" data-edit>Edit</button>' +
      '<button type="button" class="danger small" data-remove aria-label="Remove ' + esc(widget.title || widget.type) + '">Remove</button></span></header>' +
      '<div class="widget-body" data-type="' + esc(widget.type) + '" data-state="loading" data-loads="0"><p class="hint">Loading…</p></div>' +
      "</section>";
    item.querySelector("[data-edit]").addEventListener("click", function () { openWidgetDialog(widget.id); });
    item.querySelector("[data-remove]").addEventListener("click", function () { removeWidget(widget.id); });
    return item;
  }

  // The widgets go into the DOM first and the grid starts on them: it then lays them out for
  // 12 columns and, on a narrow screen, lists them in reading order in one column.
  function build() {
    Object.keys(charts).forEach(function (id) { charts[id].dispose(); });
    charts = {};
    if (grid) grid.destroy(false);
    gridNode.innerHTML = "";
    spec.widgets.slice().sort(function (a, b) { return a.grid.y - b.grid.y || a.grid.x - b.grid.x; }).forEach(function (widget) {
      gridNode.appendChild(itemFor(widget));
    });
    grid = window.GridStack.init(Object.assign({}, GRID_OPTIONS, { staticGrid: !editing }), gridNode);
    grid.on("change", function (event, items) {
      (items || []).forEach(function (node) {
        if (node.el) { node.el.style.setProperty("--fd-w", node.w); node.el.style.setProperty("--fd-h", node.h); }
      });
    });
    grid.on("resizestop", function (event, item) {
      var id = item.getAttribute("data-widget-id");
      if (charts[id]) charts[id].resize();
    });
    document.getElementById("board-empty").hidden = spec.widgets.length > 0;
  }

  function bodyOf(id) {
    return gridNode.querySelector('[data-widget-id="' + CSS.escape(id) + '"] .widget-body');
  }

  // -- data -------------------------------------------------------------------------------
  function load(widget) {
    var id = widget.id;
    if (busy[id]) { again[id] = true; return Promise.resolve(); }
    busy[id] = true;
    return send("POST", "/api/v1/dashboards/widget-data", { widget: widget, time_range: view.range })
      .then(function (data) { draw(widgetById(id) || widget, data); })
      .catch(function (e) {
        var body = bodyOf(id);
        if (!body) return;
        disposeChart(id);
        body.innerHTML = '<p class="error-text">' + esc(e.message) + "</p>";
        body.setAttribute("data-state", "error");
      })
      .finally(function () {
        busy[id] = false;
        if (again[id]) { again[id] = false; var w = widgetById(id); if (w) load(w); }
      });
  }

  // types: the widget types to refresh (all when absent); metrics: also the widgets that
  // show one of these reported metrics.
  function refreshAll(types, metrics) {
    lastRefresh = Date.now();
    spec.widgets.forEach(function (w) {
      var byMetric = metrics && w.query && metrics[w.query.metric];
      if (!types || types.indexOf(w.type) >= 0 || byMetric) load(w);
    });
  }

  function disposeChart(id) {
    if (charts[id]) { charts[id].dispose(); delete charts[id]; }
  }

  function draw(widget, data) {
    var body = bodyOf(widget.id);
    if (!body) return;
    var html = HTML_TYPES[widget.type];
    if (html) {
      disposeChart(widget.id);
      body.innerHTML = html(widget, data);
    } else {
      var box = body.querySelector(".chart-box");
      if (!box) {
        body.innerHTML = '<div class="chart-box" role="img" aria-label="' + esc(widget.title || widget.type) + ' chart"></div>';
        box = body.querySelector(".chart-box");
        disposeChart(widget.id);
      }
      var empty = !data.result.series.length;
      if (empty) {
        disposeChart(widget.id);
        body.innerHTML = '<div class="chart-box"></div><p class="widget-empty">No data in this range</p>';
      } else {
        var chart = charts[widget.id] || (charts[widget.id] = window.echarts.init(box, null, { renderer: "canvas" }));
        chart.setOption(CHARTS[widget.type](widget, data), true);
      }
    }
    body.setAttribute("data-state", "ready");
    body.setAttribute("data-loads", String(Number(body.getAttribute("data-loads") || 0) + 1));
  }

  // -- chart builders ---------------------------------------------------------------------
  function seriesColor(s, i) {
    var status = s.tags && s.tags.status;
    return status && STATUS_COLORS[status] ? STATUS_COLORS[status] : COLORS[i % COLORS.length];
  }
  function withGaps(points, step) {
    var out = [], last = null;
    points.forEach(function (p) {
      var t = Date.parse(p[0]);
      if (last !== null && t - last > step * 1000) out.push([new Date(last + step * 1000).toISOString(), null]);
      out.push(p);
      last = t;
    });
    return out;
  }
  function allTimes(series) {
    var seen = {};
    series.forEach(function (s) { s.points.forEach(function (p) { seen[p[0]] = true; }); });
    return Object.keys(seen).sort();
  }
  function aligned(points, times) {
    var byTime = {};
    points.forEach(function (p) { byTime[p[0]] = p[1]; });
    return times.map(function (t) { return [t, t in byTime ? byTime[t] : null]; });
  }

  var CHARTS = {
    line: function (w, d) { return timeChart(w, d, "line"); },
    bar: function (w, d) { return timeChart(w, d, "bar"); },
    pie: function (w, d) {
      var format = w.options.format;
      var values = d.values.filter(function (v) { return v.value !== null; });
      return {
        animation: false,
        color: COLORS,
        tooltip: { trigger: "item", valueFormatter: function (v) { return fmt(format, v); } },
        legend: { type: "scroll", bottom: 0 },
        series: [{
          type: "pie",
          radius: w.options.donut ? ["42%", "68%"] : "68%",
          center: ["50%", "45%"],
          avoidLabelOverlap: true,
          // (name and share on two lines: one line of both was cut off in a narrow widget)
          label: { formatter: "{b}\n{d} %", lineHeight: 15 },
          data: values.map(function (v, i) {
            var status = v.tags && v.tags.status;
            return { name: v.name, value: v.value, itemStyle: status && STATUS_COLORS[status] ? { color: STATUS_COLORS[status] } : undefined };
          })
        }]
      };
    },
    heatmap: function (w, d) {
      var format = w.options.format;
      var times = allTimes(d.result.series);
      var names = d.result.series.map(function (s) { return s.name; });
      var data = [], lo = Infinity, hi = -Infinity;
      d.result.series.forEach(function (s, y) {
        s.points.forEach(function (p) {
          if (p[1] === null) return;
          data.push([times.indexOf(p[0]), y, p[1]]);
          lo = Math.min(lo, p[1]);
          hi = Math.max(hi, p[1]);
        });
      });
      var daily = d.result.step >= 86400;
      return {
        animation: false,
        tooltip: {
          position: "top",
          formatter: function (p) { return esc(names[p.value[1]]) + "<br>" + when(times[p.value[0]]) + ": <b>" + fmt(format, p.value[2]) + "</b>"; }
        },
        grid: { left: 8, right: 12, top: 8, bottom: 44, containLabel: true },
        xAxis: { type: "category", data: times.map(function (t) { return daily ? t.slice(5, 10) : t.slice(11, 16); }), splitArea: { show: true } },
        yAxis: { type: "category", data: names, splitArea: { show: true }, axisLabel: { width: 110, overflow: "truncate" } },
        visualMap: {
          min: lo === Infinity ? 0 : lo, max: hi === -Infinity ? 1 : (hi === lo ? lo + 1 : hi),
          calculable: false, orient: "horizontal", left: "center", bottom: 0, itemHeight: 120, itemWidth: 10,
          inRange: { color: ["#eef3fb", "#7aa5de", "#1f4f99"] },
          formatter: function (v) { return fmt(format, v, true); }
        },
        series: [{ type: "heatmap", data: data, emphasis: { itemStyle: { borderColor: "#000", borderWidth: 1 } } }]
      };
    },
    gauge: function (w, d) {
      var o = w.options;
      var value = d.values.length ? d.values[0].value : null;
      var lo = o.min !== null && o.min !== undefined ? o.min : 0;
      var hi = o.max !== null && o.max !== undefined ? o.max : (o.format === "percent" ? 1 : Math.max(1, (value || 0) * 1.25));
      var color = (o.thresholds || []).length && value !== null ? LEVEL_COLORS[levelOf(o, value)] : "#1f4f99";
      return {
        animation: false,
        series: [{
          type: "gauge", min: lo, max: hi, radius: "92%", center: ["50%", "62%"],
          startAngle: 200, endAngle: -20, splitNumber: 1,
          progress: { show: true, width: 16, itemStyle: { color: color } },
          axisLine: { lineStyle: { width: 16, color: [[1, "#e6e9ed"]] } },
          pointer: { show: false }, axisTick: { show: false }, splitLine: { show: false },
          axisLabel: { distance: 22, fontSize: 10, color: "#555d66", formatter: function (v) { return fmt(o.format, v, true); } },
          title: { show: false },
          detail: { valueAnimation: false, fontSize: 24, fontWeight: 700, color: color, offsetCenter: [0, "5%"], formatter: function () { return fmt(o.format, value); } },
          data: [{ value: value === null ? lo : value }]
        }]
      };
    }
  };

  function timeChart(w, d, type) {
    var format = w.options.format;
    var series = d.result.series;
    var many = series.length > 1;
    var stacked = w.options.stack && many;
    var times = stacked ? allTimes(series) : null;
    var clock = {};
    if (format === "duration" && !stacked) {
      var top = 0;
      series.forEach(function (s) { s.points.forEach(function (p) { if (p[1] > top) top = p[1]; }); });
      clock = window.flowdeck.clockAxis(top);
    }
    return {
      animation: false,
      color: COLORS,
      textStyle: { fontFamily: "system-ui, sans-serif" },
      legend: many ? { type: "scroll", top: 0, left: 0, right: 0 } : undefined,
      grid: { left: 8, right: 16, top: many ? 34 : 12, bottom: 8, containLabel: true },
      tooltip: { trigger: "axis", valueFormatter: function (v) { return fmt(format, v); } },
      xAxis: { type: "time", min: d.start, max: d.end, axisLabel: { hideOverlap: true } },
      yAxis: { type: "value", max: format === "percent" && !stacked ? function (v) { return Math.max(1, v.max); } : clock.max, interval: clock.interval, axisLabel: { formatter: function (v) { return fmt(format, v, true); } } },
      series: series.map(function (s, i) {
        return {
          name: s.name,
          type: type,
          stack: stacked ? "total" : undefined,
          areaStyle: stacked && type === "line" ? { opacity: 0.25 } : undefined,
          itemStyle: { color: seriesColor(s, i) },
          showSymbol: s.points.length < 40,
          symbolSize: 5,
          connectNulls: false,
          barMaxWidth: 28,
          data: stacked ? aligned(s.points, times) : (type === "line" ? withGaps(s.points, d.result.step) : s.points)
        };
      })
    };
  }

  // -- HTML widgets -----------------------------------------------------------------------
  var HEALTH = { green: ["✓", "Green"], yellow: ["◐", "Yellow"], red: ["✕", "Red"] };
  var HTML_TYPES = {
    stat: function (w, d) {
      var o = w.options;
      var values = d.values.slice(0, 6);
      if (!values.length) return '<p class="widget-empty">No data in this range</p>';
      var format = o.reduce === "series" ? "number" : o.format;
      return '<div class="stats' + (values.length > 1 ? " many" : "") + '">' + values.map(function (v) {
        var level = (o.thresholds || []).length ? " level-" + levelOf(o, v.value) : "";
        return '<div class="stat' + level + '"><span class="stat-value">' + esc(fmt(format, v.value)) + "</span>" +
          (values.length > 1 ? '<span class="stat-name">' + esc(v.name) + "</span>" : "") + "</div>";
      }).join("") + "</div>";
    },
    table: function (w, d) {
      var o = w.options;
      var tags = d.result.group_by;
      var rows = d.values.slice().sort(function (a, b) { return (b.value === null ? -Infinity : b.value) - (a.value === null ? -Infinity : a.value); }).slice(0, o.limit);
      if (!rows.length) return '<p class="widget-empty">No data in this range</p>';
      var heads = (tags.length ? tags : ["Series"]).map(function (t) { return '<th scope="col">' + esc(t) + "</th>"; }).join("");
      return '<div class="widget-table"><table><thead><tr>' + heads + '<th scope="col" class="num">' + esc(o.reduce === "overall" ? d.result.aggregation : o.reduce) + "</th></tr></thead><tbody>" +
        rows.map(function (r) {
          var cells = tags.length ? tags.map(function (t, i) { return (i ? "<td>" : '<th scope="row">') + esc(r.tags[t] === null ? "–" : r.tags[t]) + (i ? "</td>" : "</th>"); }).join("") : '<th scope="row">' + esc(r.name) + "</th>";
          return "<tr>" + cells + '<td class="num">' + esc(fmt(o.format, r.value)) + "</td></tr>";
        }).join("") + "</tbody></table></div>";
    },
    alerts: function (w, d) {
      if (d.note) return '<p class="widget-empty">' + esc(d.note) + "</p>";
      if (!d.items.length) return '<p class="widget-empty ok"><span aria-hidden="true">✓</span> No ' + esc(w.options.states.join(" or ")) + " alerts</p>";
      return '<ul class="widget-alerts">' + d.items.map(function (a) {
        return '<li><span class="badge state-' + esc(a.state) + '">' + esc(a.state) + '</span> <span class="badge sev-' + esc(a.severity) + '">' + esc(a.severity) + "</span> " +
          '<a href="/alerts/' + encodeURIComponent(a.fingerprint) + '">' + esc(a.summary || a.rule) + "</a>" +
          (a.since ? ' <span class="hint">since ' + esc(when(a.since)) + "</span>" : "") + "</li>";
      }).join("") + "</ul>";
    },
    batch_status: function (w, d) {
      var b = d.batch;
      if (!b) return '<p class="widget-empty">No batch' + (w.options.env ? " in " + esc(w.options.env) : "") + " in the 90 days before the range's end</p>";
      var h = HEALTH[b.health] || ["", b.health];
      var link = "/?batch=" + encodeURIComponent(b.batch_id) + "&project=" + encodeURIComponent(b.project);
      function cell(label, value, cls) { return '<div class="mini ' + (cls || "") + '"><dt>' + label + "</dt><dd>" + value + "</dd></div>"; }
      return '<div class="batch-widget"><p class="batch-line"><span class="badge health-' + esc(b.health) + '"><span class="icon" aria-hidden="true">' + h[0] + "</span>" + h[1] + "</span> " +
        '<a href="' + link + '">Batch ' + esc(b.batch_id) + "</a> <span class=\"hint\">" + esc(b.env) + (b.started_at ? " · started " + esc(when(b.started_at)) : "") + "</span></p>" +
        (b.health_reason ? '<p class="hint batch-reason">' + esc(b.health_reason) + "</p>" : "") +
        '<dl class="minis">' +
        cell("Processes", plain.format(b.total)) +
        cell("Succeeded", plain.format(b.succeeded), "ok") +
        cell("Failed", plain.format(b.failed), b.failed ? "bad" : "") +
        cell("Running or pending", plain.format(b.running + b.pending)) +
        cell("Success rate", fmt("percent", b.success_rate)) +
        cell("DQ errors", plain.format(b.dq_errors), b.dq_warning_processes ? "warn" : "") +
        "</dl></div>";
    }
  };

  // -- refresh: interval and stream -------------------------------------------------------
  var live = document.getElementById("board-live");
  var streamState = { open: "live", down: "reconnecting" }[document.body.getAttribute("data-stream-state")] || "connecting";
  function showLive() {
    var seconds = REFRESH[view.refresh];
    var state = !seconds ? "off" : streamState === "live" ? "live" : streamState;
    var text = {
      off: "Refresh off",
      live: "Live · every " + document.querySelector("#board-refresh option[value='" + view.refresh + "']").textContent + " at most",
      connecting: "Connecting…",
      reconnecting: "Reconnecting… refreshing every " + view.refresh
    }[state];
    live.setAttribute("data-state", state);
    live.querySelector(".text").textContent = text;
  }

  function schedule() {
    if (timer !== null) { clearInterval(timer); timer = null; }
    if (pending !== null) { clearTimeout(pending); pending = null; }
    var seconds = REFRESH[view.refresh];
    if (seconds) timer = setInterval(function () { if (!editing) refreshAll(); }, seconds * 1000);
    showLive();
  }

  // A change on the stream refreshes the widgets it concerns, at most once per interval.
  var WANTS = {
    run: METRIC_TYPES.concat(["batch_status"]),
    batch: METRIC_TYPES.concat(["batch_status"]),
    alert: ["alerts"],
    metric: [],
    resync: null
  };
  var due = {};
  var dueMetrics = {};
  document.addEventListener("flowdeck:change", function (event) {
    var type = event.detail.type;
    if (type === "open") { streamState = "live"; showLive(); return; }
    if (type === "down") { streamState = "reconnecting"; showLive(); return; }
    var seconds = REFRESH[view.refresh];
    if (!seconds || editing || !(type in WANTS)) return;
    (WANTS[type] || METRIC_TYPES.concat(["alerts", "batch_status"])).forEach(function (t) { due[t] = true; });
    if (type === "metric") {
      var news = event.detail.data || {};
      var names = news.names || [];
      if ((news.count || 0) > names.length) METRIC_TYPES.forEach(function (t) { due[t] = true; });
      names.forEach(function (n) { dueMetrics[n] = true; });
    }
    if (pending !== null) return;
    var wait = Math.max(0, lastRefresh + seconds * 1000 - Date.now());
    pending = setTimeout(function () {
      pending = null;
      var types = Object.keys(due);
      var metrics = dueMetrics;
      due = {};
      dueMetrics = {};
      refreshAll(types, metrics);
    }, wait);
  });

  // -- time range and refresh controls ----------------------------------------------------
  var rangeSelect = document.getElementById("board-range");
  var refreshSelect = document.getElementById("board-refresh");
  var fromInput = document.getElementById("board-from");
  var toInput = document.getElementById("board-to");
  function toLocalInput(iso) { return iso ? iso.slice(0, 16) : ""; }
  function showControls() {
    rangeSelect.value = view.range.last || "custom";
    document.querySelectorAll("[data-custom-range]").forEach(function (el) { el.hidden = !!view.range.last; });
    if (!view.range.last) { fromInput.value = toLocalInput(view.range.start); toInput.value = toLocalInput(view.range.end); }
    refreshSelect.value = view.refresh;
    document.querySelectorAll("[data-range-text]").forEach(function (el) { el.textContent = rangeText(view.range); });
  }
  rangeSelect.addEventListener("change", function () {
    if (rangeSelect.value === "custom") {
      var end = new Date(), start = new Date(end.getTime() - 86400000);
      fromInput.value = toLocalInput(start.toISOString());
      toInput.value = toLocalInput(end.toISOString());
      document.querySelectorAll("[data-custom-range]").forEach(function (el) { el.hidden = false; });
      return;
    }
    view.range = { last: rangeSelect.value };
    changedView();
  });
  document.getElementById("board-apply-range").addEventListener("click", function () {
    if (!fromInput.value || !toInput.value) return;
    view.range = { start: fromInput.value + ":00Z", end: toInput.value + ":00Z" };
    changedView();
  });
  refreshSelect.addEventListener("change", function () {
    view.refresh = refreshSelect.value;
    viewToUrl();
    schedule();
  });
  function changedView() {
    showControls();
    viewToUrl();
    refreshAll();
  }

  // -- edit mode --------------------------------------------------------------------------
  var problem = document.getElementById("board-error");
  var savedNote = document.getElementById("board-saved");
  function showProblem(text) { problem.textContent = text || ""; problem.hidden = !text; }

  function setEditing(on) {
    editing = on;
    document.body.classList.toggle("editing", on);
    document.querySelector(".view-actions").hidden = on;
    document.querySelector(".edit-actions").hidden = !on;
    grid.setStatic(!on);
    savedNote.hidden = true;
    if (!on) showProblem("");
  }

  document.getElementById("board-edit").addEventListener("click", function () {
    saved = clone(spec);
    setEditing(true);
  });
  document.getElementById("board-cancel").addEventListener("click", function () {
    spec = clone(saved);
    setEditing(false);
    build();
    document.getElementById("board-title").textContent = spec.title;
    refreshAll();
  });
  document.getElementById("board-save").addEventListener("click", function () {
    if (grid.getColumn() !== 12) {
      showProblem("The window is too narrow to save the layout: widen it to see all 12 columns.");
      return;
    }
    layoutToSpec();
    var body = {
      title: spec.title,
      description: spec.description,
      time_range: view.range,
      refresh: view.refresh,
      widgets: spec.widgets,
      version: spec.version
    };
    send("PUT", "/api/v1/dashboards/" + encodeURIComponent(spec.id), body).then(function (stored) {
      spec = { id: stored.id, version: stored.version, title: stored.title, description: stored.description, time_range: stored.time_range, refresh: stored.refresh, widgets: stored.widgets };
      saved = clone(spec);
      setEditing(false);
      viewToUrl();
      savedNote.textContent = "Saved (version " + stored.version + ").";
      savedNote.hidden = false;
    }).catch(function (e) {
      showProblem((e.status === 409 ? "Not saved: " : "Not saved: ") + e.message);
    });
  });
  document.getElementById("board-print").addEventListener("click", function () { window.print(); });

  function layoutToSpec() {
    grid.getGridItems().forEach(function (item) {
      var node = item.gridstackNode;
      var widget = widgetById(item.getAttribute("data-widget-id"));
      if (widget && node) widget.grid = { x: node.x, y: node.y, w: node.w, h: node.h };
    });
  }

  function resizeAll() { Object.keys(charts).forEach(function (id) { charts[id].resize(); }); }
  window.addEventListener("resize", resizeAll);
  window.addEventListener("beforeprint", resizeAll);
  window.addEventListener("afterprint", resizeAll);
  if (window.matchMedia) window.matchMedia("print").addEventListener("change", resizeAll);

  function removeWidget(id) {
    var item = gridNode.querySelector('[data-widget-id="' + CSS.escape(id) + '"]');
    disposeChart(id);
    if (item) grid.removeWidget(item, true);
    spec.widgets = spec.widgets.filter(function (w) { return w.id !== id; });
    document.getElementById("board-empty").hidden = spec.widgets.length > 0;
  }

  // -- the widget dialog ------------------------------------------------------------------
  var dialog = document.getElementById("widget-dialog");
  var form = document.getElementById("widget-form");
  var formError = document.getElementById("wf-error");
  var editingId = null;
  function field(name) { return form.querySelector("#wf-" + name); }

  (function fillChoices() {
    var metric = field("metric");
    function group(label, names) {
      if (!names.length) return;
      var g = document.createElement("optgroup");
      g.label = label;
      names.forEach(function (n) { var o = document.createElement("option"); o.value = o.textContent = n; g.appendChild(o); });
      metric.appendChild(g);
    }
    group("Run metrics", editor.run_metrics);
    group("Batch metrics", editor.batch_metrics);
    group("Reported metrics", editor.metrics);
    editor.aggregations.forEach(function (a) { var o = document.createElement("option"); o.value = o.textContent = a; field("aggregation").appendChild(o); });
  })();

  var SHOWN = {
    format: ["line", "bar", "pie", "heatmap", "gauge", "stat", "table"],
    reduce: ["pie", "gauge", "stat", "table"],
    stack: ["line", "bar"],
    donut: ["pie"],
    minmax: ["gauge"],
    limit: ["table", "alerts"],
    env: ["batch_status"],
    thresholds: ["gauge", "stat"]
  };
  function showFields() {
    var type = field("type").value;
    form.querySelector('[data-for="metric"]').hidden = METRIC_TYPES.indexOf(type) < 0;
    Object.keys(SHOWN).forEach(function (k) {
      form.querySelectorAll('[data-for="' + k + '"]').forEach(function (el) { el.hidden = SHOWN[k].indexOf(type) < 0; });
    });
    var metric = field("metric").value;
    field("tags-hint").textContent = metric.indexOf("runs.") === 0 ? "(" + editor.run_tags.join(", ") + ", labels)" :
      metric.indexOf("batches.") === 0 ? "(" + editor.batch_tags.join(", ") + ")" : "";
  }
  field("type").addEventListener("change", showFields);
  field("metric").addEventListener("change", showFields);

  function fillForm(w) {
    var q = w.query || { metric: "runs.count", aggregation: "count", group_by: [], filters: [], step: "auto" };
    var o = w.options || {};
    field("type").value = w.type;
    field("title").value = w.title || "";
    var metric = field("metric");
    if (q.metric && !metric.querySelector('option[value="' + CSS.escape(q.metric) + '"]')) {
      var extra = document.createElement("option"); extra.value = extra.textContent = q.metric; metric.appendChild(extra);
    }
    metric.value = q.metric || "runs.count";
    field("aggregation").value = q.aggregation || "avg";
    field("step").value = q.step || "auto";
    field("group-by").value = (q.group_by || []).join(", ");
    field("filters").value = (q.filters || []).map(function (f) { return f.tag + "=" + (Array.isArray(f.value) ? f.value.join("|") : f.value); }).join("\n");
    field("format").value = o.format || "number";
    field("reduce").value = o.reduce || "last";
    field("stack").checked = !!o.stack;
    field("donut").checked = !!o.donut;
    field("min").value = o.min === null || o.min === undefined ? "" : o.min;
    field("max").value = o.max === null || o.max === undefined ? "" : o.max;
    field("limit").value = o.limit || 20;
    field("env").value = o.env || "";
    field("base").value = o.base || "ok";
    field("thresholds").value = (o.thresholds || []).map(function (t) { return t.value + "=" + t.level; }).join(", ");
    formError.hidden = true;
    showFields();
  }

  function parseFilter(line) {
    var at = line.indexOf("=");
    if (at < 0) return { tag: line };  // the server says what is missing
    var tag = line.slice(0, at).trim(), value = line.slice(at + 1).trim();
    if (value.indexOf("|") >= 0) return { tag: tag, op: "in", value: value.split("|").map(function (v) { return v.trim(); }) };
    if (/[*?[]/.test(value)) return { tag: tag, op: "glob", value: value };
    return { tag: tag, value: value };
  }

  function formWidget(base) {
    var type = field("type").value;
    var widget = { id: base.id, type: type, title: field("title").value.trim(), grid: base.grid, options: {} };
    var o = widget.options;
    if (METRIC_TYPES.indexOf(type) >= 0) {
      widget.query = {
        metric: field("metric").value,
        aggregation: field("aggregation").value,
        step: field("step").value,
        group_by: field("group-by").value.split(",").map(function (t) { return t.trim(); }).filter(Boolean),
        filters: field("filters").value.split("\n").map(function (l) { return l.trim(); }).filter(Boolean).map(parseFilter)
      };
      o.format = field("format").value;
    }
    if (SHOWN.reduce.indexOf(type) >= 0) o.reduce = field("reduce").value;
    if (SHOWN.stack.indexOf(type) >= 0) o.stack = field("stack").checked;
    if (type === "pie") o.donut = field("donut").checked;
    if (type === "gauge") {
      if (field("min").value !== "") o.min = Number(field("min").value);
      if (field("max").value !== "") o.max = Number(field("max").value);
    }
    if (SHOWN.limit.indexOf(type) >= 0) o.limit = Number(field("limit").value) || 20;
    if (type === "batch_status" && field("env").value.trim()) o.env = field("env").value.trim();
    if (SHOWN.thresholds.indexOf(type) >= 0) {
      o.base = field("base").value;
      o.thresholds = field("thresholds").value.split(",").map(function (p) { return p.trim(); }).filter(Boolean).map(function (p) {
        var parts = p.split("=");
        return { value: Number(parts[0]), level: (parts[1] || "").trim() };
      });
    }
    return widget;
  }

  function nextId() {
    var n = spec.widgets.length + 1;
    while (widgetById("w" + n)) n++;
    return "w" + n;
  }

  function bottom() {
    var y = 0;
    grid.getGridItems().forEach(function (item) { var n = item.gridstackNode; if (n) y = Math.max(y, n.y + n.h); });
    return y;
  }

  function openWidgetDialog(id) {
    editingId = id;
    var w = id ? widgetById(id) : { id: nextId(), type: "line", title: "", grid: { x: 0, y: bottom(), w: 6, h: 4 }, options: {} };
    document.getElementById("widget-dialog-title").textContent = id ? "Edit widget" : "Add widget";
    form.setAttribute("data-widget", w.id);
    fillForm(w);
    dialog.showModal();
    field("title").focus();
  }
  document.getElementById("board-add").addEventListener("click", function () { openWidgetDialog(null); });
  document.getElementById("wf-cancel").addEventListener("click", function () { dialog.close(); });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    layoutToSpec();
    var base = editingId ? widgetById(editingId) : { id: form.getAttribute("data-widget"), grid: { x: 0, y: bottom(), w: 6, h: 4 } };
    var widget = formWidget(base);
    // The server checks the widget (and answers its data) before it joins the dashboard.
    send("POST", "/api/v1/dashboards/widget-data", { widget: widget, time_range: view.range }).then(function (data) {
      if (editingId) {
        spec.widgets = spec.widgets.map(function (w) { return w.id === editingId ? widget : w; });
        var item = gridNode.querySelector('[data-widget-id="' + CSS.escape(editingId) + '"]');
        disposeChart(editingId);
        var fresh = itemFor(widget);
        item.querySelector(".grid-stack-item-content").replaceWith(fresh.querySelector(".grid-stack-item-content"));
      } else {
        spec.widgets.push(widget);
        var added = itemFor(widget);
        gridNode.appendChild(added);
        grid.makeWidget(added);
        document.getElementById("board-empty").hidden = true;
      }
      dialog.close();
      draw(widget, data);
    }).catch(function (e) {
      formError.textContent = e.message;
      formError.hidden = false;
    });
  });

  // -- settings dialog --------------------------------------------------------------------
  var settings = document.getElementById("settings-dialog");
  document.getElementById("board-settings").addEventListener("click", function () {
    document.getElementById("sf-title").value = spec.title;
    document.getElementById("sf-description").value = spec.description || "";
    settings.showModal();
  });
  document.getElementById("sf-cancel").addEventListener("click", function () { settings.close(); });
  document.getElementById("settings-form").addEventListener("submit", function (event) {
    event.preventDefault();
    spec.title = document.getElementById("sf-title").value.trim() || spec.title;
    spec.description = document.getElementById("sf-description").value;
    document.getElementById("board-title").textContent = spec.title;
    settings.close();
  });

  // -- start ------------------------------------------------------------------------------
  document.querySelectorAll("[data-printed]").forEach(function (el) { el.textContent = new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC"; });
  build();
  showControls();
  schedule();
  refreshAll();
  if (new URLSearchParams(window.location.search).get("edit")) { setEditing(true); viewToUrl(); }
})();
