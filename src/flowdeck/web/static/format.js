// Helpers the page scripts share; loaded before them on every page.
(function () {
  "use strict";
  var flowdeck = (window.flowdeck = window.flowdeck || {});

  // A whole number with thousands separators, "–" for none. (An axis labelled with it
  // says minInterval 1, or the ticks between two whole numbers repeat a label: 0, 0, 1, 1.)
  flowdeck.num = function (v) {
    return v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US");
  };

  // Durations tick at clock steps (30 s, 5 min, 1 h…), not at ECharts' decimal ones: a
  // step of 200 s read "3 min 20 s, 6 min 40 s…". The value axis settings (interval and
  // max) for durations up to `max` seconds; none without a positive max.
  var CLOCK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  flowdeck.clockAxis = function (max) {
    if (!(max > 0)) return {};
    var want = max / 5;
    var step = CLOCK_STEPS.filter(function (c) { return c >= want; })[0] || Math.ceil(want / 86400) * 86400;
    return { interval: step, max: Math.ceil(max / step) * step };
  };
})();
