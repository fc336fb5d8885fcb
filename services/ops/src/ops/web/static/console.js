// Keeps the page live: every few seconds it fetches itself and swaps in the new <main>, unless someone is
// typing in a form on it or the tab is hidden. No libraries, nothing from outside this server, no inline
// script anywhere (the Content-Security-Policy allows only this file).

// Filters marked data-autosubmit apply as soon as they change (delegated: the live part is swapped in).
document.addEventListener("change", function (event) {
  const target = event.target;
  if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit") && target.form) {
    target.form.submit();
  }
});

(function () {
  const live = document.getElementById("live");
  if (!live || !live.dataset.live) return;
  const every = Math.max(parseFloat(live.dataset.refresh || "3"), 1) * 1000;
  async function refresh() {
    const active = document.activeElement;
    if (document.hidden || (active && live.contains(active) && active.matches("input, select, textarea"))) return;
    try {
      const reply = await fetch(location.href, { headers: { "X-Refresh": "1" }, cache: "no-store",
                                                 redirect: "manual" });
      if (reply.status === 401 || reply.status === 403 || reply.type === "opaqueredirect") {
        location.reload();  // signed out, or the session ended: the page itself goes to the sign-in
        return;
      }
      if (!reply.ok) return;
      const page = new DOMParser().parseFromString(await reply.text(), "text/html");
      const next = page.getElementById("live");
      if (next) live.innerHTML = next.innerHTML;
      const stamp = page.getElementById("updated");
      if (stamp) document.getElementById("updated").textContent = stamp.textContent;
      live.dataset.refreshed = String(Date.now());
    } catch (err) {
      document.getElementById("updated").textContent = "console unreachable — retrying";
    }
  }
  setInterval(refresh, every);
})();
