"""A fuzzing campaign: every target of ``fuzz/targets.py`` for a set time, one process at a time,
in sessions of ``--session`` seconds, with the numbers libFuzzer prints added up.

    python fuzz/campaign.py --seconds 900 [--session 120] [--out out/fuzz] [TARGET ...]

Each session is ``fuzz/run.py TARGET`` with a 5-second hang limit (``-timeout=5``) and a 2 GB
memory limit (``-rss_limit_mb=2048``); its new inputs go to ``OUT/TARGET/`` (read again by the
next session, beside the checked-in seeds), a failing input to ``OUT/TARGET-crash-*``,
``-timeout-*`` or ``-oom-*``. Why sessions: under atheris's instrumentation a process grows by up
to about 100 kB an input (the same inputs replayed without it stay flat: docs/reliability.md),
which would reach the memory limit in a long session of the stepper target. ``OUT/summary.json``
and the printed table hold, per target, the time, executions, sessions, crashes, hangs and
out-of-memory stops, and the largest memory a session used.
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
    stat = {k: int(v) for k, v in re.findall(r"stat::(\w+):\s+(\d+)", log)}
    runs = stat.get("number_of_executed_units")
    if runs is None:  # a crash ends the run before the final stats: the last progress line
        counts = re.findall(r"^#(\d+)\s", log, re.M)
        runs = int(counts[-1]) if counts else 0
    kind = ("oom" if "libFuzzer: out-of-memory" in log else "timeout" if "libFuzzer: timeout" in log
            else "crash" if done.returncode != 0 else "ok")
    return {"runs": runs, "peak_rss_mb": stat.get("peak_rss_mb", 0), "end": kind,
            "artifact": (re.findall(r"Test unit written to (\S+)", log) or [None])[-1]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", default=list(TARGETS))
    ap.add_argument("--seconds", type=int, default=60, help="fuzzing time per target")
    ap.add_argument("--session", type=int, default=120, help="seconds per fuzzer process")
    ap.add_argument("--out", type=Path, default=Path("out/fuzz"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for target in args.targets:
        row = {"seconds": 0.0, "runs": 0, "sessions": 0, "crash": 0, "timeout": 0, "oom": 0, "peak_rss_mb": 0,
               "artifacts": []}
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
        summary[target] = row
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
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
