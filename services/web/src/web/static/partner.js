// Partner portal: the inbox refreshes its list on each change of the agency's referrals (Server-Sent Events
// from /referrals/events, fed by the person's WatchReferrals stream); a lost connection shows and recovers.
// The referral page loads the contact box again while it is being prepared. Without script: the Refresh link.
(function () {
  "use strict";
  var inbox = document.getElementById("inbox");
  if (inbox && window.EventSource && window.fetch) {
    var list = document.getElementById("inbox-list");
    var live = document.getElementById("live");
    var lost = document.getElementById("lost");
    var pending = null, loading = false, again = false, opened = false;
    var load = function () {
      if (loading) { again = true; return; }
      loading = true;
      fetch(inbox.getAttribute("data-list"), {credentials: "same-origin", headers: {"Accept": "text/html"}})
        .then(function (reply) {
          if (reply.redirected || reply.status === 401) { window.location.reload(); return null; }
          return reply.text();
        })
        .then(function (html) { if (html !== null) { list.innerHTML = html; } })
        .catch(function () { lost.hidden = false; })
        .then(function () { loading = false; if (again) { again = false; load(); } });
    };
    var soon = function () {
      if (pending) { return; }
      pending = setTimeout(function () { pending = null; load(); }, 150);
    };
    var source = new EventSource(inbox.getAttribute("data-events"));
    source.addEventListener("ready", function () {
      lost.hidden = true; live.hidden = false;
      if (opened) { soon(); }  // back after a loss: catch up with what changed meanwhile
      opened = true;
    });
    source.addEventListener("referral", soon);
    source.addEventListener("lost", function () { lost.hidden = false; live.hidden = true; });
    source.onerror = function () { lost.hidden = false; live.hidden = true; };
  }

  var tries = 0;
  var retryContact = function () {
    var box = document.getElementById("contact");
    var url = box && box.getAttribute("data-retry");
    if (!url || !window.fetch || tries >= 20) { return; }
    tries += 1;
    setTimeout(function () {
      fetch(url, {credentials: "same-origin"})
        .then(function (reply) { return reply.ok ? reply.text() : null; })
        .then(function (html) {
          if (html) {
            var holder = document.createElement("div");
            holder.innerHTML = html;
            var fresh = holder.querySelector("#contact");
            if (fresh) { box.replaceWith(fresh); }
          }
          retryContact();
        })
        .catch(retryContact);
    }, 1000 + 500 * tries);
  };
  retryContact();
})();
