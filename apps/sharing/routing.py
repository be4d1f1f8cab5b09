from django.urls import path

from .consumers import SharedRunEventsConsumer

websocket_urlpatterns = [
    path("ws/share/<str:token>/", SharedRunEventsConsumer.as_asgi()),
]
