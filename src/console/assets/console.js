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

// Enrollment at the door camera: the preview image and the quality advice are re-read about
// three times a second while the page is visible.
(function () {
  var img = document.getElementById("camera-frame");
  var advice = document.getElementById("camera-advice");
  var quality = document.getElementById("camera-quality");
  if (!img || !advice || !img.dataset.frame) return;
  function dd(dl, term, value) {
    var t = document.createElement("dt"); t.textContent = term; dl.appendChild(t);
    var d = document.createElement("dd"); d.textContent = value; dl.appendChild(d);
  }
  function tick() {
    if (document.hidden) return;
    img.src = img.dataset.frame + "?t=" + Date.now();
    fetch(img.dataset.state, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) return;
        advice.textContent = s.advice;
        advice.className = s.usable ? "good" : "muted";
        quality.textContent = "";
        if (s.quality) {
          dd(quality, "Eyes apart", Math.round(s.quality.eye_distance_px) + " px");
          dd(quality, "Turned", Math.round(s.quality.yaw_deg) + "°");
          dd(quality, "Tilted", Math.round(s.quality.roll_deg) + "°");
          dd(quality, "Sharpness", Math.round(s.quality.sharpness));
        }
      })
      .catch(function () { /* try again at the next tick */ });
  }
  setInterval(tick, 350);
})();
