"""A fuzzing campaign: every target of ``fuzz/targets.py`` for a set time, one process at a time,
in sessions of ``--session`` seconds, with the numbers libFuzzer prints added up.

    python fuzz/campaign.py --seconds 900 [--session 120] [--out out/fuzz] [TARGET ...]

Each session is ``fuzz/run.py TARGET`` with a 5-second hang limit (``-timeout=5``) and a 2 GB
memory limit (``-rss_limit_mb=2048``); its new inputs go to ``OUT/TARGET/`` (read again by the
next session, beside the checked-in seeds), a failing input to ``OUT/TARGET-crash-*``,
``-timeout-*`` or ``-oom-*``. Why sessions: under atheris's instrumentation a process grows by up
to about 100 kB an input (the same inputs replayed without it stay flat: docs/reliability.md),
which would reach the memory limit in a long session of the stepper target. ``OUT/summary.json``
holds, per target, the time, executions, sessions, crashes, hangs and out-of-memory stops, and the
largest memory a session used, of every campaign into OUT added up (written after each session);
the printed table, this run's.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ("container", "crafted", "image", "stepper", "serve_image", "serve_atk")


def session(target: str, seconds: int, out: Path) -> dict:
    """One run of ``fuzz/run.py``: its executions, peak memory, and how it ended."""
    (out / target).mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(HERE / "run.py"), target, f"-max_total_time={seconds}", "-timeout=5",
           "-rss_limit_mb=2048", "-print_final_stats=1", f"-artifact_prefix={out}/{target}-",
           str(out / target), str(HERE / "corpus" / target)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    log = done.stdout + done.stderr
    with open(out / f"{target}.log", "a") as f:
        f.write(log)
    return ending(log, done.returncode)


def ending(log: str, returncode: int) -> dict:
    """What a session's libFuzzer log says: executions, peak memory, how it ended, the failing input."""
    stat = {k: int(v) for k, v in re.findall(r"stat::(\w+):\s+(\d+)", log)}
    runs = stat.get("number_of_executed_units")
    if runs is None:  # a crash ends the run before the final stats: the last progress line
        counts = re.findall(r"^#(\d+)\s", log, re.M)
        runs = int(counts[-1]) if counts else 0
    kind = ("oom" if "libFuzzer: out-of-memory" in log else "timeout" if "libFuzzer: timeout" in log
            else "crash" if returncode != 0 else "ok")
    return {"runs": runs, "peak_rss_mb": stat.get("peak_rss_mb", 0), "end": kind,
            "artifact": (re.findall(r"Test unit written to (.+?)\s*$", log, re.M) or [None])[-1]}  # (paths with spaces)


ZERO = {"seconds": 0.0, "runs": 0, "sessions": 0, "crash": 0, "timeout": 0, "oom": 0, "peak_rss_mb": 0, "artifacts": []}


def added(a: dict, b: dict) -> dict:
    """Two rows of one target added up (the largest memory of either)."""
    out = {k: a.get(k, ZERO[k]) + b.get(k, ZERO[k]) for k in ZERO if k != "peak_rss_mb"}
    out["seconds"] = round(out["seconds"], 1)
    out["peak_rss_mb"] = max(a.get("peak_rss_mb", 0), b.get("peak_rss_mb", 0))
    return out


def read_summary(path: Path) -> dict:
    """The rows of an earlier campaign into the same folder (none when there is none)."""
    if not path.exists():
        return {}
    try:
        rows = json.loads(path.read_text())
        if isinstance(rows, dict) and all(isinstance(r, dict) for r in rows.values()):
            return rows
    except (OSError, ValueError):
        pass
    sys.exit(f"{path} is not a campaign summary: move it away, or give another --out")


def write_summary(path: Path, rows: dict) -> None:
    """Write ``rows`` whole or not at all (a campaign stopped part-way keeps the last complete file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rows, indent=2))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", default=list(TARGETS), metavar="TARGET",
                    help=f"targets to run, in turn (default: all of {', '.join(TARGETS)})")
    ap.add_argument("--seconds", type=int, default=60, help="fuzzing time per target")
    ap.add_argument("--session", type=int, default=120, help="seconds per fuzzer process")
    ap.add_argument("--out", type=Path, default=Path("out/fuzz"))
    args = ap.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:  # (each session would fail and count as a crash)
        ap.error(f"unknown target(s) {', '.join(unknown)}: the targets are {', '.join(TARGETS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "summary.json"
    total = read_summary(path)  # earlier campaigns into this folder: their rows are added to, not replaced
    summary = {}
    for target in args.targets:
        row = dict(ZERO, artifacts=[])
        before = total.get(target, ZERO)
        start = time.monotonic()
        while (left := args.seconds - (time.monotonic() - start)) > 5:
            s = session(target, int(min(args.session, left)), args.out)
            row["sessions"] += 1
            row["runs"] += s["runs"]
            row["peak_rss_mb"] = max(row["peak_rss_mb"], s["peak_rss_mb"])
            if s["end"] != "ok":
                row[s["end"]] += 1
                row["artifacts"].append(s["artifact"])
            row["seconds"] = round(time.monotonic() - start, 1)
            total[target] = added(before, row)
            write_summary(path, total)  # after every session
        row["seconds"] = round(time.monotonic() - start, 1)
        summary[target] = row
        total[target] = added(before, row)
        write_summary(path, total)
        print(f"{target:10s} {row['seconds']:8.0f} s {row['runs']:10d} runs {row['sessions']:4d} sessions "
              f"{row['crash']} crashes {row['timeout']} hangs {row['oom']} out-of-memory "
              f"(peak {row['peak_rss_mb']} MB)", flush=True)
    total = sum(r["runs"] for r in summary.values())
    bad = sum(r["crash"] + r["timeout"] + r["oom"] for r in summary.values())
    print(f"total      {total} runs, {bad} failures", flush=True)
    return summary


if __name__ == "__main__":
    summary = main()
    sys.exit(1 if any(r["crash"] + r["timeout"] + r["oom"] for r in summary.values()) else 0)
