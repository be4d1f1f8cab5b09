from django.urls import path

from . import api

urlpatterns = [
    path("", api.documents_collection, name="api_documents"),
    path("<uuid:document_id>/", api.document_detail, name="api_document_detail"),
    path("<uuid:document_id>/file", api.document_download, {"kind": "file"}, name="api_document_file"),
    path("<uuid:document_id>/file/", api.document_download, {"kind": "file"}),
    path("<uuid:document_id>/text", api.document_download, {"kind": "text"}, name="api_document_text"),
    path("<uuid:document_id>/text/", api.document_download, {"kind": "text"}),
    path("uploads/", api.upload_create, name="api_upload_create"),
    path("uploads/<uuid:upload_id>/", api.upload_detail, name="api_upload_detail"),
    path("uploads/<uuid:upload_id>/chunk", api.upload_chunk, name="api_upload_chunk"),
    path("uploads/<uuid:upload_id>/chunk/", api.upload_chunk),
    path("uploads/<uuid:upload_id>/complete", api.upload_complete, name="api_upload_complete"),
    path("uploads/<uuid:upload_id>/complete/", api.upload_complete),
]
