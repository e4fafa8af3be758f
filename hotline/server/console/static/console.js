// hotline console: live calls over server-sent events, Say / Hang up without a page load, the
// live call page's timeline refreshed. Plain JavaScript, no build step; every text goes in with
// textContent (never as HTML), and the only HTML swapped in is the server's own escaped fragment.
"use strict";

(function () {
  const csrf = document.body.dataset.csrf || "";

  function fill(row, call) {
    row.dataset.sid = call.call_sid;
    const link = row.querySelector(".sid");
    link.textContent = call.call_sid;
    link.setAttribute("href", "/console/calls/" + encodeURIComponent(call.call_sid));
    row.querySelector(".caller").textContent = call.caller;
    const state = row.querySelector(".state");
    state.textContent = call.state;
    state.dataset.state = call.state;
    row.querySelector(".duration").textContent = Math.round(call.duration_s) + " s";
    const words = row.querySelector(".caller-words");
    words.textContent = call.caller_words;
    words.classList.toggle("partial", Boolean(call.caller_speaking));
    row.querySelector(".hotline-words").textContent = call.hotline_words;
    const base = "/console/calls/" + encodeURIComponent(call.call_sid);
    row.querySelector("form.say").setAttribute("action", base + "/say");
    row.querySelector("form.hangup").setAttribute("action", base + "/hangup");
    row.querySelector(".say-text").setAttribute("aria-label", "Say on call " + call.call_sid);
    row.querySelector(".hangup-button").setAttribute("aria-label", "Hang up call " + call.call_sid);
  }

  function render(list, calls) {
    const template = document.getElementById("call-template");
    const seen = new Set();
    calls.forEach(function (call, index) {
      seen.add(call.call_sid);
      let row = list.querySelector('li.call[data-sid="' + CSS.escape(call.call_sid) + '"]');
      if (!row) {
        row = template.content.firstElementChild.cloneNode(true);
      }
      fill(row, call);
      if (list.children[index] !== row) list.insertBefore(row, list.children[index] || null);
    });
    Array.from(list.querySelectorAll("li.call")).forEach(function (row) {
      if (seen.has(row.dataset.sid)) return;
      const focused = row.contains(document.activeElement);
      row.remove(); // the call ended
      if (focused) document.getElementById("main").focus();
    });
    const status = document.getElementById("live-status");
    if (status) status.textContent = calls.length + " live call" + (calls.length === 1 ? "" : "s");
  }

  function live(list) {
    const source = new EventSource(list.dataset.live);
    source.addEventListener("calls", function (event) {
      render(list, JSON.parse(event.data).calls);
    });
    list.addEventListener("submit", function (event) {
      const form = event.target;
      if (!(form instanceof HTMLFormElement)) return;
      event.preventDefault();
      const row = form.closest("li.call");
      const result = row ? row.querySelector(".result") : null;
      fetch(form.getAttribute("action"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
        body: new URLSearchParams(new FormData(form)),
      }).then(function (response) {
        return response.json().then(function (body) {
          if (!result) return;
          if (response.ok) {
            result.textContent = form.classList.contains("say") ? "Queued." : "Hanging up.";
            const text = form.querySelector(".say-text");
            if (text) text.value = "";
          } else {
            result.textContent = "Refused: " + (body.detail || response.status);
          }
        });
      }).catch(function () {
        if (result) result.textContent = "Network error.";
      });
    });
  }

  function timeline(box) {
    function refresh() {
      const current = document.getElementById("timeline");
      if (!current || current.dataset.live !== "yes") return;
      fetch(box.dataset.src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html !== null) box.innerHTML = html; // the server's autoescaped fragment
          setTimeout(refresh, 1000);
        })
        .catch(function () { setTimeout(refresh, 3000); });
    }
    setTimeout(refresh, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const list = document.getElementById("calls");
    if (list && list.dataset.live) live(list);
    const box = document.getElementById("timeline-box");
    if (box) timeline(box);
  });
})();
