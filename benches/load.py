#!/usr/bin/env python3
"""Load benchmark of the daemon: 500 collector instances on staggered
schedules over a store that already holds 10,000 streams.

Reports scheduling lateness (p50/p99 of started_at - scheduled_for), the
daemon's CPU and RSS while idle and while busy, and `verify` time over the
resulting store, with `sha256sum` over the same blobs as the baseline.

    cargo build --release && python3 benches/load.py [--streams 10000] [--instances 500] [--seconds 70]
"""
import argparse, base64, glob, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")

def cfg(n, schedule, name="c"):
    out = ['[agent]\nid = "load"\nconcurrency = 16\ncatch_up = false\n[admin]\nlisten = "127.0.0.1:0"\n']
    for i in range(n):
        out.append(f'[[collectors]]\nname = "{name}{i:05d}"\nkind = "command"\nschedule = "{schedule(i)}"\ncommand = ["echo", "{{\\"i\\": {i}}}"]\nretries = 0\n')
    return "\n".join(out)

def proc_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
    return cpu, rss

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--instances", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=70)
    ap.add_argument("--profile", default="release")
    a = ap.parse_args()
    exe = os.path.join(ROOT, "target", a.profile, "exhibit")
    if not os.path.exists(exe):
        sys.exit(f"{exe} is missing: cargo build --{a.profile}")
    work = tempfile.mkdtemp(prefix="exhibit-load-")
    try:
        store = os.path.join(work, "evidence")
        # 1. A store with many streams (one collect over that many instances).
        seed = os.path.join(work, "seed.toml")
        with open(seed, "w") as f:
            f.write(cfg(a.streams, lambda i: "@yearly", "s"))
        t = time.perf_counter()
        subprocess.run([exe, "--config", seed, "--store", store, "collect"], check=True, stdout=subprocess.DEVNULL)
        print(f"seeded {a.streams} streams in {time.perf_counter() - t:.1f} s")

        # 2. Idle: the instances exist but nothing is due.
        idle_cfg = os.path.join(work, "idle.toml")
        with open(idle_cfg, "w") as f:
            f.write(cfg(a.instances, lambda i: "@yearly"))
        p = subprocess.Popen([exe, "--config", idle_cfg, "--store", store, "run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(5)
        c0, _ = proc_stats(p.pid)
        time.sleep(10)
        c1, rss_idle = proc_stats(p.pid)
        p.send_signal(signal.SIGTERM); p.wait(30)
        print(f"idle: {a.instances} instances, CPU {100 * (c1 - c0) / 10:.2f}% of a core, RSS {rss_idle / 1024:.1f} MiB")

        # 3. Busy: each instance once a minute, staggered over the seconds.
        busy_cfg = os.path.join(work, "busy.toml")
        with open(busy_cfg, "w") as f:
            f.write(cfg(a.instances, lambda i: f"{i % 60} * * * * *"))
        p = subprocess.Popen([exe, "--config", busy_cfg, "--store", store, "run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)
        c0, _ = proc_stats(p.pid)
        peak = 0
        for _ in range(a.seconds):
            time.sleep(1)
            peak = max(peak, proc_stats(p.pid)[1])
        c1, _ = proc_stats(p.pid)
        p.send_signal(signal.SIGTERM); p.wait(60)
        print(f"busy: {a.instances} runs/minute, CPU {100 * (c1 - c0) / a.seconds:.1f}% of a core, peak RSS {peak / 1024:.1f} MiB")

        late = []
        for rec in glob.glob(os.path.join(store, "records", "c*", "local", "*.json")):
            env = json.load(open(rec))
            st = json.loads(base64.b64decode(env["payload"]))["predicate"]
            if st["trigger"] != "scheduled" or not st["scheduled_for"]:
                continue
            from datetime import datetime
            f = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
            late.append((f(st["started_at"]) - f(st["scheduled_for"])).total_seconds() * 1000)
        late.sort()
        if late:
            p50 = late[len(late) // 2]
            p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
            print(f"lateness over {len(late)} scheduled runs: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {late[-1]:.1f} ms")

        # 4. verify over the whole store, against sha256sum of its blobs.
        blobs = glob.glob(os.path.join(store, "blobs", "sha256", "*", "*"))
        t = time.perf_counter(); subprocess.run(["sha256sum"] + blobs, stdout=subprocess.DEVNULL, check=True); t_sha = time.perf_counter() - t
        t = time.perf_counter(); subprocess.run([exe, "--store", store, "verify"], stdout=subprocess.DEVNULL); t_ver = time.perf_counter() - t
        recs = len(glob.glob(os.path.join(store, "records", "*", "*", "*.json")))
        print(f"verify: {recs} records in {a.streams + a.instances} streams, {t_ver:.2f} s (sha256sum of the {len(blobs)} blobs: {t_sha:.2f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
