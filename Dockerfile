# syntax=docker/dockerfile:1
# One image for every TEEPlane component (operator, RAS, TKS, BGS, EPS, agent): `teeplane <command>`.
#   docker build -t REGISTRY/teeplane:0.1.0 . && docker push REGISTRY/teeplane:0.1.0
# then install the chart with image.digest set to the digest the push reports.
# The base is pinned by tag only (no registry was reachable to read its digest when this was
# written): for a reproducible build pass PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# A compiler for any dependency without a wheel for this platform; it stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/teeplane
WORKDIR /src
COPY pyproject.toml README.md ./
COPY teeplane ./teeplane
COPY attestation ./attestation
COPY baseline ./baseline
COPY tks ./tks
COPY operator ./operator
RUN /opt/teeplane/bin/pip install --no-cache-dir --no-compile . \
 && /opt/teeplane/bin/python -m compileall -q /opt/teeplane/lib

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/teeplane /opt/teeplane
# The chart runs every component as this user with a read-only root filesystem (/tmp is a volume).
RUN groupadd --system --gid 65532 teeplane \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent teeplane
USER 65532:65532
ENV PATH=/opt/teeplane/bin:$PATH \
    PYTHONSAFEPATH=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["teeplane"]
CMD ["--help"]
