#!/bin/sh
# The article's start script, with celery -> celeriac and the app path -> proj.
if [ "$1" = "beat" ] ; then
    celeriac -A proj beat --loglevel=INFO
else
    celeriac -A proj worker --concurrency=4 --loglevel=INFO --without-gossip --without-mingle --without-heartbeat -Ofair
fi
