// refnet operator workspace: place autocompletion on the case form, and the case page's referrals kept live
// through server-sent events. Every page works without it (a plain place field resolved by the server, a
// "Refresh" link on the case page).
(function () {
  "use strict";

  // Places: fill the field's <datalist> from /places?q= as the operator types.
  function places(input) {
    var list = document.getElementById(input.getAttribute("list"));
    var url = input.getAttribute("data-places");
    if (!list || !url || !window.fetch) { return; }
    var timer = null, asked = "";
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var q = input.value.trim();
        if (q.length < 2 || q === asked) { return; }
        asked = q;
        fetch(url + "?q=" + encodeURIComponent(q), {credentials: "same-origin", headers: {"Accept": "application/json"}})
          .then(function (r) { return r.ok ? r.json() : []; })
          .then(function (found) {
            if (asked !== q) { return; }
            list.textContent = "";
            found.forEach(function (p) {
              var option = document.createElement("option");
              option.value = p.value;
              if (p.label !== p.value) { option.label = p.label; }
              list.appendChild(option);
            });
          })
          .catch(function () { /* the server resolves what was typed anyway */ });
      }, 120);
    });
  }

  // A child's consent: who gives it matters only for a child.
  function childConsent(box) {
    var part = document.getElementById("child-consent");
    if (!part) { return; }
    var sync = function () { part.hidden = !box.checked && !part.querySelector(".field-error"); };
    box.addEventListener("change", sync);
    sync();
  }

  // The case page: one EventSource; on each event fetch the referral list again if it moved.
  function live(box) {
    if (!window.EventSource || !window.fetch) { return; }
    var ok = document.getElementById("live-ok"), lost = document.getElementById("live-lost");
    var source = null, lostTimer = null, retryTimer = null, loading = false, again = false;
    var seenNotice = Number((document.getElementById("referral-list") || {dataset: {}}).dataset.notice || 0);

    function showLost(on) {
      if (lost) { lost.hidden = !on; }
      if (ok) { ok.hidden = on; }
    }
    function current() {
      var list = document.getElementById("referral-list");
      return list ? list.dataset.fingerprint : "";
    }
    function reload() {
      if (loading) { again = true; return; }
      loading = true;
      fetch(box.getAttribute("data-partial"), {credentials: "same-origin", redirect: "error"})
        .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.text(); })
        .then(function (html) { box.innerHTML = html; })
        .catch(function () { showLost(true); })
        .then(function () {
          loading = false;
          if (again) { again = false; reload(); }
        });
    }
    function connect() {
      source = new EventSource(box.getAttribute("data-events"));
      source.addEventListener("open", function () {
        clearTimeout(lostTimer);
        showLost(false);
      });
      source.addEventListener("referrals", function (e) {
        clearTimeout(lostTimer);
        showLost(false);
        var state = JSON.parse(e.data);
        var notice = Number(state.notice || 0);
        if (state.referrals !== current() || notice > seenNotice) {
          seenNotice = Math.max(seenNotice, notice);
          reload();
        }
      });
      source.addEventListener("error", function () {
        // A stream ends every minute and the browser reconnects at once: say "lost" only if it stays lost.
        clearTimeout(lostTimer);
        lostTimer = setTimeout(function () { showLost(true); }, 1500);
        if (source.readyState === EventSource.CLOSED) {
          clearTimeout(retryTimer);
          retryTimer = setTimeout(connect, 3000);
        }
      });
    }
    connect();
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("input[data-places]"), places);
    var child = document.getElementById("is_child");
    if (child) { childConsent(child); }
    var box = document.getElementById("referrals");
    if (box && box.getAttribute("data-events")) { live(box); }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
