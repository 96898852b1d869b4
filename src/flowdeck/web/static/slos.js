// The SLO page's charts: the SLI per bucket against the objective, and the good and bad
// units per bucket. The data is in <script id="slo-data" type="application/json">.
(function () {
  "use strict";
  var source = document.getElementById("slo-data");
  if (!source || !window.echarts) return;
  var data = JSON.parse(source.textContent);
  var charts = [];
  function pct(v) { return v === null || v === undefined ? "–" : Number(v).toFixed(2) + " %"; }
  var num = window.flowdeck.num;
  // Buckets without units are left out of the data: the line must not bridge them.
  function withGaps(points, field) {
    var out = [], step = data.step * 1000, last = null;
    points.forEach(function (p) {
      var t = Date.parse(p.t);
      if (last !== null && t - last > step) out.push([new Date(last + step).toISOString(), null]);
      out.push([p.t, p[field]]);
      last = t;
    });
    return out;
  }
  var lowest = data.points.reduce(function (m, p) { return p.sli === null ? m : Math.min(m, p.sli); }, 100);
  var floor = Math.max(0, Math.floor(Math.min(lowest, data.objective) - (100 - data.objective)));
  var base = {
    animation: false,
    textStyle: { fontFamily: "system-ui, sans-serif" },
    grid: { left: 64, right: 20, top: 36, bottom: 64 },
    tooltip: { trigger: "axis" },
    toolbox: { right: 8, feature: {
      dataZoom: { yAxisIndex: "none", title: { zoom: "Zoom to area", back: "Undo zoom" } },
      restore: { title: "Reset" },
      saveAsImage: { title: "Download PNG", name: "slo-" + data.name, pixelRatio: 2, backgroundColor: "#fff" }
    } },
    dataZoom: [{ type: "inside" }, { type: "slider", height: 20, bottom: 10 }],
    xAxis: { type: "time", axisLabel: { hideOverlap: true } }
  };
  function option(extra) { var o = {}; var k; for (k in base) o[k] = base[k]; for (k in extra) o[k] = extra[k]; return o; }
  var builders = {
    sli: function () {
      return option({
        legend: { top: 4, left: 0 },
        yAxis: { type: "value", min: floor, max: 100, axisLabel: { formatter: function (v) { return v + " %"; } } },
        tooltip: { trigger: "axis", valueFormatter: pct },
        series: [{
          name: "SLI", type: "line", color: "#1f4f99", connectNulls: false, showSymbol: data.points.length < 60, symbolSize: 6,
          data: withGaps(data.points, "sli"),
          markLine: { silent: true, symbol: "none", lineStyle: { color: "#c62828", type: "dashed", width: 2 },
            label: { formatter: "objective " + data.objective + " %", position: "insideEndTop", color: "#a11a1a" },
            data: [{ yAxis: data.objective }] },
          markArea: { silent: true, itemStyle: { color: "rgba(198, 40, 40, 0.06)" }, data: [[{ yAxis: floor }, { yAxis: data.objective }]] }
        }]
      });
    },
    units: function () {
      return option({
        legend: { top: 4, left: 0 },
        yAxis: { type: "value", axisLabel: { formatter: num } },
        tooltip: { trigger: "axis", valueFormatter: num },
        series: [
          { name: "Good " + data.unit, type: "bar", stack: "u", color: "#2e8540",
            data: data.points.map(function (p) { return [p.t, p.good]; }) },
          { name: "Bad " + data.unit, type: "bar", stack: "u", color: "#c62828",
            data: data.points.map(function (p) { return [p.t, p.total - p.good]; }) }
        ]
      });
    }
  };
  document.querySelectorAll("[data-slo-chart]").forEach(function (el) {
    var build = builders[el.getAttribute("data-slo-chart")];
    if (!build) return;
    var chart = window.echarts.init(el, null, { renderer: "canvas" });
    chart.setOption(build());
    charts.push(chart);
  });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
})();
