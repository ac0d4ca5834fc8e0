"""Clients that honour Retry-After: each sends a clip, and on 503 waits what the server asks and
sends it again, until it gets an answer. Reports requests completed, lost (ended without a 200)
and the throughput, for bench/storm.sh.

    python3 bench/storm_client.py --url URL --clip WAV --clients 40 --duration 60 [--base R]
"""

import argparse
import http.client
import threading
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--clients", type=int, default=40)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--base", type=float, default=0.0, help="unloaded transcriptions/s")
    a = ap.parse_args()
    body = open(a.clip, "rb").read()
    u = urllib.parse.urlparse(a.url)
    stop_at = time.monotonic() + a.duration
    lock = threading.Lock()
    stats = {"ok": 0, "lost": 0, "refusals": 0, "in_window": 0}

    def one(conn):
        """One request to its end; returns (status, connection to reuse)."""
        while True:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
                conn.request("POST", u.path, body, {"Content-Type": "audio/wav"})
                r = conn.getresponse()
                r.read()
                if r.status == 503:
                    with lock:
                        stats["refusals"] += 1
                    if r.getheader("connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    time.sleep(float(r.getheader("retry-after") or 1))
                    continue
                return r.status, conn
            except (OSError, http.client.HTTPException):
                # A connection refused or closed at the connection limit: also back off.
                if conn is not None:
                    conn.close()
                conn = None
                with lock:
                    stats["refusals"] += 1
                time.sleep(1)

    def client():
        conn = None
        while time.monotonic() < stop_at:
            status, conn = one(conn)
            with lock:
                if status == 200:
                    stats["ok"] += 1
                    if time.monotonic() <= stop_at:
                        stats["in_window"] += 1
                else:
                    stats["lost"] += 1

    start = time.monotonic()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    rate = stats["in_window"] / a.duration
    ratio = f", ratio to unloaded {rate / a.base:.2f}" if a.base else ""
    print(f"polite storm ({a.clients} clients honouring Retry-After): {stats['ok']} completed "
          f"({rate:.3f} /s within the window{ratio}), {stats['lost']} lost, "
          f"{stats['refusals']} refusals waited out, drained in {wall - a.duration:.1f} s")


if __name__ == "__main__":
    main()
