"""The local web app: a REST API and a search page over loaded indexes (FastAPI, served by uvicorn)."""

from .app import create_app
from .server import background, load_indexes, serve

__all__ = ["background", "create_app", "load_indexes", "serve"]
