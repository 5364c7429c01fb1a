"""Bulk LLM-style POSTs under a token budget: many bodies to one endpoint, cost-metered.

Each request carries "cost" (its token count); --budget keeps the tokens started per minute
under the API's quota, and a request too big for the whole budget fails at once.
Run: python examples/llm_budget.py
"""

import fanfetch

prompts = [f"Summarise document {i} in one line." for i in range(40)]

with fanfetch.MockAPI(latency_ms=20) as api:
    requests = [
        {
            "id": f"doc-{i}",
            "method": "POST",
            "url": f"{api.url}/echo",
            "json": {"model": "small", "prompt": prompt},
            "cost": len(prompt.split()) * 50,  # a rough token estimate
        }
        for i, prompt in enumerate(prompts)
    ]
    requests.append({"id": "too-big", "url": f"{api.url}/echo", "cost": 10_000_000})
    results = fanfetch.run(requests, concurrency=8, budget="600000/min", retries=2)

ok = [r for r in results if r.ok]
print(f"{len(ok)} answered, {len(results) - len(ok)} refused")
print("refused:", [(r.id, r.error.type) for r in results if r.error is not None and not r.ok])
assert len(ok) == len(prompts), "every prompt within the budget is answered"
assert not next(r for r in results if r.id == "too-big").ok, "one over the budget fails at once"
