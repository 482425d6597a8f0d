# The lab's three images, one file: upstream (the slow dependency, aiohttp.web), receiver
# (FastAPI on uvicorn, calling upstream the way RECEIVER_MODE says) and sender (the load
# generator). One stage installs a service and its code; a small target per service says
# what it runs and exposes. Build from the repository root, naming the service twice:
#   docker build --target receiver --build-arg SERVICE=receiver -t blocking-io-lab/receiver:dev .
# (docker-compose.yml passes both). PYTHON_IMAGE: a pinned python image;
# scripts/offline-images.sh builds a stand-in for machines that cannot pull one.
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS service
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin lab
WORKDIR /app

# upstream, receiver or sender: its requirements, its package. Declared here, after the
# layers the three images share, so only what follows differs between them.
ARG SERVICE
RUN case "${SERVICE}" in upstream|receiver|sender) ;; \
      *) echo "SERVICE='${SERVICE}': build with --target S --build-arg SERVICE=S, S one of upstream, receiver, sender" >&2; exit 2 ;; \
    esac
# Dependencies first, in their own layer: code changes do not reinstall them.
COPY constraints.txt ${SERVICE}/requirements.txt /tmp/deps/
RUN pip install -r /tmp/deps/requirements.txt -c /tmp/deps/constraints.txt

# Only the shared package and this service's: never the other services, tests or tooling.
COPY lab/ lab/
COPY ${SERVICE}/ ${SERVICE}/
# Numeric, so a runtime can tell it is not root without looking the name up (runAsNonRoot).
USER 10001
ENV HOST=0.0.0.0

FROM service AS upstream
EXPOSE 8001 9001
CMD ["python", "-m", "upstream"]

FROM service AS receiver
EXPOSE 8000 9000
CMD ["python", "-m", "receiver"]

FROM service AS sender
EXPOSE 9002
CMD ["python", "-m", "sender"]
