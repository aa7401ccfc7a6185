"""Draws docs/benchmarks.png from one benchmark run's JSON (written by bench/bench.ts).

One panel per network condition; per workload, MB/s for the network limit (direct SDK), the FUSE
limit (RAM fs) and bucketfs, with bucketfs / min(limits) printed over the bucketfs bar.
Usage: python chart.py RESULTS.json OUT.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"sdk": "#4C72B0", "ramfs": "#999999", "bucketfs": "#DD8452"}
LABELS = {
    "sdk": "network limit (direct SDK)",
    "ramfs": "FUSE limit (RAM fs)",
    "bucketfs": "bucketfs",
}
NET_TITLE = {
    "loopback": "plain loopback",
    "shaped": "shaped: +20 ms, 100 MB/s per connection",
}


def find(run, workload, target, net):
    info = next(w for w in run["workloads"] if w["name"] == workload)
    name = info.get("sdkSameAs") if target == "sdk" and info.get("sdkSameAs") else workload
    for m in run["measures"]:
        if m["workload"] == name and m["target"] == target and (target == "ramfs" or m["net"] == net):
            return m
    return None


def main(src, out):
    with open(src) as f:
        run = json.load(f)
    # Reads only: the write workloads have their own table (a MB/s written is another axis).
    workloads = [w for w in run["workloads"] if w["kind"] != "latency" and not w.get("write")]
    nets = run["nets"]
    if not workloads:
        return
    fig, axes = plt.subplots(len(nets), 1, figsize=(11, 4.2 * len(nets)), squeeze=False)
    width = 0.26
    for ax, net in zip(axes[:, 0], nets):
        xs = range(len(workloads))
        for i, target in enumerate(["sdk", "ramfs", "bucketfs"]):
            vals = []
            for w in workloads:
                m = find(run, w["name"], target, net)
                vals.append(m["mbps"] if m else 0)
            pos = [x + (i - 1) * width for x in xs]
            ax.bar(pos, vals, width, color=COLORS[target], label=LABELS[target] if ax is axes[0, 0] else None)
            if target == "bucketfs":
                for x, w, v in zip(pos, workloads, vals):
                    sdk = find(run, w["name"], "sdk", net)
                    ram = find(run, w["name"], "ramfs", net)
                    if v and sdk and ram:
                        # Epoch 2 reads no network: its yardstick is the FUSE limit alone.
                        floor = ram["mbps"] if w.get("target") == "epoch70" else min(sdk["mbps"], ram["mbps"])
                        r = v / floor
                        ax.text(x, v * 1.08, f"{r:.0%}", ha="center", va="bottom", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("MB/s read by the application")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([w["name"] for w in workloads], rotation=20, ha="right")
        ax.set_title(NET_TITLE.get(net, net))
        ax.grid(axis="y", which="both", alpha=0.25)
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi * 2)  # room for the ratio labels
    facts = run["facts"]
    fig.suptitle(
        f"bucketfs read throughput vs. limits — {facts['nproc']} cores, "
        f"{facts['memGiB']:.0f} GiB, {facts['date'][:10]}"
        + (" (quick run)" if run.get("quick") else ""),
        fontsize=11,
    )
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
