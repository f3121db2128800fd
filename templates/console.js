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
  var drafts = {}; // ticket id -> what the agent has typed there and not sent
  var panelSeq = 0; // only the newest panel fetch is drawn
  var sending = false;

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
      if (r.status !== 200) { return; }
      // A supervisor's ticks survive the redraw.
      var ticked = {};
      queueBody.querySelectorAll('input[name="ticket"]:checked').forEach(function (c) { ticked[c.value] = true; });
      queueBody.innerHTML = r.body;
      queueBody.querySelectorAll('input[name="ticket"]').forEach(function (c) { if (ticked[c.value]) { c.checked = true; } });
      markSelected();
      tickCountdowns();
    });
  }

  function scheduleQueue() {
    if (queueTimer) { return; }
    queueTimer = setTimeout(function () { queueTimer = null; refreshQueue(); }, 30);
  }

  function refreshPanel() {
    if (!current) { return Promise.resolve(); }
    var id = current;
    var seq = ++panelSeq;
    return get("/console/fragments/tickets/" + encodeURIComponent(id)).then(function (r) {
      if (id !== current || seq !== panelSeq) { return; }
      if (r.status === 200) {
        drawPanel(r.body, id);
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

  // Draw a fetched panel. On the ticket already shown, the reply box is kept as it is (what
  // the agent is typing, the cursor, an input method's composition) and the rest replaced.
  function drawPanel(html, id) {
    var tmp = document.createElement("div");
    tmp.innerHTML = html;
    var fresh = tmp.querySelector("#ticket");
    var old = ticketEl();
    var form = document.getElementById("reply-form");
    if (old && fresh && old.dataset.ticket === id && form && fresh.querySelector("#reply-form")) {
      ["header.ticket-head", "#messages", "section.suggestions", "aside.card", "#quota"].forEach(function (sel) {
        var a = old.querySelector(sel);
        var b = fresh.querySelector(sel);
        if (a && b) { a.replaceWith(b); }
      });
      old.dataset.message = fresh.dataset.message;
      if (chosen) {
        panel.querySelectorAll(".suggestion").forEach(function (s) { s.classList.toggle("picked", s.dataset.reply === chosen.reply); });
      }
      return;
    }
    panel.innerHTML = "";
    while (tmp.firstChild) { panel.appendChild(tmp.firstChild); }
    if (textArea()) { textArea().value = drafts[id] || ""; }
  }

  function open(id) {
    if (!id) { return; }
    if (current && textArea()) { drafts[current] = textArea().value; }
    current = id;
    chosen = null;
    panelSeq++;
    panel.innerHTML = "";
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

  // `fromBox`: the text is the reply box's (re-read when the agent confirms a warning).
  function send(text, replyId, confirm, fromBox) {
    var t = ticketEl();
    if (!t || !text.trim() || sending) { return; }
    var id = t.dataset.ticket;
    sending = true;
    showError("");
    post("/console/tickets/" + encodeURIComponent(id) + "/reply", {
      text: text, reply_id: replyId, message_id: t.dataset.message || null, confirm: confirm ? "1" : null
    }).then(function (r) {
      sending = false;
      if (r.status === 200) {
        if (fromBox) {
          chosen = null;
          delete drafts[id];
          if (textArea() && current === id && textArea().value === text) { textArea().value = ""; }
        }
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
        b.addEventListener("click", function () {
          var again = fromBox && textArea() ? textArea().value : text;
          send(again, fromBox ? replyIdFor() : replyId, true, fromBox);
        });
        el.appendChild(document.createTextNode(" "));
        el.appendChild(b);
      } else {
        showError(message, "blocked");
      }
    }, function () {
      sending = false;
      showError("Not sent: kefu could not be reached.", "blocked");
    });
  }

  // The suggestion the reply box holds, if the agent picked one (the server decides whether
  // the text still comes from it).
  function replyIdFor() {
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
      send(li.querySelector(".text").textContent, li.dataset.reply, false, false);
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

  document.addEventListener("input", function (e) {
    if (current && e.target === textArea()) {
      drafts[current] = textArea().value;
      if (!textArea().value) { chosen = null; }
    }
  });

  document.addEventListener("submit", function (e) {
    if (e.target.id !== "reply-form") { return; }
    e.preventDefault();
    send(textArea().value, replyIdFor(), false, true);
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
      // The Enter that picks an input method's candidate is not a send; nor is a held key.
      if (e.isComposing || e.keyCode === 229) { return; }
      e.preventDefault();
      if (e.repeat) { return; }
      send(textArea().value, replyIdFor(), false, true);
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
