# The image the rendered Jobs run: fl-gitops with torch (CPU), non-root, one entrypoint
# for both the cluster's training Job (`fl-gitops client`) and the hub's reconcile
# CronJob (`fl-gitops reconcile`).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib

# git and ssh for the reconcile job's config repo; nothing else from the OS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY fl_gitops ./fl_gitops

# torch first and pinned, from PyTorch's CPU index: an unpinned torch pulls a CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install ./[train,s3] \
 && rm -rf /src

# A numeric user, so that Kubernetes can verify runAsNonRoot.
RUN useradd --uid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin fl
USER 10001
WORKDIR /tmp

ENTRYPOINT ["fl-gitops"]
CMD ["--help"]
