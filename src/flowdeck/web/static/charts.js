// ECharts for the run page (the pipeline's history) and the trends page. The data is in
// <script id="chart-data" type="application/json">; each <div data-chart="kind"> gets one chart.
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || !window.echarts) return;
  var data = JSON.parse(source.textContent);
  var charts = [];

  var COLORS = ["#1f4f99", "#2e8540", "#b7791f", "#8e3b9b", "#c62828", "#00796b"];
  function pct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(2) + " %"; }
  function num(v) { return v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US"); }
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

  function timeAxis() { return { type: "time", axisLabel: { hideOverlap: true } }; }

  var builders = {
    "run-duration": function () {
      return base("run-duration", {
        xAxis: timeAxis(),
        yAxis: { type: "value", axisLabel: { formatter: hms } },
        tooltip: { trigger: "axis", valueFormatter: hms },
        series: [runSeries("Duration", "duration_s", "line")]
      });
    },
    "run-rows": function () {
      return base("run-rows", {
        legend: { top: 4, left: 0 },
        xAxis: timeAxis(),
        yAxis: { type: "value", axisLabel: { formatter: num } },
        tooltip: { trigger: "axis", valueFormatter: num },
        series: [runSeries("Rows read", "rows_read", "line"), runSeries("Rows written", "rows_written", "line")]
      });
    },
    "run-dq": function () {
      return base("run-dq", {
        xAxis: timeAxis(),
        yAxis: { type: "value", axisLabel: { formatter: num } },
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
        if (r.status === "FAILED") {
          point.symbol = "emptyCircle";
          point.symbolSize = 11;
          point.itemStyle = { color: "#fff", borderColor: "#c62828", borderWidth: 2 };
        }
        return point;
      })
    };
  }
  builders["source-field"] = function () {
    return base("source-" + data.field, {
      xAxis: timeAxis(),
      yAxis: { type: "value", scale: true, axisLabel: { formatter: num } },
      tooltip: { trigger: "axis", valueFormatter: num },
      series: [sourceSeries(data.field, "value")]
    });
  };
  builders["source-duration"] = function () {
    return base("source-duration", {
      xAxis: timeAxis(),
      yAxis: { type: "value", axisLabel: { formatter: hms } },
      tooltip: { trigger: "axis", valueFormatter: hms },
      series: [sourceSeries("Duration", "duration_s")]
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
        if (r.run_id === data.current) point.itemStyle = { color: "#c62828", borderColor: "#000", borderWidth: 1 };
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
