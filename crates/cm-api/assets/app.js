// ContainerManager dashboard: a little plain JavaScript on top of server-rendered pages.
// Every page works without it; with it, statuses refresh, keys are checked as you type, logs
// follow, and secrets copy with one click. Text from the server is only ever set as text.
"use strict";

(function () {
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function sessionEnded(response) {
    if (response.status === 401) {
      window.location.assign("/login");
      return true;
    }
    return false;
  }

  // ---- Filters and selectors submit on change -------------------------------------------
  $all("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // ---- Containers list: tick all on the page, count the ticked ones ---------------------
  var bulkForm = $("#bulk-form");
  if (bulkForm) {
    var boxes = $all('input[type="checkbox"][form="bulk-form"]');
    var all = $("#select-all");
    var count = $("#bulk-count");
    var syncTicks = function () {
      var ticked = boxes.filter(function (b) { return b.checked; }).length;
      boxes.forEach(function (b) {
        var row = b.closest("tr");
        if (row) { row.classList.toggle("selected", b.checked); }
      });
      if (all) { all.checked = ticked > 0 && ticked === boxes.length; all.indeterminate = ticked > 0 && ticked < boxes.length; }
      if (count) {
        count.textContent = ticked === 0
          ? "Tick containers in the list; nothing happens before you confirm."
          : ticked + " selected; you confirm on the next page.";
      }
    };
    boxes.forEach(function (b) { b.addEventListener("change", syncTicks); });
    if (all) {
      $("#select-all-row").hidden = false;
      all.addEventListener("change", function () {
        boxes.forEach(function (b) { b.checked = all.checked; });
        syncTicks();
      });
    }
    syncTicks();
  }

  // ---- Live statuses --------------------------------------------------------------------
  var POLL_MS = 5000;
  // While the engine can not be asked, statuses are greyed and actions wait (they would fail).
  function markStale(stale) {
    $all("[data-poll-statuses]").forEach(function (area) {
      area.classList.toggle("stale", stale);
      $all("[data-actions-for] button", area).forEach(function (b) { b.disabled = stale; });
    });
  }
  if ($("[data-stale]")) { markStale(true); }
  function applyStatuses(data) {
    markStale(Boolean(data.stale));
    var containers = data.containers || {};
    $all("[data-status-for]").forEach(function (badge) {
      var name = badge.getAttribute("data-status-for");
      var now = containers[name];
      if (!now) { return; }
      var text = $(".badge-text", badge);
      if (text && text.textContent !== now.status) {
        text.textContent = now.status;
        badge.className = "badge badge-" + now["class"] + " changed";
      }
    });
    $all("[data-actions-for]").forEach(function (group) {
      var now = containers[group.getAttribute("data-actions-for")];
      if (!now) { return; }
      var running = ["running", "restarting", "crash-looping"].indexOf(now.status) >= 0;
      $all('button[data-when="running"]', group).forEach(function (b) { b.hidden = !running; });
      $all('button[data-when="stopped"]', group).forEach(function (b) { b.hidden = running; });
    });
  }
  function poll() {
    var indicator = $("#live-indicator");
    if (document.hidden) { return; }
    fetch("/ui/statuses", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (sessionEnded(response)) { return null; }
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (data) {
        if (!data) { return; }
        applyStatuses(data);
        if (indicator) {
          indicator.classList.toggle("paused", Boolean(data.stale));
          indicator.textContent = data.stale
            ? "Engine unreachable: statuses may be old"
            : "Live · updated " + new Date().toLocaleTimeString();
        }
      })
      .catch(function () {
        if (indicator) {
          indicator.classList.add("paused");
          indicator.textContent = "Status refresh failed; retrying";
        }
      });
  }
  function startPolling() {
    window.setInterval(poll, POLL_MS);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { poll(); } });
  }
  // Changes are pushed as they happen (server-sent events); where the server can not push
  // (no live view, an old browser, a proxy in the way), the page polls instead.
  function listen() {
    var indicator = $("#live-indicator");
    var source = new EventSource("/ui/events");
    var opened = false;
    source.addEventListener("statuses", function (event) {
      opened = true;
      var data = JSON.parse(event.data);
      applyStatuses(data);
      if (indicator) {
        indicator.classList.toggle("paused", Boolean(data.stale));
        indicator.textContent = data.stale
          ? "Engine unreachable: statuses may be old"
          : "Live · updated " + new Date().toLocaleTimeString();
      }
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (503, a signed-out session): poll, which also notices the end of a session.
        source.close();
        startPolling();
        poll();
      } else if (opened && indicator) {
        indicator.classList.add("paused");
        indicator.textContent = "Reconnecting to live updates";
      }
    });
  }
  if ($("[data-poll-statuses]")) {
    if (window.EventSource) { listen(); } else { startPolling(); }
  }

  // ---- Copy buttons ---------------------------------------------------------------------
  $all("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) { return; }
      var text = source.textContent;
      var done = function () {
        var label = button.textContent;
        button.textContent = "Copied";
        window.setTimeout(function () { button.textContent = label; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () {});
      } else {
        var range = document.createRange();
        range.selectNodeContents(source);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
      }
    });
  });

  // ---- SSH key check as you type --------------------------------------------------------
  $all("textarea[data-key-check]").forEach(function (area) {
    var out = document.getElementById(area.getAttribute("data-key-check"));
    var timer = null;
    var sequence = 0;
    function show(kind, parts) {
      out.className = "key-check " + kind;
      out.textContent = "";
      parts.forEach(function (part) {
        var span = document.createElement("span");
        if (part.mono) { span.className = "mono"; }
        span.textContent = part.text;
        out.appendChild(span);
      });
    }
    function check() {
      var text = area.value.trim();
      if (!text) { out.className = "key-check"; out.textContent = ""; return; }
      var mine = ++sequence;
      fetch("/ui/check-key", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "text/plain; charset=utf-8", "X-CSRF-Token": csrf },
        body: text
      })
        .then(function (response) {
          if (sessionEnded(response)) { return null; }
          return response.json();
        })
        .then(function (result) {
          if (!result || mine !== sequence) { return; }
          if (result.ok) {
            var parts = [{ text: "✓ valid " + result.algorithm + " key · " }, { text: result.fingerprint, mono: true }];
            if (result.comment) { parts.push({ text: " · " + result.comment }); }
            show("ok", parts);
          } else {
            show("bad", [{ text: "✗ " + (result.error || "refused") }]);
          }
        })
        .catch(function () { show("bad", [{ text: "the key could not be checked right now" }]); });
    }
    area.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(check, 250);
    });
    if (area.value.trim()) { check(); }
  });

  // ---- SSH keys page: the selected container's panel ------------------------------------
  $all("select[data-panels]").forEach(function (select) {
    var panelClass = select.getAttribute("data-panels");
    function showSelected() {
      $all("." + panelClass).forEach(function (panel) {
        panel.hidden = panel.getAttribute("data-panel") !== select.value;
      });
      if (window.history && window.history.replaceState) {
        window.history.replaceState(null, "", "/keys?container=" + encodeURIComponent(select.value));
      }
    }
    select.addEventListener("change", showSelected);
  });

  // ---- Create page: "enable SSH" only matters for optional types ------------------------
  var typeSelect = $("#container_type");
  var sshRow = $("#enable-ssh-row");
  if (typeSelect && sshRow) {
    var syncSsh = function () {
      var option = typeSelect.options[typeSelect.selectedIndex];
      sshRow.hidden = !option || option.getAttribute("data-ssh") !== "optional";
    };
    typeSelect.addEventListener("change", syncSsh);
    syncSsh();
  }

  // ---- Logs: wrap, scroll, follow -------------------------------------------------------
  var logs = $("#logs");
  if (logs) {
    logs.scrollTop = logs.scrollHeight;
    var wrap = $("#wrap");
    if (wrap) {
      wrap.addEventListener("change", function () { logs.classList.toggle("wrap-lines", wrap.checked); });
    }
    var follow = $("#follow");
    var state = $("#follow-state");
    var controller = null;
    var setState = function (text) { if (state) { state.textContent = text; } };
    var stop = function (text) {
      if (controller) { controller.abort(); controller = null; }
      follow.checked = false;
      setState(text);
    };
    if (follow) {
      follow.addEventListener("change", function () {
        if (!follow.checked) { stop("Stopped following"); return; }
        if (!window.ReadableStream || !window.AbortController) { stop("This browser can not follow"); return; }
        controller = new AbortController();
        setState("Following new output…");
        var empty = $("#logs-empty");
        if (empty) { empty.hidden = true; }
        var decoder = new TextDecoder();
        fetch(follow.getAttribute("data-follow") + "?tail=0", { credentials: "same-origin", signal: controller.signal })
          .then(function (response) {
            if (sessionEnded(response)) { return; }
            if (!response.ok || !response.body) { stop("Following failed (" + response.status + ")"); return; }
            var reader = response.body.getReader();
            var pump = function () {
              return reader.read().then(function (part) {
                if (part.done) { stop("The stream ended (the container stopped)"); return; }
                var atBottom = logs.scrollHeight - logs.scrollTop - logs.clientHeight < 40;
                logs.appendChild(document.createTextNode(decoder.decode(part.value, { stream: true })));
                if (atBottom) { logs.scrollTop = logs.scrollHeight; }
                return pump();
              });
            };
            return pump();
          })
          .catch(function (e) { if (e && e.name !== "AbortError") { stop("Following stopped: " + e.message); } });
      });
    }
  }
})();
