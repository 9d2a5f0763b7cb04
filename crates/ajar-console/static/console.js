// ajar console: small progressive enhancements; every page works without them.
"use strict";

// Instants in the reader's local time.
function localTimes(root) {
  root.querySelectorAll("time[datetime]").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) { t.textContent = d.toLocaleString(); t.title = t.getAttribute("datetime"); }
  });
}

// The server's clock minus the browser's, so countdowns follow the server despite skew.
var skew = 0;
(function () {
  var box = document.querySelector("[data-server-now]");
  var server = box ? new Date(box.dataset.serverNow) : null;
  if (server && !isNaN(server)) { skew = server - new Date(); }
})();

// "Closes in 1h 02m 03s" countdowns.
function countdowns() {
  document.querySelectorAll(".countdown[data-end]").forEach(function (c) {
    var left = Math.max(0, Math.floor((new Date(c.dataset.end) - (Date.now() + skew)) / 1000));
    var h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
    c.textContent = left === 0 ? "closed" : (h ? h + "h " : "") + String(m).padStart(2, "0") + "m " + String(s).padStart(2, "0") + "s";
  });
}

// The duration slider's label.
function slider() {
  var range = document.getElementById("minutes"), out = document.getElementById("minutes-out");
  if (!range || !out) { return; }
  var show = function () {
    var m = Number(range.value);
    var h = Math.floor(m / 60), rest = m % 60;
    out.textContent = h ? h + " h" + (rest ? " " + rest + " min" : "") : m + " min";
  };
  range.addEventListener("input", show);
  show();
}

// Live status of an access request: poll until every port is open or closed.
function poll() {
  var box = document.getElementById("status");
  if (!box || !box.dataset.poll) { return; }
  var tick = function () {
    fetch(box.dataset.poll, { credentials: "same-origin" }).then(function (r) {
      if (r.status === 404) { return null; }
      return r.ok ? r.json() : null;
    }).then(function (req) {
      if (!req) { return setTimeout(tick, 2000); }
      var rows = box.querySelectorAll("tbody tr"), i = 0, pending = false;
      if (rows.length === 0) { return location.reload(); }
      (req.virtualMachines || []).forEach(function (m) {
        (m.ports || []).forEach(function (p) {
          var row = rows[i++]; if (!row) { return; }
          var state = p.status !== "Initiated" ? "closed" : (p.openSince ? "open" : "opening");
          var cell = row.querySelector("[data-state]");
          // Closed ports read as history reads their request: "Revoked (NewerRequestInitiated)".
          var words = state !== "closed" ? state : "closed: " + p.status +
            (p.statusReason && p.statusReason !== p.status ? " (" + p.statusReason + ")" : "");
          cell.textContent = words; cell.className = "state " + state;
          if (p.connectionDetails) { row.children[3].textContent = p.connectionDetails.address + ":" + p.connectionDetails.port; }
          if (state === "opening") { pending = true; }
        });
      });
      if (pending) { setTimeout(tick, 2000); }
    }).catch(function () { setTimeout(tick, 5000); });
  };
  tick();
}

document.addEventListener("DOMContentLoaded", function () {
  localTimes(document);
  countdowns();
  setInterval(countdowns, 1000);
  slider();
  poll();
});
