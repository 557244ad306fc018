"""Play ``vllm run-batch`` against a running OpenAI-compatible server, for tests and small trials.

Reads a batch input file (one ``{"custom_id", "method", "url", "body"}`` object a line), POSTs each
body to ``SERVER + url`` and writes one output line per request in the format ``vllm run-batch``
and the OpenAI batch API write::

    {"id": ..., "custom_id": ..., "response": {"status_code": 200, "request_id": ..., "body": {...}}, "error": null}

A request the server refuses keeps its status and body; one that gets no HTTP reply at all has
``response: null`` and ``error`` set. No proxy is used (the server is meant to be local).

    python scripts/play_run_batch.py -i requests.jsonl -o results.jsonl --server http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def send(server: str, line: dict, timeout: float) -> dict:
    """One batch input line sent; its batch output line."""
    request = urllib.request.Request(
        server.rstrip("/") + line["url"],
        data=json.dumps(line["body"]).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method=line.get("method", "POST"),
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    out = {"id": f"batch-{line['custom_id'][:16]}", "custom_id": line["custom_id"], "response": None, "error": None}
    try:
        with opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except OSError as e:
        out["error"] = {"code": type(e).__name__, "message": "no reply from the server"}
        return out
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"error": {"message": "the reply was not JSON"}}
    out["response"] = {"status_code": status, "request_id": out["id"], "body": body}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--input", required=True, help="batch input file (JSONL)")
    parser.add_argument("-o", "--output", required=True, help="batch output file to write (JSONL)")
    parser.add_argument("--server", required=True, help="the server's root, e.g. http://127.0.0.1:8000")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (default: 4)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per request (default: 600)")
    args = parser.parse_args(argv)
    with open(args.input, encoding="utf-8") as f:
        lines = [json.loads(text) for text in f if text.strip()]
    with ThreadPoolExecutor(max_workers=max(1, args.concurrency)) as pool:
        results = list(pool.map(lambda line: send(args.server, line, args.timeout), lines))
    with open(args.output, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(result) + "\n" for result in results)
    failed = sum(r["error"] is not None or r["response"]["status_code"] != 200 for r in results)
    print(f"{args.output}: {len(results)} results, {failed} failed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
