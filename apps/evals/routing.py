from django.urls import path

from .consumers import EvaluationProgressConsumer

websocket_urlpatterns = [
    path("ws/evals/<uuid:evaluation_id>/", EvaluationProgressConsumer.as_asgi()),
]
