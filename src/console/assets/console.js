// facegate web console: the only script. Live events: while "Live" is ticked, the events
// table is re-read from the server every few seconds (its rows, rendered by the server).
"use strict";
(function () {
  var rows = document.getElementById("event-rows");
  var live = document.getElementById("live");
  if (!rows || !live || !rows.dataset.rows) return;
  var every = 5000;
  function poll() {
    if (!live.checked || document.hidden) return;
    fetch(rows.dataset.rows, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || r.status === 401 || r.status === 403) { live.checked = false; return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) { if (html !== null && html !== undefined) rows.innerHTML = html; })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  setInterval(poll, every);
})();
