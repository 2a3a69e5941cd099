"""The Models view: the registry's models; for each, which version serves and why, how every version was
trained, promote and roll back.

Pages: ``/`` the models (name, production, classes, dataset); ``/<model>/`` its versions, promotion
history and runs; ``/<model>/versions/<version>``, ``/<model>/runs/<run id>``. Server-rendered pages (Jinja2, autoescaped) over :mod:`retraining.catalog`; plots are the
run's own ``curve.png``/``confusion.png`` from the artifact store and SVG drawn here, so
nothing is fetched from outside. Reading needs the Airflow user to be allowed to read the
``retrain`` DAG; promote and rollback need permission to trigger it, and go through the DAG's
deploy path: they trigger the ``promote_model`` DAG (a worker runs :func:`retraining.deploy.deploy`:
local, the model server follows the registry; kubernetes, ``helm upgrade`` with the worker's
RBAC), a compare-and-swap against the production the page showed.

Bad input is a 4xx naming it, never a 500: ids are checked by :mod:`retrain_steps.registry`
before the store is touched (an impossible version or run id is a 404), a reason is bounded by
``registry.MAX_REASON_CHARS`` (400), and an unreadable registry record is named on the page
(changes are refused, 409, until it is repaired).
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Annotated

import jinja2
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from retrain_steps import layout

DAG_ID = "retrain"
PROMOTE_DAG_ID = "promote_model"
PLOTS = {layout.CURVE_PLOT: "model_uri", layout.CONFUSION_PLOT: "evaluation_uri"}  #: the run's plots, by the row's folder
ICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#4a5568" stroke-width="2">'
        '<path d="M12 2 3 7l9 5 9-5-9-5z"/><path d="m3 12 9 5 9-5"/><path d="m3 17 9 5 9-5"/></svg>')
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
    undefined=jinja2.StrictUndefined,
)
TEMPLATES.filters["quote"] = lambda value: urllib.parse.quote(str(value), safe="")
MAX_MESSAGE_CHARS = 1000  #: the status line the view redirects to after a change (``?message=``)


def _user(method: str):
    """A dependency: the Airflow user (JWT from the UI's cookie or a bearer token), allowed ``method`` on the DAG."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.core_api.security import get_user
    from airflow.api_fastapi.app import get_auth_manager

    async def allowed(request: Request, user=Depends(get_user)):
        entity = DagAccessEntity.RUN
        if not get_auth_manager().is_authorized_dag(method=method, access_entity=entity,
                                                    details=DagDetails(id=DAG_ID), user=user):
            raise HTTPException(403, f"you may not {'trigger' if method == 'POST' else 'read'} runs of {DAG_ID}")
        if method == "POST" and not _same_origin(request):
            raise HTTPException(403, "cross-site form posts are refused")
        return user

    return allowed


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or urllib.parse.urlparse(origin).netloc == request.headers.get("host")


def _settings():
    from retraining import config, store_connection

    settings = config.settings()
    store_connection.apply_to_process(settings.artifact_conn_id)
    return settings


def _page(name: str, status_code: int = 200, *, depth: int, **context) -> HTMLResponse:
    """Render a page whose folder is ``depth`` levels below the view's root: links to the models (``home``), to
    Airflow (``airflow``) and, on a model's pages, to the model (``root``) are relative, as the view is mounted."""
    up = "../" * depth
    context = {"root": "../" * (depth - 1) or "./", **context, "home": up or "./", "airflow": f"{up}../"}
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status_code)


def _model(model: str) -> str:
    """A model name from the path; 404 for one the registry cannot hold (before the store is read)."""
    from retrain_steps import registry

    try:
        return registry.check_model_name(model)
    except registry.InvalidId as err:
        raise HTTPException(404, str(err)) from None


def _known_model(registry_uri: str, model: str) -> tuple[str, tuple[list[dict], list]]:
    """``model`` when the registry has it, with the registry's cards (:func:`retraining.catalog.every_card`: read
    once a page, the catalog takes them); 404 naming the models it has otherwise (a mistyped URL is not an empty
    model), and for a name no model can have before the store is read."""
    from retrain_steps import registry

    from retraining import catalog

    _model(model)  # a 404 before the store is read
    cards = catalog.every_card(registry_uri)
    if model not in (known := registry.models(registry_uri, cards[0])):
        raise HTTPException(404, f"no model {model!r} in the registry; models: {', '.join(known) or 'none yet'}")
    return model, cards


def _catalog_row(registry_uri: str, model: str, version: str) -> tuple[dict, dict]:
    """The version's catalog row and its model's catalog; 404 for an impossible id (before the store is read) or
    one the model does not have."""
    from retrain_steps import registry

    from retraining import catalog

    try:
        registry.check_version(version)
        models = catalog.model_catalog(registry_uri, _model(model))
        return catalog.find(models, version), models
    except registry.InvalidId as err:
        raise HTTPException(404, str(err)) from None
    except KeyError:
        raise HTTPException(404, f"version {version} is not a version of model {model}") from None


def _row(registry_uri: str, model: str, version: str) -> dict:
    return _catalog_row(registry_uri, model, version)[0]


def _mlflow_link(model: str) -> str | None:
    """The model's page in MLflow when runs are tracked (``MLFLOW_TRACKING_URI`` or the ``retrain_mlflow``
    connection), else None."""
    from retrain_steps import tracking

    from retraining.tracking_connection import tracking_settings

    try:
        settings = tracking_settings()
    except Exception:  # noqa: BLE001 (a bad MLFLOW_* value or no connection lookup here: no link, never a 500)
        return None
    return tracking.registered_model_url(settings.uri, model) if settings.enabled else None


def _form_value(check, value: str) -> str:
    """``check(value)`` (a registry check), a ``ValueError`` answered as a 400 naming the value."""
    try:
        return check(value)
    except ValueError as err:
        raise HTTPException(400, str(err)) from None


def create_app() -> FastAPI:
    app = FastAPI(title="Models", description=__doc__.splitlines()[0], docs_url=None, redoc_url=None)
    reader, trigger = Depends(_user("GET")), Depends(_user("POST"))

    from retrain_steps import artifacts, registry

    @app.exception_handler(StarletteHTTPException)  # also Starlette's own (404 of no route, a form too large)
    async def error_page(request: Request, exc: StarletteHTTPException):
        if "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        depth = request.url.path.removeprefix(request.scope.get("root_path", "")).lstrip("/").count("/")
        return _page("error.html", exc.status_code, depth=depth, status=exc.status_code, message=exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):  # without echoing the input back
        fields = sorted({".".join(str(part) for part in error["loc"][1:]) for error in exc.errors()})
        return await error_page(request, HTTPException(422, f"invalid or missing: {', '.join(fields)}"))

    @app.exception_handler(registry.UnreadableEntry)
    async def unreadable_record(request: Request, exc: registry.UnreadableEntry):  # a change needs the production
        return await error_page(request, HTTPException(409, f"refused: {exc}; nothing was changed"))

    @app.exception_handler(artifacts.ArtifactError)
    async def store_unavailable(request: Request, exc: artifacts.ArtifactError):
        return await error_page(request, HTTPException(503, f"the registry cannot be read: {exc}"))

    @app.get("/icon.svg", include_in_schema=False)
    def icon() -> Response:  # the navigation entry's icon (public, like Airflow's own assets)
        return Response(ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    @app.get("/", response_class=HTMLResponse, dependencies=[reader])
    def index() -> HTMLResponse:
        from retraining import catalog

        settings = _settings()
        return _page("models.html", depth=0, models=catalog.overview(settings.registry), message="",
                     registry=settings.registry, dag_id=DAG_ID)

    @app.get("/api/models", dependencies=[reader])
    def models_json() -> JSONResponse:
        from retraining import catalog

        return JSONResponse(catalog.overview(_settings().registry))

    @app.get("/api/models/{model}", dependencies=[reader])
    def model_json(model: str) -> JSONResponse:
        from retraining import catalog

        settings = _settings()
        model, cards = _known_model(settings.registry, model)
        return JSONResponse(catalog.model_catalog(settings.registry, model, cards=cards))

    @app.get("/{model}/", response_class=HTMLResponse, dependencies=[reader])
    def model_page(model: str, message: str = "") -> HTMLResponse:
        from retraining import catalog

        if len(message) > MAX_MESSAGE_CHARS:
            raise HTTPException(400, f"message is {len(message)} characters long; at most {MAX_MESSAGE_CHARS}")
        settings = _settings()
        model, cards = _known_model(settings.registry, model)
        models = catalog.model_catalog(settings.registry, model, cards=cards)
        production = next((r for r in models["versions"] if r["status"] == "production"), None)
        shown = production or next((r for r in models["versions"] if r["card"]), None)
        classes = (((shown or {}).get("card") or {}).get("input_spec") or {}).get("class_names", [])
        return _page("model.html", depth=1, model=model, classes=classes, models=models, production=production,
                     message=message, registry=settings.registry, dag_id=DAG_ID, problems=models["problems"],
                     mlflow=_mlflow_link(model))

    @app.get("/{model}", include_in_schema=False)
    def model_folder(model: str) -> Response:  # the model's pages link relative to its folder
        return RedirectResponse(f"{_model(model)}/", status_code=307)

    @app.get("/{model}/versions/{version}", response_class=HTMLResponse, dependencies=[reader])
    def version_page(model: str, version: str) -> HTMLResponse:
        from retraining import catalog

        settings = _settings()
        row, models = _catalog_row(settings.registry, model, version)
        row = catalog.with_reproductions(settings.registry, row, models["problems"])
        return _page("version.html", depth=2, model=model, row=row, lineage=catalog.lineage(row),
                     production=models["production"], evaluation=catalog.evaluation(row), dag_id=DAG_ID,
                     problems=models["problems"])

    @app.get("/{model}/versions/{version}/{plot}", dependencies=[reader])
    def version_plot(model: str, version: str, plot: str) -> Response:
        from retrain_steps import artifacts

        if plot == "history.svg":
            return _history_svg(model, version)
        if plot not in PLOTS:
            raise HTTPException(404, f"no plot {plot!r}; plots: {', '.join([*PLOTS, 'history.svg'])}")
        row = _row(_settings().registry, model, version)
        try:
            if not row[PLOTS[plot]]:
                raise artifacts.ArtifactError(f"{version} has no {PLOTS[plot]}")
            data = artifacts.read_bytes(layout.file_in(row[PLOTS[plot]], plot), max_bytes=16 * 2**20)
        except (artifacts.ArtifactError, TypeError):
            raise HTTPException(404, f"{plot} of {version} is not in the artifact store any more") from None
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    def _history_svg(model: str, version: str) -> Response:
        from retraining import catalog
        from retraining.models_view.charts import line_chart

        history = catalog.training_history(_row(_settings().registry, model, version))
        svg = line_chart({"validation accuracy": [h.get("val_accuracy") for h in history]},
                         title=f"{version}: validation accuracy per epoch", y_label="accuracy")
        return Response(svg, media_type="image/svg+xml")

    @app.get("/{model}/runs/{run_id}", response_class=HTMLResponse, dependencies=[reader])
    def run_page(model: str, run_id: str) -> HTMLResponse:
        run = _run(model, run_id)
        return _page("run.html", depth=2, model=model, run=run, dag_id=run.get("dag_id") or DAG_ID)

    @app.get("/{model}/runs/{run_id}/candidates.svg", dependencies=[reader])
    def run_chart(model: str, run_id: str) -> Response:
        from retraining import catalog
        from retraining.models_view.charts import line_chart

        run = _run(model, run_id)
        series = {}
        for c in run.get("candidates", []):
            history = catalog.training_history({"model_uri": c.get("model")})
            series[f"#{c['index']} lr {c.get('learning_rate')}"] = [h.get("val_accuracy") for h in history]
        return Response(line_chart(series, title="candidates: validation accuracy per epoch", y_label="accuracy"),
                        media_type="image/svg+xml")

    def _run(model: str, run_id: str) -> dict:
        try:
            return registry.run_record(_settings().registry, run_id, _model(model))
        except registry.InvalidId as err:
            raise HTTPException(404, str(err)) from None
        except registry.UnreadableEntry as err:
            raise HTTPException(404, f"run {run_id} has no readable record: {err}") from None
        except artifacts.ArtifactError:
            raise HTTPException(404, f"run {run_id} has no record of model {model} in the registry") from None

    @app.post("/{model}/versions/{version}/promote")
    def promote(model: str, version: str, expected: Annotated[str, Form()], reason: Annotated[str, Form()] = "",
                user=trigger) -> Response:
        if expected:
            _form_value(registry.check_version, expected)
        _form_value(registry.check_reason, reason)
        settings = _settings()
        if not _row(settings.registry, model, version)["card"]:
            raise HTTPException(400, f"version {version} was never packaged: only registered versions can be promoted")
        return _request(settings, user, "promote", model=model, version=version, expected=expected or None,
                        reason=reason or "promoted from the Models view", back="../../")

    @app.post("/{model}/rollback")
    def rollback(model: str, expected: Annotated[str, Form()], reason: Annotated[str, Form()] = "",
                 user=trigger) -> Response:
        _form_value(registry.check_version, expected)
        _form_value(registry.check_reason, reason)
        settings = _settings()
        latest = registry.latest_promotion(settings.registry, _model(model))
        if not latest or not latest.get("previous"):
            raise HTTPException(400, f"nothing to roll back to: model {model}'s production has no previous version")
        return _request(settings, user, "rollback", model=model, version=latest["previous"], expected=expected,
                        reason=reason or f"rollback from {latest['version']}", back="./")

    return app


def _request(settings, user, action: str, *, model: str, version: str, expected: str | None, reason: str,
             back: str) -> Response:
    """Ask ``promote_model`` to deploy ``model``'s ``version`` (a worker runs the DAG's deploy path); 303 back
    saying so.

    Refused at once (409) when the model's production is not what the page showed; the task checks again
    (compare-and-swap) when it runs.
    """
    from retrain_steps import registry

    current = registry.production_version(settings.registry, model)
    if current != expected:
        raise HTTPException(409, f"refused: production is {current or 'empty'}, not {expected or 'empty'} as the page "
                                 f"showed; nothing was rolled out (reload the page)")
    if version == current:
        raise HTTPException(409, f"refused: {version} is in production already; nothing to {action}")
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound
    from airflow.utils.types import DagRunTriggeredByType

    conf = {"model": model, "action": action, "version": version, "expected": expected,
            "reason": reason}  # actor: the trigger's user
    try:
        run = trigger_dag(PROMOTE_DAG_ID, triggered_by=DagRunTriggeredByType.UI, conf=conf,
                          triggering_user_name=user.get_name())
    except DagNotFound:
        raise HTTPException(503, f"the {PROMOTE_DAG_ID} DAG is not loaded yet: try again in a minute") from None
    message = (f"{action} of {model} {version} requested: run {run.run_id} of {PROMOTE_DAG_ID} deploys it; "
               "production changes when it succeeds (reload)")
    return RedirectResponse(f"{back}?message={urllib.parse.quote(message)}", status_code=303)


app = create_app()
