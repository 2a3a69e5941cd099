"""The Models view: a FastAPI app the Airflow API server mounts at ``/models`` (see ``plugins/models_plugin.py``)."""
