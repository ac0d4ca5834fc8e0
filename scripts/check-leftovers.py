"""Fail when a process started by the test suite is still running after it.

scripts/test.sh exports HARKEN_TEST_RUN=<unique id>; every process the suite starts inherits it
(cargo, test binaries, the servers they spawn, their workers). This script runs with that
variable removed from its own environment, so it finds exactly the suite's processes other than
the suite's own shell and its ancestors. Leftovers get a few seconds to exit (a server that was
just sent SIGTERM), are listed, killed, and fail the run.

    env -u HARKEN_TEST_RUN python3 scripts/check-leftovers.py "$HARKEN_TEST_RUN"
"""

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
                # The command name may hold spaces and parentheses: split after its last ")".
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def leftovers(marker):
    want = f"HARKEN_TEST_RUN={marker}".encode()
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
        except OSError:
            continue  # exited meanwhile, or not ours to read
        found[int(entry)] = cmd or "?"
    return found


def main():
    if len(sys.argv) != 2 or not sys.argv[1]:
        sys.exit("usage: check-leftovers.py MARKER")
    if os.environ.get("HARKEN_TEST_RUN"):
        sys.exit("run me with HARKEN_TEST_RUN removed (env -u HARKEN_TEST_RUN)")
    deadline = time.monotonic() + 5
    found = leftovers(sys.argv[1])
    while found and time.monotonic() < deadline:
        time.sleep(0.25)
        found = leftovers(sys.argv[1])
    if not found:
        print("leftovers: none — no process of the suite outlived it")
        return
    for pid, cmd in sorted(found.items()):
        print(f"leftovers: pid {pid} still running: {cmd[:200]}", file=sys.stderr)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    sys.exit(f"leftovers: {len(found)} process(es) of the suite outlived it (killed now)")


if __name__ == "__main__":
    main()
