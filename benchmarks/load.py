"""Load test of the Space: `python app.py` on 127.0.0.1 and N concurrent gradio_client clients for T seconds.

Starts app.py in a subprocess (its real entry point: queue limits, upload limit), on a free loopback port,
with a random-init model unless --model names a folder (weights do not change speed). Each client is a
thread with its own gradio_client.Client that loops `predict(handle_file(image))` until the time is up
(bounded by --seconds and --max-requests, each request by --request-timeout), checking every response's
schema. Prints the number of clients, requests and errors, p50/p95/max latency, throughput, and the server
process's resident memory at start-up (idle), after one warm-up request, at its peak under load and after.

    python benchmarks/load.py [--clients 20] [--seconds 60] [--model FOLDER] [--image examples/astronaut.jpg]
    python benchmarks/load.py --compare-int8 [--model FOLDER]  # PyTorch fp32, then the int8 ONNX file, same run

--compare-int8 runs the same load twice, one server after the other: `app.py --no-onnx` (PyTorch) and
`app.py --onnx auto` (the folder's model_int8.onnx; a random-init model gets one exported here, calibrated on
random inputs), and prints the int8/fp32 ratios of throughput and latency.

Loopback only: the server listens on 127.0.0.1 and the clients talk to nothing else. Exit code 1 on any error.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from app_process import ASTRONAUT, ROOT, Server, save_random_model  # benchmarks/app_process.py, beside this script

RUNTIMES = {"pytorch fp32": ["--no-onnx"], "onnxruntime int8": ["--onnx", "auto"]}  # app.py flags, --compare-int8


def faces_of(result: Any) -> Any:
    """The faces JSON of predict's (faces, annotated image)."""
    return result[0] if isinstance(result, (tuple, list)) and result else result


def valid_result(result: Any) -> bool:
    """The predict endpoint's documented schema (README, API section): (faces, annotated image), the faces checked."""
    result = faces_of(result)
    if not isinstance(result, dict) or set(result) != {"face_found", "faces"}:
        return False
    if not isinstance(result["face_found"], bool):
        return False
    faces = result["faces"]
    return bool(faces) and all(
        set(face) == {"box", "label", "score", "scores"} and len(face["box"]) == 4 and face["label"] in face["scores"]
        and abs(sum(face["scores"].values()) - 1) < 1e-3 for face in faces)


def run_load(url: str, clients: int, seconds: float, image: Path = ASTRONAUT, max_requests: int = 100_000,
             request_timeout: float = 60.0, rss: Any = None) -> dict[str, Any]:
    """N client threads looping predict for `seconds` (at most max_requests in all); figures as a dict.

    `rss` (a callable returning the server's resident MB) is sampled every 0.25 s for the peak.
    """
    from gradio_client import Client, handle_file

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    faces_found: Counter[bool] = Counter()
    lock = threading.Lock()
    issued = [0]
    connected = [Client(url, verbose=False) for _ in range(clients)]  # connect first: not part of the timing
    start_barrier = threading.Barrier(clients + 1)
    deadline = [0.0]

    def take_ticket() -> bool:
        with lock:
            if time.perf_counter() >= deadline[0] or issued[0] >= max_requests:
                return False
            issued[0] += 1
            return True

    def client_loop(client: Client) -> None:
        start_barrier.wait()
        while take_ticket():
            start = time.perf_counter()
            try:
                job = client.submit(handle_file(image), api_name="/predict")
                result = faces_of(job.result(timeout=request_timeout))
                problem = None if valid_result(result) else f"invalid response: {str(result)[:120]}"
            except Exception as error:  # counted, never raised: the figures say what failed
                problem, result = f"{type(error).__name__}: {str(error)[:160]}", None
            elapsed = time.perf_counter() - start
            with lock:
                if problem:
                    errors[problem] += 1
                else:
                    latencies.append(elapsed)
                    faces_found[result["face_found"]] += 1

    peak = [0.0]
    sampling = threading.Event()

    def sample_rss() -> None:
        while not sampling.wait(0.25):
            peak[0] = max(peak[0], rss())

    threads = [threading.Thread(target=client_loop, args=(client,), daemon=True) for client in connected]
    for thread in threads:
        thread.start()
    sampler = threading.Thread(target=sample_rss, daemon=True) if rss else None
    if sampler:
        sampler.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start_barrier.wait()
    for thread in threads:
        thread.join(timeout=seconds + request_timeout + 30)
    wall = time.perf_counter() - began
    sampling.set()
    if sampler:
        sampler.join()
    for client in connected:
        client.close()
    ordered = sorted(latencies)

    def percentile(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1e3 if ordered else float("nan")

    return {
        "clients": clients, "seconds": seconds, "wall_s": wall, "requests": len(latencies) + sum(errors.values()),
        "ok": len(latencies), "errors": sum(errors.values()), "error_kinds": dict(errors),
        "face_found": dict(faces_found), "p50_ms": percentile(0.50), "p95_ms": percentile(0.95),
        "max_ms": ordered[-1] * 1e3 if ordered else float("nan"),
        "mean_ms": statistics.fmean(ordered) * 1e3 if ordered else float("nan"),
        "throughput_rps": len(latencies) / wall, "rss_peak_mb": peak[0] or None,
        "threads_alive": sum(thread.is_alive() for thread in threads),
    }


def benchmark(clients: int, seconds: float, model: str | None = None, image: Path = ASTRONAUT,
              max_requests: int = 100_000, extra_args: list[str] | None = None) -> dict[str, Any]:
    """Start app.py, measure memory, run the load, measure again, stop the server."""
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as folder:
        model_source = model or save_random_model(Path(folder) / "fer-random")
        with Server(model_source, Path(folder) / "app.log", extra_args) as server:
            rss_start = server.rss_mb()
            warm = Client(server.url, verbose=False)
            assert valid_result(warm.predict(handle_file(image), api_name="/predict")), "warm-up request failed"
            warm.close()
            rss_warm = server.rss_mb()
            figures = run_load(server.url, clients, seconds, image, max_requests, rss=server.rss_mb)
            time.sleep(1.0)  # let the queue drain and the server settle
            figures.update(rss_start_mb=rss_start, rss_warm_mb=rss_warm, rss_after_mb=server.rss_mb(),
                           server_alive=server.process.poll() is None, model=str(model or "random init"),
                           image=str(image.relative_to(ROOT) if image.is_relative_to(ROOT) else image))
    return figures


def report(figures: dict[str, Any]) -> str:
    lines = [
        f"app.py on 127.0.0.1, model: {figures['model']}, image: {figures['image']}, {os.cpu_count()} CPUs",
        f"clients={figures['clients']} duration={figures['seconds']:.0f}s (wall {figures['wall_s']:.1f}s) "
        f"requests={figures['requests']} ok={figures['ok']} errors={figures['errors']}",
        f"latency_ms p50={figures['p50_ms']:.0f} p95={figures['p95_ms']:.0f} max={figures['max_ms']:.0f} "
        f"mean={figures['mean_ms']:.0f}  throughput={figures['throughput_rps']:.2f} req/s",
        f"server_rss_mb start={figures['rss_start_mb']:.0f} after_warmup={figures['rss_warm_mb']:.0f} "
        f"peak={figures['rss_peak_mb'] or float('nan'):.0f} after={figures['rss_after_mb']:.0f}",
    ]
    if figures["error_kinds"]:
        lines.append("errors: " + "; ".join(f"{n} x {kind}" for kind, n in figures["error_kinds"].items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", default=None, help="model folder (default: random init, same speed)")
    parser.add_argument("--image", type=Path, default=ASTRONAUT)
    parser.add_argument("--max-requests", type=int, default=100_000, help="stop after this many requests in all")
    parser.add_argument("--onnx", default=None, help="passed to app.py --onnx (an exported ONNX file)")
    parser.add_argument("--compare-int8", action="store_true",
                        help="run the load with PyTorch (--no-onnx), then with the int8 ONNX file (--onnx auto)")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients must be >= 1 and --seconds > 0")
    if args.compare_int8 and args.onnx:
        parser.error("--compare-int8 chooses the runtimes itself: leave out --onnx")
    if args.compare_int8:
        runs = compare_int8(args.clients, args.seconds, args.model, args.image.resolve(), args.max_requests)
    else:
        runs = [benchmark(args.clients, args.seconds, args.model, args.image.resolve(), args.max_requests,
                          ["--onnx", args.onnx] if args.onnx else None)]
        print(report(runs[0]))
    sys.exit(1 if any(figures["errors"] or not figures["server_alive"] for figures in runs) else 0)


def compare_int8(clients: int, seconds: float, model: str | None, image: Path,
                 max_requests: int) -> list[dict[str, Any]]:
    """The same load on PyTorch, then on the folder's int8 ONNX file; each report, then the int8/fp32 ratios."""
    from fer_model.onnx_runtime import INT8_FILENAME

    with tempfile.TemporaryDirectory() as folder:
        source = Path(model) if model else save_random_model(Path(folder) / "fer-random", int8=True)
        if not (source / INT8_FILENAME).is_file():
            raise SystemExit(f"--compare-int8: {source} has no {INT8_FILENAME} (python -m fer_model export-onnx "
                             "--int8 writes one)")
        runs = []
        for name, flags in RUNTIMES.items():
            runs.append(benchmark(clients, seconds, str(source), image, max_requests, flags))
            print(f"== {name} (app.py {' '.join(flags)})\n{report(runs[-1])}", flush=True)
    fp32, int8 = runs
    print(f"int8/fp32: throughput {int8['throughput_rps'] / fp32['throughput_rps']:.2f}x, "
          f"p50 latency {int8['p50_ms'] / fp32['p50_ms']:.2f}x, p95 latency {int8['p95_ms'] / fp32['p95_ms']:.2f}x, "
          f"peak memory {int8['rss_peak_mb'] / fp32['rss_peak_mb']:.2f}x")
    return runs


if __name__ == "__main__":
    main()
