# Astro Runtime for Airflow 3.3 (Astro CLI: `astro dev start`, see README "Astro CLI").
FROM astrocrpublic.azurecr.io/runtime:3.3-2

# torch is pinned in requirements.txt; take the CPU wheel, not the CUDA build (gigabytes).
ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    PYTHONPATH=/usr/local/airflow \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false
