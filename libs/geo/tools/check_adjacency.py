"""Cross-check the hand-compiled province borders against commune centroids. A developer's tool.

Not run by tests or CI: it needs numpy and scipy, which refnet does not depend on. Use a throwaway
virtualenv::

    python3 -m venv /tmp/sci && /tmp/sci/bin/pip install numpy scipy
    /tmp/sci/bin/python libs/geo/tools/check_adjacency.py /tmp/vau/vietnamadminunits-1.0.4-py3-none-any.whl

Method: triangulate (Delaunay) the geocoded centroids of the 10,035 communes of the 63-province map
(vietnamadminunits 1.0.4's admin_units_legacy table); two provinces are taken to touch when an edge
shorter than the threshold joins a commune of one to a commune of the other. It prints every pair
on which that evidence and province_adjacency_63.tsv disagree. Last run (2026-11-23): no disagreement
at 20 km or 30 km; at 8-12 km a few real borders through sparse highlands lack an edge, at 50 km two
sea crossings from Ba Ria - Vung Tau (to Tien Giang and Ben Tre) appear.
"""

from __future__ import annotations

import collections
import math
import sqlite3
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from scipy.spatial import Delaunay

ADJACENCY = Path(__file__).resolve().parent.parent / "src" / "refnet_geo" / "data" / "province_adjacency_63.tsv"


def main() -> int:
    wheel_path = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel_path) as wheel:
        wheel.extract("vietnamadminunits/data/dataset.db", tmp)
        db = sqlite3.connect(Path(tmp) / "vietnamadminunits/data/dataset.db")
        rows = db.execute(
            "SELECT provinceCode, wardLat, wardLon FROM admin_units_legacy WHERE wardLat IS NOT NULL"
        ).fetchall()
        db.close()

    claimed: set[tuple[str, str]] = set()
    for line in ADJACENCY.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        code, _name, others = line.split("\t")
        claimed.update((min(code, o), max(code, o)) for o in others.split())

    scale_x = 111.32 * math.cos(math.radians(16.0))  # km per degree of longitude, mid-Vietnam
    points = np.array([[lon * scale_x, lat * 110.57] for _p, lat, lon in rows])
    province = [p for p, _lat, _lon in rows]
    triangles = Delaunay(points).simplices

    for threshold_km in (8.0, 12.0, 20.0, 30.0, 50.0):
        evidence: collections.Counter[tuple[str, str]] = collections.Counter()
        for tri in triangles:
            for i in range(3):
                a, b = int(tri[i]), int(tri[(i + 1) % 3])
                pa, pb = province[a], province[b]
                if pa != pb and float(np.linalg.norm(points[a] - points[b])) < threshold_km:
                    evidence[(min(pa, pb), max(pa, pb))] += 1
        missing = sorted(claimed - set(evidence))
        extra = sorted(set(evidence) - claimed)
        print(
            f"{threshold_km:>4.0f} km: {len(claimed)} claimed, {len(evidence)} with evidence;"
            f" claimed without evidence {missing}; evidence not claimed {extra}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
