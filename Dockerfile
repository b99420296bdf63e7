# syntax=docker/dockerfile:1
# Build stage: install docservice and its runtime dependencies into a virtualenv.
FROM python:3.12-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md alembic.ini ./
COPY docservice ./docservice
RUN pip install .

# Runtime stage: the virtualenv only, run as an unprivileged user.
FROM python:3.12-slim
RUN useradd --create-home --uid 10001 docservice \
    && mkdir -p /app/data && chown docservice /app/data
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini /app/alembic.ini
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GRPC_HOST=0.0.0.0 \
    GRPC_PORT=50051 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    DATABASE_URL=sqlite+aiosqlite:////app/data/docservice.db
WORKDIR /app
USER docservice
EXPOSE 50051 8080
VOLUME ["/app/data"]
# With TLS on, add --tls --ca-file ... (or check from outside the container).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["docservice", "health", "--target", "127.0.0.1:50051", "--timeout", "3"]
CMD ["docservice", "serve"]
