// Live updates: the server pushes a summary over SSE (/stream); the numbers marked
// data-live change in place, and a page whose <main> has data-refresh fetches its own
// main part again when something changed. No framework, no build step.
(function () {
  "use strict";
  var base = document.body.getAttribute("data-base") || "";
  var dot = document.getElementById("live-dot");
  var banner = document.getElementById("error-banner");
  var last = null;
  var refreshing = false;

  function apply(summary) {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var key = el.getAttribute("data-live");
      if (key in summary) { el.textContent = String(summary[key]); }
    });
    if (banner) {
      banner.hidden = !summary.error;
      banner.textContent = summary.error || "";
    }
  }

  function busy(main) {
    var active = document.activeElement;
    return active && main.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
  }

  function refresh() {
    var main = document.querySelector("main[data-refresh]");
    if (!main || refreshing || busy(main)) { return; }
    refreshing = true;
    fetch(window.location.href, { headers: { "X-Celeriac-Fragment": "1" }, credentials: "same-origin" })
      .then(function (response) { return response.status < 500 ? response.text() : null; })
      .then(function (html) {
        if (html !== null && !busy(main)) { main.innerHTML = html; }
      })
      .catch(function () {})
      .then(function () { refreshing = false; });
  }

  if (!window.EventSource) { return; }
  var source = new EventSource(base + "/stream");
  source.addEventListener("open", function () { if (dot) { dot.classList.add("on"); } });
  source.addEventListener("error", function () { if (dot) { dot.classList.remove("on"); } });
  source.addEventListener("summary", function (message) {
    var summary = JSON.parse(message.data);
    apply(summary);
    var key = [summary.version, summary.waiting, summary.dead_letters, summary.workers_online,
               summary.workers_lost, summary.running].join("/");
    if (last !== null && key !== last) { refresh(); }
    last = key;
  });
})();
