"""Application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kennel import __version__
from kennel.config import Settings
from kennel.datasets.storage import unsettled
from kennel.db.engine import make_engine
from kennel.db.maintenance import SQLiteCheckpointer, UpkeepRunner, tune_gc
from kennel.db.migrate import upgrade
from kennel.db.session import make_sessionmaker, unit_of_work
from kennel.errors import PayloadTooLarge, error_item, error_response, install_error_handlers

log = logging.getLogger("kennel")


class BodyLimit:
    """Refuse bodies over the limit before anything parses them (413), declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _too_large(self) -> str:
        return f"request body exceeds the limit of {self.limit} bytes (KENNEL_MAX_BODY_BYTES)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    response = error_response(413, [error_item(413, "Payload Too Large", self._too_large())])
                    await response(scope, receive, send)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise PayloadTooLarge(self._too_large())
            return message

        await self.app(scope, limited, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    engine = make_engine(settings.database_url)
    if settings.migrate_on_start:
        upgrade(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        checkpointer = SQLiteCheckpointer(engine) if engine.dialect.name == "sqlite" else None
        if checkpointer:
            checkpointer.start()
        upkeep = UpkeepRunner(engine, app.state.sessionmaker)
        upkeep.start()
        with unit_of_work(app.state.sessionmaker, write=False) as session:
            upkeep.submit(unsettled(session))
        tune_gc()
        try:
            yield
        finally:
            upkeep.stop()
            if checkpointer:
                checkpointer.stop()
            engine.dispose()

    app = FastAPI(title="Kennel", version=__version__, lifespan=lifespan,
                  description="Self-hosted Datadog LLM Observability evaluation API")
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    install_error_handlers(app)

    from kennel.annotations.router import router as annotations_router
    from kennel.datasets.lifecycle_router import router as lifecycle_router
    from kennel.datasets.router import router as datasets_router
    from kennel.experiments.router import router as experiments_router
    from kennel.projects.router import router as projects_router
    from kennel.spans.router import router as spans_router

    for router in (projects_router, datasets_router, lifecycle_router, experiments_router, annotations_router,
                   spans_router):
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory` (used by `kennel serve`, one call per worker)."""
    return create_app(Settings.from_env())
