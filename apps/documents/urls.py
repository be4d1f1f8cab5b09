from django.urls import path

from . import api, views

urlpatterns = [
    path("", views.document_list, name="document_list"),
    path("status/", api.document_statuses, name="document_statuses"),
    path("<uuid:document_id>/delete/", views.document_delete, name="document_delete"),
    path("<uuid:document_id>/file", views.document_file, {"kind": "file"}, name="document_file"),
    path("<uuid:document_id>/text", views.document_file, {"kind": "text"}, name="document_text"),
    # The chunked upload protocol; the same views are mounted under /api/documents/uploads/.
    path("uploads/", api.upload_create, name="upload_create"),
    path("uploads/<uuid:upload_id>/", api.upload_detail, name="upload_detail"),
    path("uploads/<uuid:upload_id>/chunk", api.upload_chunk, name="upload_chunk"),
    path("uploads/<uuid:upload_id>/chunk/", api.upload_chunk),
    path("uploads/<uuid:upload_id>/complete", api.upload_complete, name="upload_complete"),
    path("uploads/<uuid:upload_id>/complete/", api.upload_complete),
]
