from django.db import models

from .validators import validate_crn


class CheckedCrn(models.Model):
    """The latest answer of the tax office for one number; a re-check updates the row."""

    class Status(models.TextChoices):
        ACTIVE = "active", "active (계속사업자)"
        SUSPENDED = "suspended", "suspended (휴업자)"
        CLOSED = "closed", "closed (폐업자)"
        UNREGISTERED = "unregistered", "unregistered (미등록)"

    registration_number = models.CharField(
        "business registration number (사업자등록번호)", max_length=10, unique=True, validators=[validate_crn]
    )
    status = models.CharField(max_length=16, choices=Status.choices, db_index=True)
    message = models.TextField("message from the service", blank=True)
    checked_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "checked registration number"
        ordering = ["-checked_at"]

    def __str__(self) -> str:
        return f"{self.registration_number}: {self.status}"

    @property
    def is_closed(self) -> bool:
        return self.status == self.Status.CLOSED
