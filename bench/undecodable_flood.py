"""Undecodable requests against a coordinator process: status, RSS growth, log volume.

Starts ``fedserver`` (evaluation off, nobody selected) from the source tree given by
``--code-root`` (default: this checkout; pass another checkout to compare), sends
``--requests`` authenticated ``Round`` calls whose bytes are not a protobuf message
(8 client ids, 4 calls in flight each, after a 512-call warm-up), and prints the status
codes, the coordinator's RSS before/after (KiB per request), its CPU seconds, and the
tracebacks and bytes its log gained. The coordinator runs from a temporary folder so the
source tree given is the one imported.

    python bench/undecodable_flood.py --requests 10000
    python bench/undecodable_flood.py --code-root ../main     # a tree to compare with
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parent.parent
GARBAGE = b"\xff\xff\xff\xff"
TOKEN = "bench-token"
WRITE_CONFIG = (
    "import sys; from pathlib import Path; from fedcore import config; "
    "from fedserver.config import ServerConfig; t = Path(sys.argv[1]); "
    "c = config.load(ServerConfig, environ={}, overrides=[f'state_dir={t / \"state\"}', "
    "'network.port=0', 'auth.shared_token=" + TOKEN + "', 'evaluation.test_set=', "
    "'round.clients_per_round=5', 'round.min_clients=5', 'round.selection_timeout_s=600']); "
    "(t / 'server.toml').write_text(config.to_toml(c))")


def _proc_numbers(pid: int) -> tuple[int, float]:
    """(RSS KiB, user + system CPU seconds) of ``pid``."""
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
               .splitlines() if line.startswith("VmRSS:"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _flood(port: int, count: int, senders: int = 8) -> dict[str, int]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/fedprune.v1.Coordinator/Round")

        def send(k: int) -> dict[str, int]:
            md = (("x-fedprune-client-id", f"flooder-{k}"), ("authorization", f"Bearer {TOKEN}"))
            codes: dict[str, int] = {}
            for _ in range(count // senders // 4):
                for f in [call.future(GARBAGE, metadata=md, timeout=30) for _ in range(4)]:
                    codes[f.code().name] = codes.get(f.code().name, 0) + 1
            return codes

        total: dict[str, int] = {}
        with ThreadPoolExecutor(senders) as pool:
            for codes in pool.map(send, range(senders)):
                for k, v in codes.items():
                    total[k] = total.get(k, 0) + v
        return total


def _endpoint_port(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120) -> int:
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"coordinator exited with {proc.returncode}")
        try:
            return int(json.loads(path.read_text())["port"])
        except (FileNotFoundError, ValueError, KeyError):
            time.sleep(0.2)
    raise SystemExit("coordinator did not publish its endpoint")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--code-root", type=Path, default=REPO)
    ns = ap.parse_args()
    root = ns.code_root.resolve()
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run([sys.executable, "-c", WRITE_CONFIG, str(folder)], check=True,
                       cwd=folder, env=env)
        log_path = folder / "server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "fedserver", "--config",
                                     str(folder / "server.toml")], cwd=folder, env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            port = _endpoint_port(folder / "state" / "endpoint.json", proc)
            _flood(port, 512)
            log_before = log_path.stat().st_size
            (rss0, cpu0), t0 = _proc_numbers(proc.pid), time.monotonic()
            codes = _flood(port, ns.requests)
            (rss1, cpu1), t1 = _proc_numbers(proc.pid), time.monotonic()
            text = log_path.read_text(errors="replace")
        finally:
            proc.terminate()
            proc.wait(15)
    sent = sum(codes.values())
    print(f"code root {root}")
    print(f"{sent} undecodable Round requests: {codes}")
    print(f"coordinator RSS {rss0} -> {rss1} KiB ({(rss1 - rss0) / sent:.3f} KiB/request); "
          f"CPU {cpu1 - cpu0:.1f} s in {t1 - t0:.1f} s wall")
    print(f"log: {text.count('Traceback')} tracebacks, +{len(text.encode()) - log_before} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
