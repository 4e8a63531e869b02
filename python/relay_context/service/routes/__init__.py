"""One router per resource. ``create_app`` mounts each; a new resource (``context.py``) adds
its module here and one ``include_router`` line in ``service/app.py``."""
