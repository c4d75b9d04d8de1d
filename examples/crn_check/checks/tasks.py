"""The check: one ``async def`` task per number, so one worker holds hundreds of calls in flight."""

import httpx
from crn_check.celery import app
from django.conf import settings
from django.utils import timezone

from celeriac.demo.hometax import HometaxUnavailable, check

from .models import CheckedCrn


# The project's app, as in the article (``from config.celery import app``). A reusable app
# would use ``@shared_task``, which binds to the most recently created app when called.
@app.task(
    bind=True,
    autoretry_for=(httpx.TransportError, HometaxUnavailable),
    retry_backoff=True,  # 1 s, 2 s, 4 s ... with full jitter
    retry_backoff_max=8,
    max_retries=6,
)
async def check_registration_number(self, number: str) -> dict[str, str]:
    """Ask the tax office about ``number``, store the answer, return ``{number, status, message}``."""
    status, message = await check(settings.HOMETAX_URL, number)
    # Idempotent: a re-check, or a run repeated after a worker died, updates the same row.
    await CheckedCrn.objects.aupdate_or_create(
        registration_number=number,
        defaults={"status": status, "message": message, "checked_at": timezone.now()},
    )
    return {"number": number, "status": status, "message": message}
