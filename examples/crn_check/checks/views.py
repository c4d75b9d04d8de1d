"""The check API: submit numbers (GET ?query=a,b,c or POST JSON), then follow the group."""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from celeriac import group
from celeriac.contrib.django.progress import group_snapshot

from .models import CheckedCrn
from .serializers import (
    CheckAcceptedSerializer,
    CheckProgressSerializer,
    CheckRejectedSerializer,
    CheckRequestSerializer,
)
from .tasks import check_registration_number
from .validators import split_numbers

STATUSES = [*CheckedCrn.Status.values, "failed"]


def submit(request: Request, raw_numbers: list[str]) -> Response:
    """Validate, queue the valid numbers as one group, and answer 202 at once."""
    valid, invalid = split_numbers(raw_numbers)
    if not valid:
        return Response({"detail": "no valid registration number to check", "invalid": invalid},
                        status=status.HTTP_400_BAD_REQUEST)
    # One publish for the whole group; the workers make the calls.
    app = check_registration_number.app
    result = group((check_registration_number.si(number) for number in valid), app=app).apply_async()
    result.save()  # so the progress endpoint can GroupResult.restore() it
    progress_url = request.build_absolute_uri(reverse("crn-check-progress", args=[result.id]))
    return Response(
        {
            "group_id": result.id,
            "total": len(valid),
            "tasks": [{"number": n, "task_id": r.id} for n, r in zip(valid, result.results, strict=True)],
            "invalid": invalid,
            "progress_url": progress_url,
        },
        status=status.HTTP_202_ACCEPTED,
    )


class CrnCheckView(APIView):
    @extend_schema(
        summary="Check registration numbers given in the query string",
        operation_id="crn_check_query",
        parameters=[OpenApiParameter("query", OpenApiTypes.STR, required=True,
                                     description="Comma-separated numbers, e.g. 1208801280,213,3898602190")],
        responses={202: CheckAcceptedSerializer, 400: CheckRejectedSerializer},
    )
    def get(self, request: Request) -> Response:
        query = request.query_params.get("query", "")
        numbers = [part for part in query.split(",") if part.strip()]
        if not numbers:
            return Response({"detail": "give numbers as ?query=1208801280,3898602190", "invalid": []},
                            status=status.HTTP_400_BAD_REQUEST)
        return submit(request, numbers)

    @extend_schema(
        summary="Check a list of registration numbers (for long lists)",
        operation_id="crn_check_submit",
        request=CheckRequestSerializer,
        responses={202: CheckAcceptedSerializer, 400: CheckRejectedSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = CheckRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return submit(request, serializer.validated_data["numbers"])


class CrnCheckProgressView(APIView):
    @extend_schema(
        summary="Progress and results of a submitted check",
        operation_id="crn_check_progress",
        parameters=[OpenApiParameter("results", OpenApiTypes.BOOL, required=False,
                                     description="Include the finished checks (default true).")],
        responses={200: CheckProgressSerializer},
    )
    def get(self, request: Request, group_id: str) -> Response:
        # Two store queries whatever the size: the member ids, then all their records.
        snapshot = group_snapshot(group_id, app=check_registration_number.app)
        if snapshot is None:
            return Response({"detail": f"no check {group_id!r}"}, status=status.HTTP_404_NOT_FOUND)
        counts = dict.fromkeys(STATUSES, 0)
        results = []
        for record in snapshot.finished():
            value = snapshot.value(record.task_id)
            if value is not None:
                entry = {"task_id": record.task_id, **value}
            else:  # failed for good (or revoked): the number comes from the stored arguments
                number = record.args[0] if record.args else None
                entry = {"task_id": record.task_id, "number": number, "status": "failed",
                         "message": record.exc_message or record.state}
            counts[entry["status"]] += 1
            results.append(entry)
        body = {
            "group_id": group_id,
            "total": snapshot.total,
            "done": len(results),
            "is_complete": len(results) == snapshot.total,
            "counts": counts,
        }
        if request.query_params.get("results", "true").lower() not in ("0", "false", "no"):
            body["results"] = results
        return Response(body)
