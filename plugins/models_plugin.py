"""Registers the Models view with Airflow: the app at ``/models`` and its entry in the navigation."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from retraining.models_view.app import app


class ModelsViewPlugin(AirflowPlugin):
    name = "models_view"
    fastapi_apps = [{"app": app, "url_prefix": "/models", "name": "Models"}]
    external_views = [{"name": "Models", "href": "/models/", "url_route": "models", "destination": "nav",
                       "nav_top_level": True, "icon": "/models/icon.svg"}]
