"""Application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from kennel import __version__
from kennel.auth import gate_authenticator
from kennel.config import Settings
from kennel.datasets import service as datasets
from kennel.db.engine import make_engine
from kennel.db.maintenance import SQLiteCheckpointer, UpkeepRunner, tune_gc
from kennel.db.migrate import upgrade
from kennel.db.session import make_sessionmaker, unit_of_work
from kennel.errors import install_error_handlers
from kennel.gate import Admission, Gate, Limits
from kennel.jsonapi import plain_parameters
from kennel.logs import AccessLog

log = logging.getLogger("kennel")


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
        close_datasets = datasets.open_resources(engine, app.state.sessionmaker)
        upkeep = UpkeepRunner(engine, app.state.sessionmaker)
        upkeep.start()
        with unit_of_work(app.state.sessionmaker, write=False) as session:
            upkeep.submit(datasets.recovery_jobs(session))
        tune_gc()
        try:
            yield
        finally:
            upkeep.stop()
            close_datasets()
            if checkpointer:
                checkpointer.stop()
            engine.dispose()

    # /docs and /redoc come from kennel.docs, which serves their assets itself (no CDN).
    app = FastAPI(title="Kennel", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Self-hosted Datadog LLM Observability evaluation API. Authorize with a key "
                              "pair from `kennel keys create` to try the routes.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    install_error_handlers(app)

    from kennel.annotations.owner_router import router as queue_owner_router
    from kennel.annotations.review_router import router as review_router
    from kennel.annotations.router import router as annotations_router
    from kennel.datasets.import_router import router as import_router
    from kennel.datasets.lifecycle_router import router as lifecycle_router
    from kennel.datasets.router import router as datasets_router
    from kennel.datasets.workspace_router import router as workspace_router
    from kennel.docs import install as install_docs
    from kennel.experiments.compare_router import router as compare_router
    from kennel.experiments.router import router as experiments_router
    from kennel.openapi import install as install_openapi
    from kennel.people.router import router as people_router
    from kennel.projects.router import router as projects_router
    from kennel.spans.router import router as spans_router

    routers = (projects_router, datasets_router, lifecycle_router, experiments_router, annotations_router,
               spans_router, people_router, review_router, queue_owner_router, compare_router, workspace_router,
               import_router)
    for router in routers:
        app.include_router(router, dependencies=[Depends(plain_parameters)])
    install_openapi(app)
    install_docs(app)
    from kennel.web.dataset_import import router as dataset_import_router
    from kennel.web.dataset_records import router as dataset_records_router
    from kennel.web.datasets import router as datasets_pages_router
    from kennel.web.experiments import router as web_experiments_router
    from kennel.web.people import router as web_people_router
    from kennel.web.queue_owner import router as queue_owner_pages
    from kennel.web.review import router as review_pages
    from kennel.web.router import install as install_web
    from kennel.web.router import router as web_router
    from kennel.web.traces import router as traces_router

    install_web(app)
    # The work screens, each its own router; install_web added the shell's (sign-in, people, traces).
    screens = (review_pages, queue_owner_pages, web_experiments_router, datasets_pages_router,
               dataset_records_router, dataset_import_router)
    for screen in screens:
        app.include_router(screen)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.state.admission = Admission(limits_for(settings, engine.dialect.name))
    pages = (web_router, web_people_router, traces_router, *screens)
    app.add_middleware(Gate, routes=[r for router in (*routers, *pages) for r in router.routes],
                       admission=app.state.admission, authenticate=gate_authenticator(app.state.sessionmaker))
    # Outermost, so that its duration covers the gate's queue and its status every refusal.
    app.add_middleware(AccessLog)
    return app


def limits_for(settings: Settings, dialect: str) -> Limits:
    # SQLite runs one writer at a time whatever we do; the others wait in the gate's queue rather than in
    # SQLite's busy loop, where each would hold a worker thread. Together the turns stay well under both
    # AnyIO's 40 worker threads and PostgreSQL's pool of 30 (8 key checks + 8 reads + 8 writes), so a request that has its turn always gets
    # a thread and a connection.
    return Limits(max_body_bytes=settings.max_body_bytes, body_timeout=settings.body_timeout,
                  bodies_in_flight_bytes=settings.bodies_in_flight_bytes, queue_timeout=settings.queue_timeout,
                  reads=8, writes=1 if dialect == "sqlite" else 8)


def app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory` (used by `kennel serve`, one call per worker)."""
    return create_app(Settings.from_env())
