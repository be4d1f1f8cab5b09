from django.urls import path

from . import views

urlpatterns = [
    path("", views.queue, name="review_queue"),
    path("summary/", views.summary, name="review_summary"),
    path("bulk/", views.bulk, name="review_bulk"),
    path("import/", views.import_runs, name="review_import"),
    path("<int:review_id>/", views.review_update, name="review_update"),
    path("runs/<uuid:run_id>/feedback/", views.run_feedback, name="run_feedback"),
]
