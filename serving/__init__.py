"""The BentoML model server for the digits classifier (``service.py``) and its packaging CLI."""
