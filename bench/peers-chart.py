"""Draws the training-loop charts of the peer comparison from its JSON (written by bench/peers.ts).

Three figures, each a grid of network condition (rows) by scenario (columns), one line per client:
GPU busy % over time, store requests per minute over time, network bytes in over time.
Prints the file names it wrote (relative to OUT_DIR), one a line.
Usage: python peers-chart.py PEERS.json OUT_DIR
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"bucketfs": "#DD8452", "rclone": "#4C72B0", "s3fs": "#55A868", "bucketfs-gs": "#C44E52", "gcsfuse": "#8172B3"}
LABELS = {"bucketfs": "bucketfs", "rclone": "rclone mount", "s3fs": "s3fs-fuse", "bucketfs-gs": "bucketfs (gs://)", "gcsfuse": "gcsfuse"}
SCENARIOS = [
    ("files", "1. small files, no cache"),
    ("cached", "2. small files, disk cache, 3 epochs"),
    ("shards", "3. tar shards, no cache"),
]
NETS = [("loopback", "plain loopback"), ("shaped", "shaped like S3")]


def smooth(xs, k):
    """Trailing mean over k seconds: per-second counts are lumpy (a batch lands in one second or the next)."""
    out = []
    for i in range(len(xs)):
        w = xs[max(0, i - k + 1) : i + 1]
        out.append(sum(w) / len(w))
    return out


def series(run, what):
    s = run["result"]["series"]
    t = [p["t"] for p in s]
    if what == "gpu":
        ys = [max(0.0, 100.0 - p["waitMs"] / 10.0) for p in s]
        return t, smooth(ys, 3)
    prev = {"GET": 0, "HEAD": 0, "LIST": 0, "OTHER": 0, "bytesIn": 0}
    ys = []
    for p in s:
        c = p.get("counts") or prev
        if what == "requests":
            ys.append(60.0 * sum(c[k] - prev[k] for k in ("GET", "HEAD", "LIST", "OTHER")))
        else:
            ys.append((c["bytesIn"] - prev["bytesIn"]) / 1e6)
        prev = c
    # The first sample is against a zero baseline taken before the mount: start from the second.
    if ys:
        ys[0] = ys[1] if len(ys) > 1 else 0
    return t, smooth(ys, 5)


def figure(run, what, ylabel, title, out):
    fig, axes = plt.subplots(len(NETS), len(SCENARIOS), figsize=(15, 7.5), squeeze=False, sharey="row" if what == "gpu" else False)
    for r, (net, net_title) in enumerate(NETS):
        for c, (scn, scn_title) in enumerate(SCENARIOS):
            ax = axes[r][c]
            for sim in run["sims"]:
                if sim["net"] != net or sim["scenario"] != scn:
                    continue
                t, ys = series(sim, what)
                ax.plot(t, ys, color=COLORS.get(sim["client"]), label=LABELS.get(sim["client"], sim["client"]), linewidth=1.4)
                if scn == "cached":
                    # Mark where each later epoch starts.
                    start = 0.0
                    for e in sim["result"]["epochs"][:-1]:
                        start += e["seconds"]
                        ax.axvline(start + sim["result"]["listSeconds"], color=COLORS.get(sim["client"]), alpha=0.25, linestyle=":")
            ax.set_title(f"{scn_title} — {net_title}", fontsize=9)
            ax.set_xlabel("seconds since the simulator started", fontsize=8)
            if c == 0:
                ax.set_ylabel(ylabel, fontsize=8)
            if what == "gpu":
                ax.set_ylim(0, 105)
            ax.grid(alpha=0.25)
            ax.tick_params(labelsize=7)
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.96), ncol=len(labels), fontsize=9, frameon=False)
    quick = " (quick run)" if run.get("quick") else ""
    fig.suptitle(f"{title} — {run['nproc']} cores, {run['date'][:10]}{quick}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(src, out_dir):
    with open(src) as f:
        run = json.load(f)
    if not run["sims"]:
        return
    made = []
    for what, ylabel, title, name in [
        ("gpu", "GPU busy % (3 s mean)", "Training loop: share of time the GPU computes", "peers-gpu.png"),
        ("requests", "store requests/min (5 s mean)", "Training loop: store requests per minute", "peers-requests.png"),
        ("bytes", "MB/s from the store (5 s mean)", "Training loop: network bytes in", "peers-bytes.png"),
    ]:
        figure(run, what, ylabel, title, os.path.join(out_dir, name))
        made.append(name)
    print("\n".join(made))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
