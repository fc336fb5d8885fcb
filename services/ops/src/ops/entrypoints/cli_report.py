"""`refnet report`: the indicator report per line or place and period, as a table, JSON, CSV, XLSX or SVG,
or the ids behind one figure (operations team)."""

from __future__ import annotations

import argparse
import sys

from ops.domain.report import line_code
from ops.entrypoints.cli_client import Client, Progress, dump, table


def add_arguments(report: argparse.ArgumentParser) -> None:
    report.add_argument("--line", help="a hotline's number (18001769), 111 or a province code: by handling line")
    report.add_argument("--place", help="a province code: figures by the place it happened")
    report.add_argument("--province", default="", help="province code(s), comma-separated; empty for the country")
    report.add_argument("--by", choices=("line", "place"), default="line",
                        help="with --province: by handling line (default) or by place")
    report.add_argument("--xlsx", help="write the spreadsheet (a sheet per indicator group) to this file")
    report.add_argument("--ids", help="list the ids a figure counts (operations team): INDICATOR[:DIMENSION=VALUE]")
    report.add_argument("--from", dest="date_from", help="first day, YYYY-MM-DD (default: 30 days ago)")
    report.add_argument("--to", dest="date_to", help="last day, YYYY-MM-DD (default: today)")
    report.add_argument("--csv", help="write the CSV to this file ('-' for standard output)")
    report.add_argument("--svg", help="write the chart to this file")
    report.set_defaults(run=cmd_report)


def cmd_report(client: Client, args: argparse.Namespace) -> int:
    by = args.by
    if args.line:
        by, provinces = "line", [line_code(args.line)]
    elif args.place:
        by, provinces = "place", [args.place.strip()]
    else:
        provinces = [p.strip() for p in (args.province or "").split(",")] or [""]
    period = {"from": args.date_from or "", "to": args.date_to or "", "by": by}
    if args.ids:
        indicator, _, row = args.ids.partition(":")
        dimension, _, value = row.partition("=")
        found = client.get("/api/report/ids", province=provinces[0], indicator=indicator, dimension=dimension,
                           value=value, **period)
        if args.json:
            dump(found)
        else:
            print("\n".join(found["ids"]))
            print(f"{found['count']} ids", file=sys.stderr)
        return 0
    progress = Progress(len(provinces), "counting") if len(provinces) > 1 else None
    reports = []
    for province in provinces:
        reports.append(client.get("/api/report", province=province, **period))
        if progress:
            progress.step(province or "national")
    if args.xlsx:
        with open(args.xlsx, "wb") as binary:
            binary.write(client.content("/report.xlsx", province=provinces[0], **period))
        print(f"wrote {args.xlsx}", file=sys.stderr)
    if args.csv:
        texts = [client.text("/report.csv", province=p, **period) for p in provinces]
        text = texts[0] + "".join(t.split("\n", 1)[1] for t in texts[1:])  # one header line
        if args.csv == "-":
            sys.stdout.write(text)
        else:
            with open(args.csv, "w", encoding="utf-8", newline="") as out:
                out.write(text)
            print(f"wrote {args.csv}", file=sys.stderr)
    if args.svg:
        with open(args.svg, "w", encoding="utf-8") as out:
            out.write(client.text("/report.svg", province=provinces[0], **period))
        print(f"wrote {args.svg}", file=sys.stderr)
    if args.csv == "-":
        return 0
    if args.json:
        dump({"reports": reports})
        return 0
    for data in reports:
        report = data["report"]
        print(f"{report['scope']}  {report['period']['start']} to {report['period']['end']}")
        table(["group", "indicator", "by", "value", "figure"], data["rows"])
        print()
    return 0
