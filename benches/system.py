#!/usr/bin/env python3
"""Whole-binary benchmarks of the evidence core, each against a baseline
measured in the same run:

1. `exhibit verify` over a store with >= 1 GiB of payload blobs, against
   `sha256sum` over the same blob files (both with a warm page cache).
2. Peak RSS of `exhibit collect` writing one 50 MB payload, against the
   payload size.
3. Resident memory of an idle `exhibit run` daemon.

    cargo build --release && python3 benches/system.py [--gib 1.0]

Prints a table; the figures in docs/benchmarks.md come from it.
"""
import argparse, os, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def exe(profile):
    return os.path.join(ROOT, "target", profile, "exhibit")

def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode not in (0,):
        sys.exit(f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r

def timed(cmd, repeat=3, **kw):
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        run(cmd, **kw)
        d = time.perf_counter() - t
        best = d if best is None else min(best, d)
    return best

def build_store(binary, work, gib):
    # 16 collectors, each printing a fresh ~8 MB JSON string per run.
    per = 8 * 1024 * 1024
    collectors = 16
    runs = max(1, int(gib * (1 << 30) / (per * collectors) + 0.999))
    cfg = ['[agent]\nid = "bench"\nconcurrency = 2\n']
    for i in range(collectors):
        cfg.append(f'''[[collectors]]
name = "blob{i}"
kind = "command"
schedule = "@daily"
shell = true
command = "printf '\\"'; head -c {per * 3 // 4} /dev/urandom | base64 -w0; printf '\\"'"
max_output = {per * 2}
''')
    with open(os.path.join(work, "exhibit.toml"), "w") as f:
        f.write("\n".join(cfg))
    for _ in range(runs):
        run([binary, "--config", os.path.join(work, "exhibit.toml"), "collect"])
    store = os.path.join(work, "evidence")
    blobs = []
    for d, _, files in os.walk(os.path.join(store, "blobs")):
        blobs += [os.path.join(d, f) for f in files]
    size = sum(os.path.getsize(b) for b in blobs)
    return store, blobs, size

def child_maxrss_kib(cmd):
    # GNU time reports the peak RSS of that one process (getrusage over
    # RUSAGE_CHILDREN would mix in every earlier child of this script).
    r = run(["/usr/bin/time", "-f", "%M"] + cmd)
    return int(r.stderr.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--profile", default="release")
    a = ap.parse_args()
    binary = exe(a.profile)
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: cargo build --{a.profile}")
    work = tempfile.mkdtemp(prefix="exhibit-bench-")
    try:
        store, blobs, size = build_store(binary, work, a.gib)
        # Warm the page cache for both sides.
        run(["sha256sum"] + blobs)
        t_sha = timed(["sha256sum"] + blobs)
        t_verify = timed([binary, "--store", store, "verify"])
        print(f"verify vs sha256sum over {len(blobs)} blobs, {size / (1 << 30):.2f} GiB:")
        print(f"  sha256sum {t_sha:.2f} s   exhibit verify {t_verify:.2f} s   ratio {t_verify / t_sha:.2f}x")

        big = os.path.join(work, "big")
        os.makedirs(big)
        n = 50 * 1024 * 1024
        with open(os.path.join(big, "exhibit.toml"), "w") as f:
            f.write(f'''[[collectors]]
name = "big"
kind = "command"
schedule = "@daily"
shell = true
command = "printf '\\"'; head -c {n * 3 // 4} /dev/urandom | base64 -w0; printf '\\"'"
max_output = {n * 2}
''')
        # The generator streams (no sed holding the line): GNU time counts
        # the peak of reaped descendants too.
        rss = child_maxrss_kib([binary, "--config", os.path.join(big, "exhibit.toml"), "collect"])
        print(f"collect of one 50 MB payload: peak RSS {rss / 1024:.0f} MiB = {rss * 1024 / n:.2f}x the payload")

        idle = os.path.join(work, "idle")
        os.makedirs(idle)
        with open(os.path.join(idle, "exhibit.toml"), "w") as f:
            f.write('[admin]\nlisten = "127.0.0.1:0"\n[[collectors]]\nname = "x"\nkind = "command"\nschedule = "@yearly"\ncommand = ["true"]\n')
        p = subprocess.Popen([binary, "--config", os.path.join(idle, "exhibit.toml"), "run"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)
        with open(f"/proc/{p.pid}/status") as f:
            status = dict(l.split(":", 1) for l in f if ":" in l)
        p.terminate(); p.wait(10)
        print(f"idle daemon: VmRSS {status['VmRSS'].strip()}, VmHWM {status['VmHWM'].strip()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
