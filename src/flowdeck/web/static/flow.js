// The live pipeline page: asks the server for the live part again (#flow-live, an htmx
// fragment) when the change stream says flow metrics arrived, at most every MIN_GAP_MS, and
// every REFRESH_MS besides, so a pipeline that stops reporting turns stale on screen too.
// The trend charts (ECharts) sit outside the fragment and take the new data after each swap.
(function () {
  "use strict";
  var REFRESH_MS = 5000;
  var MIN_GAP_MS = 2000;
  var COLORS = ["#1f4f99", "#2e8540", "#b7791f", "#8e3b9b", "#c62828", "#00796b", "#5d6d7e"];

  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  var status = document.getElementById("flow-status");
  function setStatus(state, text) {
    if (!status) return;
    status.setAttribute("data-state", state);
    status.querySelector(".text").textContent = text;
  }

  function rate(v) {
    if (v === null || v === undefined) return "–";
    if (v >= 100 || v === 0) return Math.round(v).toLocaleString("en-US") + "/s";
    return (v >= 10 ? v.toFixed(1) : v.toFixed(2)) + "/s";
  }
  function ms(v) {
    if (v === null || v === undefined) return "–";
    if (v < 1000) return Math.round(v) + " ms";
    if (v < 60000) return (v / 1000).toFixed(1) + " s";
    return (v / 60000).toFixed(1) + " min";
  }
  var count = window.flowdeck.num;

  // -- trend charts -----------------------------------------------------------------------
  var charts = {};
  function trendData() {
    var el = document.getElementById("flow-trend");
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }
  function pairs(times, values) {
    return times.map(function (t, i) { return [t, values[i]]; });
  }
  function base(format) {
    return {
      animation: false,
      color: COLORS,
      textStyle: { fontFamily: "system-ui, sans-serif" },
      grid: { left: 56, right: 12, top: 30, bottom: 24 },
      tooltip: { trigger: "axis", valueFormatter: format },
      legend: { top: 0, left: 0, itemHeight: 8, textStyle: { fontSize: 11 } },
      xAxis: { type: "time", axisLabel: { hideOverlap: true, fontSize: 11 } },
      yAxis: { type: "value", min: 0, axisLabel: { formatter: format, fontSize: 11 } }
    };
  }
  var builders = {
    rates: function (d) {
      var o = base(rate);
      o.series = [
        { name: "Speed (finished)", type: "line", showSymbol: false, data: pairs(d.times, d.speed) },
        { name: "Arrivals", type: "line", showSymbol: false, lineStyle: { type: "dashed" }, data: pairs(d.times, d.arrivals) }
      ];
      return o;
    },
    queues: function (d) {
      var o = base(count);
      // Stages whose queue stayed empty would only draw lines over the others.
      // Stages whose queue stayed empty would only draw lines over the others; each stage
      // keeps its colour whichever are shown.
      var names = Object.keys(d.queues);
      o.series = names.filter(function (name) {
        return d.queues[name].some(function (v) { return v; });
      }).map(function (name) {
        var color = COLORS[names.indexOf(name) % COLORS.length];
        return { name: name, type: "line", stack: "q", areaStyle: { opacity: 0.35 }, showSymbol: false,
                 itemStyle: { color: color }, lineStyle: { color: color },
                 data: pairs(d.times, d.queues[name]) };
      });
      return o;
    },
    latency: function (d) {
      var o = base(ms);
      o.legend = { show: false };
      o.series = [{ name: "E2E p95", type: "line", showSymbol: false, data: pairs(d.times, d.e2e_p95_ms) }];
      return o;
    }
  };
  function drawCharts() {
    if (!window.echarts) return;
    var data = trendData();
    if (!data) return;
    document.querySelectorAll("[data-trend]").forEach(function (el) {
      var kind = el.getAttribute("data-trend");
      var chart = charts[kind];
      if (!chart) chart = charts[kind] = window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption(builders[kind](data), { notMerge: true });
    });
  }
  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (k) { charts[k].resize(); });
  });

  // -- refreshing the live part -------------------------------------------------------------
  var busy = false, again = false, last = 0, timer = null, trouble = null;
  // htmx keeps the old part on an error answer (a 404 once the flow is deleted, a 503) or
  // when the server cannot be reached: say so instead of "updated".
  document.addEventListener("htmx:responseError", function (event) {
    var d = event.detail || {};
    if (d.target && d.target.id === "flow-live") trouble = "HTTP " + (d.xhr ? d.xhr.status : "error");
  });
  document.addEventListener("htmx:sendError", function (event) {
    var d = event.detail || {};
    if (d.target && d.target.id === "flow-live") trouble = "flowdeck unreachable";
  });
  function refresh() {
    var live = document.getElementById("flow-live");
    if (!live || !window.htmx) return;
    if (busy) { again = true; return; }
    busy = true;
    trouble = null;
    last = Date.now();
    window.htmx.ajax("GET", live.getAttribute("data-refresh-url"), {
      target: "#flow-live", swap: "outerHTML", headers: { "HX-Target": "flow-live" }
    }).then(function () {
      if (trouble) {
        setStatus("reconnecting", "Could not update (" + trouble + "); retrying");
        return;
      }
      setStatus("live", "Live · updated " + new Date().toLocaleTimeString());
      drawCharts();
      document.dispatchEvent(new CustomEvent("flowdeck:flow-updated"));
    }, function () {
      setStatus("reconnecting", "Could not update; retrying");
    }).finally(function () {
      busy = false;
      if (again) { again = false; soon(); }
    });
  }
  function soon() {
    var wait = Math.max(0, MIN_GAP_MS - (Date.now() - last));
    if (timer !== null) return;
    timer = setTimeout(function () { timer = null; refresh(); }, wait);
  }
  document.addEventListener("flowdeck:change", function (event) {
    var detail = event.detail || {};
    if (detail.type === "metric") {
      var names = (detail.data && detail.data.names) || [];
      if (names.some(function (n) { return n.indexOf("flow.") === 0; })) soon();
    } else if (detail.type === "resync") {
      soon();
    }
  });
  setInterval(function () {
    if (!document.hidden && Date.now() - last >= REFRESH_MS - 250) refresh();
  }, 1000);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) soon(); });

  function start() {
    last = Date.now();
    drawCharts();
    setStatus("live", "Live · every " + REFRESH_MS / 1000 + " s");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
