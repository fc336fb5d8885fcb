"""Loading is lazy, cached and safe to race."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

from refnet_geo import _data


def test_import_loads_nothing_and_lookups_load_only_what_they_need() -> None:
    script = textwrap.dedent(
        """
        import sys
        import refnet_geo as geo
        from refnet_geo import _data
        assert "vietnam_provinces" not in sys.modules  # its enums cost ~45 ms; the JSON is read directly

        loaded = _data.loaded_tables
        assert loaded() == set(), loaded()
        geo.resolve_commune("00004")
        assert loaded() == {"current_map"}, loaded()
        geo.neighbours("22")
        assert loaded() == {"current_map", "neighbour_table"}, loaded()
        geo.resolve_commune("00001")  # an old code: now the old map is needed
        assert loaded() == {"current_map", "neighbour_table", "legacy_map"}, loaded()
        assert "vietnam_provinces" not in sys.modules
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_tables_are_loaded_once_and_cached() -> None:
    assert _data.current_map() is _data.current_map()
    assert _data.legacy_map() is _data.legacy_map()


def test_concurrent_first_calls_load_once() -> None:
    calls: list[int] = []
    started = threading.Semaphore(0)

    def slow() -> int:
        calls.append(1)
        for _ in range(8):  # the load is still under way when every caller has started (no sleeping)
            assert started.acquire(timeout=10)
        return len(calls)

    get = _data._once(slow)
    results: list[int] = []

    def call() -> None:
        started.release()
        results.append(get())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    assert results == [1] * 8
