"""Request and response shapes; drf-spectacular builds the OpenAPI schema from them."""

from rest_framework import serializers

from .models import CheckedCrn

MAX_NUMBERS = 10_000  # per request


class CheckRequestSerializer(serializers.Serializer):
    numbers = serializers.ListField(
        child=serializers.CharField(max_length=32, allow_blank=True, trim_whitespace=True),
        min_length=1, max_length=MAX_NUMBERS,
        help_text="Registration numbers, 10 digits each; hyphens allowed (120-88-01280).",
    )


class InvalidNumberSerializer(serializers.Serializer):
    number = serializers.CharField(help_text="As given.")
    reason = serializers.CharField(help_text="Why it was not sent.")


class QueuedCheckSerializer(serializers.Serializer):
    number = serializers.CharField()
    task_id = serializers.CharField()


class CheckAcceptedSerializer(serializers.Serializer):
    group_id = serializers.CharField(help_text="Follow it at progress_url.")
    total = serializers.IntegerField(help_text="Valid numbers queued (duplicates once).")
    tasks = QueuedCheckSerializer(many=True)
    invalid = InvalidNumberSerializer(many=True, help_text="Numbers refused, never sent.")
    progress_url = serializers.CharField()


class CheckRejectedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    invalid = InvalidNumberSerializer(many=True)


class CheckResultSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    number = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=[*CheckedCrn.Status.values, "failed"])
    message = serializers.CharField(allow_blank=True)


class CheckProgressSerializer(serializers.Serializer):
    group_id = serializers.CharField()
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    is_complete = serializers.BooleanField()
    counts = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Finished checks per status: active, suspended, closed, unregistered, failed.",
    )
    results = CheckResultSerializer(many=True, required=False, help_text="Finished checks, in request order.")
