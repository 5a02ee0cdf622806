"""The embedding service: the sentence-transformers model loaded once and kept warm for every task.

A small FastAPI app (FastAPI and uvicorn ship with Airflow) on loopback. The doctor's embed step
(airflow_doctor/knowledge/embeddings.py) calls it when `DOCTOR_EMBED_URL` points here, so no task process
imports torch and sentence-transformers (about 6 s of CPU) or loads the model (0.5 s); without the
service the tasks load the model themselves, with the same vectors (both paths use
`embeddings.encode`).

Why a service and not the triggerer or a worker-level cache: Airflow starts a new process for every
task try (LocalExecutor and Celery alike), so nothing a task loads survives it; a trigger runs in the
triggerer's asyncio loop, where a 10-50 ms CPU-bound forward pass per call would block every other
trigger (backoffs, waits). One long-lived process per host, next to the workers, is the smallest
thing that keeps the model warm; it runs as one more process in the local stack (scripts/stack.py)
and as one more service in the Astro route (docker-compose.override.yml).

Endpoints:
    GET  /health  -> {"status": "ok", "model": str, "dimension": 384}; answers only once the model
                     is loaded (the model loads before the port is bound).
    POST /embed   {"texts": [str, ...] (1-512, each at most 20000 characters), "model": str
                   ("" = the default model), "batch_size": int (1-256)}
                  -> {"model": str, "dimension": 384, "vectors": [[float] * 384, ...]};
                     409 when "model" is not the model this service holds, 422 for a bad body.

Usage: python -m airflow_doctor.knowledge.embed_service --host 127.0.0.1 --port 8027 [--model PATH_OR_NAME]
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

from pydantic import BaseModel, Field

from airflow_doctor.settings import EMBEDDING_DIM

log = logging.getLogger(__name__)

MAX_TEXTS = 512  # a request is one task's texts; seeding sends ~100 runbook examples
MAX_TEXT_CHARS = 20_000  # the model reads ~256 word pieces; this only bounds a request's size


class EmbedRequest(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=MAX_TEXTS)
    model: str = Field(default="", description='the configured model ("" = default), as embeddings.embed')
    batch_size: int = Field(default=32, ge=1, le=256)

    def too_long(self) -> int | None:
        """Index of the first text longer than MAX_TEXT_CHARS, or None."""
        return next((i for i, t in enumerate(self.texts) if len(t) > MAX_TEXT_CHARS), None)


class EmbedResponse(BaseModel):
    model: str
    dimension: int
    vectors: list[list[float]]


class Health(BaseModel):
    status: str
    model: str
    dimension: int


def create_app(configured: str = "", model=None):
    """The FastAPI app serving one loaded model.

    Args:
        configured: the model override the service holds ("" = all-MiniLM-L6-v2, see embeddings).
        model: an already loaded SentenceTransformer; None loads it now (~6 s import + 0.5 s load).
    Raises:
        ValueError: the model's dimension is not 384.
    """
    from fastapi import FastAPI, HTTPException

    from airflow_doctor.knowledge import embeddings

    model = model if model is not None else embeddings.load_model(configured)
    name = embeddings.model_name(configured)
    lock = threading.Lock()  # one forward pass at a time: torch already uses every core for one
    app = FastAPI(title="airflow-doctor embedding service", docs_url=None, redoc_url=None)

    @app.get("/health")
    def health() -> Health:
        return Health(status="ok", model=name, dimension=EMBEDDING_DIM)

    @app.post("/embed")
    def embed(request: EmbedRequest) -> EmbedResponse:  # sync: FastAPI runs it in a worker thread
        if embeddings.model_name(request.model) != name:
            raise HTTPException(
                409, f"this service holds {name!r}, not {embeddings.model_name(request.model)!r}"
            )
        if (index := request.too_long()) is not None:
            raise HTTPException(422, f"texts[{index}] is longer than {MAX_TEXT_CHARS} characters")
        t0 = time.monotonic()
        with lock:
            vectors = embeddings.encode(model, request.texts, request.batch_size)
        log.info("Embedded %d text(s) in %.0f ms", len(vectors), (time.monotonic() - t0) * 1000)
        return EmbedResponse(model=name, dimension=EMBEDDING_DIM, vectors=vectors)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_doctor.knowledge.embed_service", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)"
    )
    parser.add_argument("--port", type=int, default=8027, help="TCP port (default 8027)")
    parser.add_argument("--model", default="", help="model folder or name (default: all-MiniLM-L6-v2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    t0 = time.monotonic()
    app = create_app(args.model)  # load first: /health answers only with the model in memory
    log.info("Model ready in %.1fs; serving on http://%s:%d", time.monotonic() - t0, args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
