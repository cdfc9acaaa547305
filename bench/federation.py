"""W1 `digits-mlp`: the reference federation, timed, byte-counted and memory-profiled.

Workload (W1 ``digits-mlp``, docs/workloads.md): the real coordinator
(``python -m fedserver``) and N client daemons (``python -m fedclient``), each its own OS
process, real gRPC over loopback, started by ``fedprune.simulate.run_simulation``
with the default coordinator config
(10 clients, 30 rounds, digits, MLP 64-256-256-10, 2 local epochs, FedAvg).

Per run it reports, from the coordinator's ``report.json``:
* wall time of the whole run (process start to exit) and of the rounds (first round's
  start to last round's close);
* per-round time split, median and p90 over rounds 2..R: waiting, training (slowest
  accepted client), transfer (largest pull + push), aggregation (coordinator time);
* coordinator overhead per round = round wall - slowest client's training time:
  round 1 separately (it includes the client processes' start-up), then median, p90 and
  max over rounds 2..R;
* bytes up / down: the serialized gRPC message sizes the coordinator counts (all chunks,
  all metadata), and the compression factor vs the dense fp32 reference (``fp32`` wire
  codec, zstd off) of the same workload: reference bytes / variant bytes;
* final server-side test accuracy;
* coordinator peak RSS: the kernel's high-water mark (VmHWM in /proc/<pid>/status) of the
  ``-m fedserver`` child process, polled every 50 ms from a background thread until the
  process exits (psutil RSS is the fallback where /proc is missing).

Targets (printed met / missed): final accuracy >= 0.95; coordinator overhead per round
< 100 ms at 10 clients (median over rounds 2..R; p90 and max are printed too); and no
fixed polling sleeps on the round path (count of ``sleep(`` calls under fedserver/).

Variants set the wire codecs of both directions: ``CODEC`` or ``CODEC+zstd`` where CODEC
is one of fp32 / fp16 / bf16 / int8 / int4 / clustered, or ``UP/DOWN[+zstd]`` for
different uplink / downlink codecs (e.g. ``int8/fp32+zstd``). ``fp32`` (no zstd) is the
dense reference and is always run (first) unless --no-reference.

    python bench/federation.py                                   # W1, default wire (fp32+zstd)
    python bench/federation.py --variants fp32+zstd,int8+zstd,fp16+zstd
    python bench/federation.py --clients 3 --rounds 5 --set training.local_epochs=1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fedcore import config as config_io  # noqa: E402
from fedcore.model_codec import VALUE_CODEC_BY_NAME  # noqa: E402
from fedprune.simulate import SimulationSpec, run_simulation  # noqa: E402
from fedserver.config import ServerConfig  # noqa: E402

REFERENCE = "fp32"  # dense float32 both ways, zstd off
DEFAULT_VARIANT = "fp32+zstd"  # the coordinator's default wire config
SPLIT = ("waiting", "training", "transfer", "aggregation")
ACCURACY_TARGET = 0.95
OVERHEAD_TARGET_S = 0.100


# -- variants ---------------------------------------------------------------------------------
def variant_overrides(name: str) -> list[str]:
    """``fp32``, ``int8+zstd``, ``int8/fp32+zstd`` -> wire.* config overrides."""
    codecs, plus, suffix = name.partition("+")
    if plus and suffix != "zstd":
        raise ValueError(f"variant {name!r}: only '+zstd' may follow the codec")
    up, _, down = codecs.partition("/")
    down = down or up
    for codec in (up, down):
        if codec not in VALUE_CODEC_BY_NAME:
            raise ValueError(f"variant {name!r}: codec {codec!r} is not one of "
                             f"{sorted(VALUE_CODEC_BY_NAME)}")
    return [f"wire.uplink={up}", f"wire.downlink={down}", f"wire.zstd={'true' if plus else 'false'}"]


# -- coordinator peak RSS -----------------------------------------------------------------------
class CoordinatorMemory:
    """Polls the ``-m fedserver`` child of this process until it exits; keeps its peak RSS."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.pid: int | None = None
        self.hwm_bytes = 0  # VmHWM: the kernel's own peak, exact up to the last read
        self.rss_peak_bytes = 0  # max of sampled RSS, a lower bound
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-monitor")

    def __enter__(self) -> CoordinatorMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def peak_bytes(self) -> int:
        return max(self.hwm_bytes, self.rss_peak_bytes)

    @staticmethod
    def _find() -> psutil.Process | None:
        for child in psutil.Process().children(recursive=True):
            try:
                if "-m fedserver" in " ".join(child.cmdline()):
                    return child
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return None

    def _sample(self, proc: psutil.Process) -> bool:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
            if m:
                self.hwm_bytes = max(self.hwm_bytes, int(m.group(1)) * 1024)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
        try:
            self.rss_peak_bytes = max(self.rss_peak_bytes, proc.memory_info().rss)
            self.samples += 1
            return proc.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False

    def _run(self) -> None:
        proc = None
        while not self._stop.is_set() and proc is None:
            proc = self._find()
            if proc is None:
                self._stop.wait(0.01)
        if proc is None:
            return
        self.pid = proc.pid
        while self._sample(proc) and not self._stop.wait(self.interval_s):
            pass


# -- one run ------------------------------------------------------------------------------------
@dataclass
class RunResult:
    variant: str
    repeat: int
    out: Path
    run_wall_s: float
    report: dict[str, Any]
    peak_rss_bytes: int
    rss_samples: int
    load: tuple[float, float]  # 1-min load average at start and end of the run
    foreign_cores: float  # mean cores busy with work outside this benchmark during the run
    stats: dict[str, Any] = field(default_factory=dict)


def quantile(xs: list[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default), q in [0, 1]."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def cohort_differed(report: dict[str, Any], clients: int, rounds: int) -> list[int]:
    """Rounds that did not run with the whole configured cohort: a record whose status is
    not completed or whose selected / accepted count is not ``clients``, and any round of
    1..``rounds`` with no record at all. Such a run is not comparable with a full one."""
    seen = {r["round"] for r in report["rounds"]}
    bad = {r["round"] for r in report["rounds"] if r["status"] != "completed"
           or r["selected"] != clients or r["accepted"] != clients}
    return sorted(bad | (set(range(1, rounds + 1)) - seen))


def cohort_note(differed: list[int]) -> str:
    return f"cohort differed in rounds {differed}" if differed else ""


def summarize(report: dict[str, Any], clients: int, n_rounds: int) -> dict[str, Any]:
    rounds = [r for r in report["rounds"] if r["status"] == "completed"]
    steady = [r for r in rounds if r["round"] >= 2] or rounds
    first = rounds[0] if rounds else None
    out: dict[str, Any] = {
        "rounds_completed": len(rounds),
        "rounds_failed": report["totals"]["rounds_failed"],
        "cohort_differed": cohort_differed(report, clients, n_rounds),
        "rounds_wall_s": report["totals"]["wall_seconds"],
        "bytes_up": report["totals"]["bytes_up"],
        "bytes_down": report["totals"]["bytes_down"],
        "final_accuracy": report["totals"]["final_accuracy"],
        "accuracy": [r["metrics"].get("accuracy") for r in rounds],
        "round1_wall_s": first["timings"]["wall"] if first else float("nan"),
        "round1_overhead_s": first["timings"]["overhead"] if first else float("nan"),
    }
    for key in (*SPLIT, "wall", "overhead", "selection"):
        xs = [r["timings"][key] for r in steady]
        out[key] = {"median": statistics.median(xs) if xs else float("nan"),
                    "p90": quantile(xs, 0.9), "max": max(xs, default=float("nan"))}
    return out


def run_once(variant: str, repeat: int, args: argparse.Namespace, out: Path) -> RunResult:
    overrides = [f"round.clients_per_round={args.clients}", f"round.rounds={args.rounds}",
                 *args.set, *variant_overrides(variant)]
    server = config_io.load(ServerConfig, overrides=overrides)
    spec = SimulationSpec(out=out, clients=args.clients, server=server,
                          progress=args.progress, timeout_s=args.timeout)
    print(f"[w1] {variant} #{repeat}: {args.clients} clients x {args.rounds} rounds -> {out}/",
          file=sys.stderr, flush=True)
    load0 = os.getloadavg()[0]
    busy0, own0 = system_busy_s(), own_cpu_s()
    with CoordinatorMemory() as mem:
        t0 = time.perf_counter()
        report = run_simulation(spec)
        wall = time.perf_counter() - t0
    foreign = max(0.0, (system_busy_s() - busy0) - (own_cpu_s() - own0)) / wall
    res = RunResult(variant, repeat, out, wall, report, mem.peak_bytes, mem.samples,
                    (load0, os.getloadavg()[0]), foreign)
    res.stats = summarize(report, args.clients, args.rounds)
    s = res.stats
    print(f"[w1] {variant} #{repeat}: wall {wall:.1f}s, acc {s['final_accuracy']:.4f}, "
          f"up {s['bytes_up'] / 1e6:.2f} MB, down {s['bytes_down'] / 1e6:.2f} MB, "
          f"overhead median {s['overhead']['median'] * 1e3:.0f} ms, "
          f"peak RSS {res.peak_rss_bytes / 2**20:.0f} MiB ({mem.samples} samples)"
          + (f"; WARNING: {cohort_note(s['cohort_differed'])}" if s["cohort_differed"] else ""),
          file=sys.stderr, flush=True)
    return res


def system_busy_s() -> float:
    """CPU-seconds all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU-seconds of this process and its reaped children (the coordinator and clients)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# -- checks and machine -------------------------------------------------------------------------
def count_sleeps(folder: Path) -> list[str]:
    hits = []
    for path in sorted(folder.rglob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"\bsleep\s*\(", code):
                hits.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    return hits


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else platform.processor() or "unknown"
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    try:
        free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.rstrip()
    except OSError:
        free = f"total {psutil.virtual_memory().total / 2**30:.1f} GiB"
    import torch

    return {"cpu": cpu, "nproc": nproc, "free": free, "python": platform.python_version(),
            "torch": torch.__version__, "grpc": _version("grpcio"), "kernel": platform.release()}


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


# -- tables -------------------------------------------------------------------------------------
def _ms(x: float) -> str:
    return f"{x * 1e3:.0f}"


def _mp(d: dict[str, float]) -> str:
    return f"{_ms(d['median'])} / {_ms(d['p90'])}"


def _label(r: RunResult, repeats: int) -> str:
    return f"`{r.variant}`" + (f" #{r.repeat}" if repeats > 1 else "")


def time_table(results: list[RunResult], repeats: int) -> str:
    head = ("| variant | run wall s | rounds wall s | round wall ms med / p90 | waiting ms "
            "med / p90 | training ms med / p90 | transfer ms med / p90 | aggregation ms "
            "med / p90 | overhead ms round 1 | overhead ms med / p90 / max (rounds 2..R) | "
            "other work, cores |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results:
        s = r.stats
        o = s["overhead"]
        lines.append(
            f"| {_label(r, repeats)} | {r.run_wall_s:.1f} | {s['rounds_wall_s']:.1f} | "
            f"{_mp(s['wall'])} | {_mp(s['waiting'])} | {_mp(s['training'])} | "
            f"{_mp(s['transfer'])} | {_mp(s['aggregation'])} | {_ms(s['round1_overhead_s'])} | "
            f"{_ms(o['median'])} / {_ms(o['p90'])} / {_ms(o['max'])} | "
            f"{r.foreign_cores:.2f} |")
    return "\n".join(lines)


def bytes_table(results: list[RunResult], repeats: int, ref: RunResult | None) -> str:
    head = ("| variant | rounds ok / failed | bytes up | bytes down | bytes total | "
            "vs dense ref: up | down | total | final accuracy | coordinator peak RSS MiB |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results:
        s = r.stats
        tot = s["bytes_up"] + s["bytes_down"]
        if ref is not None:
            rs = ref.stats
            ratios = [f"{rs['bytes_up'] / s['bytes_up']:.2f}x",
                      f"{rs['bytes_down'] / s['bytes_down']:.2f}x",
                      f"{(rs['bytes_up'] + rs['bytes_down']) / tot:.2f}x"]
        else:
            ratios = ["n/a"] * 3
        acc = s["final_accuracy"]
        lines.append(
            f"| {_label(r, repeats)} | {s['rounds_completed']} / {s['rounds_failed']} | "
            f"{s['bytes_up'] / 1e6:.2f} MB | {s['bytes_down'] / 1e6:.2f} MB | {tot / 1e6:.2f} MB | "
            f"{' | '.join(ratios)} | {acc:.4f} | {r.peak_rss_bytes / 2**20:.0f} | "
            f"{cohort_note(s['cohort_differed']) or 'full'} |")
    return "\n".join(lines)


def cohort_summary(results: list[RunResult], repeats: int, clients: int) -> str:
    bad = [f"`{_label(r, repeats)}`: {cohort_note(r.stats['cohort_differed'])}"
           for r in results if r.stats["cohort_differed"]]
    if not bad:
        return (f"Cohort check: every run had selected == accepted == {clients} clients in "
                "every round.")
    return ("**Cohort check FAILED** (selected == accepted == "
            f"{clients} clients in every round), so these runs are not comparable with a full "
            "run: " + "; ".join(bad) + ".")


def targets_table(results: list[RunResult], repeats: int, clients: int, sleeps: list[str],
                  client_sleeps: list[str]) -> str:
    def mark(ok: bool) -> str:
        return "**met**" if ok else "**MISSED**"

    lines = ["| target | variant | value | result |", "|---|---|---|---|"]
    for r in results:
        acc = r.stats["final_accuracy"]
        lines.append(f"| final accuracy >= {ACCURACY_TARGET} | {_label(r, repeats)}"
                     f" | {acc:.4f} | {mark(acc is not None and acc >= ACCURACY_TARGET)} |")
    for r in results:
        o = r.stats["overhead"]
        scope = "" if clients == 10 else f" (run at {clients} clients)"
        lines.append(
            f"| overhead/round < {_ms(OVERHEAD_TARGET_S)} ms, median r2..R{scope} | "
            f"{_label(r, repeats)} | {_ms(o['median'])} ms (p90 {_ms(o['p90'])},"
            f" max {_ms(o['max'])}) | {mark(o['median'] < OVERHEAD_TARGET_S)}{_tail(o)} |")
    lines.append(f"| no fixed polling sleeps on the round path | fedserver/ | "
                 f"{len(sleeps)} `sleep(` call(s) in fedserver/ "
                 f"({len(client_sleeps)} in fedclient/) | {mark(not sleeps)} |")
    return "\n".join(lines)


def _tail(o: dict[str, float]) -> str:
    """Say so when the median meets the overhead target but the tail does not."""
    over = [k for k in ("p90", "max") if o[k] >= OVERHEAD_TARGET_S]
    return f" ({' and '.join(over)} over)" if over and o["median"] < OVERHEAD_TARGET_S else ""


# -- plot ---------------------------------------------------------------------------------------
def plot_split(result: RunResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rounds = [r for r in result.report["rounds"] if r["status"] == "completed"]
    xs = [r["round"] for r in rounds]
    colors = {"training": "#4c72b0", "transfer": "#dd8452", "aggregation": "#55a868",
              "waiting": "#c44e52"}
    order = ("training", "transfer", "aggregation", "waiting")
    steady = [max(r["timings"]["wall"], sum(r["timings"][k] for k in order))
              for r in rounds if r["round"] >= 2]
    ymax = max(steady, default=1.0) * 1.4 * 1e3
    fig, ax = plt.subplots(figsize=(11, 4.5))
    bottom = [0.0] * len(rounds)
    for key in order:
        ys = [r["timings"][key] * 1e3 for r in rounds]
        ax.bar(xs, ys, bottom=bottom, color=colors[key], label=key, width=0.8)
        bottom = [b + y for b, y in zip(bottom, ys)]
    # The parts can overlap (aggregation folds each update as it arrives, while other
    # clients still train or push; the report clips waiting at 0), so mark the real wall.
    walls = [r["timings"]["wall"] * 1e3 for r in rounds]
    ax.scatter(xs, [min(w, ymax) for w in walls], marker="_", s=260, color="black", zorder=3,
               label="round wall")
    for x, total in zip(xs, bottom):
        if total > ymax:  # round 1 carries the clients' process start-up: clip and label it
            ax.text(x, ymax * 0.97, f"{total / 1e3:.1f} s", ha="center", va="top",
                    rotation=90, fontsize=7, color="white", fontweight="bold")
    ax.set_ylim(0, ymax)
    ax.set_xlim(min(xs, default=1) - 0.6, max(xs, default=1) + 0.6)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set(xlabel="round", ylabel="ms",
           title=f"W1 per-round time split, {result.variant} #{result.repeat} ({len(rounds)} rounds, "
                 f"median overhead {result.stats['overhead']['median'] * 1e3:.0f} ms, final "
                 f"accuracy {result.stats['final_accuracy']:.3f})")
    ax.legend(loc="upper right", ncol=5, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--clients", type=int, default=10, help="client daemons (10)")
    p.add_argument("--rounds", type=int, default=30, help="rounds (30)")
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "federation"),
                   help="output folder: one run folder per variant/repeat, summary, PNG")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="coordinator config override for every run (repeatable)")
    p.add_argument("--repeat", type=int, default=1, help="runs per variant (1)")
    p.add_argument("--variants", default=DEFAULT_VARIANT,
                   help=f"comma-separated wire variants ({DEFAULT_VARIANT}); e.g. "
                        "fp32+zstd,int8+zstd,fp16+zstd")
    p.add_argument("--no-reference", action="store_true",
                   help=f"do not run the dense `{REFERENCE}` reference (no ratios then)")
    p.add_argument("--timeout", type=float, default=1800.0, help="per-run timeout, s (1800)")
    p.add_argument("--progress", action="store_true", help="show the simulation progress bar")
    args = p.parse_args(argv)
    if args.clients < 1 or args.rounds < 1 or args.repeat < 1:
        p.error("--clients, --rounds and --repeat must be >= 1")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not args.no_reference and REFERENCE not in variants:
        variants.insert(0, REFERENCE)
    try:
        for v in variants:
            variant_overrides(v)
        config_io.load(ServerConfig, overrides=args.set)
    except (ValueError, config_io.ConfigError) as exc:
        p.error(str(exc))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python bench/federation.py " + " ".join(
        a if re.fullmatch(r"[\w@%+=:,./-]+", a) else repr(a)
        for a in (sys.argv[1:] if argv is None else argv))

    results: list[RunResult] = []
    for variant in variants:
        for rep in range(1, args.repeat + 1):
            name = variant.replace("/", "-") + (f"-{rep}" if args.repeat > 1 else "")
            results.append(run_once(variant, rep, args, out / "runs" / name))

    ref = next((r for r in results if r.variant == REFERENCE and r.repeat == 1), None)
    # plot the default variant's median run (by rounds wall time) of its repeats
    runs = [r for r in results if r.variant == DEFAULT_VARIANT] or results[:1]
    default = sorted(runs, key=lambda r: r.stats["rounds_wall_s"])[(len(runs) - 1) // 2]
    png = plot_split(default, out / "w1_round_split.png")
    sleeps = count_sleeps(REPO / "fedserver")
    client_sleeps = count_sleeps(REPO / "fedclient")
    info = machine()

    md = [f"Command: `{command.strip()}`", "",
          f"Machine: {info['cpu']}, nproc {info['nproc']}; Python {info['python']}, torch "
          f"{info['torch']}, grpcio {info['grpc']}, Linux {info['kernel']}.", "",
          "```", "$ free -h", info["free"], "```", "",
          f"W1: {args.clients} clients x {args.rounds} rounds"
          + (f", overrides {' '.join(args.set)}" if args.set else "") + ". Times in ms; "
          "per-round medians / p90 over rounds 2..R (round 1 includes the client processes' "
          "start-up and is shown separately as 'overhead round 1'). 'other work, cores' is the "
          "CPU time the machine spent on processes outside this benchmark during the run, "
          f"divided by the run's wall time (of {os.cpu_count()} cores): above ~0.1 the timings "
          "are contended.", "",
          "Time:", "", time_table(results, args.repeat), "",
          "Bytes (serialized gRPC request/response sizes, all chunks, counted by the "
          f"coordinator; ratio = dense `{REFERENCE}` reference bytes / variant bytes), "
          "accuracy, memory:", "",
          bytes_table(results, args.repeat, ref), "",
          cohort_summary(results, args.repeat, args.clients), "",
          "Targets:", "", targets_table(results, args.repeat, args.clients, sleeps, client_sleeps), ""]
    if sleeps:
        md += ["`sleep(` calls in fedserver/:", "", *[f"- `{s}`" for s in sleeps], ""]
    md += [f"Per-round time split plot (`{default.variant}` #{default.repeat}, bars clipped "
           "above 1.4x the slowest round 2..R with the total written in; a black tick marks each "
           "round's wall time, which can be below the stacked parts because aggregation "
           "overlaps other clients' training/transfer): "
           f"`{png.relative_to(REPO) if png.is_relative_to(REPO) else png}`"]
    text = "\n".join(md) + "\n"
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps({
        "command": command.strip(), "machine": info, "clients": args.clients,
        "rounds": args.rounds, "set": args.set, "sleeps_fedserver": sleeps,
        "sleeps_fedclient": client_sleeps,
        "runs": [{"variant": r.variant, "repeat": r.repeat, "out": str(r.out),
                  "run_wall_s": r.run_wall_s, "coordinator_peak_rss_bytes": r.peak_rss_bytes,
                  "rss_samples": r.rss_samples, "loadavg_1m": r.load,
                  "foreign_cores": r.foreign_cores, **r.stats} for r in results]}, indent=1))
    print(text)
    print(f"summary: {out / 'summary.md'}  json: {out / 'summary.json'}  plot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
