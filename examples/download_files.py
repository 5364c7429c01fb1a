"""Downloading files: bodies stream to a directory; records carry path, bytes and sha256.

Run: python examples/download_files.py
"""

import tempfile

import fanfetch

with fanfetch.MockAPI(latency_ms=5) as api, tempfile.TemporaryDirectory() as directory:
    requests = [{"id": f"item-{i}.json", "url": f"{api.url}/items/{i}"} for i in range(20)]
    for result in fanfetch.iter_results(requests, save_dir=directory, concurrency=5):
        record = result.to_dict()
        print(record["id"], record["bytes"], "bytes", record["sha256"][:12], record["path"])
        assert result.ok and record["bytes"] > 0
