"""Drives the real Python qdrant-client (from PyPI) against `ragwall proxy`.

Usage: qdrant_client_check.py URL. Prints one JSON object: for each call, the point ids it
returned and the `ragwall` tags it saw. Any client error raises (non-zero exit status).
qdrant-client 1.20 no longer has `search` (neither `QdrantClient.search` nor
`search_api.search_points`), so `search` goes through the client's own REST transport
(`client.http.client.request`, the same httpx session, headers and error handling every call
uses) and its result is parsed with the client's `ScoredPoint` model.
"""

import json
import sys
from typing import Any, Dict

from qdrant_client import QdrantClient, models

UUID = "6a1b7f5e-3c1d-4d8e-9f00-2b9e0c1d2e3f"


def summary(points):
    return {
        "ids": [p.id for p in points],
        "tags": {str(p.id): (p.payload or {}).get("ragwall") for p in points if (p.payload or {}).get("ragwall")},
        "payloads": {str(p.id): p.payload for p in points},
    }


def main():
    client = QdrantClient(url=sys.argv[1], prefer_grpc=False, timeout=30, check_compatibility=False)
    out = {}
    r = client.http.client.request(
        type_=Dict[str, Any],
        method="POST",
        url="/collections/{collection_name}/points/search",
        path_params={"collection_name": "docs"},
        json={"vector": [0.9, 0.1, 0.0, 0.0], "limit": 5, "with_payload": True},
    )
    out["search"] = summary([models.ScoredPoint.model_validate(p) for p in r["result"]])
    r = client.query_points("docs", query=[0.9, 0.1, 0.0, 0.0], limit=5, with_payload=True)
    out["query_points"] = summary(r.points)
    points, next_offset = client.scroll("docs", limit=3, with_payload=True)
    out["scroll"] = summary(points)
    out["scroll"]["next"] = next_offset
    points, next_offset = client.scroll("docs", limit=10, offset=next_offset, with_payload=True)
    out["scroll_page2"] = summary(points)
    points = client.retrieve("docs", ids=[3, 4, UUID], with_payload=True)
    out["retrieve"] = summary(points)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
