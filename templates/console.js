// kefu console: live queue and ticket views, suggested replies, keyboard shortcuts.
// The server renders every piece of HTML (autoescaped); this script only fetches those
// pieces again when the event stream says something changed, and sends actions.
(function () {
  "use strict";
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.content : "";
  var workspace = document.getElementById("workspace");
  var live = document.getElementById("live");
  // Countdowns run on the server's clock: the offset of this browser's clock from it.
  var skew = workspace && workspace.dataset.now ? Number(workspace.dataset.now) - Date.now() : 0;

  tickCountdowns();
  setInterval(tickCountdowns, 15000);
  if (!workspace) { return; }

  var queueBody = document.getElementById("queue");
  var panel = document.getElementById("panel");
  var query = workspace.dataset.query || "";
  var current = workspace.dataset.selected || null;
  var chosen = null; // the suggestion picked into the reply box: {reply, text}
  var queueTimer = null;

  function qs() { return query ? "?" + query : ""; }

  function get(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || r.status === 401 || r.status === 303) { location.href = "/console/login"; throw new Error("login"); }
        return r.text().then(function (body) { return { status: r.status, body: body }; });
      });
  }

  function post(url, fields) {
    var body = new URLSearchParams();
    Object.keys(fields).forEach(function (k) { if (fields[k] != null) { body.append(k, fields[k]); } });
    return fetch(url, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "X-CSRF-Token": csrf, "Accept": "application/json" }
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) { return { status: r.status, data: data }; });
    });
  }

  function refreshQueue() {
    return get("/console/fragments/queue" + qs()).then(function (r) {
      if (r.status === 200) { queueBody.innerHTML = r.body; markSelected(); tickCountdowns(); }
    });
  }

  function scheduleQueue() {
    if (queueTimer) { return; }
    queueTimer = setTimeout(function () { queueTimer = null; refreshQueue(); }, 30);
  }

  function refreshPanel() {
    if (!current) { return Promise.resolve(); }
    var id = current;
    var draft = textArea() ? textArea().value : "";
    var hadFocus = document.activeElement === textArea();
    return get("/console/fragments/tickets/" + encodeURIComponent(id)).then(function (r) {
      if (id !== current) { return; }
      if (r.status === 200) {
        panel.innerHTML = r.body;
        if (textArea()) { textArea().value = draft; if (hadFocus) { textArea().focus(); } }
      } else {
        panel.innerHTML = "";
        var p = document.createElement("p");
        p.className = "empty";
        p.textContent = r.status === 403 ? "This ticket is no longer yours or in your queue." : "This ticket is gone.";
        panel.appendChild(p);
      }
      tickCountdowns();
    });
  }

  function open(id) {
    if (!id) { return; }
    current = id;
    chosen = null;
    history.replaceState(null, "", "/console/tickets/" + encodeURIComponent(id) + qs());
    markSelected();
    refreshPanel().then(function () { if (textArea()) { textArea().focus(); } });
  }

  function markSelected() {
    queueBody.querySelectorAll("tr[data-ticket]").forEach(function (tr) {
      tr.classList.toggle("selected", tr.dataset.ticket === current);
    });
  }

  function rows() { return Array.prototype.slice.call(queueBody.querySelectorAll("tr[data-ticket]")); }
  function textArea() { return document.getElementById("reply-text"); }
  function ticketEl() { return document.getElementById("ticket"); }

  function showError(text, kind) {
    var el = document.getElementById("reply-error");
    if (!el) { return; }
    el.textContent = text || "";
    el.className = "reply-error" + (kind ? " " + kind : "");
  }

  function pick(slot) {
    var li = panel.querySelector('.suggestion[data-slot="' + slot + '"]');
    if (!li || !textArea()) { return; }
    var text = li.querySelector(".text").textContent;
    chosen = { reply: li.dataset.reply, text: text };
    textArea().value = text;
    textArea().focus();
    panel.querySelectorAll(".suggestion").forEach(function (s) { s.classList.toggle("picked", s === li); });
  }

  function send(text, replyId, confirm) {
    var t = ticketEl();
    if (!t || !text.trim()) { return; }
    showError("");
    post("/console/tickets/" + encodeURIComponent(t.dataset.ticket) + "/reply", {
      text: text, reply_id: replyId, message_id: t.dataset.message || null, confirm: confirm ? "1" : null
    }).then(function (r) {
      if (r.status === 200) {
        chosen = null;
        if (textArea()) { textArea().value = ""; }
        refreshPanel();
        return;
      }
      var message = (r.data && (r.data.message || r.data.error)) || ("Not sent (" + r.status + ").");
      if (r.status === 409 && r.data && r.data.error === "warning") {
        showError(message, "warning");
        var el = document.getElementById("reply-error");
        var b = document.createElement("button");
        b.type = "button";
        b.textContent = "Send anyway";
        b.addEventListener("click", function () { send(text, replyId, true); });
        el.appendChild(document.createTextNode(" "));
        el.appendChild(b);
      } else {
        showError(message, "blocked");
      }
    });
  }

  function replyIdFor(text) {
    return chosen ? chosen.reply : null;
  }

  // Clicks: open a ticket from the queue, suggestion buttons, resolve.
  document.addEventListener("click", function (e) {
    var a = e.target.closest("a[data-open]");
    if (a && !e.ctrlKey && !e.metaKey && !e.shiftKey) { e.preventDefault(); open(a.dataset.open); return; }
    var b = e.target.closest("button[data-action]");
    if (!b) { return; }
    var t = ticketEl();
    var li = b.closest(".suggestion");
    var action = b.dataset.action;
    if (action === "send" && li) {
      send(li.querySelector(".text").textContent, li.dataset.reply, false);
    } else if (action === "edit" && li) {
      pick(li.dataset.slot);
    } else if (action === "copy" && li) {
      if (navigator.clipboard) { navigator.clipboard.writeText(li.querySelector(".text").textContent); }
    } else if (action === "dismiss" && li && t) {
      post("/console/tickets/" + encodeURIComponent(t.dataset.ticket) + "/dismiss",
        { message_id: t.dataset.message, reply_id: li.dataset.reply }).then(refreshPanel);
    } else if (action === "resolve" && t) {
      resolve();
    }
  });

  function resolve() {
    var t = ticketEl();
    if (!t) { return; }
    post("/console/tickets/" + encodeURIComponent(t.dataset.ticket) + "/resolve", {}).then(function (r) {
      if (r.status !== 200) { showError((r.data && (r.data.message || r.data.error)) || "Not resolved.", "blocked"); }
      refreshPanel();
      scheduleQueue();
    });
  }

  document.addEventListener("submit", function (e) {
    if (e.target.id !== "reply-form") { return; }
    e.preventDefault();
    var text = textArea().value;
    send(text, replyIdFor(text), false);
  });

  var tickAll = document.getElementById("tick-all");
  if (tickAll) {
    tickAll.addEventListener("change", function () {
      queueBody.querySelectorAll('input[name="ticket"]').forEach(function (c) { c.checked = tickAll.checked; });
    });
  }

  // Keys: 1/2/3 pick a suggestion, Enter sends, J/K move, R resolves.
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var inText = e.target && (e.target.tagName === "TEXTAREA" || e.target.tagName === "INPUT" || e.target.tagName === "SELECT");
    if (e.key === "Enter" && !e.shiftKey && e.target === textArea()) {
      e.preventDefault();
      var text = textArea().value;
      send(text, replyIdFor(text), false);
      return;
    }
    var typing = inText && !(e.target === textArea() && textArea().value === "");
    if (typing) { return; }
    if (e.key === "1" || e.key === "2" || e.key === "3") { e.preventDefault(); pick(e.key); return; }
    if (inText) { return; }
    if (e.key === "j" || e.key === "k") {
      var list = rows();
      if (!list.length) { return; }
      var i = list.findIndex(function (tr) { return tr.dataset.ticket === current; });
      i = e.key === "j" ? Math.min(list.length - 1, i + 1) : Math.max(0, i < 0 ? 0 : i - 1);
      open(list[i].dataset.ticket);
    } else if (e.key === "r") {
      resolve();
    }
  });

  // Live: "hello" at every (re)connection reloads both views; "ticket" names one change.
  var source = new EventSource("/console/events");
  source.addEventListener("hello", function () {
    if (live) { live.className = "live on"; }
    refreshQueue();
    refreshPanel();
  });
  source.addEventListener("ticket", function (e) {
    var change;
    try { change = JSON.parse(e.data); } catch (_) { return; }
    scheduleQueue();
    if (change.ticket === current) { refreshPanel(); }
  });
  source.addEventListener("error", function () { if (live) { live.className = "live off"; } });
  markSelected();

  function tickCountdowns() {
    var now = Date.now() + skew;
    document.querySelectorAll(".countdown[data-due]").forEach(function (el) {
      var due = Number(el.dataset.due);
      var mins = Math.floor(Math.abs(due - now) / 60000);
      var span = mins >= 60 ? Math.floor(mins / 60) + "h " + (mins % 60) + "m" : mins + "m";
      el.textContent = due >= now ? span + " left" : span + " over";
      if (due < now) { el.classList.add("sla-breach"); }
    });
  }
})();
