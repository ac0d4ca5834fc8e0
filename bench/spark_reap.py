"""Stop what a Spark run left behind: every process whose environment holds
HARKEN_SPARK_RUN=<marker> (the driver, Spark's JVM, PySpark's daemon and workers, the harken
workers they piped to) other than this process and its ancestors.

    python3 bench/spark_reap.py MARKER [--grace SECONDS]

Waits up to --grace seconds (default 10) for them to exit by themselves (a JVM that was just
stopped), then sends SIGTERM to their process groups (PySpark's daemon puts itself and its workers
in a group of its own, so the driver's group alone does not cover them) and to each of them,
then SIGKILL to what is left after 3 s. Lists what it had to stop on stderr and exits 1 when it
stopped anything, 0 when nothing was left.
"""

import argparse
import os
import signal
import sys
import time


def ancestors():
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def marked(marker):
    want = f"HARKEN_SPARK_RUN={marker}".encode()
    skip = ancestors()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if want not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found[int(entry)] = cmd
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("marker")
    ap.add_argument("--grace", type=float, default=10.0)
    args = ap.parse_args()
    if not args.marker:
        sys.exit("spark_reap: empty marker")
    deadline = time.monotonic() + args.grace
    left = marked(args.marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = marked(args.marker)
    if not left:
        return 0
    for pid, cmd in sorted(left.items()):
        print(f"spark: leftover process {pid}: {cmd[:200]}", file=sys.stderr)
    own = os.getpgrp()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        groups = set()
        for pid in left:
            try:
                groups.add(os.getpgid(pid))
            except OSError:
                pass
        for pgid in groups - {own}:
            try:
                os.killpg(pgid, sig)
            except OSError:
                pass
        for pid in left:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        end = time.monotonic() + 3
        while time.monotonic() < end and marked(args.marker):
            time.sleep(0.1)
        left = marked(args.marker)
        if not left:
            break
    return 1


if __name__ == "__main__":
    sys.exit(main())
