"""The measurement floor for the API benchmark: a bare ASGI app answering /allow's JSON.

    python -m bench._bare_app --port 8081

Same server stack as the sidecar (uvicorn + httptools), no FastAPI, no breaker: what
the load generator and this machine measure when the server costs next to nothing.
"""

from __future__ import annotations

import argparse
import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = {"allowed": True, "state": "closed", "admit": 100, "epoch": 1, "retry_after": 0}


async def allow(request: Request) -> Response:
    body = {"name": request.path_params["name"], **BODY}
    return Response(json.dumps(body), media_type="application/json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bare-app")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = Starlette(routes=[Route("/v1/breakers/{name}/allow", allow)])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
