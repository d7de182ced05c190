"""Render a benchmark result as Markdown tables, the form RESULTS.md keeps."""

from __future__ import annotations

from typing import Any

__all__ = ["render"]

_LATENCY_COLUMNS = ("p50", "p90", "p99", "p99.9", "max")


def render(results: dict[str, Any]) -> str:
    """Return the tables of ``results`` as Markdown text."""
    parts = [_render_machine(results)]
    for key, renderer in (
        ("costs", _render_costs),
        ("latency", _render_latency),
        ("throughput", _render_throughput),
        ("growth", _render_growth),
        ("batch", _render_batches),
        ("middleware", _render_middleware),
    ):
        if key in results:
            parts.append(renderer(results[key]))
    for name, reason in results.get("skipped", {}).items():
        parts.append(f"Skipped {name}: {reason}.")
    return "\n\n".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(" --- " for _ in header) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def _us(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    if value >= 10_000:
        return f"{value / 1000:,.1f} ms"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _error(row: dict[str, Any]) -> str | None:
    reason = row.get("error") or row.get("skipped")
    return str(reason) if reason else None


def _render_machine(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())
    return (
        f"Machine: {machine.get('cpus')} CPUs, {machine.get('cpu_model')}; "
        f"{machine.get('implementation')} {machine.get('python')} on "
        f"{machine.get('platform')}; {machine.get('date')}; load average "
        f"{' '.join(str(x) for x in machine.get('load_average', []))}; "
        f"{results.get('mode', '')} run in {results.get('seconds')} s.\n"
        f"Versions: {versions}."
    )


def _render_costs(result: dict[str, Any]) -> str:
    error = _error(result)
    if error:
        return f"### What each step costs\n\n{error}"
    body = [[row["step"], _us(row["us"]), row["per"]] for row in result["rows"]]
    table = _table(["step", "µs", "per"], body)
    return "### What each step costs (µs, best of three)\n\n" + table


def _render_latency(rows: list[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        error = _error(row)
        if error:
            body.append([row["client"], row["service"], error, *[""] * 6])
            continue
        calls = row.get("calls", 0)
        accepted = row.get("accepted", 0)
        share = f"{100 * accepted / calls:.0f}%" if calls else "-"
        body.append(
            [
                row["client"],
                row["service"],
                f"{calls:,}",
                share,
                *(_us(row.get(column)) for column in _LATENCY_COLUMNS),
            ]
        )
    table = _table(["client", "service", "calls", "accepted", *_LATENCY_COLUMNS], body)
    return (
        "### Enqueue latency per call (µs)\n\n" + table + "\n\n" + _render_ratios(rows)
    )


def _render_ratios(rows: list[dict[str, Any]]) -> str:
    ours = {
        row["service"]: row
        for row in rows
        if row["client"] == "auditkit" and not _error(row)
    }
    body = []
    for row in rows:
        base = ours.get(row["service"])
        if row["client"].startswith("auditkit") or base is None or _error(row):
            continue
        ratios = []
        for column in ("p50", "p99"):
            mine, theirs = base.get(column), row.get(column)
            ratios.append(f"{theirs / mine:.1f}x" if mine and theirs else "-")
        body.append([row["client"], row["service"], *ratios])
    table = _table(
        ["peer", "service", "peer / auditkit at p50", "peer / auditkit at p99"], body
    )
    return "### How much slower than auditkit's record()\n\n" + table


def _render_throughput(rows: list[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        error = _error(row)
        if error:
            body.append([row["client"], error, "", "", "", ""])
            continue
        body.append(
            [
                row["client"],
                f"{row['sent']:,}",
                f"{row['received']:,}",
                f"{row['lost']:,}",
                f"{row['events_per_second']:,}",
                f"{row['peak_rss_mib']:.0f}",
            ]
        )
    table = _table(
        ["client", "sent", "received", "lost", "events/s", "peak RSS MiB"], body
    )
    return (
        "### Delivered to a local sink from one thread, waiting for space\n\n" + table
    )


def _render_growth(rows: list[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        error = _error(row)
        if error:
            body.append([f"{row['depth']:,}", error, "", "", "", ""])
            continue
        body.append(
            [
                f"{row['depth']:,}",
                f"{row['calls']:,}",
                *(_us(row.get(column)) for column in ("p50", "p99", "p99.9", "max")),
            ]
        )
    table = _table(["buffered", "calls", "p50", "p99", "p99.9", "max"], body)
    return "### auditkit record() latency (µs) by events already buffered\n\n" + table


def _render_batches(rows: list[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        error = _error(row)
        if error:
            body.append([str(row["batch_size"]), error, ""])
            continue
        body.append(
            [
                str(row["batch_size"]),
                f"{row['events_per_second']:,}",
                f"{row['lost']:,}",
            ]
        )
    table = _table(["batch size", "events/s", "lost"], body)
    return "### auditkit delivery by batch size (Policy.BLOCK)\n\n" + table


def _render_middleware(rows: list[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        error = _error(row)
        if error:
            body.append([row["framework"], error, "", "", "", ""])
            continue
        body.append(
            [
                row["framework"],
                _us(row["bare"]["p50"]),
                _us(row["audited"]["p50"]),
                _us(row["added_p50_us"]),
                _us(row["added_p99_us"]),
                _us(row["added_mean_us"]),
            ]
        )
    table = _table(
        ["app", "bare p50", "audited p50", "added p50", "added p99", "added mean"],
        body,
    )
    return "### Middleware: time per request (µs), in-process\n\n" + table
