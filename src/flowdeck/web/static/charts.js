// ECharts for the run page (the pipeline's history) and the trends, sources and metrics pages.
// The data is in <script id="chart-data" type="application/json">; each <div data-chart="kind">
// gets one chart.
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || !window.echarts) return;
  var data = JSON.parse(source.textContent);
  var charts = [];

  var COLORS = ["#1f4f99", "#2e8540", "#b7791f", "#8e3b9b", "#c62828", "#00796b"];
  function pct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(2) + " %"; }
  // Whole numbers: an axis labelled with num or hms says minInterval 1, or the ticks
  // between two whole numbers would repeat a label (0, 0, 0, 1, 1, 1).
  var num = window.flowdeck.num;
  function hms(s) {
    if (s === null || s === undefined) return "–";
    s = Math.round(s);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return String(h).padStart(2, "0") + ":" + String(m).padStart(2, "0") + ":" + String(r).padStart(2, "0");
  }

  function base(name, extra) {
    var option = {
      animation: false,
      color: COLORS,
      textStyle: { fontFamily: "system-ui, sans-serif" },
      grid: { left: 72, right: 24, top: 40, bottom: 72 },
      tooltip: { trigger: "axis" },
      toolbox: {
        right: 8,
        feature: {
          dataZoom: { yAxisIndex: "none", title: { zoom: "Zoom to area", back: "Undo zoom" } },
          restore: { title: "Reset" },
          saveAsImage: { title: "Download PNG", name: name, pixelRatio: 2, backgroundColor: "#fff" }
        }
      },
      dataZoom: [{ type: "inside" }, { type: "slider", height: 22, bottom: 12 }]
    };
    for (var key in extra) option[key] = extra[key];
    return option;
  }

  // A count axis: whole numbers only (minInterval 1, see num); `extra` settings on top.
  function countAxis(extra) {
    return Object.assign({ type: "value", minInterval: 1, axisLabel: { formatter: num } }, extra);
  }

  // A duration axis at clock steps (format.js) over the runs' values of `field`.
  function clockAxis(field) {
    var max = 0;
    (data.runs || []).forEach(function (r) { if (r[field] > max) max = r[field]; });
    var axis = { type: "value", minInterval: 1, axisLabel: { formatter: hms } };
    var clock = window.flowdeck.clockAxis(max);
    if (clock.interval) { axis.interval = clock.interval; axis.max = clock.max; }
    return axis;
  }

  // A failed run's point: a red ring (an empty circle is drawn in its color, filled white).
  function ringFailed(point) {
    point.symbol = "emptyCircle";
    point.symbolSize = 11;
    point.itemStyle = { color: "#c62828", borderColor: "#c62828", borderWidth: 2 };
  }

  function timeAxis() { return { type: "time", axisLabel: { hideOverlap: true } }; }

  var builders = {
    "run-duration": function () {
      return base("run-duration", {
        xAxis: timeAxis(),
        yAxis: clockAxis("duration_s"),
        tooltip: { trigger: "axis", valueFormatter: hms },
        series: [runSeries("Duration", "duration_s", "line")]
      });
    },
    "run-rows": function () {
      return base("run-rows", {
        legend: { top: 4, left: 0 },
        xAxis: timeAxis(),
        yAxis: countAxis(),
        tooltip: { trigger: "axis", valueFormatter: num },
        series: [runSeries("Rows read", "rows_read", "line"), runSeries("Rows written", "rows_written", "line")]
      });
    },
    "run-dq": function () {
      return base("run-dq", {
        xAxis: timeAxis(),
        yAxis: countAxis(),
        tooltip: { trigger: "axis", valueFormatter: num },
        series: [runSeries("DQ errors", "dq_errors", "bar")]
      });
    },
    "trend-success": function () {
      return base("success-rate-per-day", {
        xAxis: { type: "category", data: days("day") },
        yAxis: { type: "value", min: 0, max: 1, axisLabel: { formatter: function (v) { return Math.round(v * 100) + " %"; } } },
        tooltip: { trigger: "axis", valueFormatter: pct },
        series: [{ name: "Success rate", type: "line", connectNulls: false, data: days("success_rate"), symbolSize: 7 }]
      });
    },
    "trend-failures": function () {
      return base("failures-per-day", {
        xAxis: { type: "category", data: days("day") },
        yAxis: { type: "value", minInterval: 1 },
        series: [{ name: "Failures", type: "bar", data: days("failed"), itemStyle: { color: "#c62828" } }]
      });
    },
    "trend-duration": function () {
      var byEnv = {};
      data.batches.forEach(function (b) {
        if (b.duration_s === null || !b.started_at) return;
        (byEnv[b.env] = byEnv[b.env] || []).push({ value: [b.started_at, b.duration_s / 3600], batch: b.batch_id });
      });
      return base("duration-per-batch", {
        legend: { top: 4, left: 0, type: "scroll", width: "60%" },
        xAxis: timeAxis(),
        yAxis: { type: "value", axisLabel: { formatter: function (v) { return v + " h"; } } },
        tooltip: {
          trigger: "item",
          formatter: function (p) {
            return "Batch " + p.data.batch + " (" + p.seriesName + ")<br>" + hms(p.data.value[1] * 3600);
          }
        },
        series: Object.keys(byEnv).sort().map(function (env) {
          return { name: env, type: "line", data: byEnv[env], symbolSize: 7 };
        })
      });
    },
    "trend-dq": function () {
      return base("dq-error-rate-per-day", {
        xAxis: { type: "category", data: days("day") },
        yAxis: { type: "value", axisLabel: { formatter: function (v) { return Number((v * 100).toPrecision(3)) + " %"; } } },
        tooltip: { trigger: "axis", valueFormatter: pct },
        series: [{ name: "DQ error rate", type: "line", data: days("dq_error_rate"), symbolSize: 7, itemStyle: { color: "#b7791f" } }]
      });
    }
  };

  // A source's page: one numeric field and the duration per run, failed runs as red rings.
  function sourceSeries(name, field) {
    return {
      name: name,
      type: "line",
      connectNulls: false,
      symbolSize: 7,
      data: data.runs.map(function (r) {
        var point = { value: [r.t, r[field]], name: r.batch_id };
        if (r.status === "FAILED") ringFailed(point);
        return point;
      })
    };
  }
  builders["source-field"] = function () {
    return base("source-" + data.field, {
      xAxis: timeAxis(),
      yAxis: countAxis({ scale: true }),
      tooltip: { trigger: "axis", valueFormatter: num },
      series: [sourceSeries(data.field, "value")]
    });
  };
  builders["source-duration"] = function () {
    return base("source-duration", {
      xAxis: timeAxis(),
      yAxis: clockAxis("duration_s"),
      tooltip: { trigger: "axis", valueFormatter: hms },
      series: [sourceSeries("Duration", "duration_s")]
    });
  };

  // The metrics explorer: one series per group, on a time axis, as lines or bars.
  function metricValue(v) {
    if (v === null || v === undefined) return "–";
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    return Math.abs(v) >= 1000 ? v.toLocaleString("en-US", { maximumFractionDigits: 1 }) : String(Number(v.toPrecision(4)));
  }
  // Only buckets with data come; a line must not bridge the empty ones between them.
  function withGaps(points) {
    var out = [], step = data.step * 1000, last = null;
    points.forEach(function (p) {
      var t = Date.parse(p[0]);
      if (last !== null && t - last > step) out.push([new Date(last + step).toISOString(), null]);
      out.push(p);
      last = t;
    });
    return out;
  }
  var STATUS_COLORS = { SUCCESS: "#2e8540", FAILED: "#c62828", RUNNING: "#1f4f99", PENDING: "#6b737c" };
  builders["explore"] = function () {
    var many = data.series.length > 1;
    // Counts and sums add up: their bars stack to the total. ECharts stacks by position,
    // so stacked series get every bucket time (null where a series has none).
    var stacked = data.chart === "bar" && (data.aggregation === "count" || data.aggregation === "sum");
    var times = [];
    if (stacked) {
      var seen = {};
      data.series.forEach(function (s) { s.points.forEach(function (p) { seen[p[0]] = true; }); });
      times = Object.keys(seen).sort();
    }
    function aligned(points) {
      var byTime = {};
      points.forEach(function (p) { byTime[p[0]] = p[1]; });
      return times.map(function (t) { return [t, t in byTime ? byTime[t] : null]; });
    }
    return base(data.metric + "-" + data.aggregation, {
      // The legend gets a row of its own under the toolbox, so that they never overlap.
      legend: many ? { top: 30, left: 0, type: "scroll" } : undefined,
      grid: { left: 72, right: 24, top: many ? 70 : 40, bottom: 72 },
      xAxis: timeAxis(),
      yAxis: { type: "value", scale: data.chart === "line", axisLabel: { formatter: metricValue } },
      tooltip: { trigger: "axis", valueFormatter: metricValue },
      series: data.series.map(function (s) {
        var status = s.tags.status;
        return {
          name: s.name,
          type: data.chart,
          stack: stacked ? "total" : undefined,
          // Run statuses keep their colours.
          itemStyle: status && STATUS_COLORS[status] ? { color: STATUS_COLORS[status] } : undefined,
          showSymbol: s.points.length < 60,
          symbolSize: 6,
          connectNulls: false,
          data: stacked ? aligned(s.points) : withGaps(s.points)
        };
      })
    });
  };

  function days(field) { return data.days.map(function (d) { return d[field]; }); }

  function runSeries(name, field, type) {
    return {
      name: name,
      type: type,
      symbolSize: 7,
      data: data.runs.map(function (r) {
        var point = { value: [r.t, r[field]], name: r.batch_id };
        var failed = r.status === "FAILED";
        // Failed runs in red, as on the sources' charts; this run a larger diamond (red
        // only when it failed: red means failure on every chart).
        if (failed) ringFailed(point);
        if (r.run_id === data.current) {
          point.symbol = "diamond";
          point.symbolSize = 15;
          point.itemStyle = { color: failed ? "#c62828" : "#14213d", borderColor: "#fff", borderWidth: 1 };
        }
        return point;
      })
    };
  }

  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var build = builders[el.getAttribute("data-chart")];
    if (!build) return;
    var chart = window.echarts.init(el, null, { renderer: "canvas" });
    chart.setOption(build());
    charts.push(chart);
  });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
})();
