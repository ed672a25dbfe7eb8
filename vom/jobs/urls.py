"""The operations pages (every job of every app)."""

from django.urls import path

from vom.jobs import views

urlpatterns = [
    path("operations/", views.job_list, name="job-list"),
    path("operations/<int:pk>/", views.job_detail, name="job-detail"),
    path("operations/<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
]
