import os

from celeriac import Celery

# The article's config/celery.py, with celery -> celeriac. Its broker was Redis; here it
# is the embedded SQLite file, so nothing else needs to run (CELERIAC_BROKER_URL or
# BROKER_URL below switch it to redis://... when you have one).
app = Celery(
    "proj",
    broker=os.environ.get("CELERIAC_BROKER_URL", "sqlite:///celeriac.db"),
    include=["proj.tasks"],
)
