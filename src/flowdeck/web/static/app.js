// flowdeck dashboard behaviour: row links, the custom-range fields, "updated N s ago",
// remembered names in forms, confirmations, and live updates from the change stream (the
// batch on the dashboard, the notification bell and the alert lists on every page) with a
// polling fallback.
(function () {
  "use strict";

  // A click anywhere on a process row opens its run (the name inside is the real link,
  // reachable by keyboard).
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element) || target.closest("a, button, input, select, label, summary")) return;
    var row = target.closest("tr[data-href]");
    if (row) window.location.href = row.getAttribute("data-href");
  });

  // The From/To fields only matter for a custom range.
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLSelectElement) || target.id !== "since" || !target.form) return;
    target.form.querySelectorAll("[data-custom]").forEach(function (field) {
      field.hidden = target.value !== "custom";
    });
  });

  // Who acknowledges or silences: remembered in this browser, so it is typed once.
  document.querySelectorAll("input[data-remember]").forEach(function (input) {
    var key = "flowdeck." + input.getAttribute("data-remember");
    try {
      if (!input.value) input.value = window.localStorage.getItem(key) || "";
      input.form.addEventListener("submit", function () {
        if (input.value) window.localStorage.setItem(key, input.value);
      });
    } catch (e) { /* storage may be off: nothing to remember */ }
  });

  // Deleting asks first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.hasAttribute("data-confirm") &&
        !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  function ago(seconds) {
    if (seconds < 120) return seconds + " s ago";
    if (seconds < 7200) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 172800) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " d ago";
  }

  function tick() {
    document.querySelectorAll("time[data-ago]").forEach(function (el) {
      var then = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(then)) el.textContent = ago(Math.max(0, Math.floor((Date.now() - then) / 1000)));
    });
  }
  setInterval(tick, 1000);

  // -- live updates ---------------------------------------------------------------------
  var POLL_MS = 30000;
  var RECONNECT_MS = 5000;
  // The dashboard shows the connection's state; other pages listen for the bell only.
  var status = document.getElementById("live-status");
  var streamUrl = status ? status.getAttribute("data-stream") : document.body.getAttribute("data-stream");
  if (!streamUrl || !window.EventSource) return;

  var inFlight = false;
  var again = false;
  var pollTimer = null;
  var source = null;
  var wasDown = false;

  function setState(state, text) {
    if (!status) return;
    status.setAttribute("data-state", state);
    status.querySelector(".text").textContent = text;
  }

  function batchIsOpen() {
    var cards = document.getElementById("batch-cards");
    return cards !== null && cards.getAttribute("data-open") === "true";
  }

  // The batch picker names the open batch as its cards now do (its start, its health).
  function syncPicker() {
    var cards = document.getElementById("batch-cards");
    var picker = document.getElementById("batch");
    if (!cards || !picker || picker.selectedIndex < 0) return;
    var label = cards.getAttribute("data-picker-label");
    var option = picker.options[picker.selectedIndex];
    if (label && option.textContent !== label) option.textContent = label;
  }

  // Reload the cards and the current page of the table (same sort, filter and page);
  // at most one request at a time, and one more if changes came in meanwhile.
  function refresh() {
    var data = document.getElementById("runs-data");
    if (!data || !window.htmx) return;
    if (inFlight) { again = true; return; }
    inFlight = true;
    window.htmx.ajax("GET", data.getAttribute("data-refresh-url"), {
      target: "#runs-data", swap: "outerHTML", headers: { "HX-Target": "runs-data" }
    }).finally(function () {
      inFlight = false;
      syncPicker();
      tick();
      if (again) { again = false; refresh(); }
    });
  }

  // The bell and any alert list on the page ([data-live="alerts"]), one request each.
  var alertsBusy = false;
  var alertsAgain = false;
  function refreshAlerts() {
    if (!window.htmx) return;
    if (alertsBusy) { alertsAgain = true; return; }
    var targets = [document.getElementById("bell")];
    document.querySelectorAll("[data-live='alerts']").forEach(function (el) { targets.push(el); });
    var requests = targets.filter(function (el) { return el && el.id; }).map(function (el) {
      return window.htmx.ajax("GET", el.getAttribute("data-refresh-url"), {
        target: "#" + el.id, swap: "outerHTML", headers: { "HX-Target": el.id }
      });
    });
    alertsBusy = true;
    Promise.all(requests).finally(function () {
      alertsBusy = false;
      if (alertsAgain) { alertsAgain = false; refreshAlerts(); }
    });
  }

  function startPolling() {
    if (pollTimer !== null) return;
    pollTimer = setInterval(function () {
      if (batchIsOpen()) refresh();
      refreshAlerts();
    }, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer !== null) { clearInterval(pollTimer); pollTimer = null; }
  }

  function down() {
    wasDown = true;
    var open = batchIsOpen();
    setState("reconnecting", open
      ? "Reconnecting to live updates… refreshing every 30 s meanwhile"
      : "Reconnecting to live updates…");
    startPolling();
  }

  function announce(type, data) {
    // Kept on the body too, for scripts that start after the stream opened.
    if (type === "open" || type === "down") document.body.setAttribute("data-stream-state", type);
    var payload = null;
    try { payload = data ? JSON.parse(data) : null; } catch (e) { payload = null; }
    document.dispatchEvent(new CustomEvent("flowdeck:change", { detail: { type: type, data: payload } }));
  }

  function connect() {
    source = new EventSource(streamUrl);
    source.onopen = function () {
      setState("live", "Live");
      stopPolling();
      announce("open");
      if (wasDown) { wasDown = false; refresh(); refreshAlerts(); announce("resync"); }
    };
    source.addEventListener("batch", refresh);
    source.addEventListener("alert", refreshAlerts);
    source.addEventListener("resync", function () { refresh(); refreshAlerts(); });
    // Other scripts of the page (the dashboards) hear every change as "flowdeck:change".
    ["run", "batch", "alert", "metric", "resync"].forEach(function (type) {
      source.addEventListener(type, function (event) { announce(type, event.data); });
    });
    source.onerror = function () {
      announce("down");
      down();
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an answer that is not a stream): try again ourselves.
        setTimeout(connect, RECONNECT_MS);
      }
    };
  }
  connect();
  window.addEventListener("pagehide", function () { if (source) source.close(); });
})();
