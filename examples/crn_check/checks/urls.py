from django.urls import path

from .views import CrnCheckProgressView, CrnCheckView

urlpatterns = [
    path("check/", CrnCheckView.as_view(), name="crn-check"),
    path("check/<str:group_id>/", CrnCheckProgressView.as_view(), name="crn-check-progress"),
]
