"""Draw a soak run (bench/soak.sh): RSS, open fds and threads over time, latency percentiles per
minute, and statuses, into <dir>/soak.png.

    python bench/soak_plot.py bench/results/soak-base-3600s
"""

import csv
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    d = sys.argv[1]
    rows = list(csv.DictReader(open(f"{d}/samples.csv")))
    s = json.load(open(f"{d}/summary.json"))
    t = [float(r["t_s"]) / 60 for r in rows]
    fig, ax = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    ax[0].plot(t, [float(r["rss_mib"]) for r in rows], color="tab:blue")
    ax[0].set_ylabel("RSS (MiB)")
    ax[0].set_ylim(bottom=0)
    ax[1].plot(t, [int(r["fds"]) for r in rows], label="open fds", color="tab:orange")
    ax[1].plot(t, [int(r["threads"]) for r in rows], label="threads", color="tab:green")
    ax[1].set_ylim(bottom=0)
    ax[1].legend(loc="upper left")
    pm = [m for m in s["per_minute"] if m["n"]]
    mt = [m["minute"] + 0.5 for m in pm]
    for key, style in (("p50_s", "-"), ("p95_s", "--"), ("p99_s", ":")):
        ax[2].plot(mt, [m[key] for m in pm], style, label=key[:-2], color="tab:purple")
    ax[2].set_yscale("log")
    ax[2].set_ylabel("latency (s), per minute")
    ax[2].legend(loc="upper left")
    reqs = list(csv.DictReader(open(f"{d}/requests.csv")))
    buckets = {}
    for r in reqs:
        m = int(float(r["t_s"]) // 60)
        cls = r["status"] if r["status"] in ("200", "closed") else ("4xx" if r["status"].startswith("4") else r["status"])
        buckets.setdefault(cls, {}).setdefault(m, 0)
        buckets[cls][m] += 1
    for cls, per in sorted(buckets.items()):
        xs = sorted(per)
        ax[3].plot([x + 0.5 for x in xs], [per[x] for x in xs], marker=".", label=cls)
    ax[3].set_ylabel("requests per minute")
    ax[3].set_xlabel("minutes")
    ax[3].legend(loc="upper left", ncol=4)
    checks = "; ".join(f"{k}: {'ok' if v['ok'] else 'FAIL'}" for k, v in s["checks"].items())
    fig.suptitle(f"harken serve soak: {s['duration_s'] / 60:.0f} min, {s['requests']} requests, "
                 f"{s['audio_seconds_transcribed'] / 60:.0f} min of audio — {s['verdict']}\n{checks}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{d}/soak.png", dpi=90)
    print(f"soak: drew {d}/soak.png")


if __name__ == "__main__":
    main()
