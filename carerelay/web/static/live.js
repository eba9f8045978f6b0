/* carerelay live updates (plain JavaScript, served by carerelay; no build step, no CDN).

   One WebSocket per page: GET /api/ws?after=<the event number the page was rendered at>, so an
   event that happens between the render and the connection is replayed, not lost. Events:
     message.new      -> a "delivered" receipt, a sound by priority (none for a courtesy reply),
                         the regions that show messages reload from the server
     receipt.changed  -> regions showing receipts reload
     alert.new / alert.changed -> a sound and a banner, alert regions reload
     staffing.changed -> the board of that unit (data-unit) reloads
   A region is any element with data-refresh-on="kinds…" and data-refresh-url: its HTML is fetched
   from the server again (rendered and escaped there), never built from event text here. Messages
   shown with data-unread are marked read over the socket while the page is visible.
*/
(function () {
  "use strict";
  var body = document.body;
  if (!body || body.dataset.live !== "1") { return; }
  var me = parseInt(body.dataset.me || "0", 10);
  var lastSeq = body.dataset.lastSeq || "";
  var announcer = document.getElementById("announcer");
  var statusBox = document.getElementById("live-status");
  var toasts = document.getElementById("toasts");
  var socket = null;
  var backoff = 1000;

  /* -- sounds by priority (Web Audio tones: nothing to download) -- */
  var PATTERNS = {
    routine: [[660, 0.15]],
    urgent: [[740, 0.15], [0, 0.1], [740, 0.15]],
    stat: [[880, 0.12], [0, 0.06], [880, 0.12], [0, 0.06], [880, 0.12]],
    critical: [[988, 0.25], [740, 0.25], [988, 0.25], [740, 0.25], [988, 0.25], [740, 0.25]]
  };
  var audio = null;
  function soundsOn() { return window.localStorage.getItem("carerelay.sounds") !== "off"; }
  function audioContext() {
    if (!audio) {
      var Ctor = window.AudioContext || window.webkitAudioContext;
      if (!Ctor) { return null; }
      audio = new Ctor();
    }
    return audio;
  }
  function play(priority) {
    var pattern = PATTERNS[priority] ? priority : "routine";
    body.dataset.lastSound = pattern;
    if (!soundsOn()) { return; }
    var ctx = audioContext();
    if (!ctx) { return; }
    if (ctx.state === "suspended") { ctx.resume(); }
    var t = ctx.currentTime;
    PATTERNS[pattern].forEach(function (step) {
      if (step[0]) {
        var osc = ctx.createOscillator();
        var gain = ctx.createGain();
        osc.frequency.value = step[0];
        gain.gain.setValueAtTime(0.2, t);
        gain.gain.exponentialRampToValueAtTime(0.001, t + step[1]);
        osc.connect(gain);
        gain.connect(ctx.destination);
        osc.start(t);
        osc.stop(t + step[1]);
      }
      t += step[1];
    });
  }
  var toggle = document.getElementById("sound-toggle");
  function showToggle() {
    if (!toggle) { return; }
    toggle.setAttribute("aria-pressed", soundsOn() ? "true" : "false");
    toggle.textContent = soundsOn() ? "Sounds on" : "Sounds off";
  }
  if (toggle) {
    toggle.hidden = false;
    showToggle();
    toggle.addEventListener("click", function () {
      window.localStorage.setItem("carerelay.sounds", soundsOn() ? "off" : "on");
      showToggle();
      if (soundsOn()) { play("routine"); }
    });
  }
  /* Browsers start audio only after a user gesture: the first click or key unlocks it. */
  function unlock() { var ctx = audioContext(); if (ctx && ctx.state === "suspended") { ctx.resume(); } }
  document.addEventListener("click", unlock, { once: true });
  document.addEventListener("keydown", unlock, { once: true });

  function announce(text) { if (announcer) { announcer.textContent = text; } }

  function toast(text, href, priority) {
    if (!toasts) { return; }
    var item = document.createElement("p");
    item.className = "toast priority-" + (PATTERNS[priority] ? priority : "routine");
    var link = document.createElement("a");
    link.href = href;
    link.textContent = text;
    item.appendChild(link);
    var close = document.createElement("button");
    close.type = "button";
    close.className = "link";
    close.textContent = "Dismiss";
    close.addEventListener("click", function () { item.remove(); });
    item.appendChild(close);
    toasts.appendChild(item);
  }

  /* -- regions reloaded from the server -- */
  var busy = new WeakMap();
  /* Someone typing in a region's form (a note, a choice) keeps what they typed: the reload waits
     until the focus leaves the region. */
  function editing(region) {
    var el = document.activeElement;
    return el && region.contains(el) && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName);
  }
  function refresh(region) {
    if (busy.get(region)) { busy.set(region, "again"); return; }
    if (editing(region)) {
      if (!region.dataset.refreshPending) {
        region.dataset.refreshPending = "1";
        region.addEventListener("focusout", function later() {
          window.setTimeout(function () {
            if (editing(region)) { return; }
            region.removeEventListener("focusout", later);
            delete region.dataset.refreshPending;
            refresh(region);
          }, 0);
        });
      }
      return;
    }
    busy.set(region, true);
    fetch(region.dataset.refreshUrl, { credentials: "same-origin", headers: { "X-Requested-With": "live" } })
      .then(function (response) {
        if (response.redirected && response.url.indexOf("/sign-in") !== -1) { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null || html === undefined) { return; }
        var focused = document.activeElement && region.contains(document.activeElement) ? document.activeElement.id : "";
        region.innerHTML = html;
        if (focused) { var again = document.getElementById(focused); if (again) { again.focus(); } }
        enhance(region);
        markRead();
      })
      .catch(function () { /* the next event or reconnect refreshes again */ })
      .then(function () {
        var again = busy.get(region) === "again";
        busy.delete(region);
        if (again) { refresh(region); }
      });
  }
  function matches(region, kind, data) {
    var kinds = (region.dataset.refreshOn || "").split(/\s+/);
    if (kinds.indexOf(kind) === -1) { return false; }
    var conversation = region.dataset.conversation;
    if (conversation) {
      var ids = [];
      if (data.conversation_id !== undefined) { ids.push(String(data.conversation_id)); }
      (data.receipts || []).forEach(function (r) { ids.push(String(r.conversation_id)); });
      if (data.id !== undefined && kind.indexOf("conversation.") === 0) { ids.push(String(data.id)); }
      if (ids.indexOf(conversation) === -1) { return false; }
    }
    if (kind === "receipt.changed" && region.dataset.receipts === "mine") {
      /* The inbox counts what I have not read: only my own reading (here or on another device) changes it. */
      var mine = (data.receipts || []).some(function (r) { return r.person_id === me; });
      if (!mine) { return false; }
    }
    var alertId = region.dataset.alert;
    if (alertId && String(data.id) !== alertId) { return false; }
    var unit = region.dataset.unit;
    if (unit && data.unit !== unit) { return false; }
    return true;
  }
  function refreshFor(kind, data) {
    document.querySelectorAll("[data-refresh-on]").forEach(function (region) {
      if (matches(region, kind, data)) { refresh(region); }
    });
  }
  document.querySelectorAll("[data-refresh-every]").forEach(function (region) {
    var seconds = parseInt(region.dataset.refreshEvery, 10);
    if (seconds > 0) { window.setInterval(function () { refresh(region); }, seconds * 1000); }
  });

  /* -- receipts -- */
  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(frame)); return true; }
    return false;
  }
  function markRead() {
    if (document.visibilityState !== "visible") { return; }
    var ids = [];
    document.querySelectorAll("[data-unread]").forEach(function (el) { ids.push(parseInt(el.dataset.unread, 10)); });
    if (ids.length && send({ type: "receipt", state: "read", message_ids: ids })) {
      document.querySelectorAll("[data-unread]").forEach(function (el) { el.removeAttribute("data-unread"); });
    }
  }
  document.addEventListener("visibilitychange", markRead);

  /* -- inline media: played here, never offered for download -- */
  function enhance(root) {
    root.querySelectorAll("audio, img.attachment").forEach(function (el) {
      el.addEventListener("contextmenu", function (e) { e.preventDefault(); });
    });
  }
  enhance(document);

  /* -- the socket -- */
  function setStatus(state, text) {
    if (!statusBox) { return; }
    statusBox.dataset.state = state;
    statusBox.textContent = text;
  }
  function onEvent(frame) {
    lastSeq = String(frame.seq);
    var kind = frame.kind;
    var data = frame.data || {};
    if (kind === "message.new" && data.sender_id !== me) {
      send({ type: "receipt", state: "delivered", message_ids: [data.id] });
      if (!data.silent) { play(data.priority); }
      announce("New " + (data.priority === "routine" ? "" : data.priority + " ") + "message from " + data.sender_name);
    } else if (kind === "alert.new") {
      play(data.priority);
      announce("New " + data.priority + " alert: " + data.title);
      toast(data.priority.toUpperCase() + " alert: " + data.title, "/alerts/" + data.id, data.priority);
    } else if (kind === "staffing.changed" && document.querySelector('[data-unit="' + CSS.escape(String(data.unit)) + '"]')) {
      announce("The " + data.unit + " board changed");
    } else if (kind === "session.ended") {
      return;
    }
    refreshFor(kind, data);
  }
  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + window.location.host + "/api/ws" + (lastSeq !== "" ? "?after=" + encodeURIComponent(lastSeq) : "");
    socket = new WebSocket(url);
    socket.addEventListener("open", function () {
      backoff = 1000;
      setStatus("open", "Live");
      markRead();
    });
    socket.addEventListener("message", function (message) {
      var frame;
      try { frame = JSON.parse(message.data); } catch (e) { return; }
      if (frame.type === "hello" && lastSeq === "") { lastSeq = String(frame.last_seq); }
      else if (frame.type === "event") { onEvent(frame); }
      else if (frame.type === "session_ended") { setStatus("ended", "Signed out"); }
    });
    socket.addEventListener("close", function (event) {
      if (event.code === 4001 || event.code === 1008) {
        setStatus("ended", "Signed out");
        window.location.href = "/sign-in?next=" + encodeURIComponent(window.location.pathname);
        return;
      }
      setStatus("closed", "Reconnecting…");
      /* A refused handshake looks like a network drop: ask whether the session still exists. */
      fetch("/api/auth/me", { credentials: "same-origin" }).then(function (response) {
        if (response.status === 401) {
          window.location.href = "/sign-in?next=" + encodeURIComponent(window.location.pathname);
        }
      }).catch(function () { /* offline: keep trying */ });
      window.setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
    });
  }
  connect();
}());
