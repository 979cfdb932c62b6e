"""HTTP adapter: FastAPI app over a running Service."""

from breaker.api._app import create_app
from breaker.api._auth import Principal, TokenRegistry, load_tokens

__all__ = ["Principal", "TokenRegistry", "create_app", "load_tokens"]
