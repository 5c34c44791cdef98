# syntax=docker/dockerfile:1
# ketpet_bids container: a slim Python image with wheels only (no compilers), the TemplateFlow
# templates the defaults need, and an unprivileged user.
#   docker build -t ketpet_bids .            # the runtime image (last stage)
#   docker build --target test .             # run the test suite inside the image
#   docker run --rm ketpet_bids --version

FROM python:3.11.11-slim-bookworm AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ---- build: install the package and its dependencies into the system Python ----------------
FROM base AS builder
# Binary wheels only: the image has no compiler, and uv must never build a dependency from
# source (only the ketpet_bids project itself is built).
ENV UV_NO_CACHE=1 \
    UV_NO_BUILD=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ketpet_bids ./ketpet_bids
# The same install command as CI (.github/workflows/tests.yml, job "image-install").
RUN python -m pip install uv && uv pip install --system --compile-bytecode ".[test]"
# Templates the defaults need (template, tissue priors, the default atlas's sources), fetched
# now so that the image runs offline; the same script users run (docs/usage.rst).
ENV TEMPLATEFLOW_HOME=/opt/templateflow
COPY scripts/prefetch_templates.py ./scripts/
RUN python scripts/prefetch_templates.py

# ---- runtime ---------------------------------------------------------------------------------
FROM base AS runtime
ARG VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="ketpet_bids" \
      org.opencontainers.image.description="BIDS-App for dynamic PET: motion correction, co-registration, regions, PVC, kinetic modelling and group statistics" \
      org.opencontainers.image.source="https://github.com/ketpet-bids/ketpet_bids" \
      org.opencontainers.image.documentation="https://github.com/ketpet-bids/ketpet_bids/tree/main/docs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}"
COPY --from=builder /usr/local /usr/local
COPY --from=builder /opt/templateflow /opt/templateflow
# One thread per process by default: parallelism comes from --nprocs (and --omp-nthreads).
ENV OMP_NUM_THREADS=1 \
    ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1 \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    TEMPLATEFLOW_AUTOUPDATE=0 \
    MPLCONFIGDIR=/tmp/matplotlib \
    NIPYPE_NO_ET=1 \
    KETPET_IMAGE_TAG=${VERSION}
RUN useradd --create-home --uid 1000 --user-group --shell /usr/sbin/nologin ketpet
USER 1000:1000
WORKDIR /home/ketpet
ENTRYPOINT ["ketpet-bids"]

# ---- test: the test suite against the installed package --------------------------------------
FROM runtime AS test
COPY --chown=ketpet:ketpet pyproject.toml /home/ketpet/src/
COPY --chown=ketpet:ketpet tests /home/ketpet/src/tests
WORKDIR /home/ketpet/src
# Two test files check files that are not in the image (Dockerfile, workflows, apptainer/).
RUN python -m pytest -q -m "not slurm" -p no:cacheprovider --ignore=tests/test_dockerfile.py \
    --ignore=tests/cluster/test_apptainer_recipe.py

# ---- default target: the runtime image ------------------------------------------------------
FROM runtime AS production
