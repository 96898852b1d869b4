// The review pages: the chart of the approval rate, keyboard shortcuts over the queue
// (j/k move, a approve, r reject, n note, o open), a rejection never sent without a note,
// and counts kept live from the change stream (the review.* metrics).
(function () {
  "use strict";

  // -- chart --------------------------------------------------------------------------------
  var dataEl = document.getElementById("review-data");
  var chartEl = document.getElementById("review-chart");
  var data = dataEl ? JSON.parse(dataEl.textContent) : null;
  var chart = null;

  function pct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %"; }

  function draw(series) {
    if (!chartEl || !window.echarts) return;
    if (!chart) {
      chart = window.echarts.init(chartEl, null, { renderer: "canvas" });
      window.addEventListener("resize", function () { chart.resize(); });
    }
    var times = series.map(function (p) { return p.t; });
    chart.setOption({
      animation: false,
      color: ["#2e8540", "#c62828", "#1f4f99"],
      textStyle: { fontFamily: "system-ui, sans-serif" },
      grid: { left: 44, right: 52, top: 34, bottom: 28 },
      legend: { top: 0, left: 0, itemWidth: 14 },
      tooltip: {
        trigger: "axis",
        formatter: function (items) {
          var head = items.length ? new Date(items[0].axisValue).toISOString().slice(0, 16).replace("T", " ") + " UTC" : "";
          return [head].concat(items.map(function (it) {
            var v = it.seriesName === "Approval rate" ? pct(it.value[1]) : it.value[1];
            return it.marker + it.seriesName + ": " + v;
          })).join("<br>");
        }
      },
      xAxis: { type: "time", axisLabel: { hideOverlap: true } },
      yAxis: [
        { type: "value", minInterval: 1 },
        { type: "value", min: 0, max: 1, axisLabel: { formatter: function (v) { return Math.round(v * 100) + " %"; } }, splitLine: { show: false } }
      ],
      series: [
        { name: "Approved", type: "bar", stack: "d", data: series.map(function (p, i) { return [times[i], p.approved]; }) },
        { name: "Rejected", type: "bar", stack: "d", data: series.map(function (p, i) { return [times[i], p.rejected]; }) },
        { name: "Approval rate", type: "line", yAxisIndex: 1, connectNulls: true, symbolSize: 6,
          data: series.map(function (p, i) { return [times[i], p.approval_rate]; }) }
      ]
    }, true);
  }
  if (data) draw(data.series);

  // -- live counts ---------------------------------------------------------------------------
  function readCount(name) {
    var el = document.querySelector("[data-count='" + name + "']");
    return el ? parseInt(el.textContent.replace(/[^0-9]/g, ""), 10) || 0 : 0;
  }
  var shownPending = readCount("pending");
  var busy = false, again = false;

  function refreshCounts() {
    if (!data || !data.summary_url) return;
    if (busy) { again = true; return; }
    busy = true;
    fetch(data.summary_url, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) return;
        ["pending", "approved", "rejected"].forEach(function (k) {
          var el = document.querySelector("[data-count='" + k + "']");
          if (el) el.textContent = s.counts[k].toLocaleString("en-US");
        });
        var rate = document.querySelector("[data-count='approval_rate']");
        if (rate) rate.textContent = pct(s.approval_rate);
        var inRange = document.querySelector("[data-count='in_range']");
        if (inRange) {
          inRange.textContent = (s.in_range.approved + s.in_range.rejected).toLocaleString("en-US") +
            " · " + pct(s.in_range.approval_rate) + " approved";
        }
        draw(s.series);
        if (s.counts.pending > shownPending) {
          var note = document.getElementById("new-samples");
          if (note) note.hidden = false;
        }
      })
      .catch(function () { /* the next change tries again */ })
      .finally(function () {
        busy = false;
        if (again) { again = false; refreshCounts(); }
      });
  }

  document.addEventListener("flowdeck:change", function (event) {
    var d = event.detail || {};
    if (d.type === "resync") { refreshCounts(); return; }
    if (d.type !== "metric" || !d.data || !d.data.names) return;
    if (d.data.names.some(function (n) { return n.indexOf("review.") === 0; })) refreshCounts();
  });

  // -- the queue and the keyboard -------------------------------------------------------------
  var samples = Array.prototype.slice.call(document.querySelectorAll("article.sample"));
  var current = -1;

  function select(i, focus) {
    if (!samples.length) return;
    i = Math.max(0, Math.min(samples.length - 1, i));
    if (current >= 0 && samples[current]) samples[current].classList.remove("current");
    current = i;
    var el = samples[current];
    el.classList.add("current");
    if (focus !== false) {
      el.focus({ preventScroll: true });
      el.scrollIntoView({ block: "nearest" });
    }
  }

  function note(el) { return el.querySelector("textarea[data-note]"); }

  function needNote(form) {
    var field = note(form);
    if (!field) return false;
    if (field.value.trim()) return false;
    field.setAttribute("aria-invalid", "true");
    var msg = form.querySelector(".note-needed");
    if (!msg) {
      msg = document.createElement("p");
      msg.className = "field-error note-needed";
      msg.id = field.id + "-needed";
      msg.setAttribute("role", "alert");
      msg.textContent = "A rejection needs a note: say what is wrong.";
      field.insertAdjacentElement("afterend", msg);
      field.setAttribute("aria-describedby", msg.id);
    }
    field.focus();
    return true;
  }

  // A rejection without a note is refused here already (the server refuses it too).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-decision")) return;
    var submitter = event.submitter;
    if (submitter && submitter.value === "rejected" && needNote(form)) {
      event.preventDefault();
      return;
    }
    form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    // Disabled buttons are not sent: say which one was pressed.
    if (submitter && !form.querySelector("input[name='outcome']")) {
      var hidden = document.createElement("input");
      hidden.type = "hidden"; hidden.name = "outcome"; hidden.value = submitter.value;
      form.appendChild(hidden);
    }
  });

  document.addEventListener("input", function (event) {
    var t = event.target;
    if (t instanceof HTMLTextAreaElement && t.hasAttribute("data-note") && t.value.trim()) {
      t.removeAttribute("aria-invalid");
      var msg = t.parentElement.querySelector(".note-needed");
      if (msg) msg.remove();
    }
  });

  samples.forEach(function (el, i) {
    el.addEventListener("focusin", function () { select(i, false); });
  });

  function press(selector) {
    var el = samples[current];
    var button = el && el.querySelector(selector);
    if (button) button.click();
  }

  document.addEventListener("keydown", function (event) {
    if (!samples.length || event.altKey || event.metaKey) return;
    var t = event.target;
    var typing = t instanceof HTMLTextAreaElement || t instanceof HTMLInputElement || t instanceof HTMLSelectElement;
    if (typing) {
      if (event.key === "Escape" && current >= 0) { t.blur(); select(current); }
      if (event.key === "Enter" && event.ctrlKey && t instanceof HTMLTextAreaElement && t.form) {
        event.preventDefault();
        var reject = t.form.querySelector("[data-reject]");
        if (reject) reject.click();
      }
      return;
    }
    if (event.ctrlKey) return;
    if (current < 0 && "jkarno".indexOf(event.key) >= 0) { select(0); if (event.key === "j" || event.key === "k") return; }
    switch (event.key) {
      case "j": select(current + 1); break;
      case "k": select(current - 1); break;
      case "a": press("[data-approve]"); break;
      case "r": {
        var form = samples[current].querySelector("form[data-decision]");
        if (form && !needNote(form)) press("[data-reject]");
        break;
      }
      case "n": {
        var field = note(samples[current]);
        if (field) field.focus();
        break;
      }
      case "o": {
        var link = samples[current].querySelector("h2 a");
        if (link) window.location.href = link.href;
        break;
      }
      default: return;
    }
    event.preventDefault();
  });

  // After a decision the next sample is first in the queue: ready for the next key.
  if (samples.length && (document.getElementById("done") || samples.length === 1)) select(0);
  var invalid = document.querySelector("textarea[aria-invalid='true']");
  if (invalid) invalid.focus();
})();
