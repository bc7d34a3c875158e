"""Teacher generation throughput: `r1tui generate` against a bare loop of the same client.

Both sides send the same chat-completions requests to the same local OpenAI-compatible
server with the same concurrency, through the same `openai` client:

- r1tui: `r1tui.generate.run.generate_traces` — prompts loaded, one request per sample,
  each reply normalized and verified (math-verify, the student's tokenizer for length),
  every sample appended and flushed to the samples file, kept traces written per prompt,
  events emitted;
- bare: a thread pool of the same size calling `client.chat.completions.create` and
  appending each reply's JSON to a file (what a hand-written script does).

The server is a stand-in that answers every request after a fixed latency (``--latency``
seconds, default 0.05, like a fast local vLLM reply) with a correct R1-format trace, so
the figure is r1tui's own overhead and its concurrency, not a model's speed; with
``--gguf PATH`` it is llama-cpp-python's own server on that GGUF instead (real
generation; on a CPU it serves one request at a time).

Samples/s is the median of ``--repeats`` interleaved rounds. Then r1tui alone at
concurrency 1, 2, 4 and 8 against the same server shows how it scales.

    python bench/bench_generate.py                     # 32 prompts x 4 samples, concurrency 8
    python bench/bench_generate.py --prompts 16 --json
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPLY = "<think>\nSix times seven is forty-two.\nCheck: 42 / 7 = 6.\n</think>\n\nFINAL ANSWER: 42"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_standin(latency: float) -> tuple[str, ThreadingHTTPServer]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            time.sleep(latency)
            payload = json.dumps({
                "id": "cmpl-bench", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "teacher"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": REPLY}}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 30, "total_tokens": 70},
            }).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1", server


def start_llama_server(gguf: Path) -> tuple[str, subprocess.Popen]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                                "--port", str(port), "--n_ctx", "512"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    import urllib.request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1).read()
            return url, process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("llama_cpp.server did not start")


def write_prompts(folder: Path, n: int) -> Path:
    path = folder / "prompts.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"question": f"Problem {i}: what is six times seven?", "answer": "42",
                                "domain": "math"}) + "\n")
    return path


def make_config(url: str, prompts: Path, n_prompts: int, samples: int, concurrency: int, max_tokens: int):
    from r1tui.config import parse_config

    return parse_config({"model": {"architecture": "tiny", "max_seq_length": 1024},
                         "teacher": {"base_url": url, "model": "teacher", "prompts": str(prompts),
                                     "num_prompts": n_prompts, "samples": samples, "concurrency": concurrency,
                                     "max_tokens": max_tokens, "temperature": 0.6, "max_retries": 0}},
                        origin="bench")


def run_r1tui(config, folder: Path) -> float:
    from r1tui.generate.run import generate_traces

    out = folder / f"traces-{time.monotonic_ns()}.jsonl"
    started = time.perf_counter()
    summary = generate_traces(config, out)
    elapsed = time.perf_counter() - started
    done = summary.completed if hasattr(summary, "completed") else None
    expected = config.teacher.num_prompts * config.teacher.samples
    if done is not None and done != expected:
        raise SystemExit(f"r1tui finished {done} of {expected} samples")
    return expected / elapsed


def run_bare(config, prompts: Path, folder: Path) -> float:
    from openai import OpenAI

    teacher = config.teacher
    questions = [json.loads(line)["question"] for line in prompts.read_text().splitlines()][:teacher.num_prompts]
    jobs = [(q, s) for q in questions for s in range(teacher.samples)]
    client = OpenAI(base_url=teacher.base_urls[0], api_key="bench", max_retries=0, timeout=teacher.timeout_s)
    out = open(folder / f"bare-{time.monotonic_ns()}.jsonl", "w", encoding="utf-8")
    lock = threading.Lock()

    def one(job):
        question, sample = job
        reply = client.chat.completions.create(model=teacher.model, messages=[{"role": "user", "content": question}],
                                               temperature=teacher.temperature, top_p=teacher.top_p,
                                               max_tokens=teacher.max_tokens, seed=sample)
        line = json.dumps({"question": question, "sample": sample, "content": reply.choices[0].message.content})
        with lock:
            out.write(line + "\n")
            out.flush()

    started = time.perf_counter()
    with ThreadPoolExecutor(teacher.concurrency) as pool:
        list(pool.map(one, jobs))
    elapsed = time.perf_counter() - started
    out.close()
    return len(jobs) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--gguf", type=Path, default=None, help="serve this GGUF with llama_cpp.server instead")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    server = process = None
    if args.gguf:
        url, process = start_llama_server(args.gguf)
    else:
        url, server = start_standin(args.latency)
    results: dict = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
                     "date": time.strftime("%Y-%m-%d"), "server": str(args.gguf) if args.gguf else
                     f"stand-in, {args.latency * 1000:.0f} ms per reply", "prompts": args.prompts,
                     "samples": args.samples, "concurrency": args.concurrency}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            prompts = write_prompts(folder, args.prompts)
            config = make_config(url, prompts, args.prompts, args.samples, args.concurrency, args.max_tokens)
            run_r1tui(make_config(url, prompts, 2, 1, 1, args.max_tokens), folder)  # warm-up: imports, tokenizer
            ours, bare = [], []
            for _ in range(args.repeats):  # interleaved rounds
                ours.append(run_r1tui(config, folder))
                bare.append(run_bare(config, prompts, folder))
            results["r1tui_samples_per_s"] = round(statistics.median(ours), 2)
            results["bare_samples_per_s"] = round(statistics.median(bare), 2)
            results["ratio"] = round(results["r1tui_samples_per_s"] / results["bare_samples_per_s"], 3)
            scaling = {}
            for concurrency in (1, 2, 4, 8):
                scaled = make_config(url, prompts, args.prompts, args.samples, concurrency, args.max_tokens)
                scaling[concurrency] = round(statistics.median(run_r1tui(scaled, folder) for _ in range(args.repeats)), 2)
            results["r1tui_scaling_samples_per_s"] = scaling
    finally:
        if server is not None:
            server.shutdown()
        if process is not None:
            process.kill()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:32} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
