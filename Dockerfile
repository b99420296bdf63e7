# syntax=docker/dockerfile:1
FROM python:3.12-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md alembic.ini ./
COPY docservice ./docservice
RUN pip install --no-cache-dir .

FROM python:3.12-slim
RUN useradd --create-home --uid 10001 docservice
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini /app/alembic.ini
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GRPC_HOST=0.0.0.0 \
    GRPC_PORT=50051 \
    DATABASE_URL=sqlite+aiosqlite:////app/data/docservice.db
WORKDIR /app
RUN mkdir -p /app/data && chown docservice /app/data
USER docservice
EXPOSE 50051
VOLUME ["/app/data"]
CMD ["python", "-m", "docservice"]
