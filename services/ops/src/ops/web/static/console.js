// Keeps the page live: every few seconds it fetches itself and swaps in the new <main>, unless someone is
// typing in a form on it or the tab is hidden. No libraries, nothing from outside this server.
(function () {
  const live = document.getElementById("live");
  if (!live || !live.dataset.live) return;
  const every = Math.max(parseFloat(live.dataset.refresh || "3"), 1) * 1000;
  async function refresh() {
    const active = document.activeElement;
    if (document.hidden || (active && live.contains(active) && active.matches("input, select, textarea"))) return;
    try {
      const reply = await fetch(location.href, { headers: { "X-Refresh": "1" }, cache: "no-store" });
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
